//! Verification after apply (`cairn verify`, `apply --verify`) and automatic rollback, on the
//! local target, against HTTP servers and commands the tests run.

mod common;

use common::Fixture;
use common::http::Server;
use serde_json::Value;

/// The standard fixture with `checks` (YAML list items, indented for `verify:`) on staging.
fn with_checks(checks: &str, on_failure: &str) -> Fixture {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    on_failure: {on_failure}\n    verify:\n{checks}  production:\n    layers: [base, environments/production]\n    target:\n      local: {{ path: .cairn/live/production }}\n"
        ),
    );
    f.commit("ci: verify staging");
    f
}

fn record(f: &Fixture, id: u64) -> Value {
    let text = f.read(&format!(".cairn/live/staging/.cairn/releases/{id:06}.json"));
    serde_json::from_str(&text).expect("record")
}

fn records_text(f: &Fixture) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(f.join(".cairn/live/staging/.cairn/releases")).expect("releases") {
        all.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("read"));
    }
    all
}

fn image(f: &Fixture) -> String {
    let live: Value =
        serde_json::from_str(&f.read(".cairn/live/staging/objects/Deployment.apps/shop/web.json")).expect("json");
    live["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image").to_string()
}

#[test]
fn a_passing_http_check_is_recorded_and_its_token_never_shown() {
    let server = Server::start(|r| {
        if r.header("authorization") == Some("Bearer tok-3141592653") {
            (200, r#"{"status":"ok","version":"1.0.0"}"#.into())
        } else {
            (401, "{}".into())
        }
    });
    let f = with_checks(
        &format!(
            "      - name: smoke\n        http:\n          url: '{}/healthz?env={{{{ environment }}}}&release={{{{ release }}}}'\n          headers: {{ Authorization: {{ env: SMOKE_TOKEN }} }}\n          expect: {{ status: 200, body: {{ pointer: /status, equals: ok }}, latency: 5s }}\n        interval: 20ms\n        count: 3\n",
            server.url
        ),
        "stop",
    );
    f.set_env("SMOKE_TOKEN", "Bearer tok-3141592653");
    f.ok(&["apply", "--env", "staging"], 0);
    let (code, out, err) = f.run(&["verify", "--env", "staging", "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["verdict"], "passed");
    assert_eq!(v["release"], 1);
    assert_eq!(v["actor"], "test-actor");
    let measurements = v["checks"][0]["measurements"].as_array().expect("measurements");
    assert_eq!(measurements.len(), 3, "{out}");
    assert!(measurements.iter().all(|m| m["phase"] == "passed"), "{out}");
    // One line per measurement on stderr when it is not a terminal.
    assert_eq!(err.lines().filter(|l| l.contains("smoke: passed status 200")).count(), 3, "{err}");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].path, "/healthz?env=staging&release=1");
    assert_eq!(record(&f, 1)["verification"]["verdict"], "passed");

    let history = f.ok(&["history", "--env", "staging", "--format", "json"], 0);
    assert!(history.contains("\"verdict\": \"passed\""), "{history}");
    let everything = format!("{out}{err}{history}{}", records_text(&f));
    for secret in ["tok-3141592653", &common::b64("Bearer tok-3141592653")] {
        assert!(!everything.contains(secret), "the token leaked");
    }
    // The human report names each check and its measurements.
    let human = f.ok(&["verify", "--env", "staging"], 0);
    assert!(human.starts_with("staging: release 1 verification passed (1 check(s), 3 measurement(s))"), "{human}");
}

#[test]
fn a_check_fails_once_failures_pass_the_limit_and_stops_there() {
    let server = Server::start(|_| (500, "{}".into()));
    let f = with_checks(
        &format!(
            "      - name: smoke\n        http: {{ url: '{}/healthz' }}\n        interval: 10ms\n        count: 10\n        failure_limit: 1\n",
            server.url
        ),
        "stop",
    );
    f.ok(&["apply", "--env", "staging"], 0);
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 4);
    assert_eq!(v["verdict"], "failed");
    let check = &v["checks"][0];
    assert_eq!(check["verdict"], "failed");
    assert_eq!(check["measurements"].as_array().expect("list").len(), 2, "stops at the second failure");
    assert_eq!(check["measurements"][0]["message"], "status 500, expected 2xx");
    assert!(check["reason"].as_str().expect("reason").contains("more than failure_limit 1"), "{check}");
    assert_eq!(server.requests().len(), 2);
    let markdown = f.ok(&["verify", "--env", "staging", "--format", "markdown"], 4);
    assert!(markdown.contains("### Verification of staging release 1: failed"), "{markdown}");
}

