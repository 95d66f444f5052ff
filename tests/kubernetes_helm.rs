//! A chart layer against a real Kubernetes API server (scripts/kube-test.sh): helm is told the
//! server's version and API versions from discovery, the chart is applied, and a chart upgrade
//! (a version bump with a new image) is planned as the server-side dry run shows it.
mod common;

use std::process::Command;

use common::cluster::Cluster;
use common::{Fixture, helm};

const CONFIG: &str = "\
environments:
  staging:
    layers:
      - base
      - helm: { chart: charts/web, release: web, values: [environments/staging/values.yaml] }
    target:
      kubernetes: { context: admin, namespace: shop, state_namespace: cairn-state }
";

#[test]
fn a_chart_is_applied_and_its_upgrade_planned_against_the_api_server() {
    let cluster = Cluster::start();
    let f = Fixture::new();
    f.write(".gitignore", ".cache/\n");
    f.write("cairn.yaml", CONFIG);
    std::fs::create_dir_all(f.join("charts")).expect("mkdir");
    let out = Command::new(helm()).args(["create", "web"]).current_dir(f.join("charts")).output().expect("helm");
    assert!(out.status.success());
    // What the chart was told about the cluster.
    f.write(
        "charts/web/templates/capabilities.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: capabilities\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  deployments: {{ .Capabilities.APIVersions.Has \"apps/v1/Deployment\" | quote }}\n  widgets: {{ .Capabilities.APIVersions.Has \"example.org/v1\" | quote }}\n",
    );
    f.write("base/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.25.0\"\n");
    f.commit("feat: the web chart");
    f.set_env("KUBECONFIG", cluster.kubeconfig().to_str().expect("path"));
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));

    let report = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");
    let chart = &report[0]["release"]["charts"][0];
    assert_eq!(chart["chart"], "web", "{report:#}");
    let kube = chart["kube_version"].as_str().expect("kube version").to_string();
    assert!(kube.starts_with("1.20"), "discovery gives the server's version: {kube}");
    let data = cluster.kubectl(&["-n", "shop", "get", "configmap", "capabilities", "-o", "jsonpath={.data}"], None);
    assert!(data.contains(&format!("\"kube\":\"v{kube}\"")), "{data}");
    assert!(data.contains("\"deployments\":\"true\"") && data.contains("\"widgets\":\"false\""), "{data}");
    let image = cluster.kubectl(
        &["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"],
        None,
    );
    assert_eq!(image, "nginx:1.25.0");

    // The upgrade: chart 0.2.0 with a new image, planned as the API server would store it.
    let chart_yaml = f.read("charts/web/Chart.yaml").replace("version: 0.1.0", "version: 0.2.0");
    f.write("charts/web/Chart.yaml", &chart_yaml);
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.27.1\"\n");
    f.commit("feat: web chart 0.2.0");
    let plan = f.json(&["plan", "--format", "json"], 0);
    let change = common::cluster::entry(&plan["plans"][0]["changes"], "Deployment", "web");
    assert_eq!(change["action"], "update", "{change:#}");
    let fields = change["fields"].to_string();
    assert!(fields.contains("nginx:1.27.1") && fields.contains("web-0.2.0"), "{fields}");
    assert_eq!(plan["plans"][0]["charts"][0]["version"], "0.2.0");
    let human = f.ok(&["plan"], 0);
    assert!(human.contains("chart web 0.2.0") && human.contains(&format!("Kubernetes {kube}")), "{human}");
    f.ok(&["apply", "--env", "staging"], 0);
    let image = cluster.kubectl(
        &["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"],
        None,
    );
    assert_eq!(image, "nginx:1.27.1");
}
