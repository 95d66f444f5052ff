//! Each bad input exits 2 with a one-line cause and location, never panics, and writes nothing
//! to any target.
mod common;

use common::Fixture;

/// Runs `args`, asserts exit 2, a single-line error naming `needles`, no panic, and that no
/// target directory was created (apply included).
fn rejects(f: &Fixture, args: &[&str], needles: &[&str]) {
    let (code, out, err) = f.run(args);
    assert_eq!(code, 2, "cairn {args:?}: expected exit 2\nstdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error expected, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "error should mention `{needle}`:\n{err}");
    }
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(!f.join(".cairn").exists(), "nothing may be written to a target on bad input");
}

/// The same bad input must be refused by render, validate, plan and apply alike.
fn rejected_everywhere(f: &Fixture, needles: &[&str]) {
    rejects(f, &["render"], needles);
    rejects(f, &["validate"], needles);
    rejects(f, &["plan"], needles);
    rejects(f, &["apply", "--env", "staging"], needles);
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let f = Fixture::standard();
    f.write("environments/staging/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n");
    rejected_everywhere(&f, &["environments/staging/broken.yaml:4:9:"]);
}

#[test]
fn a_document_that_is_not_a_mapping() {
    let f = Fixture::standard();
    f.write("base/list.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\n- just\n- a list\n");
    rejected_everywhere(&f, &["base/list.yaml:6:", "must be a mapping, found a list"]);
}

#[test]
fn missing_kind() {
    let f = Fixture::standard();
    f.write("base/nokind.yaml", "apiVersion: v1\nmetadata:\n  name: x\n");
    rejected_everywhere(&f, &["base/nokind.yaml:1:", "missing `kind`"]);
}

#[test]
fn missing_name() {
    let f = Fixture::standard();
    f.write("base/noname.yaml", "# a comment first\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n");
    rejected_everywhere(&f, &["base/noname.yaml:2:", "missing `metadata.name`"]);
}

#[test]
fn duplicate_identity_in_one_layer_names_both_files() {
    let f = Fixture::standard();
    f.write("base/again.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\n");
    rejected_everywhere(&f, &["base/app.yaml:6", "base/again.yaml:1", "ConfigMap shop/settings", "layer `base`"]);
}

#[test]
fn duplicate_keys_in_a_document() {
    let f = Fixture::standard();
    f.write("base/dup.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata:\n  a: 1\n  a: 2\n");
    rejected_everywhere(&f, &["base/dup.yaml:7:", "duplicate"]);
}

#[test]
fn unknown_environment() {
    let f = Fixture::standard();
    rejects(&f, &["plan", "--env", "prod"], &["unknown environment `prod`", "staging, production"]);
    rejects(&f, &["apply", "--env", "prod"], &["unknown environment `prod`"]);
    rejects(&f, &["history", "--env", "prod"], &["unknown environment `prod`"]);
}

#[test]
fn missing_layer_directory() {
    let f = Fixture::standard();
    f.write("cairn.yaml", &common::CONFIG.replace("environments/staging]", "environments/stagin]"));
    rejected_everywhere(&f, &["layer `environments/stagin` does not exist", "cairn.yaml:3"]);
}

#[test]
fn bad_config_unknown_key_with_suggestion() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &common::CONFIG.replace(
            "    target:\n      local: { path: .cairn/live/staging }",
            "    targets:\n      local: { path: .cairn/live/staging }",
        ),
    );
    rejected_everywhere(&f, &["cairn.yaml:4:5:", "unknown key `targets`", "did you mean `target`?"]);
}

#[test]
fn bad_config_yaml_syntax() {
    let f = Fixture::standard();
    f.write("cairn.yaml", "environments:\n  staging: {layers: [base\n");
    rejected_everywhere(&f, &["cairn.yaml:2:"]);
}

#[test]
fn missing_config() {
    let f = Fixture::standard();
    f.remove("cairn.yaml");
    rejected_everywhere(&f, &["cairn.yaml: not found", "cairn init"]);
}

#[test]
fn unknown_revision() {
    let f = Fixture::standard();
    rejects(&f, &["render", "--rev", "no-such-branch"], &["unknown revision `no-such-branch`"]);
    rejects(&f, &["plan", "--rev", "HEAD~5"], &["unknown revision `HEAD~5`"]);
    rejects(&f, &["apply", "--env", "staging", "--rev", "deadbeef"], &["unknown revision `deadbeef`"]);
}

#[test]
fn a_revision_in_a_repository_without_commits() {
    let f = Fixture::new();
    f.write("cairn.yaml", common::CONFIG);
    rejects(&f, &["render", "--rev", "HEAD"], &["no commits yet"]);
}

#[test]
fn a_path_that_is_not_a_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = Fixture::new();
    let out = f.cairn().arg("--repo").arg(dir.path()).arg("plan").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a git repository") && err.lines().count() == 1, "{err}");

    let out = f.cairn().arg("--repo").arg(dir.path().join("missing")).arg("render").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing") && err.lines().count() == 1, "{err}");
}

#[test]
fn invalid_utf8_in_a_layer_file() {
    let f = Fixture::standard();
    std::fs::write(f.join("base/bin.yaml"), b"apiVersion: v1\nkind: \xff\n").expect("write");
    rejected_everywhere(&f, &["base/bin.yaml:1:", "not valid UTF-8"]);
}

#[test]
fn apply_without_env_is_a_usage_error() {
    let f = Fixture::standard();
    let (code, _, err) = f.run(&["apply"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--env"), "{err}");
    assert!(!f.join(".cairn").exists());
}

#[test]
fn a_kubernetes_state_namespace_that_is_not_a_string() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        "environments:\n  staging:\n    layers: [base]\n    target:\n      kubernetes: { context: prod, state_namespace: 3 }\n",
    );
    rejects(&f, &["plan"], &["cairn.yaml:5:", "state_namespace"]);
}

#[test]
fn a_wait_timeout_that_is_not_a_duration() {
    let f = Fixture::standard();
    let (code, _, err) = f.run(&["apply", "--env", "staging", "--wait", "--timeout", "soon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`soon` is not a duration: use 90s, 5m or 1h"), "{err}");
    assert!(!f.join(".cairn").exists(), "nothing is written");
}
