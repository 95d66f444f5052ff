//! The `cairn secrets` commands on files: encrypt, decrypt, edit, rotate and update keys. Files
//! are replaced atomically, and no command leaves a plaintext copy on disk.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Identities, Plaintext};
use crate::error::{Error, Result};

fn secret_error(file: &str, message: impl Into<String>) -> Error {
    Error::Secret { file: file.to_string(), message: message.into() }
}

/// The one document of a file (the commands that rewrite a file work on one document).
pub fn read_single_document(file: &Path) -> Result<Value> {
    let name = file.display().to_string();
    let mut docs = read_documents(file)?;
    if docs.len() != 1 {
        return Err(secret_error(&name, format!("holds {} documents; one document per file", docs.len())));
    }
    Ok(docs.remove(0))
}

fn read_documents(file: &Path) -> Result<Vec<Value>> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|e| Error::io(file, "cannot read", e))?;
    let text = String::from_utf8(bytes).map_err(|_| secret_error(&name, "not valid UTF-8"))?;
    Ok(crate::yaml::parse_documents(&name, &text)?.into_iter().map(|d| d.value).collect())
}

/// A document in the file's format: JSON for `.json`, YAML otherwise.
fn serialize(file: &Path, value: &Value) -> Result<String> {
    if file.extension().is_some_and(|e| e == "json") {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| secret_error(&file.display().to_string(), e.to_string()))?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(crate::yaml::to_sops_yaml(value))
    }
}

/// Writes an encrypted document back in the file's format, atomically.
fn write_encrypted(file: &Path, value: &Value) -> Result<()> {
    crate::fs::write_atomically(file, serialize(file, value)?.as_bytes())
}

/// `encrypt`: encrypts a plaintext file in place for its `.sops.yaml` creation rule; returns the
/// recipients.
pub fn encrypt_file(file: &Path) -> Result<String> {
    let name = file.display().to_string();
    let doc = Plaintext::new(read_single_document(file)?);
    let settings = super::settings_for(file)?;
    let encrypted = super::encrypt_document(doc.expose(), &settings).map_err(|m| secret_error(&name, m))?;
    // Replaced atomically: no moment leaves a half-written file, and the plaintext is gone.
    write_encrypted(file, &encrypted)?;
    Ok(settings.describe())
}

/// `rotate`: a new data key and new ciphertexts, same recipients and rule.
pub fn rotate_file(file: &Path, identities: &Identities) -> Result<String> {
    let name = file.display().to_string();
    let doc = read_single_document(file)?;
    let settings = super::settings_of(&doc).map_err(|m| secret_error(&name, m))?;
    let plain = super::decrypt_document(&name, &doc, identities)?.value;
    let encrypted = super::encrypt_document(plain.expose(), &settings).map_err(|m| secret_error(&name, m))?;
    write_encrypted(file, &encrypted)?;
    Ok(settings.describe())
}

/// `updatekeys`: the data key wrapped for the recipients the creation rule lists now.
pub fn updatekeys_file(file: &Path, identities: &Identities) -> Result<String> {
    let name = file.display().to_string();
    let doc = read_single_document(file)?;
    let settings = super::settings_for(file)?;
    let updated = super::rewrap(&doc, identities, &settings).map_err(|m| secret_error(&name, m))?;
    write_encrypted(file, &updated)?;
    Ok(settings.describe())
}

/// Every document of a SOPS file, decrypted.
pub fn decrypt_file(file: &Path, identities: &Identities) -> Result<Vec<Plaintext>> {
    let name = file.display().to_string();
    let docs = read_documents(file)?;
    if !docs.first().is_some_and(super::is_encrypted) {
        return Err(secret_error(&name, "not a SOPS file (no `sops` block in its first document)"));
    }
    Ok(super::decrypt_documents(&name, &docs, identities)?.into_iter().map(|d| d.value).collect())
}

/// What `edit` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Edited {
    Changed,
    Unchanged,
}

