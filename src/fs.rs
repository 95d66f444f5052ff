//! Durable file writes for every writer (targets, saved plans, SOPS files): readers see the old
//! file or the new one, never a torn one, and a rename survives a crash. A leaf: it knows nothing
//! of what it writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// cairn's cache directory on this machine: `$CAIRN_CACHE_DIR`, else `$XDG_CACHE_HOME/cairn`,
/// else `~/.cache/cairn` (compiled plugins in `wasm/`, chart packages and renders in `helm/`).
pub fn cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    match std::env::var_os("CAIRN_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("cairn")),
            _ => Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/cairn")),
        },
    }
}

/// Writes JSON to `path` so that readers see the old file or the new one, never a torn one.
pub fn write_json_atomically<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::CorruptState { path: path.to_path_buf(), message: e.to_string() })?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

/// Writes `bytes` to `path` through a temp file in the same directory (mode 0600), fsync and
/// rename, then syncs the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // A bare file name's parent is "", which is the current directory.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "cannot create directory", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".tmp-{}-{name}", std::process::id()));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, "cannot write", e));
    }
    sync_dir(dir)
}

/// Writes `bytes` to `path` through a temp file and a rename, without fsync: for caches, where a
/// crash may lose an entry but a reader never sees a torn one.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "cannot create directory", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // The thread as well as the process: charts render in parallel.
    let temp = dir.join(format!(".tmp-{}-{:?}-{name}", std::process::id(), std::thread::current().id()));
    let result = fs::write(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, "cannot write", e));
    }
    Ok(())
}

/// How many threads `replace_dir` writes files with.
const WRITERS: usize = 8;

/// Replaces the directory `dir` with exactly `files` (relative paths and contents) and a
/// `marker` file, all at once: they are written to a new directory beside it, which then takes
/// its place, so a reader sees the old tree or the new one, never a mix. An existing `dir` is
/// replaced only when it is empty or holds `marker` (a tree this function made); anything else is
/// refused, naming it, and left untouched.
pub fn replace_dir(dir: &Path, files: &[(String, Vec<u8>)], marker: &str) -> Result<()> {
    if dir.exists() {
        let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot read directory", e))?;
        let empty = entries.count() == 0;
        if !empty && !dir.join(marker).is_file() {
            return Err(Error::Usage {
                message: format!(
                    "{} is not empty and was not made by cairn (it has no {marker}); give a new or empty directory",
                    dir.display()
                ),
            });
        }
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "site".to_string());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, "cannot create directory", e))?;
    let fresh = parent.join(format!(".{name}.new-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let marked: Vec<(String, Vec<u8>)> = vec![(marker.to_string(), Vec::new())];
    let all: Vec<&(String, Vec<u8>)> = files.iter().chain(&marked).collect();
    // Writing and syncing thousands of files waits on the disk, not the processor: several
    // writers keep it busy.
    let chunk = all.len().div_ceil(WRITERS).max(1);
    let written = std::thread::scope(|scope| {
        let writers: Vec<_> = all
            .chunks(chunk)
            .map(|part| {
                let fresh = &fresh;
                scope.spawn(move || -> Result<()> {
                    for (path, bytes) in part {
                        let target = fresh.join(path);
                        if let Some(d) = target.parent() {
                            fs::create_dir_all(d).map_err(|e| Error::io(d, "cannot create directory", e))?;
                        }
                        let mut file = File::create(&target).map_err(|e| Error::io(&target, "cannot write", e))?;
                        file.write_all(bytes)
                            .and_then(|()| file.sync_all())
                            .map_err(|e| Error::io(&target, "cannot write", e))?;
                    }
                    Ok(())
                })
            })
            .collect();
        writers.into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| Err(Error::Usage { message: "a writer thread failed".to_string() }))
        })
    });
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&fresh);
        return Err(e);
    }
    if dir.exists() {
        fs::rename(dir, &old).map_err(|e| {
            let _ = fs::remove_dir_all(&fresh);
            Error::io(dir, "cannot move the previous directory aside", e)
        })?;
    }
    if let Err(e) = fs::rename(&fresh, dir) {
        // Put the previous tree back: nothing is lost.
        let _ = fs::rename(&old, dir);
        let _ = fs::remove_dir_all(&fresh);
        return Err(Error::io(dir, "cannot put the new directory in place", e));
    }
    let _ = fs::remove_dir_all(&old);
    sync_dir(parent)
}

/// Makes a rename or removal durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|e| Error::io(dir, "cannot open directory", e))?;
        handle.sync_all().map_err(|e| Error::io(dir, "cannot sync directory", e))?;
    }
    Ok(())
}
