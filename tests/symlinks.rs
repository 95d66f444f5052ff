//! Work-tree reads stay inside the repository: a symbolic link is followed only while it resolves
//! inside the git work tree, never into the runner's other files or into `.git`; at a revision a
//! committed link is reported as one.
#![cfg(unix)]
mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::Fixture;

/// What must never reach a report if cairn read the file behind a link.
const RUNNER_SECRET: &str = "runner-secret-4f1c9e";

/// A directory outside the repository holding a valid manifest with a distinctive value, so a
/// read would render it rather than fail on it.
fn outside_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaked\n  namespace: shop\ndata:\n  TOKEN: {RUNNER_SECRET}\n"
        ),
    )
    .expect("write");
    let canonical = dir.path().canonicalize().expect("canonical");
    (dir, canonical)
}

fn link(f: &Fixture, rel: &str, target: impl AsRef<Path>) {
    let path = f.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    symlink(target, path).expect("symlink");
}

fn assert_refused(f: &Fixture, args: &[&str], link: &str, target: &str) {
    let (code, out, err) = f.run(args);
    assert_eq!(code, 2, "cairn {args:?} exited {code}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains(&format!("{link}: a symbolic link to {target}")), "cairn {args:?}: {err}");
    assert!(err.contains("outside the repository"), "{err}");
    assert!(!out.contains(RUNNER_SECRET) && !err.contains(RUNNER_SECRET), "cairn {args:?} read the file:\n{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_file_link_out_of_the_repository_is_refused_by_render_plan_and_validate() {
    let (_outside, dir) = outside_dir();
    let secret = dir.join("secret.yaml");
    let f = Fixture::standard();
    link(&f, "base/leak.yaml", &secret);
    let target = secret.display().to_string();
    for args in [&["render"][..], &["plan"], &["validate"], &["render", "--env", "production", "--format", "json"]] {
        assert_refused(&f, args, "base/leak.yaml", &target);
    }
}

#[test]
fn a_relative_link_that_climbs_out_is_refused_and_named_by_where_it_resolves() {
    let (_outside, dir) = outside_dir();
    let f = Fixture::standard();
    let climb = "../".repeat(f.path().canonicalize().expect("canonical").components().count() + 1);
    let relative = format!("{climb}{}", dir.join("secret.yaml").display().to_string().trim_start_matches('/'));
    link(&f, "base/leak.yaml", &relative);
    assert_refused(
        &f,
        &["render", "--env", "staging"],
        "base/leak.yaml",
        &dir.join("secret.yaml").display().to_string(),
    );
}

#[test]
fn a_directory_link_out_of_the_repository_is_refused() {
    let (_outside, dir) = outside_dir();
    let f = Fixture::standard();
    // Inside a layer, met while walking it.
    link(&f, "base/vendor", &dir);
    assert_refused(&f, &["render"], "base/vendor", &dir.display().to_string());
    assert_refused(&f, &["validate"], "base/vendor", &dir.display().to_string());

    // The layer directory itself.
    let f = Fixture::standard();
    std::fs::remove_dir_all(f.join("environments/staging")).expect("rm");
    link(&f, "environments/staging", &dir);
    assert_refused(&f, &["render", "--env", "staging"], "environments/staging", &dir.display().to_string());

    // A directory on the way to a file the configuration names (a one-file layer).
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        "environments:\n  staging:\n    layers: [base, extra/secret.yaml]\n    target:\n      local: { path: .cairn/live/staging }\n",
    );
    link(&f, "extra", &dir);
    assert_refused(&f, &["render"], "extra", &dir.display().to_string());
}

#[test]
fn a_link_into_git_s_own_directory_is_refused() {
    let f = Fixture::standard();
    // Where actions/checkout keeps the token it fetched with.
    f.git(&["config", "http.extraheader", "AUTHORIZATION: basic git-token-9d2b"]);
    link(&f, "base/config.yaml", "../.git/config");
    let (code, out, err) = f.run(&["render"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("base/config.yaml: a symbolic link to") && err.contains("inside git's own directory"),
        "{err}"
    );
    assert!(!out.contains("git-token") && !err.contains("git-token"), "{out}{err}");
}

#[test]
fn a_link_inside_the_repository_is_followed() {
    let f = Fixture::standard();
    f.write(
        "shared/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-extra\n  namespace: shop\ndata:\n  A: b\n",
    );
    f.write(
        "shared/more/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-other\n  namespace: shop\ndata:\n  C: d\n",
    );
    link(&f, "base/extra.yaml", "../shared/extra.yaml");
    link(&f, "environments/staging/more", "../../shared/more");
    let out = f.ok(&["render", "--env", "staging"], 0);
    assert!(out.contains("name: shared-extra") && out.contains("name: shared-other"), "{out}");
    let out = f.ok(&["render", "--env", "production"], 0);
    assert!(out.contains("name: shared-extra") && !out.contains("name: shared-other"), "{out}");
    f.ok(&["validate"], 0);
}

#[test]
fn in_a_monorepo_a_link_to_elsewhere_in_the_work_tree_is_followed() {
    let f = Fixture::new();
    f.write(
        "deploy/cairn.yaml",
        "environments:\n  staging:\n    layers: [base]\n    target:\n      local: { path: .cairn/live/staging }\n",
    );
    f.write(
        "shared/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-the-monorepo\n  namespace: shop\n",
    );
    link(&f, "deploy/base/extra.yaml", "../../shared/extra.yaml");
    f.commit("feat: a deploy directory");
    let repo = f.join("deploy");
    let out = f.ok(&["--repo", repo.to_str().expect("utf-8"), "render"], 0);
    assert!(out.contains("name: from-the-monorepo"), "{out}");
}

#[test]
fn a_link_loop_is_one_clear_error() {
    let f = Fixture::standard();
    link(&f, "base/a.yaml", "b.yaml");
    link(&f, "base/b.yaml", "a.yaml");
    let (code, out, err) = f.run(&["render"]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("base/a.yaml: a symbolic link to b.yaml that loops"), "{err}");

    // A directory that links back to one containing it would walk forever.
    let f = Fixture::standard();
    link(&f, "base/again", ".");
    let (code, out, err) = f.run(&["render"]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("base/again: a symbolic link to") && err.contains("loops"), "{err}");
}

#[test]
fn at_a_revision_a_committed_link_is_reported_as_a_link() {
    let f = Fixture::standard();
    f.write(
        "shared/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-extra\n  namespace: shop\n",
    );
    link(&f, "base/extra.yaml", "../shared/extra.yaml");
    f.commit("feat: a shared file, linked");
    for args in [&["render", "--rev", "HEAD"][..], &["validate", "--rev", "HEAD"], &["plan", "--rev", "HEAD"]] {
        let (code, out, err) = f.run(args);
        assert_eq!(code, 2, "cairn {args:?}: {out}{err}");
        assert!(err.contains("base/extra.yaml: a symbolic link in git (to ../shared/extra.yaml)"), "{err}");
        assert!(!err.contains("must be a mapping"), "{err}");
    }
    // The work tree follows the same link.
    let out = f.ok(&["render", "--env", "staging"], 0);
    assert!(out.contains("name: shared-extra"), "{out}");
}

#[test]
fn at_a_revision_a_committed_link_in_place_of_a_layer_is_reported_as_a_link() {
    let (_outside, dir) = outside_dir();
    let f = Fixture::standard();
    std::fs::remove_dir_all(f.join("environments/staging")).expect("rm");
    link(&f, "environments/staging", &dir);
    f.commit("chore: staging from elsewhere");
    let (code, out, err) = f.run(&["render", "--env", "staging", "--rev", "HEAD"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("environments/staging: a symbolic link in git"), "{err}");
    assert!(!out.contains(RUNNER_SECRET) && !err.contains(RUNNER_SECRET), "{out}{err}");
}
