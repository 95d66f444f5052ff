//! The gate on every write: `apply --env`, `apply --plan` and `rollback` run schema validation and
//! every bound policy first, refuse on an error finding (exit 1, target untouched, no release),
//! and go through only on a recorded `--override-findings "REASON"`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{CONFIG, Fixture};

/// A container patch that makes production's web Deployment privileged.
const PRIVILEGED_PATCH: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 4\n  template:\n    spec:\n      containers:\n        - name: web\n          securityContext:\n            privileged: true\n";

/// Only the `privileged` rule on, so the findings are exactly what the test made.
const ONLY_PRIVILEGED: &str = "{ rules: { host-namespaces: {enabled: false}, host-path: {enabled: false}, privilege-escalation: {enabled: false}, run-as-non-root: {enabled: false}, capabilities: {enabled: false}, resources: {enabled: false}, probes: {enabled: false}, image-tag: {enabled: false}, owner-label: {enabled: false}, default-namespace: {enabled: false}, replicas: {enabled: false}, node-port: {enabled: false} } }";

/// The standard repository with the compliance plugin bound to every environment.
fn with_compliance() -> Fixture {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!("{CONFIG}policies:\n  - name: baseline\n    plugin: compliance\n    settings: {ONLY_PRIVILEGED}\n"),
    );
    f.commit("bind the compliance policy");
    f
}

/// Every file under `dir` with its bytes: what "the target is untouched" compares.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").display().to_string();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn releases(f: &Fixture, env: &str) -> Vec<serde_json::Value> {
    f.json(&["history", "--env", env, "--format", "json"], 0).as_array().expect("list").clone()
}

/// The override a forced release records, checked the same way for every command.
fn assert_forced(f: &Fixture, env: &str, reason: &str) {
    let history = releases(f, env);
    let latest = history.iter().max_by_key(|r| r["id"].as_u64()).expect("a release");
    let o = &latest["overridden"];
    assert_eq!(o["reason"], reason, "{latest:#}");
    assert_eq!(o["actor"], "test-actor");
    assert_eq!(o["findings"][0]["code"], "policy/baseline/privileged", "{o:#}");
    assert_eq!(o["findings"][0]["object"]["kind"], "Deployment");
    let human = f.ok(&["history", "--env", env], 0);
    assert!(human.contains(&format!("FORCED by test-actor: {reason}")), "{human}");
    let notes = f.ok(&["notes", "--env", env], 0);
    assert!(notes.contains("**Forced release.**") && notes.contains(reason), "{notes}");
    assert!(notes.contains("policy/baseline/privileged"), "{notes}");
    let status = f.ok(&["status", "--env", env], 0);
    assert!(status.contains("forced: test-actor overrode 1 error finding(s)") && status.contains(reason), "{status}");
    let status = f.json(&["status", "--env", env, "--format", "json"], 0);
    assert_eq!(status[0]["release"]["overridden"]["reason"], reason, "{status:#}");
}

