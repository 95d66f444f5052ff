//! The CI step end to end on local targets: a feature branch is checked, its plan saved, the
//! merge applies exactly that plan, notes describe it; and the refusal paths.
mod common;

use common::Fixture;
use serde_json::Value;

/// A repository applied on main, with a feature branch that bumps production's replicas.
fn feature_branch() -> Fixture {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "staging", "--env", "production", "--rev", "HEAD"], 0);
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write(
        "environments/production/patch.yaml",
        &f.read("environments/production/patch.yaml").replace("replicas: 4", "replicas: 6"),
    );
    f.commit("feat: more production replicas");
    f
}

fn merge(f: &Fixture) {
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
}

#[test]
fn check_then_apply_the_saved_plan_on_merge() {
    let f = feature_branch();
    let plan = f.join("plan.json");
    let plan_arg = plan.to_str().expect("utf-8 path");
    let report = f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 0);
    assert!(report.starts_with("## cairn check: ready to merge"), "{report}");
    assert!(report.contains("| production | 0 | 1 | 0 | 2 | 0 | 0 |"), "{report}");
    assert!(!report.contains("| staging |"), "staging is not touched");
    assert!(report.contains("-  replicas: 4\n+  replicas: 6"), "{report}");
    assert!(f.join("plan.md").exists(), "the full report is saved beside the plan");

    let saved: Value = serde_json::from_str(&f.read("plan.json")).expect("json");
    assert_eq!(saved["format"], "cairn-plan/1");
    assert_eq!(saved["plans"].as_array().map(Vec::len), Some(1));

    merge(&f);
    let out = f.ok(&["apply", "--plan", plan_arg], 0);
    assert!(out.contains("production: release 2 succeeded"), "{out}");
    let live: Value =
        serde_json::from_str(&f.read(".cairn/live/production/objects/Deployment.apps/shop/web.json")).expect("json");
    assert_eq!(live["spec"]["replicas"], 6);
    let notes = f.ok(&["notes", "--env", "production"], 0);
    assert!(notes.contains("more production replicas"), "{notes}");
}

#[test]
fn a_plan_is_refused_when_live_state_moved_and_replan_overrides() {
    let f = feature_branch();
    let plan = f.join("plan.json");
    let plan_arg = plan.to_str().expect("utf-8 path");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 0);
    // Someone changes production by hand after the check.
    let live = ".cairn/live/production/objects/ConfigMap.core/shop/settings.json";
    f.write(live, &f.read(live).replace("info", "error"));
    merge(&f);
    let before = f.read(".cairn/live/production/objects/Deployment.apps/shop/web.json");
    let out = f.ok(&["apply", "--plan", plan_arg], 1);
    assert!(
        out.contains("production: refused: 1 object(s) moved since the plan was made; nothing was applied"),
        "{out}"
    );
    assert!(out.contains("ConfigMap shop/settings: planned unchanged"), "{out}");
    assert_eq!(f.read(".cairn/live/production/objects/Deployment.apps/shop/web.json"), before, "nothing applied");
    let history = f.json(&["history", "--env", "production", "--format", "json"], 0);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "no release recorded for a refusal");

    let out = f.ok(&["apply", "--plan", plan_arg, "--replan"], 0);
    assert!(out.contains("production: release 2 succeeded"), "{out}");
}

#[test]
fn a_plan_is_refused_when_the_merge_renders_differently() {
    let f = feature_branch();
    let plan = f.join("plan.json");
    let plan_arg = plan.to_str().expect("utf-8 path");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 0);
    merge(&f);
    f.write(
        "environments/production/patch.yaml",
        &f.read("environments/production/patch.yaml").replace("replicas: 6", "replicas: 9"),
    );
    f.commit("fix: even more replicas, not what was reviewed");
    let out = f.ok(&["apply", "--plan", plan_arg], 1);
    assert!(out.contains("Deployment.apps shop/web: planned update"), "{out}");
}

