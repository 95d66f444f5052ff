//! A chart layer's values files: read from the snapshot, SOPS files decrypted. A decrypted file
//! reaches helm only as a private file (0600) in a memory-backed directory that is removed when
//! helm is done, and also when the process is stopped by SIGINT or SIGTERM while helm runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error;
use super::{ChartRequest, ValuesSource};
use crate::error::{Error, Result};
use crate::render::{LazyIdentities, Secrets};
use crate::repo::Snapshot;

pub struct Values {
    files: Vec<ValuesFile>,
    /// Every decrypted string, and its base64: masked wherever it appears in the output.
    secret_forms: Zeroizing<Vec<String>>,
    /// What the files hold (sha256), for the output cache; `None` when one is secret (its
    /// output holds plaintext, which is never written to the cache).
    digest: Option<String>,
}

struct ValuesFile {
    path: String,
    /// What helm reads: the file's text, or the decrypted document as JSON.
    bytes: Zeroizing<Vec<u8>>,
    secret: bool,
}

impl Values {
    pub fn read(
        snapshot: &Snapshot,
        request: &ChartRequest,
        mode: Secrets,
        identities: &LazyIdentities,
    ) -> Result<Values> {
        let mut files = Vec::new();
        let mut forms: Zeroizing<Vec<String>> = Zeroizing::new(Vec::new());
        let mut hasher = Sha256::new();
        let mut any_secret = false;
        for source in &request.values {
            let path = match source {
                ValuesSource::File(path) => path,
                ValuesSource::Inline { label, values } => {
                    let text = serde_json::to_string(values).unwrap_or_default();
                    hasher.update((label.len() as u64).to_le_bytes());
                    hasher.update(label.as_bytes());
                    hasher.update((text.len() as u64).to_le_bytes());
                    hasher.update(text.as_bytes());
                    files.push(ValuesFile {
                        path: label.clone(),
                        bytes: Zeroizing::new(text.into_bytes()),
                        secret: false,
                    });
                    continue;
                }
            };
            let Some(bytes) = snapshot.read(path)? else {
                return Err(error(
                    &request.label,
                    format!("values file `{path}` of {} does not exist in the repository", request.configured_at),
                ));
            };
            let text = String::from_utf8(bytes).map_err(|e| Error::Document {
                file: path.clone(),
                line: 1,
                message: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            })?;
            let docs = crate::yaml::parse_documents(path, &text)?;
            let first = docs.into_iter().find(|d| !d.value.is_null());
            if let Some(doc) = &first
                && !doc.value.is_object()
            {
                return Err(Error::Document {
                    file: path.clone(),
                    line: doc.line,
                    message: "a values file must be a mapping of values".into(),
                });
            }
            let Some(doc) = first.filter(|d| crate::secrets::is_encrypted(&d.value)) else {
                hasher.update((path.len() as u64).to_le_bytes());
                hasher.update(path.as_bytes());
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
                files.push(ValuesFile { path: path.clone(), bytes: Zeroizing::new(text.into_bytes()), secret: false });
                continue;
            };
            any_secret = true;
            let (value, pointers) = match mode {
                Secrets::KeepEncrypted => {
                    let mut value = doc.value;
                    if let Some(map) = value.as_object_mut() {
                        map.remove("sops");
                    }
                    let pointers = crate::secrets::encrypted_pointers(&value);
                    (value, pointers)
                }
                Secrets::Decrypt => {
                    let identities = identities
                        .get_or_init(|| crate::secrets::Identities::from_environment().map_err(|e| e.chain()))
                        .as_ref()
                        .map_err(|message| Error::Secret {
                            file: path.clone(),
                            message: format!("cannot decrypt: {message}"),
                        })?;
                    let mut decrypted = crate::secrets::decrypt_documents(path, &[doc.value], identities)?;
                    let d = decrypted.remove(0);
                    (d.value.into_exposed(), d.secret_pointers)
                }
            };
            for pointer in &pointers {
                if let Some(Value::String(s)) = value.pointer(pointer)
                    && !s.is_empty()
                {
                    forms.push(s.clone());
                    forms.push(base64::engine::general_purpose::STANDARD.encode(s));
                }
            }
            let mut value = value;
            let bytes = Zeroizing::new(serde_json::to_vec(&value).unwrap_or_default());
            crate::secrets::zeroize_value(&mut value);
            files.push(ValuesFile { path: path.clone(), bytes, secret: true });
        }
        for (key, value) in &request.set {
            hasher.update(key.as_bytes());
            hasher.update(value.to_string().as_bytes());
        }
        let digest = (!any_secret).then(|| hex::encode(hasher.finalize()));
        forms.sort();
        forms.dedup();
        Ok(Values { files, secret_forms: forms, digest })
    }