#[test]
fn an_unreachable_server_is_inconclusive_not_a_hang() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let f = with_checks(
        &format!(
            "      - name: smoke\n        http: {{ url: 'http://127.0.0.1:{port}/healthz' }}\n        interval: 10ms\n        timeout: 200ms\n        consecutive_error_limit: 2\n"
        ),
        "rollback",
    );
    f.ok(&["apply", "--env", "staging"], 0);
    let started = std::time::Instant::now();
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 4);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(v["verdict"], "inconclusive");
    let check = &v["checks"][0];
    assert_eq!(check["measurements"].as_array().expect("list").len(), 3, "{check}");
    assert!(check["measurements"].as_array().expect("list").iter().all(|m| m["phase"] == "error"), "{check}");
    assert!(check["reason"].as_str().expect("reason").contains("consecutive_error_limit 2"), "{check}");
}

#[test]
fn apply_verify_rolls_back_a_failing_release_and_records_both() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = healthy.clone();
    let server = Server::start(move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) { (200, "ok".into()) } else { (503, "down".into()) }
    });
    let f = with_checks(
        &format!(
            "      - name: smoke\n        http: {{ url: '{}/healthz', expect: {{ body: {{ regex: '^ok$' }} }} }}\n        interval: 10ms\n        count: 2\n",
            server.url
        ),
        "rollback",
    );
    f.ok(&["apply", "--env", "staging", "--verify"], 0);
    assert_eq!(record(&f, 1)["verification"]["verdict"], "passed");

    f.write("base/app.yaml", &f.read("base/app.yaml").replace("web:1.0.0", "web:2.0.0"));
    f.commit("feat: web 2.0.0");
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--verify", "--format", "json"]);
    assert_eq!(code, 4, "{out}\n{err}");
    let reports: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(reports.as_array().expect("list").len(), 2, "the apply and its rollback");
    assert_eq!(reports[0]["release"]["id"], 2);
    assert_eq!(reports[0]["release"]["verification"]["verdict"], "failed");
    assert_eq!(reports[1]["release"]["kind"], "rollback");
    assert_eq!(reports[1]["release"]["rollback_to"], 1);
    assert_eq!(reports[1]["release"]["cause"]["release"], 2);
    assert_eq!(reports[1]["release"]["cause"]["failed"][0]["check"], "smoke");
    assert_eq!(reports[1]["release"]["cause"]["failed"][0]["measurements"][0]["message"], "status 503, expected 2xx");
    assert_eq!(image(&f), "example.org/web:1.0.0", "the verified release's objects are back");
    assert_eq!(record(&f, 3)["outcome"], "succeeded");
    assert!(err.contains("rolling back"), "{err}");

    let history = f.ok(&["history", "--env", "staging"], 0);
    assert!(history.contains("rollback to 1") && history.contains("automatic rollback of 2"), "{history}");
    assert!(history.contains("verification failed") && history.contains("verified"), "{history}");
    let notes = f.ok(&["notes", "--env", "staging", "--release", "3"], 0);
    assert!(notes.contains("Verification: automatic rollback of 2"), "{notes}");
    let status = f.ok(&["status", "--env", "staging"], 0);
    assert!(status.contains("automatic rollback of 2"), "{status}");

    // DORA, by hand: releases 1 (10:00), 2 (11:00, its verification failed) and 3 (the automatic
    // rollback, 11:12) finished on 2026-01-10. One failure in three releases; restored 12 minutes
    // after release 2 ended.
    for (id, end) in [(1, "2026-01-10T10:00:00Z"), (2, "2026-01-10T11:00:00Z"), (3, "2026-01-10T11:12:00Z")] {
        let path = f.join(&format!(".cairn/live/staging/.cairn/releases/{id:06}.json"));
        let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        r["started_at"] = Value::from(end);
        r["finished_at"] = Value::from(end);
        std::fs::write(&path, serde_json::to_string_pretty(&r).expect("json")).expect("write");
    }
    let m = f.json(
        &[
            "metrics",
            "--env",
            "staging",
            "--since",
            "2026-01-09T00:00:00Z",
            "--until",
            "2026-01-11T00:00:00Z",
            "--format",
            "json",
        ],
        0,
    );
    let m = &m[0];
    assert_eq!(m["change_failure_rate"]["failures"], 1, "{m}");
    assert_eq!(m["change_failure_rate"]["releases"], 3, "{m}");
    assert_eq!(m["change_failure_rate"]["failed"][0]["id"], 2);
    assert_eq!(m["change_failure_rate"]["failed"][0]["reason"], "rolled-back-automatically");
    assert!((m["change_failure_rate"]["rate"].as_f64().expect("rate") - 1.0 / 3.0).abs() < 1e-9, "{m}");
    assert_eq!(m["time_to_restore"]["incidents"], 1);
    assert_eq!(m["time_to_restore"]["restored"], 1);
    assert!((m["time_to_restore"]["median_hours"].as_f64().expect("hours") - 0.2).abs() < 1e-9, "{m}");
    assert_eq!(m["time_to_restore"]["band"], "elite");
}