#[test]
fn check_reports_blocking_findings_in_every_format() {
    let f = Fixture::standard();
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write(
        "environments/staging/bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: many\n",
    );
    f.commit("feat: broken");
    let md = f.ok(&["check", "--base", "main", "--head", "feature"], 1);
    assert!(md.starts_with("## cairn check: blocked by findings"), "{md}");
    assert!(
        md.contains("| error | `schema/type` | `Deployment.apps shop/web` | `environments/staging/bad.yaml:7:3` |"),
        "{md}"
    );
    let gh = f.ok(&["check", "--base", "main", "--head", "feature", "--format", "github"], 1);
    assert!(gh.starts_with("::error file=environments/staging/bad.yaml,line=7,col=3"), "{gh}");
    let sarif = f.json(&["check", "--base", "main", "--head", "feature", "--format", "sarif"], 1);
    assert_eq!(sarif["version"], "2.1.0");
    let junit = f.ok(&["check", "--base", "main", "--head", "feature", "--format", "junit"], 1);
    roxmltree::Document::parse(&junit).expect("well-formed XML");
    let plan = f.join("plan.json");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan.to_str().expect("path")], 1);
    // The merge runs the same gate: the findings block the write, nothing is written.
    let (code, out, _) = f.run(&["apply", "--plan", plan.to_str().expect("path")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[schema/type]") && out.contains("Nothing was written"), "{out}");
    assert!(!f.join(".cairn/live/staging/objects").exists(), "a blocked plan writes nothing");
}

#[test]
fn long_reports_stay_under_the_comment_limit() {
    let f = Fixture::standard();
    f.git(&["checkout", "-q", "-b", "feature"]);
    let mut docs = String::new();
    for i in 0..400 {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-{i:03}\n  namespace: shop\ndata:\n"
        ));
        for k in 0..10 {
            docs.push_str(&format!("  KEY_{k}: \"value number {k} of object {i}\"\n"));
        }
    }
    f.write("environments/staging/big.yaml", &docs);
    f.commit("feat: many objects");
    let plan = f.join("plan.json");
    let md = f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan.to_str().expect("path")], 0);
    assert!(md.len() <= cairn::report::COMMENT_LIMIT, "{} characters", md.len());
    assert!(md.contains("diff(s) were left out, largest first") && md.contains("plan.md"), "{}", &md[..400]);
    assert!(f.read("plan.md").len() > cairn::report::COMMENT_LIMIT, "the full report is complete");
}

