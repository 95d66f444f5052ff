//! Applies to a real Kubernetes API server (scripts/kube-test.sh; never a hand-written fake):
//! create, update, no-op and prune from the inventory; drift made with kubectl; a conflict with
//! another field manager; a CRD and its custom resources in one apply; the lock under two
//! concurrent applies and a stale lock; an apply killed mid-way and resumed; health waits;
//! RBAC denial and a rejected object.
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Fixture;
use common::cluster::Cluster;
use serde_json::Value;

const CONFIG: &str = "\
environments:
  staging:
    layers: [base]
    target:
      kubernetes: { context: admin, namespace: shop, state_namespace: cairn-state }
";

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\ndata:\n  LOG_LEVEL: {value}\n"
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:1.0.0\n";

fn fixture(cluster: &Cluster, objects: &[&str]) -> Fixture {
    let f = Fixture::new();
    f.write("cairn.yaml", CONFIG);
    f.write("base/app.yaml", &objects.join("---\n"));
    f.commit("feat: the shop");
    f.set_env("KUBECONFIG", cluster.kubeconfig().to_str().expect("path"));
    f.set_env("CAIRN_ACTOR", "alice");
    f
}

fn change<'a>(plan: &'a Value, kind: &str, name: &str) -> &'a Value {
    common::cluster::entry(&plan["plans"][0]["changes"], kind, name)
}

fn outcome<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    common::cluster::entry(&report[0]["release"]["objects"], kind, name)
}

#[test]
fn apply_creates_updates_prunes_marks_drift_and_records_releases_in_the_cluster() {
    let cluster = Cluster::start();
    let f = fixture(&cluster, &[NAMESPACE, &config_map("settings", "debug"), &config_map("extra", "info"), DEPLOYMENT]);

    // Creates, in order, with cairn's labels; the release record is in the state namespace.
    let report = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");
    assert_eq!(report[0]["release"]["summary"]["create"], 4);
    let kinds: Vec<&str> = report[0]["plan"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["object"]["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "ConfigMap", "Deployment"]);
    let labels =
        cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.metadata.labels}"], None);
    assert!(
        labels.contains("\"app.kubernetes.io/managed-by\":\"cairn\"")
            && labels.contains("\"cairn/environment\":\"staging\""),
        "{labels}"
    );
    let managers = cluster.kubectl(
        &["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.metadata.managedFields[*].manager}"],
        None,
    );
    assert_eq!(managers.trim(), "cairn");
    let records =
        cluster.kubectl(&["-n", "cairn-state", "get", "configmaps", "-l", "cairn/record", "-o", "name"], None);
    assert!(
        records.contains("configmap/cairn-release-staging-000001")
            && records.contains("configmap/cairn-inventory-staging"),
        "{records}"
    );

    // A no-op apply changes nothing and still records a release; history reads the cluster.
    let report = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["summary"]["unchanged"], 4, "{report:#}");
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    let ids: Vec<u64> = history.as_array().expect("list").iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(ids.len(), 2, "{history:#}");

    // Drift: a change made with kubectl is marked in the plan and the apply puts it back.
    cluster.kubectl(
        &["-n", "shop", "patch", "configmap", "settings", "--type=merge", "-p", r#"{"data":{"LOG_LEVEL":"trace"}}"#],
        None,
    );
    let plan = f.json(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_eq!(change(&plan, "ConfigMap", "settings")["drift"], true, "{plan:#}");
    assert!(change(&plan, "ConfigMap", "extra").get("drift").is_none());
    let human = f.ok(&["plan", "--env", "staging"], 0);
    assert!(human.contains("drift"), "{human}");

    // An object with cairn's labels that cairn never applied is not in the inventory: never pruned.
    cluster.kubectl(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hand-made\n  namespace: shop\n  labels: {app.kubernetes.io/managed-by: cairn, cairn/environment: staging}\n"));

    // Update one object, drop two: the dropped ones are pruned from the inventory.
    f.write("base/app.yaml", &[NAMESPACE, &config_map("settings", "warn")].join("---\n"));
    f.commit("fix: fewer objects");
    // kubectl patch made `kubectl-patch` the owner of the drifted field by an imperative edit:
    // the object is cairn's, git is the source of truth, so the apply takes the field back
    // (without --force-conflicts) and the release names the manager it took it from.
    let report = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");
    assert_eq!(outcome(&report, "ConfigMap", "settings")["reclaimed_from"], serde_json::json!(["kubectl-patch"]));
    let managers = cluster.kubectl(
        &["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.metadata.managedFields[*].manager}"],
        None,
    );
    assert_eq!(managers.trim(), "cairn", "the field is cairn's again");
    let summary = &report[0]["release"]["summary"];
    assert_eq!((summary["update"].as_u64(), summary["delete"].as_u64()), (Some(1), Some(2)), "{report:#}");
    assert_eq!(report[0]["release"]["drift"].as_array().map(Vec::len), Some(1), "the drifted object is recorded");
    assert_eq!(
        cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.LOG_LEVEL}"], None),
        "warn"
    );
    for gone in [["deployment", "web"], ["configmap", "extra"]] {
        let (code, _, err) = cluster.kubectl_status(&["-n", "shop", "get", gone[0], gone[1]]);
        assert_ne!(code, 0, "{gone:?} pruned: {err}");
    }
    cluster.kubectl(&["-n", "shop", "get", "configmap", "hand-made"], None);

    // --no-prune keeps what is no longer rendered, and says so.
    f.write("base/app.yaml", NAMESPACE);
    f.commit("drop settings");
    let out = f.ok(&["apply", "--env", "staging", "--no-prune"], 0);
    assert!(out.contains("kept 1 object(s)"), "{out}");
    cluster.kubectl(&["-n", "shop", "get", "configmap", "settings"], None);

    // status reads releases and live state from the cluster.
    let status = f.json(&["status", "--env", "staging", "--format", "json"], 0);
    assert_eq!(status[0]["release"]["id"], 4, "{status:#}");
}

/// `drift: refuse`: an object changed by hand is not overwritten; the apply fails it, says why,
/// and claims no reset. With the default `repair`, the human report names what was taken back.
#[test]
fn drift_refuse_leaves_a_hand_edit_and_repair_takes_it_back() {
    let cluster = Cluster::start();
    let f = fixture(&cluster, &[NAMESPACE, &config_map("settings", "debug")]);
    f.write("cairn.yaml", &CONFIG.replace("    target:\n", "    drift: refuse\n    target:\n"));
    f.commit("refuse drift");
    f.ok(&["apply", "--env", "staging"], 0);
    cluster.kubectl(
        &["-n", "shop", "patch", "configmap", "settings", "--type=merge", "-p", r#"{"data":{"LOG_LEVEL":"trace"}}"#],
        None,
    );
    let (code, out, _) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("drift: refuse") && out.contains("were not reset"), "{out}");
    assert!(!out.contains("and were reset"), "no summary claims a reset that did not happen: {out}");
    assert_eq!(
        cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.LOG_LEVEL}"], None),
        "trace",
        "the hand edit is left as it is"
    );
    f.write("cairn.yaml", CONFIG);
    f.commit("repair drift");
    let out = f.ok(&["apply", "--env", "staging"], 0);
    assert!(
        out.contains("were reset") && out.contains("took back fields `kubectl-patch` had changed by hand"),
        "{out}"
    );
    assert_eq!(
        cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.LOG_LEVEL}"], None),
        "debug"
    );
}

