//! Plans against a real Kubernetes API server (etcd and kube-apiserver built from Debian's
//! packages, started on loopback by scripts/kube-test.sh; never a hand-written fake): the plan
//! is what the server would store, a no-op re-plan is clean, changes made with kubectl show, an
//! unknown kind, a missing right and an unreachable server are refused with the server's words.
mod common;

use std::process::Command;

use common::Fixture;
use common::cluster::Cluster;
use serde_json::Value;

const CONFIG: &str = "\
environments:
  staging:
    layers: [base]
    target:
      kubernetes: { context: admin, namespace: shop }
";

fn fixture(cluster: &Cluster) -> Fixture {
    let f = Fixture::new();
    f.write("cairn.yaml", CONFIG);
    f.write(
        "base/app.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  LOG_LEVEL: debug\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:1.0.0\n",
    );
    f.commit("feat: the shop");
    f.set_env("KUBECONFIG", cluster.kubeconfig().to_str().expect("path"));
    f
}

fn change<'a>(plan: &'a Value, kind: &str, name: &str) -> &'a Value {
    common::cluster::entry(&plan["plans"][0]["changes"], kind, name)
}

#[test]
fn plans_are_what_the_server_would_store() {
    let cluster = Cluster::start();
    let f = fixture(&cluster);

    // Nothing exists: the namespace and what lives in it are creates (the server cannot dry-run
    // into a namespace that does not exist yet, so they are shown as written).
    let plan = f.json(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_eq!(plan["summary"]["create"], 3, "{plan:#}");
    assert_eq!(plan["plans"][0]["target"], "kubernetes:admin");

    // With the namespace there (made by hand, so cairn's labels are an update), the Deployment is
    // planned as the server would default it.
    cluster.kubectl(&["create", "namespace", "shop"], None);
    let plan = f.json(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_eq!(change(&plan, "Namespace", "shop")["action"], "update", "{plan:#}");
    let web = change(&plan, "Deployment", "web");
    assert_eq!(web["action"], "create");
    assert_eq!(web["desired"]["spec"]["strategy"]["type"], "RollingUpdate", "server defaults are in the plan");
    assert_eq!(web["desired"]["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert!(web["desired"]["metadata"].get("managedFields").is_none() && web["desired"].get("status").is_none());
    // A dry run writes nothing.
    let out = Command::new("kubectl")
        .args(["-n", "shop", "get", "deployment", "web"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("kubectl");
    assert!(!out.status.success(), "the plan created nothing");

    // The same objects applied server-side as cairn's field manager: a re-plan has no changes.
    let rendered = f.ok(&["render", "--env", "staging"], 0);
    cluster.kubectl(&["apply", "--server-side", "--field-manager=cairn", "-f", "-"], Some(&rendered));
    let out = f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 0);
    assert!(out.contains("No changes."), "normalization leaves no noise: {out}");

    // A change made outside git with kubectl shows as an update of that field only.
    cluster.kubectl(
        &["-n", "shop", "patch", "configmap", "settings", "--type=merge", "-p", r#"{"data":{"LOG_LEVEL":"trace"}}"#],
        None,
    );
    let plan = f.json(&["plan", "--env", "staging", "--format", "json"], 0);
    let settings = change(&plan, "ConfigMap", "settings");
    assert_eq!(settings["action"], "update", "{plan:#}");
    assert_eq!(settings["fields"], serde_json::json!([{"pointer": "/data/LOG_LEVEL", "old": "trace", "new": "debug"}]));
    assert_eq!(change(&plan, "Deployment", "web")["action"], "unchanged");
}

#[test]
fn unknown_kinds_crds_in_the_same_plan_rights_and_reachability() {
    let cluster = Cluster::start();
    let f = fixture(&cluster);

    // A custom resource without its CRD anywhere: refused, naming it.
    f.write("base/widget.yaml", common::cluster::WIDGET);
    f.commit("a widget");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Widget") && err.contains("no CustomResourceDefinition"), "{err}");

    // With its CRD in the same environment, the custom resource is planned as a create.
    f.write("base/crd.yaml", common::cluster::WIDGET_CRD);
    f.commit("the widget CRD");
    let plan = f.json(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_eq!(change(&plan, "Widget", "w")["action"], "create", "{plan:#}");
    assert_eq!(change(&plan, "CustomResourceDefinition", "widgets.example.org")["action"], "create");

    // A user without rights: the server's refusal, named.
    f.write("cairn.yaml", &CONFIG.replace("context: admin", "context: nobody"));
    f.commit("as nobody");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("forbidden") && err.contains("nobody"), "{err}");

    // An unreachable server.
    let dead = f.join("dead-kubeconfig");
    std::fs::write(
        &dead,
        std::fs::read_to_string(cluster.kubeconfig())
            .expect("kubeconfig")
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("server:") {
                    "    server: https://127.0.0.1:9".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .expect("write");
    let out = f.cairn().args(["plan", "--env", "staging"]).env("KUBECONFIG", &dead).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("kubernetes (nobody)"), "{err}");
}
