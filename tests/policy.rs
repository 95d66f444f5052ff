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

const PRIVILEGED_PATCH: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 4\n  template:\n    spec:\n      containers:\n        - name: web\n          securityContext:\n            privileged: true\n";

/// Only one rule on, so the findings are exactly what the test made.
const ONLY_PRIVILEGED: &str = "{ rules: { host-namespaces: {enabled: false}, host-path: {enabled: false}, privilege-escalation: {enabled: false}, run-as-non-root: {enabled: false}, capabilities: {enabled: false}, resources: {enabled: false}, probes: {enabled: false}, image-tag: {enabled: false}, owner-label: {enabled: false}, default-namespace: {enabled: false}, replicas: {enabled: false}, node-port: {enabled: false} } }";

#[test]
fn compliance_violations_are_findings_at_the_offending_line() {
    let f = Fixture::standard();
    f.write("environments/production/patch.yaml", PRIVILEGED_PATCH);
    f.write(
        "cairn.yaml",
        &format!("{CONFIG}policies:\n  - name: baseline\n    plugin: compliance\n    settings: {ONLY_PRIVILEGED}\n"),
    );
    let v = f.json(&["validate", "--format", "json"], 1);
    let findings = v["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{v:#}");
    let finding = &findings[0];
    assert_eq!(finding["code"], "policy/baseline/privileged");
    assert_eq!(finding["environment"], "production");
    assert_eq!(finding["file"], "environments/production/patch.yaml");
    assert_eq!(finding["line"], 13);
    assert_eq!(finding["pointer"], "/spec/template/spec/containers/0/securityContext/privileged");
    assert_eq!(finding["object"]["kind"], "Deployment");
    // The same finding blocks a plan, which lists it beside the changes.
    let plan = f.json(&["plan", "--format", "json"], 1);
    assert_eq!(plan["findings"][0]["code"], "policy/baseline/privileged");
    assert!(plan["plans"].as_array().is_some_and(|p| p.len() == 2));
    // A warning binding reports without blocking; a reasoned suppression silences it.
    f.write(
        "cairn.yaml",
        &format!(
            "{CONFIG}policies:\n  - name: baseline\n    plugin: compliance\n    severity: warning\n    settings: {ONLY_PRIVILEGED}\n"
        ),
    );
    let v = f.json(&["validate", "--format", "json"], 0);
    assert_eq!(v["findings"][0]["severity"], "warning");
    f.write(
        "environments/production/patch.yaml",
        &PRIVILEGED_PATCH.replace(
            "  namespace: shop\n",
            "  namespace: shop\n  annotations:\n    cairn/ignore-privileged: \"node agent, reviewed by security\"\n",
        ),
    );
    let v = f.json(&["validate", "--format", "json"], 0);
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(0), "{v:#}");
}

#[test]
fn bindings_are_included_from_files_once_and_named_uniquely() {
    let f = Fixture::standard();
    f.write("environments/production/patch.yaml", PRIVILEGED_PATCH);
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - include: policies/more.yaml\n"));
    f.write(
        "policies/more.yaml",
        &format!("policies:\n  - name: strict\n    plugin: compliance\n    environments: [production]\n    settings: {ONLY_PRIVILEGED}\n"),
    );
    let v = f.json(&["validate", "--format", "json"], 1);
    assert_eq!(v["findings"][0]["code"], "policy/strict/privileged");
    // Bindings limited to staging see nothing wrong.
    f.write(
        "policies/more.yaml",
        &format!("- name: strict\n  plugin: compliance\n  environments: [staging]\n  settings: {ONLY_PRIVILEGED}\n"),
    );
    f.ok(&["validate"], 0);

    for (more, needle) in [
        ("- include: policies/more.yaml\n", "including `policies/more.yaml` again makes a cycle"),
        ("- name: strict\n  plugin: compliance\n  severty: error\n", "policies/more.yaml:3:3: unknown key `severty`"),
        (
            "- name: strict\n  plugin: compliance\n  environments: [prod]\n",
            "policies/more.yaml:3:18: unknown environment `prod`",
        ),
    ] {
        f.write("policies/more.yaml", more);
        let (code, _, err) = f.run(&["validate"]);
        assert_eq!(code, 2, "{more}");
        assert!(err.contains(needle), "{more}: {err}");
    }
    f.write("policies/more.yaml", "- name: strict\n  plugin: compliance\n");
    f.write(
        "cairn.yaml",
        &format!("{CONFIG}policies:\n  - name: strict\n    plugin: approvals\n  - include: policies/more.yaml\n"),
    );
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2);
    assert!(err.contains("policies/more.yaml:1: policy `strict` is already bound at cairn.yaml:11"), "{err}");
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - include: policies/none.yaml\n"));
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2);
    assert!(err.contains("cairn.yaml:11: included policy file `policies/none.yaml` does not exist"), "{err}");
}