    /// The digest of everything the values say, when none of it is secret.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    pub fn secret_forms(&self) -> &[String] {
        &self.secret_forms
    }

    /// A redactor for helm's messages, which may quote a value.
    pub fn redactor(&self) -> crate::secrets::Redactor {
        let mut redactor = crate::secrets::Redactor::default();
        for form in self.secret_forms.iter() {
            redactor.add(form);
        }
        redactor
    }

    /// Writes the files for helm, in order: plain ones into `plain_dir`, secret ones into a
    /// private memory-backed directory that lives as long as the returned guard.
    pub fn write(&self, plain_dir: &Path, layer: &str) -> Result<(Vec<PathBuf>, Option<SecretDir>)> {
        let mut paths = Vec::new();
        let mut secret_dir: Option<SecretDir> = None;
        for (i, file) in self.files.iter().enumerate() {
            let name = format!("values-{i}.yaml");
            if file.secret {
                let dir = match &mut secret_dir {
                    Some(dir) => dir,
                    None => secret_dir.insert(SecretDir::new(layer)?),
                };
                paths.push(dir.write(&name, &file.bytes, &file.path)?);
            } else {
                let path = plain_dir.join(&name);
                std::fs::write(&path, &*file.bytes).map_err(|e| Error::io(&path, "cannot write the values file", e))?;
                paths.push(path);
            }
        }
        Ok((paths, secret_dir))
    }
}

/// Where decrypted values may be written: `CAIRN_SECRET_TMPDIR`, else `/dev/shm`, else
/// `$XDG_RUNTIME_DIR` (both memory-backed on Linux).
fn memory_dir(layer: &str) -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("CAIRN_SECRET_TMPDIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
    ];
    candidates.into_iter().flatten().find(|d| !d.as_os_str().is_empty() && d.is_dir()).ok_or_else(|| {
        error(
            layer,
            "a SOPS values file needs a memory-backed directory to hand its decrypted values to helm, and neither /dev/shm nor $XDG_RUNTIME_DIR exists; set CAIRN_SECRET_TMPDIR to one (a tmpfs)",
        )
    })
}

/// A private directory of decrypted values files. Dropping it removes them; a SIGINT or SIGTERM
/// while it lives stops helm, removes them, and then ends the process as the signal would have.
pub struct SecretDir {
    dir: Option<tempfile::TempDir>,
    /// The process group of the helm that reads the files (0: none yet).
    pub helm_group: Arc<AtomicU32>,
    signals: signal_hook::iterator::Handle,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl SecretDir {
    fn new(layer: &str) -> Result<SecretDir> {
        use std::os::unix::fs::PermissionsExt;
        let base = memory_dir(layer)?;
        let dir = tempfile::Builder::new()
            .prefix("cairn-helm-values-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| Error::io(&base, "cannot create a private directory for decrypted values in", e))?;
        let mut signals =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]).map_err(
                |e| Error::io(dir.path(), "cannot watch for SIGINT/SIGTERM while decrypted values are in", e),
            )?;
        let handle = signals.handle();
        let helm_group = Arc::new(AtomicU32::new(0));
        let (group, path) = (Arc::clone(&helm_group), dir.path().to_path_buf());
        let watcher = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let pid = group.load(Ordering::SeqCst);
                if pid != 0 {
                    crate::process::kill_group(pid);
                }
                let _ = std::fs::remove_dir_all(&path);
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
        Ok(SecretDir { dir: Some(dir), helm_group, signals: handle, watcher: Some(watcher) })
    }

    fn write(&self, name: &str, bytes: &[u8], shown: &str) -> Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(dir) = &self.dir else {
            return Err(Error::Usage { message: "internal: the values directory is gone".into() });
        };
        let path = dir.path().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(shown, "cannot write the decrypted values for helm", e))?;
        file.write_all(bytes).map_err(|e| Error::io(shown, "cannot write the decrypted values for helm", e))?;
        Ok(path)
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        // Files first, then the watcher: a signal in between finds nothing left to remove.
        drop(self.dir.take());
        self.signals.close();
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}
