//! Policy plugins end to end: the shipped compliance and approvals plugins over real git
//! repositories, and hostile hand-written modules (WAT) that must each give a clear error
//! without hanging the run.

mod common;

use common::{CONFIG, Fixture};

/// A module that writes `output` to stdout after running `body`.
fn module(body: &str, output: &str) -> Vec<u8> {
    let escaped: String = output.bytes().map(|b| format!("\\{b:02x}")).collect();
    let text = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "{escaped}")
  (data (i32.const 512) "/etc/passwd")
  (func (export "_start")
    {body}
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)"#,
        len = output.len()
    );
    wat::parse_str(text).expect("valid WAT")
}

const ALLOW: &str = r#"{"allowed": true}"#;

/// The standard repository with one binding of a module in the repository.
fn with_plugin(wasm: &[u8], extra: &str) -> Fixture {
    let f = Fixture::standard();
    std::fs::create_dir_all(f.join("plugins")).expect("mkdir");
    std::fs::write(f.join("plugins/p.wasm"), wasm).expect("write");
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - name: hostile\n    plugin: plugins/p.wasm\n{extra}"));
    f.commit("bind a plugin");
    f
}

fn fails_with(f: &Fixture, needle: &str) {
    let (code, out, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("policy `hostile`") && err.contains(needle), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line, no backtrace: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_well_behaved_module_allows() {
    let f = with_plugin(&module("", ALLOW), "");
    f.ok(&["validate"], 0);
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let f = with_plugin(&module("(loop (br 0))", ALLOW), "    fuel: 50000000\n");
    fails_with(&f, "ran out of fuel after 50000000 units");
}

#[test]
fn an_endless_loop_meets_the_wall_clock_deadline() {
    let started = std::time::Instant::now();
    let f = with_plugin(&module("(loop (br 0))", ALLOW), "    timeout: 300ms\n    fuel: 1000000000000000\n");
    fails_with(&f, "did not finish within 300ms");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_memory_bomb_is_capped() {
    let body = "(block $done (loop $grow (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $grow))) unreachable";
    let f = with_plugin(&module(body, ALLOW), "    memory: 16Mi\n");
    fails_with(&f, "more than 16 MiB of memory");
}

#[test]
fn endless_output_is_capped() {
    // Writes 64 KiB blocks forever.
    let body = "(i32.store (i32.const 0) (i32.const 0)) (i32.store (i32.const 4) (i32.const 65536)) (loop (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br 0))";
    let f = with_plugin(&module(body, ALLOW), "");
    fails_with(&f, "more than 16 MiB of output");
}

#[test]
fn output_that_is_not_a_decision_is_an_error() {
    fails_with(&with_plugin(&module("", "yes, fine"), ""), "not JSON");
    fails_with(&with_plugin(&module("", r#"{"allowed": "yes"}"#), ""), "breaks the plugin contract");
    fails_with(
        &with_plugin(&module("", r#"{"allowed": false, "violations": [{"rule": "Bad Rule", "message": "x"}]}"#), ""),
        "at `/violations/0/rule`",
    );
}

#[test]
fn a_trap_and_a_non_zero_exit_are_errors() {
    fails_with(&with_plugin(&module("unreachable", ALLOW), ""), "trapped");
    fails_with(&with_plugin(&module("(call $proc_exit (i32.const 3))", ALLOW), ""), "exited with code 3");
}

#[test]
fn the_sandbox_has_no_files_and_no_environment() {
    // Traps if it can see any environment variable or open a file through fd 3.
    let body = "(drop (call $environ_sizes_get (i32.const 100) (i32.const 104)))
      (if (i32.ne (i32.load (i32.const 100)) (i32.const 0)) (then unreachable))
      (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 11) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 108))) (then unreachable))";
    let f = with_plugin(&module(body, ALLOW), "");
    let out = f.cairn().env("SOME_HOST_SECRET", "hunter2").args(["validate"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_file_that_is_not_webassembly_or_is_missing_is_refused() {
    fails_with(&with_plugin(b"#!/bin/sh\necho allowed\n", ""), "WebAssembly magic number");
    let f = Fixture::standard();
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - name: gone\n    plugin: plugins/gone.wasm\n"));
    f.commit("bind a missing plugin");
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2);
    assert!(err.contains("cairn.yaml:11: plugin file `plugins/gone.wasm` does not exist"), "{err}");
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - name: typo\n    plugin: complaince\n"));
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown plugin `complaince`: cairn ships approvals, compliance"), "{err}");
}

#[test]
fn settings_the_plugin_rejects_are_an_error_naming_the_binding() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!("{CONFIG}policies:\n  - name: baseline\n    plugin: compliance\n    settings: {{ rules: {{ privileges: {{}} }} }}\n"),
    );
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("policy `baseline` (compliance): exited with code 1: settings.rules: unknown rule `privileges`"),
        "{err}"
    );
}