#[test]
fn apply_env_is_refused_on_a_policy_error_and_forced_on_the_record() {
    let f = with_compliance();
    f.ok(&["apply", "--env", "production"], 0);
    let before = files(&f.join(".cairn/live/production"));
    f.write("environments/production/patch.yaml", PRIVILEGED_PATCH);
    f.commit("feat: run web privileged");

    // What `plan` reports, `apply` enforces: exit 1, findings shown, nothing written.
    let (code, out, _) = f.run(&["apply", "--env", "production"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[policy/baseline/privileged]") && out.contains("Nothing was written"), "{out}");
    assert_eq!(files(&f.join(".cairn/live/production")), before, "the target is byte-identical");
    assert_eq!(releases(&f, "production").len(), 1, "no release is recorded");
    let v = f.json(&["apply", "--env", "production", "--format", "json"], 1);
    assert_eq!(v["result"], "blocked");
    assert_eq!(v["findings"][0]["code"], "policy/baseline/privileged");

    // Without a reason the override is refused; a blank one too.
    let (code, _, err) = f.run(&["apply", "--env", "production", "--override-findings"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = f.run(&["apply", "--env", "production", "--override-findings", "  "]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--override-findings needs a reason"), "{err}");
    assert_eq!(files(&f.join(".cairn/live/production")), before);

    let out = f.ok(&["apply", "--env", "production", "--override-findings", "INC-42: hotfix needs host access"], 0);
    assert!(out.contains("production"), "{out}");
    assert_forced(&f, "production", "INC-42: hotfix needs host access");
}

#[test]
fn a_release_without_error_findings_is_not_marked_forced() {
    let f = with_compliance();
    f.ok(&["apply", "--env", "staging", "--override-findings", "just in case"], 0);
    let history = releases(&f, "staging");
    assert!(history[0].get("overridden").is_none(), "nothing was overridden: {history:?}");
    assert!(!f.ok(&["history", "--env", "staging"], 0).contains("FORCED"));
}

#[test]
fn apply_plan_runs_the_gate_again_and_records_a_forced_release() {
    let f = with_compliance();
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write("environments/production/patch.yaml", PRIVILEGED_PATCH);
    f.commit("feat: run web privileged");
    let plan = f.join("plan.json");
    let plan_arg = plan.to_str().expect("path");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 1);

    let (code, out, _) = f.run(&["apply", "--plan", plan_arg, "--rev", "feature"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[policy/baseline/privileged]") && out.contains("Nothing was written"), "{out}");
    assert!(!f.join(".cairn/live/production").exists(), "nothing is written, not even a lock");

    f.ok(&["apply", "--plan", plan_arg, "--rev", "feature", "--override-findings", "CAB-7 approved exception"], 0);
    assert_forced(&f, "production", "CAB-7 approved exception");
}

#[test]
fn rollback_is_gated_like_any_apply() {
    let f = with_compliance();
    // Release 1 is the privileged configuration, forced; release 2 fixes it.
    f.write("environments/production/patch.yaml", PRIVILEGED_PATCH);
    f.commit("feat: run web privileged");
    f.ok(&["apply", "--env", "production", "--rev", "HEAD", "--override-findings", "first forced"], 0);
    f.write(
        "environments/production/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 4\n",
    );
    f.commit("fix: not privileged");
    f.ok(&["apply", "--env", "production", "--rev", "HEAD"], 0);
    let before = files(&f.join(".cairn/live/production"));

    // Going back to release 1 would restore a privileged container: refused, nothing written.
    let (code, out, _) = f.run(&["rollback", "--env", "production"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[policy/baseline/privileged]") && out.contains("Nothing was written"), "{out}");
    assert_eq!(files(&f.join(".cairn/live/production")), before, "the target is byte-identical");
    assert_eq!(releases(&f, "production").len(), 2);

    f.ok(&["rollback", "--env", "production", "--override-findings", "INC-9: 1.0 is the last good build"], 0);
    assert_forced(&f, "production", "INC-9: 1.0 is the last good build");
    let history = releases(&f, "production");
    assert_eq!(history.iter().find(|r| r["id"] == 3).expect("release 3")["kind"], "rollback");
}

#[test]
fn an_override_on_a_command_that_does_not_write_is_a_usage_error() {
    let f = with_compliance();
    for args in [
        &["plan", "--override-findings", "x"][..],
        &["validate", "--override-findings", "x"],
        &["check", "--base", "HEAD", "--override-findings", "x"],
        &["render", "--override-findings", "x"],
    ] {
        let (code, _, err) = f.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("unexpected argument '--override-findings'"), "{args:?}: {err}");
    }
}

#[test]
fn a_policy_that_cannot_load_stops_apply_before_anything_is_written() {
    let f = Fixture::standard();
    f.write("cairn.yaml", &format!("{CONFIG}policies:\n  - name: custom\n    plugin: plugins/missing.wasm\n"));
    f.commit("bind a plugin that is not there");
    let (code, out, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("missing.wasm"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!f.join(".cairn").exists(), "nothing is written");
}

/// The standard repository with production bound to the approvals plugin, `@sre-lead` owning
/// production's layer, committed with the owner's trailer.
fn with_production_approvals() -> Fixture {
    let f = Fixture::standard();
    f.write("CODEOWNERS", "/environments/production/ @sre-lead\n");
    f.write(
        "cairn.yaml",
        &format!(
            "{CONFIG}policies:\n  - name: prod-approvals\n    plugin: approvals\n    environments: [production]\n    settings: {{ required_approvals: 1 }}\n"
        ),
    );
    f.commit("chore: production approvals\n\nApproved-by: sre-lead");
    f
}

/// Production approvals on a merge-triggered apply: the owners of the changed path must approve,
/// through an `Approved-by:` trailer or an approvals file, as on the pull request.
#[test]
fn a_merge_triggered_apply_needs_the_owners_approval() {
    let f = with_production_approvals();
    f.ok(&["apply", "--env", "production", "--rev", "HEAD"], 0);

    f.write("environments/production/patch.yaml", &f.read("environments/production/patch.yaml").replace("4", "6"));
    f.commit("feat: six replicas");
    let before = files(&f.join(".cairn/live/production"));
    let (code, out, _) = f.run(&["apply", "--env", "production", "--rev", "HEAD"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[policy/prod-approvals/owner-approval]"), "{out}");
    assert!(
        out.contains("environments/production/patch.yaml needs an approval from one of its owners: @sre-lead"),
        "{out}"
    );
    assert_eq!(files(&f.join(".cairn/live/production")), before, "the target is byte-identical");

    // Staging is not bound to the approvals policy: it applies.
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);

    // An approvals file names the owner: the apply goes through and the release records who.
    let approvals = f.join("approvals.json");
    std::fs::write(&approvals, r#"["sre-lead"]"#).expect("write");
    f.ok(&["apply", "--env", "production", "--rev", "HEAD", "--approvals", approvals.to_str().expect("path")], 0);
    let history = releases(&f, "production");
    assert_eq!(history.last().expect("release")["approvals"], serde_json::json!(["sre-lead"]));

    // The next change carries the owner's trailer in its commit: no file needed.
    f.write("environments/production/patch.yaml", &f.read("environments/production/patch.yaml").replace("6", "8"));
    f.commit("feat: eight replicas\n\nApproved-by: sre-lead");
    f.ok(&["apply", "--env", "production", "--rev", "HEAD"], 0);
}

#[test]
fn a_work_tree_apply_counts_uncommitted_edits_as_changed() {
    let f = with_production_approvals();
    f.ok(&["apply", "--env", "production"], 0);
    // An edit that is not committed is still a change to production, and still needs its owner.
    f.write("environments/production/patch.yaml", &f.read("environments/production/patch.yaml").replace("4", "5"));
    let (code, out, _) = f.run(&["apply", "--env", "production"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("environments/production/patch.yaml needs an approval"), "{out}");
}

#[test]
fn a_policy_judges_the_plan_made_under_the_lock_and_a_blocked_apply_releases_it() {
    let f = with_compliance();
    f.ok(&["apply", "--env", "production"], 0);
    f.write("environments/production/patch.yaml", PRIVILEGED_PATCH);
    f.commit("feat: run web privileged");

    // The lock comes before the policies: while another apply holds it, this one stops at once
    // without judging (or writing) anything.
    let target = cairn::target::LocalTarget::new(f.join(".cairn/live/production"), "production");
    let guard = target.lock(&cairn::target::Holder::current("someone-else")).expect("take the lock");
    let (code, out, err) = f.run(&["apply", "--env", "production"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("environment `production` is locked by someone-else"), "{err}");
    assert!(!out.contains("privileged"), "no policy ran: {out}");
    drop(guard);

    // Blocked: the lock it took is released (its holder cleared), so the next apply is not stopped.
    let (code, out, _) = f.run(&["apply", "--env", "production"]);
    assert_eq!(code, 1, "{out}");
    let lock = std::fs::read(f.join(".cairn/live/production/.cairn/lock")).expect("the lock file");
    assert!(lock.is_empty(), "no holder is left behind: {}", String::from_utf8_lossy(&lock));
    f.ok(&["apply", "--env", "production", "--override-findings", "INC-9: accepted for a day"], 0);
    assert_forced(&f, "production", "INC-9: accepted for a day");
}