/// `edit`: opens the decrypted file in `$VISUAL`/`$EDITOR` (`vi` when neither is set) and
/// re-encrypts what is saved with the same data key, keeping the ciphertext of every value that
/// did not change. The plaintext lives in a private directory (0700, in `$XDG_RUNTIME_DIR` or
/// `/dev/shm` when they exist, which are memory-backed) and is overwritten and removed whatever
/// happens, including an interrupt while the editor runs.
pub fn edit_file(file: &Path, identities: &Identities) -> Result<Edited> {
    let name = file.display().to_string();
    let previous = read_single_document(file)?;
    if !super::is_encrypted(&previous) {
        return Err(secret_error(&name, "not a SOPS file; encrypt it first with `cairn secrets encrypt`"));
    }
    let plain = super::decrypt_document(&name, &previous, identities)?.value;
    let original = zeroize::Zeroizing::new(serialize(file, plain.expose())?);
    drop(plain);
    let scratch = Scratch::new(file)?;
    scratch.write(original.as_bytes())?;
    // An interrupt (the editor's Ctrl-C reaches the whole terminal process group) must not kill
    // cairn before it removes the plaintext.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut hooks = Vec::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        if let Ok(id) = signal_hook::flag::register(signal, std::sync::Arc::clone(&interrupted)) {
            hooks.push(id);
        }
    }
    let result = edit_loop(file, &name, &scratch, &original, &previous, identities, &interrupted);
    for id in hooks {
        signal_hook::low_level::unregister(id);
    }
    drop(scratch);
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(secret_error(&name, "interrupted; the file is unchanged and no plaintext copy was left"));
    }
    result
}

fn edit_loop(
    file: &Path,
    name: &str,
    scratch: &Scratch,
    original: &str,
    previous: &Value,
    identities: &Identities,
    interrupted: &std::sync::atomic::AtomicBool,
) -> Result<Edited> {
    use std::io::IsTerminal;
    loop {
        run_editor(&scratch.path)?;
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Edited::Unchanged);
        }
        let edited = zeroize::Zeroizing::new(
            std::fs::read_to_string(&scratch.path).map_err(|e| Error::io(&scratch.path, "cannot read", e))?,
        );
        if edited.as_str() == original {
            return Ok(Edited::Unchanged);
        }
        if edited.trim().is_empty() {
            return Err(secret_error(
                name,
                "the edited file is empty; nothing was changed (use `git rm` to delete it)",
            ));
        }
        let parsed = crate::yaml::parse_documents(name, &edited).and_then(|mut docs| {
            if docs.len() == 1 {
                Ok(Plaintext::new(docs.remove(0).value))
            } else {
                Err(secret_error(name, format!("the edited file holds {} documents; keep one", docs.len())))
            }
        });
        match parsed {
            Ok(doc) => {
                let encrypted = super::reencrypt_document(name, doc.expose(), previous, identities)?;
                write_encrypted(file, &encrypted)?;
                return Ok(Edited::Changed);
            }
            // Parse errors name a line and what is wrong there; they do not quote values.
            Err(e) if std::io::stdin().is_terminal() => {
                tracing::error!("{e}; opening the editor again (empty the file to give up)");
            }
            Err(e) => return Err(e),
        }
    }
}

fn run_editor(path: &Path) -> Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    // Through the shell, as git does, so `EDITOR="code --wait"` works.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| Error::io("sh", "cannot start the editor with", e))?;
    if !status.success() {
        return Err(Error::Usage {
            message: format!("the editor `{editor}` exited with {status}; the file is unchanged"),
        });
    }
    Ok(())
}

/// A private directory holding the plaintext while it is edited; zeroed and removed on drop.
struct Scratch {
    dir: PathBuf,
    path: PathBuf,
}

impl Scratch {
    fn new(file: &Path) -> Result<Scratch> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|d| d.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let mut random = [0u8; 8];
        aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut random);
        let dir = base.join(format!("cairn-edit-{}", hex::encode(random)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|e| Error::io(&dir, "cannot create a private directory", e))?;
        // The editor sees the file's own name, so it picks the right syntax.
        let file_name = file.file_name().map_or_else(|| "secret.yaml".into(), |n| n.to_os_string());
        Ok(Scratch { path: dir.join(file_name), dir })
    }

    fn write(&self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&self.path).map_err(|e| Error::io(&self.path, "cannot create", e))?;
        f.write_all(bytes).map_err(|e| Error::io(&self.path, "cannot write", e))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Editors may leave backup or swap files beside it: every file in the directory is
        // overwritten before it goes.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.is_file()
                    && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path)
                {
                    let _ = std::io::Write::write_all(&mut f, &vec![0u8; meta.len() as usize]);
                    let _ = f.sync_all();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