#[test]
fn approvals_need_owners_and_a_minimum_of_current_reviews() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!("{CONFIG}policies:\n  - name: approvals\n    plugin: approvals\n    settings: {{ required_approvals: {{ production: 2, default: 1 }}, teams: {{ shop/ops: [olga] }} }}\n"),
    );
    f.write(".github/CODEOWNERS", "* @lead\nenvironments/production/ @shop/ops\n");
    f.commit("bind approvals");
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write("environments/production/patch.yaml", &PRIVILEGED_PATCH.replace("replicas: 4", "replicas: 6"));
    let head = f.commit("feat: six web replicas");
    let reviews = f.join("reviews.json");
    let run = |reviews_json: &str, code: i32| -> Vec<String> {
        std::fs::write(&reviews, reviews_json).expect("write");
        let v = f.json(
            &[
                "validate",
                "--rev",
                "feature",
                "--base",
                "main",
                "--approvals",
                reviews.to_str().expect("path"),
                "--format",
                "json",
            ],
            code,
        );
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|x| {
                format!(
                    "{} {} {}",
                    x["environment"].as_str().unwrap_or(""),
                    x["code"].as_str().unwrap_or(""),
                    x["severity"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let review = |login: &str, commit: &str| {
        format!(
            r#"{{"user": {{"login": "{login}"}}, "state": "APPROVED", "commit_id": "{commit}", "submitted_at": "2026-01-05T10:00:00Z"}}"#
        )
    };
    // Nobody approved: production needs 2 and its owners; staging is untouched by the change.
    let found = run("[]", 1);
    assert_eq!(
        found,
        ["production policy/approvals/required-approvals error", "production policy/approvals/owner-approval error"]
    );
    // The team owner and one more reviewer of the head commit: approved.
    run(&format!("[{}, {}]", review("olga", &head), review("bob", &head)), 0);
    // Reviews of an earlier commit and the author's own approval do not count.
    let found = run(&format!("[{}, {}, {}]", review("olga", "0000000"), review("bob", &head), review("ada", &head)), 1);
    assert!(found.contains(&"production policy/approvals/owner-approval error".to_string()), "{found:?}");
    assert!(found.contains(&"production policy/approvals/stale-approval warning".to_string()), "{found:?}");
    assert!(found.contains(&"production policy/approvals/self-approval warning".to_string()), "{found:?}");
    // An Approved-by trailer on the head counts like a review of it.
    f.commit("chore: record approvals\n\nApproved-by: olga\nApproved-by: bob");
    run("[]", 0);
    // Without --base there is no change set: a warning, not a silent pass.
    let v = f.json(&["validate", "--format", "json"], 0);
    assert_eq!(v["findings"][0]["code"], "policy/approvals/no-change-set");
}

#[test]
fn policy_test_runs_fixture_cases() {
    let f = Fixture::new();
    f.write(
        "tests/compliance.yaml",
        &format!(
            "plugin: compliance\nsettings: {ONLY_PRIVILEGED}\ncases:\n  - name: privileged is refused\n    objects_file: pods.yaml\n    expect: {{ allowed: false, violations: [privileged] }}\n  - name: nothing to see\n    objects: []\n    expect: {{ allowed: true, violations: [] }}\n"
        ),
    );
    f.write(
        "tests/pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: x }\nspec:\n  containers:\n    - name: c\n      image: x:1\n      securityContext: { privileged: true }\n",
    );
    let out = f.ok(&["policy", "test", f.join("tests").to_str().expect("path")], 0);
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    f.write("tests/pods.yaml", "apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: x }\nspec:\n  containers:\n    - name: c\n      image: x:1\n");
    let v = f.json(&["policy", "test", f.join("tests").to_str().expect("path"), "--format", "json"], 1);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["cases"][0]["problems"][0], "allowed: expected false, got true");
}

#[test]
fn plugins_never_see_secret_values() {
    // Echoes its whole input to stderr and fails, so the error shows what the plugin was given.
    let echo = wat::parse_str(common::ECHO_PLUGIN_WAT).expect("valid WAT");
    let f = Fixture::new();
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - name: hostile\n    plugin: plugins/echo.wasm\n"));
    std::fs::create_dir_all(f.join("plugins")).expect("mkdir");
    std::fs::write(f.join("plugins/echo.wasm"), echo).expect("write");
    f.write(
        "base/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: plain-s3cret-value\ndata:\n  token: dG9rZW4tczNjcmV0LXZhbHVl\n",
    );
    f.write("environments/staging/.keep", "");
    f.write("environments/production/.keep", "");
    f.commit("a secret");
    let (code, _, err) = f.run(&["validate", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains(r#""kind":"Secret""#) && err.contains("password"), "the plugin saw the object: {err}");
    for leak in ["plain-s3cret-value", "dG9rZW4tczNjcmV0LXZhbHVl", "token-s3cret-value", "cGxhaW4tczNjcmV0LXZhbHVl"] {
        assert!(!err.contains(leak), "{leak} reached the plugin: {err}");
    }
    assert!(err.contains("<secret:"), "{err}");

    // What the plugin was given keeps the published contract.
    let start = err.find("exited with code 1: ").expect("the plugin's stderr") + "exited with code 1: ".len();
    let end = err.rfind(" (environment staging)").expect("the environment");
    let input: serde_json::Value = serde_json::from_str(&err[start..end]).expect("the input is JSON");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/policy-input.schema.json")).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("usable schema");
    let problems: Vec<String> = validator.iter_errors(&input).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(problems.is_empty(), "{problems:?}\n{input:#}");
    assert_eq!(input["environment"], "staging");
    assert_eq!(input["policy"]["name"], "hostile");
    assert_eq!(input["changed_paths"], serde_json::Value::Null);
}

#[test]
fn bad_sandbox_limits_on_a_binding_are_refused_with_the_place() {
    let f = Fixture::standard();
    for (extra, needle) in [
        ("    timeout: soon\n", "cairn.yaml:13:14: `timeout` must be a duration such as `2s`"),
        ("    timeout: 0ms\n", "cairn.yaml:13:14: `timeout` must be a duration"),
        ("    fuel: -5\n", "cairn.yaml:13:11: `fuel` must be a whole number of fuel units"),
        ("    memory: 8Gi\n", "cairn.yaml:13:13: `memory` must be a size such as `256Mi`"),
    ] {
        f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - name: baseline\n    plugin: compliance\n{extra}"));
        let (code, _, err) = f.run(&["validate"]);
        assert_eq!(code, 2, "{extra}");
        assert!(err.contains(needle), "{extra}: {err}");
    }
}
