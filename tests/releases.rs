//! Release notes, status, rollback and metrics over a fixture history with pinned dates.
mod common;

use common::Fixture;
use serde_json::{Value, json};

const SECRET_PLAIN: &str = "hunter2-very-secret";

/// Sets a release's start and end times (the fixture pins what a real apply stamps with "now").
fn pin_release(f: &Fixture, env: &str, id: u64, finished: &str) {
    let path = f.join(&format!(".cairn/live/{env}/.cairn/releases/{id:06}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut record: Value = serde_json::from_str(&text).expect("json");
    let end: jiff::Timestamp = finished.parse().expect("time");
    let start = end.checked_sub(jiff::SignedDuration::from_secs(60)).expect("start");
    record["finished_at"] = json!(end.to_string());
    record["started_at"] = json!(start.to_string());
    std::fs::write(&path, serde_json::to_string_pretty(&record).expect("json")).expect("write");
}

fn base64(text: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = text.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Two releases of staging: the second bumps an image, changes configuration and a secret,
/// switches a feature flag, adds and removes objects, over conventional and other commits.
fn two_releases() -> Fixture {
    let f = Fixture::standard();
    f.write("CODEOWNERS", "* @everyone\n/base/ @platform\n/environments/staging/ @shop-devs\n");
    f.write(
        "base/flags.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\n  namespace: shop\n  labels:\n    cairn/feature-flags: \"true\"\ndata:\n  checkout-v2: \"off\"\n  dark-mode: \"on\"\n",
    );
    f.write(
        "base/secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ndata:\n  password: {}\n",
            base64("first-password")
        ),
    );
    f.write(
        "base/old.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n  namespace: shop\ndata: {a: b}\n",
    );
    f.commit("chore: flags, secret and an old map");
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);

    f.write("base/app.yaml", &f.read("base/app.yaml").replace("web:1.0.0", "web:1.1.0"));
    f.commit("feat(web): faster checkout page\n\nApproved-by: Grace Hopper <grace@example.org>");
    f.write("base/flags.yaml", &f.read("base/flags.yaml").replace("checkout-v2: \"off\"", "checkout-v2: \"on\""));
    f.write("base/secret.yaml", &f.read("base/secret.yaml").replace(&base64("first-password"), &base64(SECRET_PLAIN)));
    f.commit("fix: rotate the database password");
    f.remove("base/old.yaml");
    f.write(
        "environments/staging/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\ndata:\n  LEVEL: \"2\"\n",
    );
    f.write(
        "environments/staging/patch.yaml",
        &f.read("environments/staging/patch.yaml").replace("LOG_LEVEL: debug", "LOG_LEVEL: trace"),
    );
    f.commit("Tidy staging settings");
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    f
}

fn time_filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]")]
}

#[test]
fn notes_describe_a_release_for_people_without_secrets() {
    let f = two_releases();
    let md = f.ok(&["notes", "--env", "staging", "--repo-url", "https://git.example.org/shop/config"], 0);
    insta::with_settings!({filters => time_filters()}, { insta::assert_snapshot!(md) });

    let v = f.json(&["notes", "--env", "staging", "--release", "2", "--format", "json"], 0);
    assert_eq!(v["release"]["id"], 2);
    assert_eq!(v["previous_release"], 1);
    assert_eq!(v["rollback_command"], "cairn rollback --env staging --to 1");
    assert_eq!(v["versions"][0]["old"], "example.org/web:1.0.0");
    assert_eq!(v["versions"][0]["new"], "example.org/web:1.1.0");
    assert_eq!(
        v["features"],
        json!([{"object": {"group": "", "kind": "ConfigMap", "namespace": "shop", "name": "flags"}, "flag": "checkout-v2", "was": false, "now": true}])
    );
    assert_eq!(v["approvers"], json!(["Grace Hopper <grace@example.org>"]));
    assert_eq!(v["owners"], json!(["@platform", "@shop-devs"]));
    assert_eq!(v["commit_count"], 3);
    let titles: Vec<&str> =
        v["commits"].as_array().expect("groups").iter().map(|g| g["title"].as_str().expect("title")).collect();
    assert_eq!(titles, vec!["Features", "Bug fixes", "Other"]);

    let html = f.ok(&["notes", "--env", "staging", "--format", "html"], 0);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<style>") && html.contains("@media print"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains(" src="), "self-contained");
    assert!(html.contains("1.0.0 → 1.1.0"));

    for output in [&md, &html, &v.to_string()] {
        assert!(!output.contains(SECRET_PLAIN) && !output.contains(&base64(SECRET_PLAIN)), "secret leaked");
        assert!(!output.contains(&base64("first-password")), "old secret leaked");
    }
    assert!(md.contains("| `Secret shop/db` | `password` | secret, changed |"), "{md}");
}

