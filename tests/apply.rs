//! Plan and apply on the local target: creates, updates, prunes, locks, releases, crashes.
mod common;

use common::Fixture;
use serde_json::json;

#[test]
fn plan_apply_replan_converges() {
    let f = Fixture::standard();
    let out = f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 3);
    assert!(out.contains("staging: 3 to create, 0 to update, 0 to delete, 0 unchanged."), "{out}");
    assert!(!f.join(".cairn").exists(), "plan writes nothing");

    f.ok(&["apply", "--env", "staging"], 0);
    let live = f.read(".cairn/live/staging/objects/ConfigMap.core/shop/settings.json");
    let live: serde_json::Value = serde_json::from_str(&live).expect("json");
    assert_eq!(live["data"], json!({"LOG_LEVEL": "debug"}));
    assert_eq!(live["metadata"]["labels"]["app.kubernetes.io/managed-by"], "cairn");
    assert!(f.join(".cairn/live/staging/objects/Namespace.core/_cluster/shop.json").exists());
    assert!(!f.join(".cairn/live/production").exists(), "only the named environment is applied");

    let out = f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 0);
    assert!(out.contains("No changes."), "{out}");
    // Applying again is a no-op that still records what is live.
    let v = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v[0]["release"]["summary"], json!({"create": 0, "update": 0, "delete": 0, "unchanged": 3}));
}

#[test]
fn update_lists_json_pointers_and_a_unified_diff() {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "production"], 0);
    f.write(
        "environments/production/patch.yaml",
        &f.read("environments/production/patch.yaml").replace("replicas: 4", "replicas: 6"),
    );
    let out = f.ok(&["plan", "--env", "production"], 0);
    insta::assert_snapshot!(out);

    let v = f.json(&["plan", "--env", "production", "--format", "json"], 0);
    let change = v["plans"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["action"] == "update")
        .expect("an update");
    assert_eq!(change["fields"], json!([{"pointer": "/spec/replicas", "old": 4, "new": 6}]));
    assert_eq!(v["summary"], json!({"create": 0, "update": 1, "delete": 0, "unchanged": 2}));

    let md = f.ok(&["plan", "--env", "production", "--format", "markdown"], 0);
    assert!(md.contains("| production | `") && md.contains("| 0 | 1 | 0 | 2 |"), "{md}");
    assert!(md.contains("<details><summary><b>update</b> <code>Deployment.apps shop/web</code></summary>"), "{md}");
    assert!(md.contains("```diff") && md.contains("-  replicas: 4") && md.contains("+  replicas: 6"), "{md}");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let f = Fixture::standard();
    let plain = f.ok(&["plan", "--env", "staging"], 0);
    assert!(!plain.contains('\u{1b}'), "no escape codes when stdout is not a terminal");
    let coloured = f.ok(&["--color", "always", "plan", "--env", "staging"], 0);
    assert!(coloured.contains("\u{1b}[32m+apiVersion: v1"), "{coloured}");
}

#[test]
fn prune_removes_only_what_cairn_applied_and_no_prune_keeps_it() {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "staging"], 0);
    // Something cairn never applied, in the same live directory: never pruned.
    f.write(
        ".cairn/live/staging/objects/ConfigMap.core/shop/hand-made.json",
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"hand-made\",\"namespace\":\"shop\"}}\n",
    );
    let without_deployment = f.read("base/app.yaml");
    let without_deployment = without_deployment.split("---\napiVersion: apps/v1").next().expect("split");
    f.write("base/app.yaml", without_deployment);

    let out = f.ok(&["plan", "--env", "staging", "--no-prune"], 0);
    assert!(
        out.contains("0 to delete")
            && out.contains("kept because pruning is off")
            && out.contains("Deployment.apps shop/web"),
        "{out}"
    );
    f.ok(&["apply", "--env", "staging", "--no-prune"], 0);
    let deployment = ".cairn/live/staging/objects/Deployment.apps/shop/web.json";
    assert!(f.join(deployment).exists(), "--no-prune keeps it");

    let out = f.ok(&["plan", "--env", "staging"], 0);
    assert!(out.contains("- delete Deployment.apps shop/web"), "{out}");
    assert!(!out.contains("hand-made"), "{out}");
    f.ok(&["apply", "--env", "staging"], 0);
    assert!(!f.join(deployment).exists(), "pruned");
    assert!(
        f.join(".cairn/live/staging/objects/ConfigMap.core/shop/hand-made.json").exists(),
        "never managed, never pruned"
    );
    let out = f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 0);
    assert!(out.contains("No changes."), "{out}");
}

