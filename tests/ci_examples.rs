//! The CI examples really run: `action.yml` and every workflow example validate against the
//! published JSON Schemas of GitHub workflows and actions and of GitLab CI (the copies vendored
//! in the `check-jsonschema` package), and their shell steps run, in order, against a fixture
//! repository with the variables a runner sets (tests/ci/actions_runner.py and
//! tests/ci/gitlab_runner.py; GitHub's API and GitLab's package registry are answered by
//! stand-ins for `gh` and `curl` there, everything cairn does is real).
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Fixture;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validates(schema: &str, files: &[PathBuf]) {
    let output = Command::new("python3")
        .args(["-m", "check_jsonschema", "--builtin-schema", schema])
        .args(files)
        .output()
        .expect("check-jsonschema (pip install check-jsonschema; scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "{files:?} against {schema}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_action_and_the_workflow_examples_match_the_published_schemas() {
    let r = root();
    validates("vendor.github-actions", &[r.join("action.yml")]);
    validates(
        "vendor.github-workflows",
        &[
            r.join("examples/ci/github-actions.yml"),
            r.join("examples/ci/github-promote.yml"),
            r.join("examples/ci/github-chatops.yml"),
        ],
    );
    validates("vendor.gitlab-ci", &[r.join("examples/ci/gitlab-ci.yml"), r.join("examples/ci/gitlab/cairn-shard.yml")]);

    // What `changes --format gitlab-pipeline` writes is a GitLab pipeline too.
    let f = Fixture::standard();
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write("base/more.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: more\n  namespace: shop\n");
    f.commit("feat: more");
    for head in ["feature", "main"] {
        let child = f.ok(&["changes", "--base", "main", "--head", head, "--format", "gitlab-pipeline"], 0);
        f.write("child.yml", &child);
        validates("vendor.gitlab-ci", &[f.join("child.yml")]);
    }
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

/// Runs a runner of tests/ci over the fixture's repository for one event at one commit, with the
/// runner's own arguments after the common ones; returns its summary.
fn run_harness(script: &str, f: &Fixture, state: &Path, event: &str, sha: &str, own: &[&str]) -> Value {
    let origin = f.path().to_str().expect("path").to_string();
    let state = state.to_str().expect("path").to_string();
    let cairn = binary().to_str().expect("path").to_string();
    let mut args: Vec<&str> = Vec::new();
    args.extend(["--origin", &origin, "--state", &state, "--cairn", &cairn, "--event", event, "--sha", sha]);
    args.extend(own);
    let output =
        Command::new("python3").arg(root().join("tests/ci").join(script)).args(&args).output().expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{script} {args:?}: no summary ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    });
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    summary
}

/// A repository applied nowhere yet, with a feature branch that changes both environments.
fn change_to_both() -> (Fixture, String) {
    let f = Fixture::standard();
    f.write(
        ".gitlab/cairn-shard.yml",
        &std::fs::read_to_string(root().join("examples/ci/gitlab/cairn-shard.yml")).expect("template"),
    );
    f.commit("ci: the shard template");
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write(
        "base/more.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: more\n  namespace: shop\ndata:\n  A: \"1\"\n",
    );
    let head = f.commit("feat: a map for every environment");
    (f, head)
}

fn merge(f: &Fixture) -> String {
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
    f.git(&["rev-parse", "HEAD"])
}

fn steps<'a>(summary: &'a Value, job: &str) -> Vec<&'a Value> {
    summary["jobs"][job]["runs"]
        .as_array()
        .map(|runs| runs.iter().flat_map(|r| r["steps"].as_array().into_iter().flatten()).collect())
        .unwrap_or_default()
}

/// Runs a workflow example of examples/ci with the repository's action, for one event at one
/// commit, with the runner's further arguments `more` (the pull request, the run id, …).
fn workflow(f: &Fixture, state: &Path, file: &str, event: &str, sha: &str, more: &[&str]) -> Value {
    let workflow = root().join("examples/ci").join(file);
    let action = root().join("action.yml");
    let mut own = vec!["--workflow", workflow.to_str().expect("path"), "--action", action.to_str().expect("path")];
    own.extend(more);
    run_harness("actions_runner.py", f, state, event, sha, &own)
}

fn github(f: &Fixture, state: &Path, event: &str, sha: &str, run_id: &str) -> Value {
    workflow(f, state, "github-actions.yml", event, sha, &["--pr", "7", "--run-id", run_id])
}

