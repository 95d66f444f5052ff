//! Rendering and revisions over real git repositories.
mod common;

use common::Fixture;

#[test]
fn render_merges_layers_and_labels_objects() {
    let f = Fixture::standard();
    let out = f.ok(&["render", "--env", "staging"], 0);
    insta::assert_snapshot!(out);
}

#[test]
fn render_json_carries_identity_and_sources() {
    let f = Fixture::standard();
    let v = f.json(&["render", "--env", "staging", "--format", "json"], 0);
    let objects = v[0]["objects"].as_array().expect("objects");
    let kinds: Vec<&str> = objects.iter().map(|o| o["id"]["kind"].as_str().expect("kind")).collect();
    // Namespaces first, then what workloads refer to, then workloads.
    assert_eq!(kinds, vec!["Namespace", "ConfigMap", "Deployment"]);
    let settings = &objects[1];
    assert_eq!(settings["body"]["data"], serde_json::json!({"LOG_LEVEL": "debug"}));
    let sources: Vec<String> = settings["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| format!("{}:{}", s["file"].as_str().expect("file"), s["line"]))
        .collect();
    assert_eq!(sources, vec!["base/app.yaml:6", "environments/staging/patch.yaml:1"]);
}

#[test]
fn patch_delete_removes_an_object_from_one_environment() {
    let f = Fixture::standard();
    f.write(
        "environments/production/drop.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\n$patch: delete\n",
    );
    let prod = f.ok(&["render", "--env", "production"], 0);
    assert!(!prod.contains("name: settings"), "{prod}");
    let staging = f.ok(&["render", "--env", "staging"], 0);
    assert!(staging.contains("name: settings"), "{staging}");
}

#[test]
fn patch_delete_of_an_undefined_object_is_an_error() {
    let f = Fixture::standard();
    f.write(
        "environments/production/drop.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nothing\n  namespace: shop\n$patch: delete\n",
    );
    let (code, _, err) = f.run(&["render", "--env", "production"]);
    assert_eq!(code, 2);
    assert!(err.contains("environments/production/drop.yaml:1:") && err.contains("no earlier layer defines"), "{err}");
}

#[test]
fn working_tree_is_read_without_rev_and_exact_commits_with_it() {
    let f = Fixture::standard();
    let first = f.git(&["rev-parse", "HEAD"]);
    f.write("base/app.yaml", &f.read("base/app.yaml").replace("replicas: 2", "replicas: 3"));
    f.commit("fix: three replicas");
    f.git(&["tag", "v2"]);
    f.write("base/app.yaml", &f.read("base/app.yaml").replace("replicas: 3", "replicas: 5"));

    let replicas = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["render", "--env", "staging", "--format", "json"];
        all.extend_from_slice(args);
        let v = f.json(&all, 0);
        v[0]["objects"][2]["body"]["spec"]["replicas"].clone()
    };
    assert_eq!(replicas(&[]), 5, "working tree with an uncommitted edit");
    assert_eq!(replicas(&["--rev", "HEAD"]), 3);
    assert_eq!(replicas(&["--rev", "v2"]), 3);
    assert_eq!(replicas(&["--rev", "main"]), 3);
    assert_eq!(replicas(&["--rev", "HEAD~1"]), 2);
    assert_eq!(replicas(&["--rev", &first]), 2);
    assert_eq!(replicas(&["--rev", &first[..8]]), 2);
}

#[test]
fn a_configuration_root_inside_a_larger_repository_works_at_a_revision() {
    let f = Fixture::new();
    f.write("deploy/cairn.yaml", common::CONFIG);
    f.write("deploy/base/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n");
    f.write("deploy/environments/staging/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n");
    f.write("deploy/environments/production/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n");
    f.write("src/main.c", "int main(){}\n");
    f.commit("chore: monorepo");
    let mut cmd = f.cairn();
    cmd.arg("--repo").arg(f.join("deploy")).args(["render", "--env", "staging", "--rev", "HEAD", "--format", "json"]);
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> =
        v[0]["objects"].as_array().expect("objects").iter().map(|o| o["id"]["name"].as_str().expect("name")).collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(v[0]["objects"][0]["sources"][0]["file"], "base/a.yaml");

    // Notes list only the commits that change the configuration root.
    let first = f.git(&["rev-parse", "HEAD"]);
    f.write("src/main.c", "int main(){return 1;}\n");
    f.commit("fix: unrelated code");
    f.write("deploy/base/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: {k: v}\n");
    f.commit("feat: configure a");
    let mut cmd = f.cairn();
    cmd.arg("--repo")
        .arg(f.join("deploy"))
        .args(["notes", "--env", "staging", "--from", &first, "--to", "HEAD", "--format", "json"]);
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let notes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(notes["commit_count"], 1);
    assert_eq!(notes["commits"][0]["commits"][0]["description"], "configure a");
}

#[test]
fn changes_lists_paths_and_touched_environments() {
    let f = Fixture::standard();
    let base = f.git(&["rev-parse", "HEAD"]);
    f.write("environments/production/patch.yaml", &f.read("environments/production/patch.yaml").replace("4", "5"));
    f.write("README.md", "notes\n");
    f.commit("feat: more replicas");
    let v = f.json(&["changes", "--base", &base, "--format", "json"], 0);
    assert_eq!(v["paths"], serde_json::json!(["README.md", "environments/production/patch.yaml"]));
    assert_eq!(v["environments"], serde_json::json!(["production"]));

    f.write("cairn.yaml", &format!("{}# comment\n", common::CONFIG));
    f.commit("chore: touch config");
    let v = f.json(&["changes", "--base", "HEAD~1", "--format", "json"], 0);
    assert_eq!(v["environments"], serde_json::json!(["staging", "production"]));
}