#[test]
fn notes_for_a_revision_range() {
    let f = two_releases();
    let v = f.json(&["notes", "--env", "staging", "--from", "HEAD~3", "--to", "HEAD~1", "--format", "json"], 0);
    assert!(v.get("release").is_none());
    assert_eq!(v["commit_count"], 2);
    assert!(v["summary"].as_str().expect("summary").starts_with("Changes to staging: web 1.0.0 → 1.1.0"), "{v}");
}

#[test]
fn notes_bad_input() {
    let f = two_releases();
    let (code, _, err) = f.run(&["notes", "--env", "staging", "--release", "9"]);
    assert_eq!(code, 2);
    assert!(err.contains("has no release 9 (its releases are 1 to 2)"), "{err}");

    // No releases yet is said, not an error.
    let out = f.ok(&["notes", "--env", "production"], 0);
    assert!(out.contains("No releases in production yet"), "{out}");
    let v = f.json(&["notes", "--env", "production", "--format", "json"], 0);
    assert!(v["release"].is_null());

    f.git(&["checkout", "-q", "-b", "side", "HEAD~2"]);
    f.write("side.txt", "x\n");
    f.commit("chore: a side branch");
    let (code, _, err) = f.run(&["notes", "--env", "staging", "--from", "side", "--to", "main"]);
    assert_eq!(code, 2);
    assert!(err.contains("`side` is not an ancestor of `main`"), "{err}");
    f.git(&["checkout", "-q", "main"]);

    // Rewrite history so release 2's commit disappears.
    f.git(&["reset", "-q", "--hard", "HEAD~1"]);
    f.git(&["branch", "-q", "-D", "side"]);
    f.git(&["reflog", "expire", "--expire=now", "--all"]);
    f.git(&["gc", "-q", "--prune=now"]);
    let (code, _, err) = f.run(&["notes", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("is no longer in the repository (history rewritten since?)"), "{err}");
}

#[test]
fn status_shows_versions_owners_and_drift() {
    let f = two_releases();
    let v = f.json(&["status", "--format", "json"], 0);
    let staging = &v[0];
    assert_eq!(staging["release"]["id"], 2);
    assert_eq!(staging["drift"], false);
    assert_eq!(staging["workloads"][0]["images"], json!({"web": "example.org/web:1.1.0"}));
    assert_eq!(staging["workloads"][0]["owners"], json!(["@platform"]));
    assert!(v[1]["release"].is_null(), "production has no release yet");

    // A change made outside cairn is drift.
    let live = ".cairn/live/staging/objects/ConfigMap.core/shop/extra.json";
    f.write(live, &f.read(live).replace("\"2\"", "\"3\""));
    let v = f.json(&["status", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v[0]["drift"], true);
    assert_eq!(
        v[0]["drifted"],
        json!([{"object": {"group": "", "kind": "ConfigMap", "namespace": "shop", "name": "extra"}, "state": "changed"}])
    );
    let human = f.ok(&["status", "--env", "staging"], 0);
    assert!(human.contains("drift: yes (1 object(s))") && human.contains("changed ConfigMap shop/extra"), "{human}");
    // The next apply records the drift it found, and notes report it.
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    let notes = f.ok(&["notes", "--env", "staging"], 0);
    assert!(notes.contains("## Drift found before the apply") && notes.contains("`ConfigMap shop/extra`"), "{notes}");
    let html = f.ok(&["status", "--format", "html"], 0);
    assert!(html.contains("<table>") && html.contains("example.org/web:1.1.0"));
}

#[test]
fn rollback_restores_an_earlier_release_and_is_recorded() {
    let f = two_releases();
    let v = f.json(&["rollback", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v[0]["release"]["kind"], "rollback");
    assert_eq!(v[0]["release"]["rollback_to"], 1);
    let live: Value =
        serde_json::from_str(&f.read(".cairn/live/staging/objects/Deployment.apps/shop/web.json")).expect("json");
    assert_eq!(live["spec"]["template"]["spec"]["containers"][0]["image"], "example.org/web:1.0.0");
    assert!(f.join(".cairn/live/staging/objects/ConfigMap.core/shop/old.json").exists(), "removed object restored");
    assert!(!f.join(".cairn/live/staging/objects/ConfigMap.core/shop/extra.json").exists(), "newer object pruned");
    let notes = f.ok(&["notes", "--env", "staging"], 0);
    assert!(notes.contains("Release 3 rolled staging back to release 1"), "{notes}");

    let (code, _, err) = f.run(&["rollback", "--env", "staging", "--to", "7"]);
    assert_eq!(code, 2);
    assert!(err.contains("has no release 7"), "{err}");
    let (code, _, err) = f.run(&["rollback", "--env", "production"]);
    assert_eq!(code, 2);
    assert!(err.contains("no succeeded release to roll back from"), "{err}");
}

#[test]
fn metrics_match_values_computed_by_hand() {
    let f = Fixture::standard(); // commit 1 at 2026-01-01T10:00Z
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    pin_release(&f, "staging", 1, "2026-01-01T12:00:00Z"); // lead 2 h
    f.write(
        "environments/staging/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n",
    );
    f.commit("feat: a"); // 2026-01-02T10:00Z
    f.write(
        "environments/staging/b.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: shop\n",
    );
    f.commit("feat: b"); // 2026-01-03T10:00Z
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    pin_release(&f, "staging", 2, "2026-01-03T16:00:00Z"); // leads 30 h and 6 h
    f.write("environments/staging/patch.yaml", &f.read("environments/staging/patch.yaml").replace("debug", "warn"));
    f.write(
        "environments/staging/c.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: other\n",
    );
    f.commit("fix: quieter logs"); // 2026-01-04T10:00Z
    // Release 3 fails part-way: a file stands where the new object's directory must go.
    let blocked = f.join(".cairn/live/staging/objects/ConfigMap.core/other");
    std::fs::write(&blocked, "in the way\n").expect("block");
    let (code, out, _) = f.run(&["apply", "--env", "staging", "--rev", "HEAD"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("release 3 failed") && out.contains("failed create ConfigMap other/c"), "{out}");
    pin_release(&f, "staging", 3, "2026-01-04T11:00:00Z");
    std::fs::remove_file(&blocked).expect("unblock");
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    pin_release(&f, "staging", 4, "2026-01-04T13:00:00Z"); // lead 3 h; restores release 3? no: rolled back below
    f.ok(&["rollback", "--env", "staging", "--to", "2"], 0);
    pin_release(&f, "staging", 5, "2026-01-05T09:00:00Z");

    let v = f.json(
        &["metrics", "--env", "staging", "--since", "2026-01-01", "--until", "2026-01-08", "--format", "json"],
        0,
    );
    let m = &v[0];
    assert_eq!(m["releases"], 5);
    assert_eq!(m["deployment_frequency"]["deployments"], 4);
    assert_eq!(m["deployment_frequency"]["per_week"], 4.0);
    assert_eq!(m["deployment_frequency"]["band"], "high");
    assert_eq!(m["lead_time"]["commits"], 4);
    assert_eq!(m["lead_time"]["median_hours"], 4.5); // of 2, 3, 6, 30
    assert_eq!(m["lead_time"]["p90_hours"], 30.0);
    assert_eq!(m["lead_time"]["band"], "elite");
    assert_eq!(
        m["change_failure_rate"]["failed"],
        json!([{"id": 3, "reason": "failed"}, {"id": 4, "reason": "rolled-back"}])
    );
    assert_eq!(m["change_failure_rate"]["rate"], 0.4);
    assert_eq!(m["change_failure_rate"]["band"], "low");
    assert_eq!(m["time_to_restore"]["median_hours"], 21.0); // 22 h (3 → 5) and 20 h (4 → 5)
    assert_eq!(m["time_to_restore"]["band"], "high");
    // Weeks start on Monday: 2026-01-05 is one, so release 5 falls in the second week.
    assert_eq!(
        m["weekly"],
        json!([{"week": "2025-12-29", "deployments": 3}, {"week": "2026-01-05", "deployments": 1}])
    );

    let html =
        f.ok(&["metrics", "--env", "staging", "--since", "2026-01-01", "--until", "2026-01-08", "--format", "html"], 0);
    assert!(html.contains("<svg") && html.contains("<rect") && html.contains("<polyline"), "charts drawn");
    let human = f.ok(&["metrics", "--env", "staging", "--since", "2026-01-01", "--until", "2026-01-08"], 0);
    insta::assert_snapshot!(human);
    let empty = f.json(&["metrics", "--env", "production", "--format", "json"], 0);
    assert_eq!(empty[0]["releases"], 0, "no releases is not an error");
}

#[test]
fn a_reverted_release_counts_as_a_failed_change() {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    f.write(
        "environments/staging/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n",
    );
    f.commit("feat: a");
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    f.git(&["revert", "--no-edit", "HEAD"]);
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    let v = f.json(&["metrics", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v[0]["change_failure_rate"]["failed"], json!([{"id": 2, "reason": "reverted"}]));
    assert_eq!(v[0]["time_to_restore"]["restored"], 1);
}
