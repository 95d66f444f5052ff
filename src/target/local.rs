//! The embedded local target. Layout under the target path:
//!
//! ```text
//! objects/<Kind>.<group|core>/<namespace|_cluster>/<name>.json   one file per live object
//! .cairn/inventory.json                                           what cairn manages here
//! .cairn/lock                                                     held (flock) during an apply
//! .cairn/releases/<id>.json                                       release records
//! ```
//!
//! Every write is atomic (temp file, fsync, rename, fsync of the directory) and files are mode
//! 0600 because objects may hold secrets, so an apply killed at any point leaves whole files only
//! and the next apply converges.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Holder;
use crate::error::{Error, Result};
use crate::fs::{sync_dir, write_atomically, write_json_atomically};
use crate::render::ObjectId;

pub struct LocalTarget {
    root: PathBuf,
    /// The path as configured, for messages and reports (stable across machines).
    label: String,
    environment: String,
}

/// The objects cairn manages in one environment; only these are ever pruned.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inventory {
    pub environment: String,
    pub objects: BTreeSet<ObjectId>,
    /// Per object (by its display name), the JSON pointers of values that came from SOPS files,
    /// so a plan masks them in the live object too, even once git no longer has the object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Vec<String>>,
    /// Per object (by its display name), the digest of what cairn last applied, so a plan marks
    /// objects changed outside git since as drift.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied: BTreeMap<String, String>,
    /// Per object (by its display name), the digest of the rendered object cairn last applied:
    /// with `applied`, a cluster plan knows an object both sides left alone without a dry run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rendered: BTreeMap<String, String>,
}

/// An exclusive hold on an environment. Released when dropped, and by the kernel when the
/// process dies, so a killed apply never leaves a stale lock behind.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Clear the holder so nobody reads a departed holder's name; the flock goes with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

impl LocalTarget {
    pub fn new(root: PathBuf, environment: &str) -> LocalTarget {
        let label = root.display().to_string();
        LocalTarget { root, label, environment: environment.to_string() }
    }

