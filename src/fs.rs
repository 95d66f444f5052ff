//! Durable file writes for every writer (targets, saved plans, SOPS files): readers see the old
//! file or the new one, never a torn one, and a rename survives a crash. A leaf: it knows nothing
//! of what it writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

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

/// Makes a rename or removal durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|e| Error::io(dir, "cannot open directory", e))?;
        handle.sync_all().map_err(|e| Error::io(dir, "cannot sync directory", e))?;
    }
    Ok(())
}
