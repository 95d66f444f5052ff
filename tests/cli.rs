//! The shape of the command line, `init`, and the exit code contract.
mod common;

use clap::CommandFactory;
use common::Fixture;

#[test]
fn cli_definition_is_consistent() {
    cairn::cli::Cli::command().debug_assert();
}

#[test]
fn help_lists_every_command() {
    let out = assert_cmd::Command::cargo_bin("cairn")
        .expect("binary")
        .env_remove("CAIRN_REPO")
        .env_remove("CAIRN_COLOR")
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn init_scaffolds_a_committed_repository_that_plans_and_applies() {
    let f = Fixture::new();
    let dir = f.join("new-repo");
    let out = f.cairn().arg("init").arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Created a configuration repository"));

    let git = |args: &[&str]| {
        let o = std::process::Command::new("git").arg("-C").arg(&dir).args(args).output().expect("git");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(git(&["status", "--porcelain"]), "", "everything is committed and the index matches");
    assert!(git(&["log", "--format=%s"]).contains("scaffold"));
    assert!(git(&["ls-files"]).contains("environments/production/web.yaml"));

    let run = |args: &[&str]| {
        let o = f.cairn().arg("--repo").arg(&dir).args(args).output().expect("run");
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let (code, out) = run(&["plan", "--detailed-exitcode", "--rev", "HEAD"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("staging: 7 to create") && out.contains("production: 6 to create"), "{out}");
    let (code, out) = run(&["apply", "--env", "staging"]);
    assert_eq!(code, Some(0), "{out}");
    // Production is bound to the approvals policy: its first release needs its owners too.
    let (code, out) = run(&["apply", "--env", "production"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("policy/production-approvals/owner-approval") && out.contains("Nothing was written"), "{out}");
    // The policy judged the plan made under the lock: the lock file is all there is, released.
    assert!(!dir.join(".cairn/live/production/objects").exists(), "a refused apply writes no object");
    assert!(!dir.join(".cairn/live/production/.cairn/releases").exists(), "and records no release");
    let lock = std::fs::read(dir.join(".cairn/live/production/.cairn/lock")).expect("the released lock");
    assert!(lock.is_empty(), "no holder is left behind");
    let approvals = dir.join(".cairn-approvals.json");
    std::fs::write(&approvals, r#"["grace@example.org", "margaret@example.org"]"#).expect("write");
    let (code, out) = run(&["apply", "--env", "production", "--approvals", approvals.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{out}");
    std::fs::remove_file(&approvals).expect("remove");
    let (code, out) = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(git(&["status", "--porcelain"]), "", "live state is ignored by git");

    let out = f.cairn().arg("init").arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "refuses a non-empty directory");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

#[test]
fn json_output_is_available_for_every_result() {
    let f = Fixture::standard();
    f.json(&["render", "--format", "json"], 0);
    f.json(&["validate", "--format", "json"], 0);
    f.json(&["plan", "--format", "json"], 0);
    f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    f.json(&["history", "--env", "staging", "--format", "json"], 0);
    f.json(&["changes", "--base", "HEAD", "--format", "json"], 0);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let f = Fixture::standard();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .args(["render"])
        .env("CAIRN_REPO", f.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
}