#[test]
fn the_github_workflow_checks_a_pull_request_in_shards_and_applies_its_plans_on_merge() {
    let (f, head) = change_to_both();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("runner");
    let pr = github(&f, &state, "pull_request", &head, "100");
    assert_eq!(pr["jobs"]["shards"]["result"], "success");
    let matrix: Value =
        serde_json::from_str(pr["jobs"]["shards"]["outputs"]["matrix"].as_str().expect("matrix")).expect("json");
    assert_eq!(matrix["include"].as_array().map(Vec::len), Some(2), "{matrix}");
    assert_eq!(pr["jobs"]["check"]["runs"].as_array().map(Vec::len), Some(2), "a check job per shard");
    assert_eq!(pr["jobs"]["apply"]["result"], "skipped");
    for step in steps(&pr, "check") {
        assert_eq!(step["outcome"], "success", "{step}");
    }
    let gh: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("gh.json")).expect("gh state")).expect("json");
    let comments = gh["comments"]["7"].as_array().expect("comments on the pull request");
    assert_eq!(comments.len(), 2, "one comment per shard");
    for c in comments {
        let body = c["body"].as_str().expect("body");
        assert!(
            body.starts_with("<!-- cairn:cairn:check:") && body.contains("## cairn check: ready to merge"),
            "{body}"
        );
    }
    for shard in ["1", "2"] {
        assert!(
            state.join(format!("artifacts/100/cairn-plan-{head}-{shard}/plan-{shard}.json")).exists(),
            "shard {shard}'s plan"
        );
    }
    // A second run (a new push to the pull request) edits the comments instead of adding more.
    github(&f, &state, "pull_request", &head, "101");
    let gh: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("gh.json")).expect("gh state")).expect("json");
    assert_eq!(gh["comments"]["7"].as_array().map(Vec::len), Some(2), "edited, not added");

    // Merge: the merged commit's pull request and its successful run are found, its plans applied.
    let merged = merge(&f);
    let mut gh = gh;
    gh["pulls"] = serde_json::json!({ merged.clone(): [{"number": 7, "head": {"sha": head}}] });
    gh["runs"] = serde_json::json!([{"id": 101, "name": "cairn", "head_sha": head, "event": "pull_request", "status": "success"}]);
    std::fs::write(state.join("gh.json"), gh.to_string()).expect("write gh state");
    let push = github(&f, &state, "push", &merged, "200");
    assert_eq!(push["jobs"]["plans"]["outputs"]["run-id"], "101");
    let applied: Vec<String> = steps(&push, "apply")
        .iter()
        .filter(|s| s["name"] == "Apply exactly what the pull request showed")
        .map(|s| s["output"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(applied.len(), 2, "{push}");
    assert!(applied.iter().all(|out| !out.contains("no plan from a pull request")), "{applied:?}");
    assert!(applied.iter().any(|out| out.contains("staging: release 1 succeeded")), "{applied:?}");
    assert!(applied.iter().any(|out| out.contains("production: release 1 succeeded")), "{applied:?}");
    let summaries: Vec<&str> =
        push["summary"].as_array().expect("summary").iter().filter_map(|s| s["step_summary"].as_str()).collect();
    assert!(summaries.iter().any(|s| s.contains("# production — release 1")), "{summaries:?}");
    let history = f.json(&["history", "--env", "production", "--format", "json"], 0);
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    // After the applies, the status site is written and published.
    assert_eq!(push["jobs"]["site"]["result"], "success", "{}", push["jobs"]["site"]);
    assert_eq!(push["jobs"]["pages"]["result"], "success", "{}", push["jobs"]["pages"]);
    let published =
        push["summary"].as_array().expect("summary").iter().find_map(|s| s["pages"].as_array()).expect("pages");
    assert!(published.iter().any(|p| p == "index.html") && published.iter().any(|p| p == "env"), "{published:?}");
    assert_eq!(pr["jobs"]["site"]["result"], "skipped", "no site from a pull request");

    // A direct push (no pull request): the pushed change is applied from HEAD, through the gate.
    f.write("base/more.yaml", &f.read("base/more.yaml").replace("A: \"1\"", "A: \"2\""));
    let pushed = f.commit("fix: straight to main");
    let direct = github(&f, &state, "push", &pushed, "300");
    let out: Vec<String> =
        steps(&direct, "apply").iter().map(|s| s["output"].as_str().unwrap_or_default().to_string()).collect();
    assert!(
        out.iter().any(|o| o.contains("no plan from a pull request") && o.contains("release 2 succeeded")),
        "{out:?}"
    );
}

fn gitlab(f: &Fixture, state: &Path, event: &str, sha: &str, pipeline: &str) -> Value {
    let file = root().join("examples/ci/gitlab-ci.yml");
    let own = ["--pipeline", file.to_str().expect("path"), "--pipeline-id", pipeline];
    run_harness("gitlab_runner.py", f, state, event, sha, &own)
}

fn job<'a>(summary: &'a Value, name: &str) -> Vec<&'a Value> {
    summary["jobs"].as_array().expect("jobs").iter().filter(|j| j["job"] == name).collect()
}

