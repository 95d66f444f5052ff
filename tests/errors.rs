//! Errors keep their cause and print it once, on one line: the key source that cannot be read
//! still names whom a SOPS file is encrypted for; a saved plan that cannot be read says why; a
//! Kubernetes API server that is not there is named with its context, and the client's own logs
//! stay out of stderr (no colour codes either) unless asked for with -v.
mod common;

use common::{CONFIG, Fixture};

fn one_line(err: &str) {
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains('\u{1b}'), "no colour codes outside a terminal: {err:?}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn a_key_source_that_cannot_be_read_still_names_the_recipients() {
    let f = Fixture::standard();
    let keys = tempfile::tempdir().expect("tempdir");
    let (_, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(".sops.yaml", &format!("creation_rules:\n  - age: {public}\n"));
    f.write(
        "base/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: hunter2-3f8a\n",
    );
    common::sops_encrypt(f.path(), &f.join("base/secret.yaml"), &[]);
    f.commit("an encrypted secret");
    let missing = keys.path().join("not-there.txt");
    f.set_env("SOPS_AGE_KEY_FILE", missing.to_str().expect("path"));
    let (code, out, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{out}{err}");
    one_line(&err);
    assert!(err.contains("base/secret.yaml: cannot decrypt"), "{err}");
    assert!(err.contains("not-there.txt") && err.contains("cannot read the age key file"), "{err}");
    assert!(err.contains("No such file or directory"), "the cause is printed: {err}");
    assert!(err.contains(&format!("the file is encrypted for {public}")), "{err}");
    assert!(!err.contains("hunter2") && !out.contains("hunter2"));
}

#[test]
fn io_and_saved_plan_errors_print_their_cause_once() {
    let f = Fixture::standard();
    let (code, _, err) = f.run(&["apply", "--plan", "nowhere/plan.json"]);
    assert_eq!(code, 2);
    one_line(&err);
    assert!(err.contains("nowhere/plan.json: cannot read the plan: No such file or directory"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "the cause once: {err}");
    f.write("plan.json", "{\"format\": \"cairn-plan/1\", \"plans\": [");
    let (code, _, err) = f.run(&["apply", "--plan", f.join("plan.json").to_str().expect("path")]);
    assert_eq!(code, 2);
    one_line(&err);
    assert!(err.contains("plan.json: not a readable cairn plan (was it truncated?"), "{err}");
    assert!(err.contains("EOF while parsing"), "serde's cause follows: {err}");
}

#[test]
fn an_api_server_that_is_not_there_is_one_line_naming_the_context() {
    let f = Fixture::new();
    f.write(
        "cairn.yaml",
        &CONFIG.replace("local: { path: .cairn/live/staging }", "kubernetes: { context: gone, namespace: shop }"),
    );
    f.write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: shop\n");
    f.write(
        "environments/staging/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n  namespace: shop\n",
    );
    f.commit("a cluster that is not there");
    // A kubeconfig whose server nothing listens on.
    f.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:9\n    insecure-skip-tls-verify: true\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: gone\n",
    );
    f.set_env("KUBECONFIG", f.join("kubeconfig").to_str().expect("path"));
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    one_line(&err);
    assert!(err.starts_with("error: kubernetes (gone): "), "{err}");
    // With -v the client's own logs may appear; without, only cairn's line did.
    let (_, _, verbose) = f.run(&["-v", "plan", "--env", "staging"]);
    assert!(verbose.lines().count() >= 1, "{verbose}");
}