#[test]
fn conflicts_name_the_other_manager_and_force_takes_them_over() {
    let cluster = Cluster::start();
    let f = fixture(&cluster, &[NAMESPACE, &config_map("settings", "debug"), &config_map("other", "a")]);
    f.ok(&["apply", "--env", "staging"], 0);
    // Someone else takes the field over with their own field manager.
    cluster.kubectl(
        &["apply", "--server-side", "--field-manager=ops-team", "--force-conflicts", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  LOG_LEVEL: trace\n"),
    );
    f.write("base/app.yaml", &[NAMESPACE, &config_map("settings", "info"), &config_map("other", "b")].join("---\n"));
    f.commit("both change");
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--format", "json"]);
    assert_eq!(code, 2, "a failed object fails the release: {err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report[0]["release"]["outcome"], "failed");
    let error = outcome(&report, "ConfigMap", "settings")["error"].as_str().expect("error").to_string();
    assert!(
        error.contains("ops-team") && error.contains(".data.LOG_LEVEL") && error.contains("--force-conflicts"),
        "{error}"
    );
    // One failing object does not stop the others.
    assert!(outcome(&report, "ConfigMap", "other").get("error").is_none());
    assert_eq!(
        cluster.kubectl(&["-n", "shop", "get", "configmap", "other", "-o", "jsonpath={.data.LOG_LEVEL}"], None),
        "b"
    );

    let report = f.json(&["apply", "--env", "staging", "--force-conflicts", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");
    assert_eq!(
        cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.LOG_LEVEL}"], None),
        "info"
    );
}

#[test]
fn a_crd_and_its_resources_in_one_apply_waves_rights_and_rejections() {
    let cluster = Cluster::start();
    let crd = common::cluster::WIDGET_CRD;
    let widget = common::cluster::WIDGET;
    // An early wave: applied before everything else, the namespace included.
    let early = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: early\n  namespace: default\n  annotations: {cairn/wave: \"-1\"}\ndata: {a: b}\n";
    let f = fixture(&cluster, &[widget, crd, NAMESPACE, early]);
    let report = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    let order: Vec<&str> = report[0]["plan"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["object"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(order, ["early", "shop", "widgets.example.org", "w"], "{report:#}");
    assert_eq!(cluster.kubectl(&["-n", "shop", "get", "widgets", "w", "-o", "jsonpath={.spec.size}"], None), "3");
    let plan = f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 0);
    assert!(plan.contains("No changes."), "{plan}");

    // A wave that is not a number: the document is named.
    f.write(
        "base/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  annotations: {cairn/wave: soon}\n",
    );
    f.commit("bad wave");
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("base/bad.yaml") && err.contains("cairn/wave"), "{err}");

    // An object the server rejects: `plan` (a dry run of everything) refuses with exit 2 naming
    // it and the server's words; `apply` writes what it can and fails that object only.
    f.write(
        "base/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  namespace: shop\ndata:\n  'no spaces allowed': x\n",
    );
    f.commit("bad key");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ConfigMap shop/bad") && err.contains("a valid config key"), "{err}");
    let (code, out, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(out.contains("failed create ConfigMap shop/bad") && out.contains("a valid config key"), "{out}");
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    assert_eq!(history[1]["outcome"], "failed", "the failure is recorded: {history:#}");

    // A user without rights: the server's refusal, naming the user.
    f.remove("base/bad.yaml");
    f.write("cairn.yaml", &CONFIG.replace("context: admin", "context: nobody"));
    f.commit("as nobody");
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("forbidden") && err.contains("nobody"), "{err}");
}

#[test]
fn the_lock_health_waits_and_an_interrupted_apply_resumed() {
    let cluster = Cluster::start();
    let f = fixture(&cluster, &[NAMESPACE, DEPLOYMENT]);

    // No controller runs here, so the Deployment never rolls out: `--wait` holds the lock until
    // its timeout, and a second apply meanwhile fails at once naming the holder.
    let first = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .args(["--repo", f.path().to_str().expect("path"), "apply", "--env", "staging", "--wait", "--timeout", "12s"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("CAIRN_ACTOR", "alice")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let (code, _, _) = cluster.kubectl_status(&["-n", "cairn-state", "get", "lease", "cairn-lock-staging"]);
        if code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let out = f.cairn().args(["apply", "--env", "staging"]).env("CAIRN_ACTOR", "bob").output().expect("run");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("locked by alice") && err.contains("lease cairn-state/cairn-lock-staging"), "{err}");
    assert!(took < Duration::from_secs(10), "fails at once, not after a wait: {took:?}");
    // The first ends when the wait times out, naming the object and why.
    let first = first.wait_with_output().expect("first apply");
    let text = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(2), "{text} {}", String::from_utf8_lossy(&first.stderr));
    assert!(text.contains("not healthy after 12s") && text.contains("Deployment"), "{text}");
    // The first ends when the wait times out, naming the object and why.
    let report = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    assert_eq!(report[0]["outcome"], "failed", "{report:#}");
    let web = report[0]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["object"]["kind"] == "Deployment")
        .expect("web")
        .clone();
    assert!(web["error"].as_str().is_some_and(|e| e.contains("the controller has not seen the change")), "{web:#}");

    // Playing the controller: the rollout's status is written, and the wait succeeds.
    let generation =
        cluster.kubectl(&["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.metadata.generation}"], None);
    cluster.request(
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web/status",
        "application/merge-patch+json",
        &format!(r#"{{"status":{{"observedGeneration":{generation},"replicas":2,"updatedReplicas":2,"readyReplicas":2,"availableReplicas":2}}}}"#),
    );
    let report = f.json(&["apply", "--env", "staging", "--wait", "--timeout", "30s", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");

    // A lease held by a live apply elsewhere blocks; once it expires it is taken over.
    let lease = |renewed: &str| {
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: cairn-lock-staging\n  namespace: cairn-state\n  annotations:\n    cairn/holder: '{{\"actor\":\"carol\",\"host\":\"ci-runner-7\",\"pid\":42,\"since\":\"2026-01-01T00:00:00Z\"}}'\nspec:\n  holderIdentity: carol\n  leaseDurationSeconds: 30\n  renewTime: \"{renewed}\"\n"
        )
    };
    let now = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"]).output().expect("date");
    cluster.kubectl(&["apply", "-f", "-"], Some(&lease(String::from_utf8_lossy(&now.stdout).trim())));
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("locked by carol (pid 42 on ci-runner-7"), "{err}");
    cluster.kubectl(&["apply", "-f", "-"], Some(&lease("2026-01-01T00:00:00.000000Z")));
    f.ok(&["apply", "--env", "staging"], 0);

    // Killed mid-way: many objects in several waves; the process dies once its record exists.
    let mut objects = vec![NAMESPACE.to_string()];
    for i in 0..240 {
        objects.push(format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: shop\n  annotations: {{cairn/wave: \"{}\"}}\ndata: {{n: \"{i}\"}}\n",
            i % 6
        ));
    }
    f.write("base/app.yaml", &objects.join("---\n"));
    f.commit("many objects");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .args(["--repo", f.path().to_str().expect("path"), "apply", "--env", "staging"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("CAIRN_ACTOR", "alice")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let (code, _, _) =
            cluster.kubectl_status(&["-n", "cairn-state", "get", "configmap", "cairn-release-staging-000004"]);
        if code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    let last = history.as_array().and_then(|h| h.last()).expect("a release").clone();
    assert_eq!(last["id"], 4);
    assert_eq!(last["outcome"], "in-progress", "killed before finishing: {history:#}");
    let pending = last["objects"].as_array().expect("objects").iter().filter(|o| o["pending"] == true).count();
    assert!(pending > 0, "the record lists what was not written: {history:#}");

    // The next apply takes the dead process's lock at once, converges, and says what it finished.
    let report = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");
    assert_eq!(report[0]["resumed"][0]["release"], 4, "{report:#}");
    assert_eq!(report[0]["resumed"][0]["pending"], pending);
    assert_eq!(report[0]["resumed"][0]["finished"].as_array().map(Vec::len), Some(pending));
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    assert_eq!(history[3]["outcome"], "interrupted", "{history:#}");
    let count = cluster
        .kubectl(&["-n", "shop", "get", "configmaps", "-l", "app.kubernetes.io/managed-by=cairn", "-o", "name"], None);
    assert_eq!(count.lines().count(), 240);
}

#[test]
fn secrets_applied_to_a_cluster_never_show_in_outputs_or_records() {
    use base64::Engine;
    const PASSWORD: &str = "k8s-pa55word-never-shown";
    const API_KEY: &str = "k8s-api-key-never-shown";
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let forbidden = [PASSWORD.to_string(), API_KEY.to_string(), b64(PASSWORD), b64(API_KEY)];
    let assert_clean = |what: &str, text: &str| {
        for s in &forbidden {
            assert!(!text.contains(s.as_str()), "{what} shows a secret ({s}):\n{text}");
        }
    };
    let cluster = Cluster::start();
    let f = fixture(&cluster, &[NAMESPACE]);
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(".sops.yaml", &format!("creation_rules:\n  - age: {public}\n    encrypted_regex: ^(password|api_key)$\n"));
    f.write(
        "base/db.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: {PASSWORD}\n"),
    );
    f.write(
        "base/credentials.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: credentials\n  namespace: shop\ndata:\n  api_key: {API_KEY}\n  region: eu\n"),
    );
    common::sops_encrypt(f.path(), &f.join("base/db.yaml"), &[]);
    common::sops_encrypt(f.path(), &f.join("base/credentials.yaml"), &[]);
    f.commit("feat: credentials");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());

    assert_clean("plan", &f.ok(&["plan", "--env", "staging"], 0));
    assert_clean("plan json", &f.ok(&["plan", "--env", "staging", "--format", "json"], 0));
    let applied = f.ok(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_clean("apply", &applied);
    let report: Value = serde_json::from_str(&applied).expect("json");
    assert!(
        outcome(&report, "Secret", "db")["digest"].as_str().is_some_and(|d| d.starts_with("hmac-sha256:")),
        "{report:#}"
    );
    assert!(
        outcome(&report, "ConfigMap", "credentials")["digest"].as_str().is_some_and(|d| d.starts_with("hmac-sha256:"))
    );
    // The cluster holds the plaintext, cairn's records do not.
    let stored = cluster.kubectl(&["-n", "shop", "get", "secret", "db", "-o", "jsonpath={.data.password}"], None);
    assert_eq!(stored, b64(PASSWORD));
    assert_clean("records", &cluster.kubectl(&["-n", "cairn-state", "get", "configmaps", "-o", "yaml"], None));
    for args in [
        vec!["history", "--env", "staging", "--format", "json"],
        vec!["status", "--env", "staging", "--format", "json"],
        vec!["notes", "--env", "staging"],
        vec!["plan", "--env", "staging", "--format", "json"],
    ] {
        assert_clean(&format!("{args:?}"), &f.ok(&args, 0));
    }
    // A changed password is an update shown as a marker.
    f.write(
        "base/db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: rotated-value-9\n",
    );
    common::sops_encrypt(f.path(), &f.join("base/db.yaml"), &[]);
    f.commit("rotate");
    let plan = f.ok(&["plan", "--env", "staging"], 0);
    assert_clean("plan of a rotation", &plan);
    assert!(plan.contains("<secret: changed") && !plan.contains("rotated-value-9"), "{plan}");
}

#[test]
fn check_and_the_saved_plan_against_a_cluster_credentials_and_a_forbidden_verb() {
    let cluster = Cluster::start();
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector: {app: web}\n  ports: [{port: 80, protocol: TCP}]\n";
    let f = fixture(&cluster, &[NAMESPACE, &config_map("settings", "debug"), service]);
    f.ok(&["apply", "--env", "staging"], 0);

    // The pull-request step plans against the cluster; the merge applies exactly that plan.
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write(
        "base/app.yaml",
        &[NAMESPACE, &config_map("settings", "info"), service, &config_map("new", "x")].join("---\n"),
    );
    f.commit("feat: info logs");
    // Plans are kept outside the repository, as CI keeps them as artifacts.
    let plans = tempfile::tempdir().expect("tempdir");
    let plan = plans.path().join("plan.json");
    let plan_arg = plan.to_str().expect("path");
    let report = f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 0);
    assert!(report.contains("| staging | 1 | 1 | 0 | 2 |"), "{report}");
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
    let out = f.ok(&["apply", "--plan", plan_arg], 0);
    assert!(out.contains("staging: release 2 succeeded"), "{out}");
    assert_eq!(
        cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.LOG_LEVEL}"], None),
        "info"
    );

    // A saved plan is refused once live state moved.
    f.git(&["checkout", "-q", "-b", "second"]);
    f.write(
        "base/app.yaml",
        &[NAMESPACE, &config_map("settings", "warn"), service, &config_map("new", "x")].join("---\n"),
    );
    f.commit("feat: warn logs");
    f.ok(&["check", "--base", "main", "--head", "second", "--out", plan_arg], 0);
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "second", "-m", "Merge second"]);
    cluster.kubectl(&["-n", "shop", "label", "configmap", "new", "moved=yes"], None);
    let (code, out, _) = f.run(&["apply", "--plan", plan_arg]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ConfigMap shop/new"), "{out}");

    // Wrong credentials: exit 2 with the server's answer.
    let wrong = f.join("wrong-kubeconfig");
    let text = std::fs::read_to_string(cluster.kubeconfig()).expect("kubeconfig");
    // The first user in the kubeconfig is the administrator.
    let first_token = text.lines().position(|l| l.contains("token:")).expect("a token");
    let text: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == first_token { "  user: {token: not-a-valid-token}" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&wrong, text).expect("write");
    let out = f.cairn().args(["apply", "--env", "staging"]).env("KUBECONFIG", &wrong).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Unauthorized") || err.contains("401"), "{err}");

    // A user who may read everything and keep cairn's records, but not write configuration: the
    // forbidden verb is named for each object.
    cluster.kubectl(&["create", "clusterrole", "reader", "--verb=get,list,watch", "--resource=*.*"], None);
    cluster.kubectl(&["create", "clusterrolebinding", "nobody-reads", "--clusterrole=reader", "--user=nobody"], None);
    cluster.kubectl(
        &[
            "-n",
            "cairn-state",
            "create",
            "role",
            "records",
            "--verb=*",
            "--resource=configmaps,leases.coordination.k8s.io,secrets",
        ],
        None,
    );
    cluster.kubectl(
        &["-n", "cairn-state", "create", "rolebinding", "nobody-records", "--role=records", "--user=nobody"],
        None,
    );
    f.write("cairn.yaml", &CONFIG.replace("context: admin", "context: nobody"));
    f.write(
        "base/app.yaml",
        &[NAMESPACE, &config_map("settings", "warn"), service, &config_map("other", "z")].join("---\n"),
    );
    f.commit("as nobody");
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--format", "json"]);
    assert_eq!(code, 2, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("forbidden") && text.contains("User \"nobody\" cannot patch resource"), "{text}");
}
