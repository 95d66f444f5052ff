//! Compiled plugins cached on disk, keyed by the module's sha256 and the engine's configuration,
//! so a run compiles each plugin once per machine rather than once per run.
//!
//! Location: `$CAIRN_CACHE_DIR`, else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`, in `wasm/`.
//! A cache that cannot be read or written is skipped (the module is compiled in memory).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::host::Failure;

/// The cache directory, if one can be found.
pub fn directory() -> Option<PathBuf> {
    Some(crate::fs::cache_dir()?.join("wasm"))
}

/// Feeds the engine's compatibility hash into sha256, so the key is stable across runs.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the digest is read from the inner hasher
    }
}

/// The file a module compiled by this engine is cached in.
pub fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let engine_hash = engine_hash.0.finalize();
    format!("{}-{}.cwasm", hex::encode(Sha256::digest(bytes)), hex::encode(&engine_hash[..8]))
}

/// Loads a compiled module from the cache in `dir` (none: compile in memory), compiling and
/// storing it on a miss.
pub fn load_or_compile(engine: &Engine, bytes: &[u8], dir: Option<PathBuf>) -> Result<Module, Failure> {
    if !bytes.starts_with(b"\0asm") {
        return Err(Failure::Compile("it does not start with the WebAssembly magic number `\\0asm`".into()));
    }
    let Some(dir) = dir else { return compile(engine, bytes) };
    let path = dir.join(key(engine, bytes));
    if let Some(module) = load(engine, &path) {
        tracing::debug!(path = %path.display(), "plugin loaded from the cache");
        return Ok(module);
    }
    let module = compile(engine, bytes)?;
    match module.serialize() {
        Ok(serialized) => {
            if let Err(e) = store(&dir, &path, &serialized) {
                tracing::debug!(path = %path.display(), error = %e, "plugin cache not written");
            }
        }
        Err(e) => tracing::debug!(error = %e, "plugin not serializable"),
    }
    Ok(module)
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, Failure> {
    let started = std::time::Instant::now();
    let module = Module::new(engine, bytes).map_err(|e| Failure::Compile(format!("{e:#}")))?;
    tracing::debug!(elapsed = ?started.elapsed(), "plugin compiled");
    Ok(module)
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &std::path::Path) -> Option<Module> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    // Only a file nobody else could have written is trusted as native code.
    if meta.mode() & 0o022 != 0 {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    // SAFETY: wasmtime requires that deserialized bytes come from `Module::serialize` of a
    // compatible engine. This file was written by `store` below with the output of `serialize`,
    // renamed into place whole (never torn), under a key that includes the engine's
    // compatibility hash; wasmtime also checks the header and version. Anyone able to replace it
    // can already write the user's files. The bytes are read into memory first so a later change
    // of the file cannot alter code being run.
    match unsafe { Module::deserialize(engine, &bytes) } {
        Ok(module) => Some(module),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "plugin cache entry unusable; recompiling");
            None
        }
    }
}

fn store(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let temp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
}