#[test]
fn bad_plans_and_ranges_are_refused_without_applying() {
    let f = feature_branch();
    let plan = f.join("plan.json");
    let plan_arg = plan.to_str().expect("utf-8 path");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 0);
    merge(&f);
    let live_before = f.read(".cairn/live/production/objects/Deployment.apps/shop/web.json");

    // Truncated.
    let text = f.read("plan.json");
    f.write("truncated.json", &text[..text.len() / 2]);
    let (code, _, err) = f.run(&["apply", "--plan", f.join("truncated.json").to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(err.contains("not a readable cairn plan") && err.contains("truncated"), "{err}");

    // From a newer cairn.
    let mut newer: Value = serde_json::from_str(&text).expect("json");
    newer["format"] = "cairn-plan/2".into();
    newer["cairn_version"] = "9.0.0".into();
    f.write("newer.json", &newer.to_string());
    let (code, _, err) = f.run(&["apply", "--plan", f.join("newer.json").to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(err.contains("plan format `cairn-plan/2`") && err.contains("9.0.0"), "{err}");

    // From another repository.
    let mut other: Value = serde_json::from_str(&text).expect("json");
    other["repository"] = "0123456789abcdef0123456789abcdef01234567".into();
    f.write("other.json", &other.to_string());
    let (code, _, err) = f.run(&["apply", "--plan", f.join("other.json").to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(err.contains("made for another repository"), "{err}");

    // Missing.
    let (code, _, err) = f.run(&["apply", "--plan", f.join("none.json").to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(err.contains("none.json"), "{err}");

    assert_eq!(f.read(".cairn/live/production/objects/Deployment.apps/shop/web.json"), live_before, "nothing applied");

    // A base that is not an ancestor of the head.
    f.git(&["checkout", "-q", "-b", "other", "HEAD~1"]);
    f.write("x.txt", "x\n");
    f.commit("chore: elsewhere");
    let (code, _, err) = f.run(&["check", "--base", "other", "--head", "main"]);
    assert_eq!(code, 2);
    assert!(err.contains("`other` is not an ancestor of `main`"), "{err}");
}

#[test]
fn approvals_are_read_and_shown_and_bad_files_refused() {
    let f = feature_branch();
    f.write(
        "reviews.json",
        r#"[{"user": {"login": "grace"}, "state": "APPROVED", "submitted_at": "2026-01-02T09:00:00Z"}, {"user": {"login": "linus"}, "state": "COMMENTED"}]"#,
    );
    let reviews = f.join("reviews.json");
    let md = f.ok(&["check", "--base", "main", "--head", "feature", "--approvals", reviews.to_str().expect("path")], 0);
    assert!(md.contains("Approved by grace."), "{md}");
    let v = f.json(
        &[
            "check",
            "--base",
            "main",
            "--head",
            "feature",
            "--approvals",
            reviews.to_str().expect("path"),
            "--format",
            "json",
        ],
        0,
    );
    assert_eq!(v["approvals"], serde_json::json!([{"by": "grace", "at": "2026-01-02T09:00:00Z", "source": "review"}]));

    let (code, _, err) = f.run(&[
        "check",
        "--base",
        "main",
        "--head",
        "feature",
        "--approvals",
        f.join("none.json").to_str().expect("path"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("none.json") && err.contains("cannot read the approvals file"), "{err}");
    f.write("bad.json", r#"{"approved": true}"#);
    let (code, _, err) = f.run(&[
        "check",
        "--base",
        "main",
        "--head",
        "feature",
        "--approvals",
        f.join("bad.json").to_str().expect("path"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("approvals must be a JSON list"), "{err}");
}

/// The example a team copies: `scripts/example-repo.sh` builds `examples/shop` (with its
/// SOPS-encrypted Secret) into a repository with history and applies production after each
/// commit; a feature branch that rotates the database password is checked, merged and applied
/// from its saved plan, and the password shows nowhere but in the live target.
#[test]
fn the_shop_example_runs_the_whole_flow_with_its_encrypted_secret() {
    const PASSWORD: &str = "example-only-not-a-real-password";
    const ROTATED: &str = "rotated-example-password-42";
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("shop");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(format!("{root}/scripts/example-repo.sh"))
        .arg(&repo)
        .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
        .output()
        .expect("run example-repo.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = std::fs::read_to_string(format!("{root}/examples/shop/keys/example-only.agekey")).expect("key");
    let cairn = |args: &[&str], env: &[(&str, &str)]| -> (i32, String) {
        let mut cmd = assert_cmd::Command::cargo_bin("cairn").expect("binary");
        cmd.args(args).env("CAIRN_REPO", &repo).env("SOPS_AGE_KEY", &key).env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for secret in [PASSWORD, ROTATED] {
            assert!(!text.contains(secret), "cairn {args:?} shows the password:\n{text}");
        }
        (out.status.code().unwrap_or(-1), text)
    };
    let live = repo.join(".cairn/live/production/objects/Secret.core/shop/db-credentials.json");
    assert!(std::fs::read_to_string(&live).expect("applied").contains(PASSWORD));

    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").current_dir(&repo).args(args).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["checkout", "-q", "-b", "rotate"]);
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, format!("#!/bin/sh\nsed -i 's/{PASSWORD}/{ROTATED}/' \"$1\"\n")).expect("write");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let file = repo.join("base/db-credentials.secret.yaml");
    let (code, text) =
        cairn(&["secrets", "edit", file.to_str().expect("path")], &[("EDITOR", editor.to_str().expect("path"))]);
    assert_eq!(code, 0, "{text}");
    git(&[
        "-c",
        "user.name=Ada",
        "-c",
        "user.email=ada@example.org",
        "commit",
        "-qam",
        "fix: rotate the database password",
    ]);

    let plan = repo.join("plan.json");
    let plan_arg = plan.to_str().expect("path");
    // Production needs two approvals, one of them an owner of base/.
    let (code, report) = cairn(&["check", "--base", "main", "--head", "rotate"], &[]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("policy/production-approvals/"), "{report}");
    let approvals = dir.path().join("approvals.json");
    std::fs::write(&approvals, r#"["grace@example.org", "margaret@example.org"]"#).expect("write");
    let approvals_arg = approvals.to_str().expect("path");
    let (code, report) =
        cairn(&["check", "--base", "main", "--head", "rotate", "--approvals", approvals_arg, "--out", plan_arg], &[]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("DATABASE_PASSWORD") && report.contains("<secret: changed, fp:"), "{report}");
    assert!(report.contains("<secret: unchanged, fp:"), "the user name did not change: {report}");
    let saved = std::fs::read_to_string(&plan).expect("saved plan");
    assert!(!saved.contains(ROTATED) && !saved.contains(PASSWORD));
    git(&["checkout", "-q", "main"]);
    git(&[
        "-c",
        "user.name=Ada",
        "-c",
        "user.email=ada@example.org",
        "merge",
        "-q",
        "--no-ff",
        "rotate",
        "-m",
        "Merge rotate",
    ]);
    let (code, text) = cairn(&["apply", "--plan", plan_arg], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(std::fs::read_to_string(&live).expect("applied").contains(ROTATED));
    let (code, notes) = cairn(&["notes", "--env", "production"], &[("SOPS_AGE_KEY", "")]);
    assert_eq!(code, 0, "notes need no key: {notes}");
    assert!(notes.contains("db-credentials"), "{notes}");
}