    /// A target whose reports name it by `label` (the path as written in `cairn.yaml`).
    pub fn with_label(root: PathBuf, label: &str, environment: &str) -> LocalTarget {
        LocalTarget { root, label: label.to_string(), environment: environment.to_string() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn describe(&self) -> String {
        format!("local:{}", self.label)
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".cairn")
    }

    /// The digester with this target's key (`.cairn/digest-key`, 32 random bytes, mode 0600).
    /// With `make`, a missing key is made (only plans and applies that involve secrets need
    /// one, so a plan of a repository without secrets still writes nothing); see
    /// [`super::Digester`].
    pub fn digester(&self, make: bool) -> Result<super::Digester> {
        let dir = self.state_dir();
        let path = dir.join("digest-key");
        match fs::read(&path) {
            Ok(key) if key.len() == 32 => return Ok(super::Digester::new(Some(&key))),
            Ok(_) => {
                return Err(Error::CorruptState { path, message: "the digest key is not 32 bytes".into() });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, "cannot read", e)),
        }
        if !make {
            return Ok(super::Digester::new(None));
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "cannot create the state directory", e))?;
        let key = super::random_key();
        // Written whole under a temporary name and linked into place only if no other process
        // made one meanwhile: every reader sees one key.
        let temp = dir.join(format!(".tmp-{}-digest-key", std::process::id()));
        write_atomically(&temp, &key[..])?;
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(super::Digester::new(Some(&key[..]))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.digester(false),
            Err(e) => Err(Error::io(&path, "cannot create", e)),
        }
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.state_dir().join("releases")
    }

    /// The file holding one object.
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        let group = if id.group.is_empty() { "core" } else { &id.group };
        let namespace = id.namespace.as_deref().unwrap_or("_cluster");
        self.root.join("objects").join(format!("{}.{group}", id.kind)).join(namespace).join(format!("{}.json", id.name))
    }

    /// Takes the environment's lock or fails at once naming the holder.
    pub fn lock(&self, holder: &Holder) -> Result<LockGuard> {
        let dir = self.state_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "cannot create the state directory", e))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, "cannot open the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<Holder>(&text)
                    .map(|h| h.to_string())
                    .unwrap_or_else(|_| "another process".to_string());
                return Err(Error::Locked { environment: self.environment.clone(), holder, path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, "cannot lock", e)),
        }
        let text = serde_json::to_string(holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&path, "cannot write the lock holder", e))?;
        self.remove_stale_temp_files();
        Ok(LockGuard { file })
    }

    /// Temp files left by a killed apply are garbage; only a lock holder may remove them.
    fn remove_stale_temp_files(&self) {
        fn sweep(dir: &Path) {
            let Ok(entries) = fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    sweep(&path);
                } else if name.starts_with(".tmp-") {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        sweep(&self.root);
    }

    /// Reads the live objects with these identities (absent ones are left out).
    pub fn read_objects(&self, ids: &[&ObjectId]) -> Result<HashMap<ObjectId, Value>> {
        let found: Vec<Option<(ObjectId, Value)>> = ids
            .par_iter()
            .map(|id| {
                let path = self.object_path(id);
                match fs::read(&path) {
                    Ok(bytes) => {
                        let value: Value = serde_json::from_slice(&bytes)
                            .map_err(|e| Error::CorruptState { path: path.clone(), message: e.to_string() })?;
                        Ok(Some(((*id).clone(), value)))
                    }
                    // A file where a directory of the path should be also means "no such object".
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                        Ok(None)
                    }
                    Err(e) => Err(Error::io(&path, "cannot read", e)),
                }
            })
            .collect::<Result<_>>()?;
        Ok(found.into_iter().flatten().collect())
    }

    pub fn inventory(&self) -> Result<Inventory> {
        let path = self.state_dir().join("inventory.json");
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::CorruptState { path, message: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Inventory { environment: self.environment.clone(), ..Inventory::default() })
            }
            Err(e) => Err(Error::io(&path, "cannot read", e)),
        }
    }

    /// Replaces the inventory. Call only while holding the lock.
    pub fn write_inventory(&self, _lock: &LockGuard, inventory: &Inventory) -> Result<()> {
        let path = self.state_dir().join("inventory.json");
        write_json_atomically(&path, inventory)
    }

    /// Writes one object. Call only while holding the lock.
    pub fn put(&self, _lock: &LockGuard, id: &ObjectId, body: &Value) -> Result<()> {
        write_json_atomically(&self.object_path(id), body)
    }

    /// Writes or deletes one group of changes in parallel (files have no order among them).
    pub fn apply_group(&self, lock: &LockGuard, ops: &[super::Operation<'_>]) -> Vec<super::Written> {
        use super::Action;
        ops.par_iter()
            .map(|op| {
                let result = match (op.action, op.desired) {
                    (Action::Create | Action::Update, Some(body)) => self.put(lock, op.object, body),
                    (Action::Delete, _) => self.delete(lock, op.object),
                    _ => Ok(()),
                };
                result.map(|()| super::Stored::default()).map_err(|e| e.chain())
            })
            .collect()
    }

    /// Merges `patch` into one object (RFC 7386), or writes it when absent: a rollout's own
    /// writes (replica counts, a Service's selector, the temporary Deployment). Call only while
    /// holding the lock.
    pub fn rollout_write(&self, lock: &LockGuard, id: &ObjectId, patch: &Value) -> Result<()> {
        let mut body = self.read_objects(&[id])?.remove(id).unwrap_or_else(|| Value::Object(Default::default()));
        // A selector the rollout writes is the whole selector, as its field manager's apply is in
        // a cluster: keys it added earlier and leaves out now are gone.
        if let (Some(new), Some(spec)) =
            (patch.pointer("/spec/selector"), body.get_mut("spec").and_then(Value::as_object_mut))
        {
            spec.insert("selector".into(), new.clone());
        }
        crate::render::merge_patch(&mut body, patch.clone());
        self.put(lock, id, &body)
    }

    /// A directory has no controller to label pods, so the version of a Deployment's pods is
    /// simulated by a digest of its live pod template (what the controller's hash stands for).
    pub fn pod_template_hash(&self, deployment: &ObjectId) -> Result<Option<String>> {
        let live = self.read_objects(&[deployment])?;
        Ok(live.get(deployment).and_then(|d| d.pointer("/spec/template")).map(|t| {
            let digest = super::Digester::new(None).digest(t, false);
            digest.trim_start_matches("sha256:").chars().take(10).collect()
        }))
    }

    /// Every release record (JSON), each with its file.
    pub fn records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let dir = self.releases_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, "cannot list releases", e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, "cannot list releases", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
            records.push((path.display().to_string(), bytes));
        }
        Ok(records)
    }

    /// Writes (or rewrites) one release record. Call only while holding the lock.
    /// One release record, by id (absent: `None`).
    pub fn record(&self, id: u64) -> Result<Option<(String, Vec<u8>)>> {
        let path = self.releases_dir().join(format!("{id:06}.json"));
        match fs::read(&path) {
            Ok(bytes) => Ok(Some((path.display().to_string(), bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, "cannot read a release record", e)),
        }
    }

    pub fn write_record(&self, _lock: &LockGuard, id: u64, json: &str) -> Result<()> {
        let path = self.releases_dir().join(format!("{id:06}.json"));
        let mut bytes = json.as_bytes().to_vec();
        bytes.push(b'\n');
        write_atomically(&path, &bytes)
    }

    /// Removes one object (absent is fine: deletion is idempotent). Call only while holding the lock.
    pub fn delete(&self, _lock: &LockGuard, id: &ObjectId) -> Result<()> {
        let path = self.object_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, "cannot delete", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ObjectId {
        ObjectId { group: String::new(), kind: "ConfigMap".into(), namespace: Some("apps".into()), name: name.into() }
    }

    #[test]
    fn second_lock_fails_naming_the_holder_and_drop_releases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = LocalTarget::new(dir.path().to_path_buf(), "staging");
        let first = target.lock(&Holder::current("alice")).expect("first lock");
        let err = target.lock(&Holder::current("bob")).expect_err("second lock must fail");
        let text = err.to_string();
        assert!(text.contains("locked by alice"), "{text}");
        drop(first);
        target.lock(&Holder::current("bob")).expect("lock is free again");
    }

    #[test]
    fn objects_round_trip_with_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = LocalTarget::new(dir.path().to_path_buf(), "staging");
        let lock = target.lock(&Holder::current("t")).expect("lock");
        let body = serde_json::json!({"data": {"k": "v"}});
        target.put(&lock, &id("a"), &body).expect("put");
        let read = target.read_objects(&[&id("a"), &id("b")]).expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!(read[&id("a")], body);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(target.object_path(&id("a"))).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        target.delete(&lock, &id("a")).expect("delete");
        target.delete(&lock, &id("a")).expect("deleting twice is fine");
        assert!(target.read_objects(&[&id("a")]).expect("read").is_empty());
    }

    #[test]
    fn corrupt_object_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = LocalTarget::new(dir.path().to_path_buf(), "staging");
        let path = target.object_path(&id("bad"));
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, b"{ not json").expect("write");
        let err = target.read_objects(&[&id("bad")]).expect_err("corrupt");
        assert!(err.to_string().contains("bad.json"), "{err}");
    }
}