#[test]
fn history_records_commit_actor_approvals_and_previous_release() {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    f.write("base/app.yaml", &f.read("base/app.yaml").replace("replicas: 2", "replicas: 3"));
    let sha = f.commit("fix: three replicas\n\nMore capacity for the sale.\n\nApproved-by: Grace Hopper <grace@example.org>\nApproved-by: Linus <linus@example.org>");
    let mut cmd = f.cairn();
    cmd.env("CAIRN_ACTOR", "release-bot").args(["apply", "--env", "staging", "--rev", &sha[..10]]);
    cmd.assert().success();

    let v = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    let releases = v.as_array().expect("releases");
    assert_eq!(releases.len(), 2);
    let latest = &releases[1];
    assert_eq!(latest["id"], 2);
    assert_eq!(latest["previous"], 1);
    assert_eq!(latest["outcome"], "succeeded");
    assert_eq!(latest["actor"], "release-bot");
    assert_eq!(latest["commit"]["sha"], sha);
    assert_eq!(latest["commit"]["subject"], "fix: three replicas");
    assert_eq!(latest["commit"]["body"], "More capacity for the sale.");
    assert_eq!(latest["commit"]["author"]["name"], "Ada Author");
    assert_eq!(latest["commit"]["committer"]["time"], "2026-01-02T10:00:00+00:00");
    assert_eq!(latest["approvals"], json!(["Grace Hopper <grace@example.org>", "Linus <linus@example.org>"]));
    assert_eq!(latest["summary"]["update"], 1);
    let objects = latest["objects"].as_array().expect("objects");
    assert_eq!(objects.len(), 3);
    assert!(
        objects.iter().all(|o| { o["digest"].as_str().is_some_and(|d| d.starts_with("sha256:") && d.len() == 71) })
    );
    assert!(latest["finished_at"].as_str().is_some());

    let human = f.ok(&["history", "--env", "staging"], 0);
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 3, "{human}");
    assert!(lines[1].starts_with("2 ") && lines[1].contains("release-bot") && lines[1].contains("+0 ~1 -0"), "{human}");
    let limited = f.json(&["history", "--env", "staging", "--limit", "1", "--format", "json"], 0);
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
}

#[test]
fn working_tree_releases_say_whether_they_are_dirty() {
    let f = Fixture::standard();
    let source = |f: &Fixture| -> String {
        let v = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
        v[0]["release"]["source"].as_str().expect("source").to_string()
    };
    let head = f.git(&["rev-parse", "HEAD"]);
    // The live state directory is ignored, so applying does not make the tree dirty.
    assert_eq!(source(&f), head[..12]);
    assert_eq!(source(&f), head[..12]);
    f.write("environments/staging/new.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new\n");
    assert_eq!(source(&f), format!("{}+dirty", &head[..12]), "an untracked layer file counts");
    f.remove("environments/staging/new.yaml");
    f.write("base/app.yaml", &f.read("base/app.yaml").replace("replicas: 2", "replicas: 7"));
    assert_eq!(source(&f), format!("{}+dirty", &head[..12]), "an edited file counts");
}

#[test]
fn a_second_apply_fails_at_once_naming_the_holder() {
    let f = Fixture::standard();
    let target = cairn::target::LocalTarget::new(f.join(".cairn/live/staging"), "staging");
    let holder = cairn::target::Holder::current("someone-else");
    let guard = target.lock(&holder).expect("take the lock");
    let started = std::time::Instant::now();
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("environment `staging` is locked by someone-else (pid"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "fails at once, does not wait");
    assert!(!f.join(".cairn/live/staging/objects").exists(), "nothing applied");
    drop(guard);
    f.ok(&["apply", "--env", "staging"], 0);
}

