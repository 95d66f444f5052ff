//! Test fixtures: configuration repositories made with real git commits (pinned authors and
//! dates, so commit ids are stable), and the real binary to run over them.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod kustomize;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Fixture {
    dir: tempfile::TempDir,
    commits: Cell<u32>,
    /// Environment variables every run of the binary gets (age keys, editors).
    env: std::cell::RefCell<Vec<(String, String)>>,
}

pub const CONFIG: &str = "\
environments:
  staging:
    layers: [base, environments/staging]
    target:
      local: { path: .cairn/live/staging }
  production:
    layers: [base, environments/production]
    target:
      local: { path: .cairn/live/production }
";

impl Fixture {
    /// An empty git repository on branch `main`.
    pub fn new() -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            commits: Cell::new(0),
            env: std::cell::RefCell::new(Vec::new()),
        };
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture
    }

    /// A repository with two environments over a base layer, committed once.
    pub fn standard() -> Fixture {
        let f = Fixture::new();
        f.write("cairn.yaml", CONFIG);
        f.write(".gitignore", ".cairn/\n");
        f.write(
            "base/app.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  LOG_LEVEL: info\n  TIMEOUT: \"30\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:1.0.0\n",
        );
        f.write(
            "environments/staging/patch.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  LOG_LEVEL: debug\n  TIMEOUT: null\n",
        );
        f.write(
            "environments/production/patch.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 4\n",
        );
        f.commit("feat: first configuration");
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.join(rel)).expect("remove");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).expect("read")
    }

    /// Runs git with pinned identity and dates; panics when git fails.
    pub fn git(&self, args: &[&str]) -> String {
        let n = self.commits.get();
        let date = format!("2026-01-{:02}T10:00:00+00:00", 1 + n);
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.org")
            .env("GIT_COMMITTER_NAME", "Cy Committer")
            .env("GIT_COMMITTER_EMAIL", "cy@example.org")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("run git");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Commits everything and returns the new commit's id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.commits.set(self.commits.get() + 1);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The binary, pointed at this repository, with a fixed actor and no colour.
    pub fn cairn(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("cairn").expect("binary");
        cmd.env("CAIRN_REPO", self.path())
            .env("CAIRN_ACTOR", "test-actor")
            .env_remove("GITHUB_ACTOR")
            .env_remove("CAIRN_LOG")
            // Compiled plugins are cached once for the whole test run, not in the user's cache.
            .env("CAIRN_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"))
            .env("NO_COLOR", "1");
        // No age key of the machine running the tests takes part.
        for var in ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "CAIRN_AGE_KEY_FILE", "XDG_CONFIG_HOME"] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.path());
        for (k, v) in self.env.borrow().iter() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Sets an environment variable for every later run of the binary.
    pub fn set_env(&self, key: &str, value: &str) {
        self.env.borrow_mut().push((key.to_string(), value.to_string()));
    }

    /// Runs the binary and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.cairn().args(args).output().expect("run cairn");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs the binary, asserts the exit code, returns stdout.
    pub fn ok(&self, args: &[&str], code: i32) -> String {
        let (got, out, err) = self.run(args);
        assert_eq!(got, code, "cairn {args:?} exited {got}\nstdout:\n{out}\nstderr:\n{err}");
        out
    }

    pub fn json(&self, args: &[&str], code: i32) -> serde_json::Value {
        let out = self.ok(args, code);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("cairn {args:?}: not JSON ({e}):\n{out}"))
    }
}

impl Fixture {
    /// Runs each command (each must succeed) and returns everything they printed, stdout and
    /// stderr, for a test that no output holds a secret.
    pub fn outputs_of(&self, commands: &[&[&str]]) -> String {
        let mut outputs = String::new();
        for args in commands {
            let (code, out, err) = self.run(args);
            assert_eq!(code, 0, "{args:?}: {err}");
            outputs.push_str(&out);
            outputs.push_str(&err);
        }
        outputs
    }
}

/// A value as base64: the form a secret takes in a Secret's `data`, which no output may hold either.
pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The real sops binary (scripts/test.sh installs it and names it in CAIRN_TEST_SOPS).
pub fn sops() -> String {
    let sops = std::env::var("CAIRN_TEST_SOPS").unwrap_or_else(|_| "sops".to_string());
    let ok = Command::new(&sops).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "the real sops is needed (scripts/test.sh installs it; or set CAIRN_TEST_SOPS)");
    sops
}

/// The real helm (scripts/test.sh installs it and names it in CAIRN_TEST_HELM).
pub fn helm() -> String {
    let helm = std::env::var("CAIRN_TEST_HELM").unwrap_or_else(|_| "helm".to_string());
    let ok = Command::new(&helm).arg("version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "the real helm is needed (scripts/test.sh installs it; or set CAIRN_TEST_HELM)");
    helm
}

/// A key file written by the real age-keygen; returns (file, public key).
pub fn age_keygen(file: &Path) -> (PathBuf, String) {
    let out =
        Command::new("age-keygen").arg("-o").arg(file).output().expect("age-keygen (scripts/test.sh installs age)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(file).expect("key file");
    let public = text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("public key").to_string();
    (file.to_path_buf(), public)
}

/// Encrypts `file` in place with the real sops, run in `dir` (so its `.sops.yaml` applies).
pub fn sops_encrypt(dir: &Path, file: &Path, args: &[&str]) {
    let out = Command::new(sops())
        .current_dir(dir)
        .args(["encrypt", "--in-place"])
        .args(args)
        .arg(file)
        .output()
        .expect("run sops");
    assert!(out.status.success(), "sops: {}", String::from_utf8_lossy(&out.stderr));
}

/// A policy plugin that writes its whole input to stderr and fails, so the error message shows
/// exactly what plugins are given.
pub const ECHO_PLUGIN_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 4)
  (global $total (mut i32) (i32.const 0))
  (func (export "_start")
    (block $eof (loop $read
      (i32.store (i32.const 0) (i32.add (i32.const 4096) (global.get $total)))
      (i32.store (i32.const 4) (i32.const 4096))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br_if $eof (i32.eqz (i32.load (i32.const 8))))
      (global.set $total (i32.add (global.get $total) (i32.load (i32.const 8))))
      (br $read)))
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (global.get $total))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 1))))"#;

/// Every line of an event stream, checked against schemas/events.schema.json.
pub fn events_of(text: &str) -> Vec<serde_json::Value> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/events.schema.json")).expect("the events schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the events schema compiles");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: not JSON ({e}): {line}", i + 1));
        let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "line {}: {line}\n{errors:?}", i + 1);
        assert_eq!(event["seq"], (i + 1) as u64, "lines are numbered in order");
        out.push(event);
    }
    out
}
