//! Builds the policy plugins shipped with cairn (plugins/approvals, plugins/compliance) for
//! wasm32-wasip1 and hands their paths to the crate, which embeds them: `plugin: compliance` in
//! a `cairn.yaml` then needs no file beside the binary.

// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::disallowed_macros)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: &[&str] = &["approvals", "compliance"];
const TARGET: &str = "wasm32-wasip1";

fn main() {
    println!("cargo::rerun-if-changed=plugins");
    println!("cargo::rerun-if-changed=Cargo.lock");
    // A failure is one `cargo::error` line that says what to do, not a build-script panic.
    if let Err(message) = build_plugins() {
        println!("cargo::error={message}");
    }
}

fn build_plugins() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    check_target_installed()?;
    // <target>/<profile>/build/<crate>/out: the plugins get their own directory beside the
    // profiles, shared by debug, release and clippy builds so they are compiled once.
    let target_dir = out.ancestors().nth(4).map_or_else(|| out.join("plugins"), |t| t.join("wasm-plugins"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&manifest)
        .args(["build", "--release", "--target", TARGET])
        // Small, stripped plugins: they are embedded in the binary and compiled at run time.
        .args(["--config", "profile.release.strip=true", "--config", "profile.release.debug=false"])
        .args(["--config", "profile.release.lto=true", "--config", "profile.release.codegen-units=1"])
        .arg("--target-dir")
        .arg(&target_dir);
    if locked() {
        command.arg("--locked");
    }
    for plugin in PLUGINS {
        command.args(["-p", &format!("cairn-policy-{plugin}")]);
    }
    // The outer build's flags and wrappers (clippy's, a host RUSTFLAGS) are not for this target.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let status = command.status().map_err(|e| format!("cannot run cargo to build the policy plugins: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the policy plugins (plugins/approvals, plugins/compliance) for {TARGET} failed; its errors are above"
        ));
    }
    for plugin in PLUGINS {
        let wasm = target_dir.join(TARGET).join("release").join(format!("{plugin}.wasm"));
        if !Path::new(&wasm).is_file() {
            return Err(format!("building the policy plugins succeeded but {} is missing", wasm.display()));
        }
        println!("cargo::rustc-env=CAIRN_PLUGIN_{}={}", plugin.to_uppercase(), wasm.display());
    }
    Ok(())
}

/// The shipped plugins need the standard library for [`TARGET`]. rust-toolchain.toml asks rustup
/// for it; a toolchain chosen otherwise (`cargo +nightly`, no rustup) may lack it, and then the
/// inner build would fail with "can't find crate for `core`" and no hint.
fn check_target_installed() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| format!("cannot run `{rustc}` to find the {TARGET} standard library: {e}"))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if output.status.success() && libdir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "the {TARGET} target is not installed for this toolchain; the policy plugins shipped with cairn are built for it. Run `rustup target add {TARGET}` (rust-toolchain.toml names it, so a rustup-managed build in this repository installs it itself)"
    ))
}

/// Whether the outer cargo runs with `--locked` (CI does): then so does the inner one.
fn locked() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}