#[test]
fn invalid_objects_are_findings_and_block_apply() {
    let f = Fixture::standard();
    f.write(
        "base/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: shop\n  labels:\n    team: a b\n",
    );
    let v = f.json(&["validate", "--format", "json"], 1);
    assert_eq!(v["errors"], 4, "{v}");
    let first = &v["findings"][0];
    assert_eq!(first["code"], "object/invalid-name");
    assert_eq!(first["file"], "base/bad.yaml");
    assert_eq!((first["line"].as_u64(), first["column"].as_u64()), (Some(4), Some(3)));
    assert_eq!(first["pointer"], "/metadata/name");
    let human = f.ok(&["validate", "--env", "staging"], 1);
    assert!(
        human.contains(
            "base/bad.yaml\n  4:3 error [object/invalid-name] ConfigMap shop/Bad_Name (staging): name `Bad_Name`"
        ),
        "{human}"
    );
    assert!(human.contains("       4 |   name: Bad_Name\n         |   ^\n"), "{human}");
    f.ok(&["apply", "--env", "staging"], 1);
    assert!(!f.join(".cairn").exists(), "an invalid configuration is never applied");
}

#[test]
fn an_apply_killed_mid_way_leaves_whole_files_and_the_next_apply_converges() {
    let f = Fixture::standard();
    let mut docs = String::new();
    for i in 0..3000 {
        docs.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\n  namespace: shop\ndata:\n  value: \"{i}\"\n"));
    }
    f.write("base/many.yaml", &docs);
    let bin = assert_cmd::cargo::cargo_bin("cairn");
    let mut child = std::process::Command::new(bin)
        .args(["apply", "--env", "staging"])
        .env("CAIRN_REPO", f.path())
        .env("CAIRN_ACTOR", "doomed")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let objects = f.join(".cairn/live/staging/objects/ConfigMap.core/shop");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(&objects).map(|d| d.count()).unwrap_or(0) < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    // Every object file on disk is whole (no torn JSON), temp files aside.
    for entry in std::fs::read_dir(&objects).expect("objects dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{name} is torn: {e}"));
    }

    // The kernel released the lock with the process; the next apply converges.
    let v = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v[0]["release"]["outcome"], "succeeded");
    assert!(
        !std::fs::read_dir(&objects).expect("dir").any(|e| e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-"))
    );
    f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 0);
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    let outcomes: Vec<&str> =
        history.as_array().expect("list").iter().map(|r| r["outcome"].as_str().expect("outcome")).collect();
    // If the kill landed after the first apply finished there is nothing to mark; either way the
    // first release is no longer "in-progress".
    assert!(matches!(outcomes.as_slice(), ["interrupted", "succeeded"] | ["succeeded", "succeeded"]), "{outcomes:?}");
}

/// `drift: refuse` on the local target: a live file edited by hand is left as it is, the apply
/// fails that object and says why; `drift: repair` (the default) puts it back.
#[test]
fn drift_refuse_leaves_a_hand_edited_object_and_repair_resets_it() {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "staging"], 0);
    let live = f.join(".cairn/live/staging/objects/ConfigMap.core/shop/settings.json");
    let edited = f.read(".cairn/live/staging/objects/ConfigMap.core/shop/settings.json").replace("debug", "trace");
    std::fs::write(&live, &edited).expect("hand edit");
    f.write("cairn.yaml", &common::CONFIG.replace("    target:\n", "    drift: refuse\n    target:\n"));
    f.commit("refuse drift");
    let (code, out, _) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("drift: refuse") && out.contains("were not reset"), "{out}");
    assert_eq!(std::fs::read_to_string(&live).expect("read"), edited, "the hand edit is kept");
    f.write("cairn.yaml", &common::CONFIG.replace("    target:\n", "    drift: sometimes\n    target:\n"));
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("cairn.yaml:") && err.contains("drift"), "{err}");
    f.write("cairn.yaml", common::CONFIG);
    f.commit("repair drift");
    let out = f.ok(&["apply", "--env", "staging"], 0);
    assert!(out.contains("1 object(s) had drifted from the previous release and were reset"), "{out}");
    assert!(std::fs::read_to_string(&live).expect("read").contains("debug"));
}