#[test]
fn on_failure_stop_leaves_the_release_and_a_first_release_has_nothing_to_roll_back_to() {
    let server = Server::start(|_| (500, "{}".into()));
    let f =
        with_checks(&format!("      - name: smoke\n        http: {{ url: '{}/healthz' }}\n", server.url), "rollback");
    let (code, _, err) = f.run(&["apply", "--env", "staging", "--verify"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no earlier release to roll back to"), "{err}");
    assert_eq!(image(&f), "example.org/web:1.0.0");

    let stop =
        with_checks(&format!("      - name: smoke\n        http: {{ url: '{}/healthz' }}\n", server.url), "stop");
    stop.ok(&["apply", "--env", "staging"], 0);
    stop.write("base/app.yaml", &stop.read("base/app.yaml").replace("web:1.0.0", "web:2.0.0"));
    stop.commit("feat: web 2.0.0");
    let (code, _, err) = stop.run(&["apply", "--env", "staging", "--verify"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("`on_failure: stop` leaves it in place"), "{err}");
    assert_eq!(image(&stop), "example.org/web:2.0.0");
    assert!(!stop.join(".cairn/live/staging/.cairn/releases/000003.json").exists(), "no rollback recorded");
}

#[test]
fn verify_on_apply_makes_every_apply_verify() {
    let server = Server::start(|_| (200, "{}".into()));
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    verify:\n      on_apply: true\n      checks:\n        - {{ name: smoke, http: {{ url: '{}/' }} }}\n",
            server.url
        ),
    );
    f.commit("ci: verify on apply");
    f.ok(&["apply", "--env", "staging"], 0);
    assert_eq!(record(&f, 1)["verification"]["verdict"], "passed");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_command_check_runs_in_the_repository_with_the_release_and_hides_secrets() {
    let f = with_checks(
        "      - name: acceptance\n        command:\n          argv: [sh, -c, 'echo \"env=$CAIRN_ENVIRONMENT release=$CAIRN_RELEASE token=$API_TOKEN\"; test -f marker']\n          dir: tests\n          env: { API_TOKEN: { env: ACCEPTANCE_TOKEN } }\n        timeout: 5s\n",
        "stop",
    );
    f.set_env("ACCEPTANCE_TOKEN", "s3cr3t-acceptance-value");
    f.write("tests/marker", "");
    f.ok(&["apply", "--env", "staging"], 0);
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 0);
    let m = &v["checks"][0]["measurements"][0];
    assert_eq!(m["phase"], "passed");
    assert_eq!(m["value"], "exit 0");
    assert_eq!(m["output"], "env=staging release=1 token=<secret>\n");

    f.remove("tests/marker");
    let (code, out, err) = f.run(&["verify", "--env", "staging"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("failed acceptance (command)") && out.contains("exit 1"), "{out}");
    let everything = format!("{out}{err}{}", records_text(&f));
    assert!(!everything.contains("s3cr3t-acceptance-value"), "the secret leaked");
    assert!(!everything.contains(&common::b64("s3cr3t-acceptance-value")), "the secret leaked as base64");

    let slow = with_checks("      - name: slow\n        command: [sleep, '5']\n        timeout: 100ms\n", "stop");
    slow.ok(&["apply", "--env", "staging"], 0);
    let v = slow.json(&["verify", "--env", "staging", "--format", "json"], 4);
    assert!(
        v["checks"][0]["measurements"][0]["message"].as_str().expect("message").contains("timeout of 100ms"),
        "{v}"
    );
}

/// Argo Rollouts' documented `args-example` AnalysisTemplate (docs/features/analysis.md), as
/// written there; cairn.yaml gives the arguments the Rollout would.
const ARGS_EXAMPLE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: args-example
spec:
  args:
  # required in Rollout due to no default value
  - name: service-name
  - name: stable-hash
  - name: latest-hash
  # optional in Rollout given the default value
  - name: api-url
    value: http://example/measure
  # from secret
  - name: api-token
    valueFrom:
      secretKeyRef:
        name: token-secret
        key: apiToken
  metrics:
  - name: webmetric
    successCondition: result == 'true'
    provider:
      web:
        # placeholders are resolved when an AnalysisRun is created
        url: "{{ args.api-url }}?service={{ args.service-name }}"
        headers:
          - key: Authorization
            value: "Bearer {{ args.api-token }}"
        jsonPath: "{$.results.ok}"
"#;

#[test]
fn an_argo_analysis_template_runs_unchanged() {
    let ok = std::sync::Arc::new(std::sync::Mutex::new("true"));
    let answer = ok.clone();
    let server = Server::start(move |r| {
        let authorised = r.header("authorization") == Some("Bearer argo-token-2718");
        let ok = *answer.lock().expect("lock");
        if authorised && r.path == "/measure?service=shop" {
            (200, format!(r#"{{"results": {{"ok": "{ok}"}}}}"#))
        } else {
            (403, "{}".into())
        }
    });
    let f = with_checks(
        &format!(
            "      - name: argo\n        analysis:\n          template: analysis/args-example.yaml\n          args:\n            service-name: shop\n            stable-hash: abc\n            latest-hash: def\n            api-url: '{}/measure'\n            api-token: {{ env: ARGO_TOKEN }}\n",
            server.url
        ),
        "stop",
    );
    f.write("analysis/args-example.yaml", ARGS_EXAMPLE);
    f.commit("ci: argo template");
    f.set_env("ARGO_TOKEN", "argo-token-2718");
    f.ok(&["apply", "--env", "staging"], 0);
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 0);
    assert_eq!(v["checks"][0]["name"], "argo/webmetric");
    assert_eq!(v["checks"][0]["kind"], "analysis");
    assert_eq!(v["checks"][0]["measurements"][0]["value"], "\"true\"");

    *ok.lock().expect("lock") = "false";
    let v = f.json(&["verify", "--env", "staging", "--format", "json"], 4);
    assert_eq!(v["checks"][0]["measurements"][0]["message"], "`result == 'true'` is false");
    assert!(!records_text(&f).contains("argo-token-2718"));

    // Without the secret argument, the template's `valueFrom` is named, with what to do.
    let config = f.read("cairn.yaml");
    f.write("cairn.yaml", &config.replace("            api-token: { env: ARGO_TOKEN }\n", ""));
    let (code, _, err) = f.run(&["verify", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("analysis/args-example.yaml:16:") && err.contains("`api-token` takes its value from the cluster"),
        "{err}"
    );
    // A provider cairn does not run is refused by name.
    f.write("cairn.yaml", &config);
    f.write("analysis/args-example.yaml", &ARGS_EXAMPLE.replace("      web:\n", "      datadog:\n"));
    let (code, _, err) = f.run(&["verify", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("the `datadog` provider is not supported"), "{err}");
}

#[test]
fn bad_checks_are_config_errors_with_their_line() {
    let f = Fixture::standard();
    let cases: &[(&str, &str)] = &[
        ("      - name: smoke\n        htp: { url: 'http://x/' }\n", "cairn.yaml:9:9: unknown key `htp`"),
        (
            "      - name: smoke\n        http: { url: 'http://x/' }\n        intervall: 1s\n",
            "did you mean `interval`?",
        ),
        (
            "      - name: smoke\n        prometheus: { address: 'http://x', query: up, success: 'result[0] >=' }\n",
            "cannot be parsed: the condition ends too early",
        ),
        ("      - name: smoke\n        http: { url: 'https://user:pa55@x/' }\n", "the URL holds credentials"),
        ("      - name: smoke\n        http: { url: 'http://x/{{ env }}' }\n", "unknown placeholder `{{ env }}`"),
        ("      - name: smoke\n        http: { url: 'http://x/' }\n        count: 0\n", "`count` must be at least 1"),
        ("      - name: smoke\n", "needs one of http, prometheus, command, analysis"),
        (
            "      - name: a\n        http: { url: 'http://x/' }\n      - name: a\n        http: { url: 'http://x/' }\n",
            "two checks are named `a`",
        ),
    ];
    for (checks, expected) in cases {
        f.write(
            "cairn.yaml",
            &format!(
                "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    on_failure: stop\n    verify:\n{checks}"
            ),
        );
        let (code, out, err) = f.run(&["verify", "--env", "staging"]);
        assert_eq!(code, 2, "{checks}: {out}");
        assert!(err.contains(expected), "{checks}: expected `{expected}` in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    f.write(
        "cairn.yaml",
        &common::CONFIG.replace(
            "      local: { path: .cairn/live/staging }\n",
            "      local: { path: .cairn/live/staging }\n    on_failure: rolback\n",
        ),
    );
    let (code, _, err) = f.run(&["verify", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `rollback`?"), "{err}");

    // --verify without checks writes nothing.
    f.write("cairn.yaml", common::CONFIG);
    let (code, _, err) = f.run(&["apply", "--env", "staging", "--verify"]);
    assert_eq!(code, 2);
    assert!(err.contains("environment `staging` has no checks"), "{err}");
    assert!(!f.join(".cairn/live/staging/.cairn/releases").exists(), "nothing applied");
    // An unset variable stops the verification before the first measurement.
    f.write(
        "cairn.yaml",
        &common::CONFIG.replace(
            "      local: { path: .cairn/live/staging }\n",
            "      local: { path: .cairn/live/staging }\n    verify:\n      - { name: smoke, http: { url: 'http://127.0.0.1:9/', headers: { X-Token: { env: UNSET_TOKEN_VAR } } } }\n",
        ),
    );
    f.ok(&["apply", "--env", "staging"], 0);
    let (code, _, err) = f.run(&["verify", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("the environment variable `UNSET_TOKEN_VAR` is not set"), "{err}");
}

#[test]
fn a_failing_check_stops_a_running_command_check_and_what_it_started() {
    let server = Server::start(|_| (503, "down".into()));
    let f = with_checks(
        &format!(
            "      - name: slow\n        command: [sh, -c, 'sleep 40; echo done']\n        timeout: 60s\n      - name: smoke\n        http: {{ url: '{}/healthz' }}\n        initial_delay: 300ms\n",
            server.url
        ),
        "stop",
    );
    f.ok(&["apply", "--env", "staging"], 0);
    let started = std::time::Instant::now();
    let (code, out, err) = f.run(&["verify", "--env", "staging", "--format", "json"]);
    assert_eq!(code, 4, "{out}\n{err}");
    // Not the 40 s of the sleep: the failing check ended the verification, and the command's
    // whole process group with it (a `sleep` left behind would hold its output pipe open).
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    let v: Value = serde_json::from_str(&out).expect("json");
    let slow = v["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "slow").expect("slow");
    assert!(slow["measurements"][0]["message"].as_str().is_some_and(|m| m.starts_with("stopped")), "{slow:#}");
}
