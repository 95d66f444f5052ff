//! Prometheus checks against a real Prometheus server (Debian's `prometheus`, started here on
//! loopback with a temporary data directory and a 1 s scrape interval), scraping an exporter
//! this test serves and whose values it controls.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Fixture;
use common::http::Server;
use serde_json::Value;

struct Prometheus {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> String {
    std::env::var("CAIRN_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn get(url: &str) -> Option<Value> {
    let out = Command::new("curl").args(["-sf", "--max-time", "2", url]).output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn start(exporter: &str) -> Prometheus {
    let data = tempfile::tempdir().expect("tempdir");
    let target = exporter.trim_start_matches("http://");
    let config = data.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: shop\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let child = Command::new(binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `{}` ({e}); scripts/test.sh installs Debian's prometheus package", binary())
        });
    let server = Prometheus { child, url: format!("http://127.0.0.1:{port}"), _data: data };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = get(&format!("{}/api/v1/query?query=up", server.url));
        if up.as_ref().is_some_and(|v| v["data"]["result"][0]["value"][1] == "1") {
            return server;
        }
        assert!(Instant::now() < deadline, "prometheus did not scrape the exporter within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until Prometheus has scraped the exporter `n` more times (and stored the last one).
fn scrapes(exporter: &Server, n: usize) {
    let start = exporter.requests().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while exporter.requests().len() < start + n {
        assert!(Instant::now() < deadline, "prometheus stopped scraping");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Argo Rollouts' documented `success-rate` AnalysisTemplate (docs/features/analysis.md).
const SUCCESS_RATE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 5m
    # NOTE: prometheus queries return results in the form of a vector.
    # So it is common to access the index 0 of the returned array to obtain the value
    successCondition: result[0] >= 0.95
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        query: |
          sum(irate(
            istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}",response_code!~"5.*"}[5m]
          )) /
          sum(irate(
            istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}"}[5m]
          ))
"#;

#[test]
fn prometheus_checks_against_a_real_server() {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let (ok_step, error_step) = (Arc::new(AtomicU64::new(99)), Arc::new(AtomicU64::new(1)));
    let (o, e, os, es) = (ok.clone(), errors.clone(), ok_step.clone(), error_step.clone());
    // Every scrape, the service has served more requests: the steps set its success rate.
    let exporter = Server::start(move |_| {
        let good = o.fetch_add(os.load(Ordering::SeqCst), Ordering::SeqCst);
        let bad = e.fetch_add(es.load(Ordering::SeqCst), Ordering::SeqCst);
        (
            200,
            format!(
                "# TYPE istio_requests_total counter\nistio_requests_total{{reporter=\"source\",destination_service=\"shop\",response_code=\"200\"}} {good}\nistio_requests_total{{reporter=\"source\",destination_service=\"shop\",response_code=\"500\"}} {bad}\n"
            ),
        )
    });
    let prometheus = start(&exporter.url);
    scrapes(&exporter, 3);

    let f = Fixture::standard();
    f.write("analysis/success-rate.yaml", SUCCESS_RATE);
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    on_failure: rollback\n    verify:\n      - name: argo\n        analysis: {{ template: analysis/success-rate.yaml, args: {{ service-name: shop }}, address: '{p}' }}\n      - name: rate\n        prometheus:\n          address: '{p}'\n          query: 'sum(irate(istio_requests_total{{destination_service=\"shop\",response_code!~\"5.*\"}}[1m])) / sum(irate(istio_requests_total{{destination_service=\"shop\"}}[1m]))'\n          success: 'result[0] >= 0.95'\n        interval: 50ms\n        count: 2\n",
            p = prometheus.url
        ),
    );
    f.commit("ci: verify with prometheus");

    // 99 good requests in 100: both checks pass; the template's query is run as written.
    f.ok(&["apply", "--env", "staging"], 0);
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v["verdict"], "passed", "{v}");
    assert_eq!(v["checks"][0]["name"], "argo/success-rate");
    assert_eq!(v["checks"][0]["measurements"][0]["value"], "[0.99]", "{v}");
    assert_eq!(v["checks"][1]["measurements"].as_array().expect("list").len(), 2);

    // Half the requests fail: the native check fails at its first measurement, and
    // `apply --verify` rolls the second release back.
    f.write("base/app.yaml", &f.read("base/app.yaml").replace("web:1.0.0", "web:2.0.0"));
    f.commit("feat: web 2.0.0");
    ok_step.store(50, Ordering::SeqCst);
    error_step.store(50, Ordering::SeqCst);
    scrapes(&exporter, 2);
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--verify", "--format", "json"]);
    assert_eq!(code, 4, "{out}\n{err}");
    let reports: Value = serde_json::from_str(&out).expect("json");
    let rate = &reports[0]["release"]["verification"]["checks"][1];
    assert_eq!(rate["verdict"], "failed", "{rate}");
    assert_eq!(rate["measurements"][0]["value"], "[0.5]");
    assert_eq!(rate["measurements"][0]["message"], "`result[0] >= 0.95` is false");
    assert_eq!(reports[1]["release"]["kind"], "rollback");
    assert_eq!(reports[1]["release"]["rollback_to"], 1);

    // An empty result is inconclusive (its own limit); a query the server rejects is exit 2 with
    // Prometheus' message and the query; an unreachable server is inconclusive after its errors.
    let checks = |body: &str| {
        f.write(
            "cairn.yaml",
            &format!(
                "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    verify:\n      - name: q\n{body}"
            ),
        );
    };
    checks(&format!(
        "        prometheus: {{ address: '{}', query: 'no_such_metric{{environment=\"{{{{ environment }}}}\"}}', success: 'result[0] > 0' }}\n        inconclusive_limit: 1\n        count: 3\n        interval: 20ms\n",
        prometheus.url
    ));
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 4);
    assert_eq!(v["verdict"], "inconclusive", "{v}");
    assert_eq!(v["checks"][0]["measurements"].as_array().expect("list").len(), 2, "the second passes the limit");
    assert_eq!(v["checks"][0]["measurements"][0]["message"], "the query returned no data");

    checks(&format!(
        "        prometheus: {{ address: '{}', query: 'sum(up', success: 'result[0] > 0' }}\n",
        prometheus.url
    ));
    let (code, _, err) = f.run(&["verify", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("check `q`: Prometheus at") && err.contains("rejected the query (bad_data:"), "{err}");
    assert!(err.contains("the query was: sum(up"), "{err}");

    checks(&format!(
        "        prometheus: {{ address: 'http://127.0.0.1:{}', query: 'up', success: 'result[0] == 1' }}\n        consecutive_error_limit: 1\n        interval: 20ms\n        timeout: 300ms\n",
        free_port()
    ));
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 4);
    assert_eq!(v["verdict"], "inconclusive", "{v}");
}
