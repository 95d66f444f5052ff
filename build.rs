//! Builds the policy plugins shipped with cairn (plugins/approvals, plugins/compliance) for
//! wasm32-wasip1 and hands their paths to the crate, which embeds them: `plugin: compliance` in
//! a `cairn.yaml` then needs no file beside the binary.

// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::disallowed_macros)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: &[&str] = &["approvals", "compliance"];

fn main() {
    println!("cargo::rerun-if-changed=plugins");
    println!("cargo::rerun-if-changed=Cargo.lock");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // <target>/<profile>/build/<crate>/out: the plugins get their own directory beside the
    // profiles, shared by debug, release and clippy builds so they are compiled once.
    let target_dir = out.ancestors().nth(4).map_or_else(|| out.join("plugins"), |t| t.join("wasm-plugins"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&manifest)
        .args(["build", "--release", "--target", "wasm32-wasip1"])
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
    let status = command.status().unwrap_or_else(|e| panic!("cannot run cargo to build the policy plugins: {e}"));
    if !status.success() {
        panic!(
            "building the policy plugins for wasm32-wasip1 failed; is the target installed? run `rustup target add wasm32-wasip1`"
        );
    }
    for plugin in PLUGINS {
        let wasm = target_dir.join("wasm32-wasip1/release").join(format!("{plugin}.wasm"));
        assert!(Path::new(&wasm).is_file(), "{} was not built", wasm.display());
        println!("cargo::rustc-env=CAIRN_PLUGIN_{}={}", plugin.to_uppercase(), wasm.display());
    }
}

/// Whether the outer cargo runs with `--locked` (CI does): then so does the inner one.
fn locked() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}
