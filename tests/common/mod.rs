//! Test fixtures: configuration repositories made with real git commits (pinned authors and
//! dates, so commit ids are stable), and the real binary to run over them.
#![allow(dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Fixture {
    dir: tempfile::TempDir,
    commits: Cell<u32>,
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
        let fixture = Fixture { dir: tempfile::tempdir().expect("tempdir"), commits: Cell::new(0) };
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
        cmd
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