#[test]
fn the_gitlab_pipeline_checks_a_merge_request_in_child_jobs_and_applies_its_plans_on_merge() {
    let (f, head) = change_to_both();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("runner");
    let mr = gitlab(&f, &state, "merge_request_event", &head, "1");
    assert_eq!(job(&mr, "cairn-check")[0]["status"], "triggered: success");
    for shard in ["1", "2"] {
        let j = job(&mr, &format!("cairn-shard-{shard}"));
        assert_eq!(j.len(), 1);
        assert_eq!(j[0]["status"], "success", "{}", j[0]);
        assert_eq!(j[0]["variables"]["CAIRN_MODE"], "check");
        assert!(state.join(format!("packages/42/cairn-plans/{head}/plan-{shard}.json")).exists());
        let kept = state.join(format!("artifacts/pipeline-1/cairn-check/cairn-shard-{shard}"));
        assert!(std::fs::read_to_string(kept.join("report.md")).expect("report").starts_with("## cairn check"));
        let junit = std::fs::read_to_string(kept.join("junit.xml")).expect("the JUnit report is kept");
        roxmltree::Document::parse(&junit).expect("JUnit XML");
    }
    let merged = merge(&f);
    let push = gitlab(&f, &state, "push", &merged, "2");
    assert!(
        job(&push, "cairn-plans")[0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("merge request head {head}"))
    );
    for shard in ["1", "2"] {
        let j = job(&push, &format!("cairn-shard-{shard}"));
        let out = j[0]["output"].as_str().unwrap_or_default();
        assert_eq!(j[0]["status"], "success", "{out}");
        assert!(!out.contains("no plan from a merge request") && out.contains("release 1 succeeded"), "{out}");
        let notes = state.join(format!("artifacts/pipeline-2/cairn-apply/cairn-shard-{shard}"));
        let names: Vec<String> = std::fs::read_dir(&notes)
            .expect("artifacts")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("notes-")), "{names:?}");
    }
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    assert_eq!(job(&push, "pages")[0]["status"], "success");
    let index = state.join("artifacts/pipeline-2/pages/public/index.html");
    assert!(std::fs::read_to_string(index).expect("the site's index").contains("<table id=\"matrix\">"));
}

/// Runs the chat-ops workflow for one pull-request comment.
fn chatops(f: &Fixture, state: &Path, sha: &str, run_id: &str, body: &str, association: &str) -> Value {
    let more = [
        "--pr",
        "9",
        "--run-id",
        run_id,
        "--comment-body",
        body,
        "--comment-association",
        association,
        "--commenter",
        "someone",
    ];
    workflow(f, state, "github-chatops.yml", "issue_comment", sha, &more)
}

fn gh_state(state: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state.join("gh.json")).expect("gh state")).expect("json")
}

#[test]
fn the_chatops_workflow_plans_and_applies_from_comments_and_refuses_strangers() {
    let (f, head) = change_to_both();
    let base = f.git(&["rev-parse", "main"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("runner");
    std::fs::create_dir_all(&state).expect("state");
    let pull = serde_json::json!({"pull": {"9": {"number": 9, "head": {"sha": head}, "base": {"sha": base}}}});
    std::fs::write(state.join("gh.json"), pull.to_string()).expect("gh state");
    // The comment's event is on the default branch; the workflow finds the head itself.
    let sha = base.as_str();

    // Someone without write access: a polite refusal, and nothing runs.
    let refused = chatops(&f, &state, sha, "400", "/cairn apply staging", "NONE");
    assert_eq!(refused["jobs"]["run"]["result"], "skipped", "{refused}");
    let gh = gh_state(&state);
    assert_eq!(gh["reactions"]["555"], serde_json::json!(["confused"]));
    let said = gh["comments"]["9"][0]["body"].as_str().expect("reply");
    assert!(said.contains("Thanks @someone") && said.contains("write access"), "{said}");
    assert!(!f.join(".cairn/live/staging").exists(), "nothing was applied");

    // A member plans: the reply ends as the pull-request report.
    let planned = chatops(&f, &state, sha, "401", "/cairn plan staging", "MEMBER");
    assert_eq!(planned["jobs"]["run"]["result"], "success", "{planned}");
    let gh = gh_state(&state);
    let reply = gh["comments"]["9"][1]["body"].as_str().expect("reply");
    assert!(reply.starts_with("cairn plan staging: **succeeded** (exit 0)"), "{reply}");
    assert!(reply.contains("## cairn check"), "{reply}");

    // A member applies: the head goes to staging, the reply holds the result.
    let applied = chatops(&f, &state, sha, "402", "/cairn apply staging", "MEMBER");
    assert_eq!(applied["jobs"]["run"]["result"], "success", "{applied}");
    let gh = gh_state(&state);
    assert_eq!(gh["reactions"]["555"], serde_json::json!(["confused", "eyes", "eyes"]));
    let reply = gh["comments"]["9"][2]["body"].as_str().expect("reply");
    assert!(reply.starts_with("cairn apply staging: **succeeded** (exit 0)"), "{reply}");
    assert!(reply.contains("staging: release 1 succeeded"), "{reply}");
    assert!(reply.contains("https://github.com/example/config/actions/runs/402"), "{reply}");
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    assert_eq!(history[0]["commit"]["sha"], head.as_str(), "the pull request's head was applied");
    assert_eq!(history[0]["actor"], "ci-runner");

    // Not a command: a hint, nothing runs.
    let unknown = chatops(&f, &state, sha, "403", "/cairn deploy everything", "OWNER");
    assert_eq!(unknown["jobs"]["run"]["result"], "skipped");
    let gh = gh_state(&state);
    assert!(gh["comments"]["9"][3]["body"].as_str().expect("reply").starts_with("Unknown command"), "{gh}");
}
