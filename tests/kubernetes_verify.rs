//! `apply --verify` with `on_failure: rollback` against a real Kubernetes API server
//! (scripts/kube-test.sh; never a hand-written fake). No controller runs there, so the test
//! plays one, writing each Deployment rollout's status as the `--wait` tests do; the smoke
//! check reads the live ConfigMap back from the API server with kubectl.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Fixture;
use common::cluster::Cluster;
use serde_json::Value;

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:VERSION\n";

fn objects(version: &str, mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  MODE: {mode}\n---\n{}",
        DEPLOYMENT.replace("VERSION", version)
    )
}

/// Writes the rollout status of `shop/web` for its current generation, as the Deployment
/// controller would once the pods are ready.
fn play_controller(cluster: &Cluster) {
    let (code, generation, _) =
        cluster.kubectl_status(&["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.metadata.generation}"]);
    if code != 0 || generation.trim().is_empty() {
        return;
    }
    cluster.request(
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web/status",
        "application/merge-patch+json",
        &format!(
            r#"{{"status":{{"observedGeneration":{},"replicas":1,"updatedReplicas":1,"readyReplicas":1,"availableReplicas":1}}}}"#,
            generation.trim()
        ),
    );
}

#[test]
fn a_failed_verification_is_rolled_back_in_the_cluster() {
    let cluster = Cluster::start();
    let f = Fixture::new();
    let kubectl = std::env::var("CAIRN_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base]\n    target:\n      kubernetes: {{ context: admin, namespace: shop, state_namespace: cairn-state }}\n    on_failure: rollback\n    verify:\n      - name: smoke\n        command: [sh, -c, 'test \"$({kubectl} -n shop get configmap settings -o jsonpath={{.data.MODE}})\" = serving']\n        timeout: 20s\n"
        ),
    );
    f.write("base/app.yaml", &objects("1.0.0", "serving"));
    f.commit("feat: the shop");
    f.set_env("KUBECONFIG", cluster.kubeconfig().to_str().expect("path"));

    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                play_controller(&cluster);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let first = f.json(&["apply", "--env", "staging", "--verify", "--timeout", "60s", "--format", "json"], 0);
        assert_eq!(first[0]["release"]["verification"]["verdict"], "passed", "{first:#}");

        // A release that breaks the service: healthy by its rollout, failed by its smoke check.
        f.write("base/app.yaml", &objects("2.0.0", "broken"));
        f.commit("feat: web 2.0.0");
        let (code, out, err) =
            f.run(&["apply", "--env", "staging", "--verify", "--timeout", "60s", "--format", "json"]);
        done.store(true, Ordering::SeqCst);
        assert_eq!(code, 4, "{out}\n{err}");
        let reports: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(reports[0]["release"]["id"], 2);
        assert_eq!(reports[0]["release"]["verification"]["verdict"], "failed");
        assert_eq!(reports[1]["release"]["kind"], "rollback");
        assert_eq!(reports[1]["release"]["rollback_to"], 1);
        assert_eq!(reports[1]["release"]["outcome"], "succeeded");
        assert_eq!(reports[1]["release"]["cause"]["release"], 2);
    });

    // The previous release's objects are back in the cluster, and three releases are recorded.
    let mode = cluster.kubectl(&["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.MODE}"], None);
    assert_eq!(mode, "serving");
    let image = cluster.kubectl(
        &["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"],
        None,
    );
    assert_eq!(image, "example.org/web:1.0.0");
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    let kinds: Vec<&str> = history.as_array().expect("list").iter().map(|r| r["kind"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["apply", "apply", "rollback"], "{history:#}");
    assert_eq!(history[1]["verification"]["verdict"], "failed");
}
