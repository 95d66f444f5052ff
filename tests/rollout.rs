//! Canary and blue/green rollouts on the local target, where every step is simulated (weights
//! recorded, checks run against HTTP servers the tests start), and the bad input a strategy can
//! be given. The same flows against a real API server are in `tests/kubernetes_rollout.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Fixture;
use common::http::Server;
use serde_json::Value;

const DEPLOYMENT: &str = "objects/Deployment.apps/shop";

/// The standard fixture, staging at 10 replicas with a `smoke` check against `url`, and
/// `strategies` (YAML, top level) in cairn.yaml.
fn fixture(url: &str, strategies: &str) -> Fixture {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    verify:\n      - name: smoke\n        http: {{ url: '{url}/healthz' }}\n        interval: 10ms\n        count: 2\n      - name: errors\n        http: {{ url: '{url}/errors' }}\n        interval: 10ms\n        count: 1\n  production:\n    layers: [base, environments/production]\n    target:\n      local: {{ path: .cairn/live/production }}\n{strategies}"
        ),
    );
    f.write(
        "environments/staging/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 10\n",
    );
    f.commit("ci: staging rolls out");
    f
}

const CANARY: &str = "strategies:\n  - name: web-canary\n    select: { kind: Deployment, name: web }\n    environments: [staging]\n    canary:\n      steps:\n        - weight: 10\n        - verify: [smoke]\n        - weight: 50\n        - verify: [smoke, errors]\n        - weight: 100\n";

fn bump(f: &Fixture, version: &str) -> String {
    f.write(
        "base/app.yaml",
        &f.read("base/app.yaml").replace("example.org/web:1.0.0", &format!("example.org/web:{version}")),
    );
    f.commit(&format!("feat: web {version}"))
}

fn live(f: &Fixture, name: &str) -> Option<Value> {
    let path = f.join(&format!(".cairn/live/staging/{DEPLOYMENT}/{name}.json"));
    std::fs::read_to_string(path).ok().map(|t| serde_json::from_str(&t).expect("json"))
}

fn record(f: &Fixture, id: u64) -> Value {
    serde_json::from_str(&f.read(&format!(".cairn/live/staging/.cairn/releases/{id:06}.json"))).expect("record")
}

fn image(d: &Value) -> &str {
    d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image")
}

/// `cairn apply --env staging` started in the background as `actor` (a CI job to kill).
fn spawn_apply(f: &Fixture, actor: &str) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .args(["apply", "--env", "staging"])
        .env("CAIRN_REPO", f.path())
        .env("CAIRN_ACTOR", actor)
        .env("HOME", f.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// The event stream's lines, each checked against schemas/events.schema.json.
fn events(path: &std::path::Path) -> Vec<Value> {
    common::events_of(&std::fs::read_to_string(path).expect("events"))
}

#[test]
fn a_canary_steps_through_its_weights_runs_its_checks_and_releases_the_new_version() {
    let server = Server::start(|_| (200, "ok".into()));
    let f = fixture(&server.url, CANARY);
    // The first release creates the Deployment: there is no old version to shift from.
    f.ok(&["apply", "--env", "staging"], 0);
    assert!(record(&f, 1).get("rollouts").is_none());
    bump(&f, "2.0.0");

    let plan = f.ok(&["plan", "--env", "staging"], 0);
    for line in [
        "Deployment.apps shop/web is released as a canary (`web-canary`): web-canary is created",
        "1. weight 10%: 1 new, 9 old",
        "2. verify smoke",
        "3. weight 50%: 5 new, 5 old",
        "4. verify smoke, errors",
        "5. weight 100%: 10 new, 0 old",
        "6. release: web takes the new version (10 replicas), web-canary is deleted",
    ] {
        assert!(plan.contains(line), "missing `{line}`:\n{plan}");
    }
    let planned = f.json(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_eq!(planned["plans"][0]["rollouts"][0]["phases"].as_array().map(Vec::len), Some(6), "{planned:#}");

    let stream = f.join("events.jsonl");
    let out = f.ok(&["apply", "--env", "staging", "--events", stream.to_str().expect("utf-8")], 0);
    assert!(out.contains("rollout of Deployment.apps shop/web (canary): succeeded after 6 of 6 phases"), "{out}");
    let web = live(&f, "web").expect("web");
    assert_eq!(image(&web), "example.org/web:2.0.0");
    assert_eq!(web["spec"]["replicas"], 10);
    assert!(live(&f, "web-canary").is_none(), "the canary is deleted at the end");

    let r = record(&f, 2);
    assert_eq!(r["outcome"], "succeeded");
    let rollout = &r["rollouts"][0];
    assert_eq!(rollout["state"], "succeeded");
    assert_eq!(rollout["simulated"], true);
    let counts: Vec<(u64, u64)> = rollout["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["new"].as_u64().expect("new"), s["old"].as_u64().expect("old")))
        .collect();
    assert_eq!(counts, [(1, 9), (1, 9), (5, 5), (5, 5), (10, 0), (10, 0)]);
    assert_eq!(rollout["steps"][1]["verification"]["verdict"], "passed");
    assert_eq!(rollout["steps"][3]["verification"]["checks"].as_array().map(Vec::len), Some(2));
    // smoke twice per verify step, errors once: the checks really ran.
    let requests = server.requests();
    assert_eq!(requests.iter().filter(|r| r.path == "/healthz").count(), 4);
    assert_eq!(requests.iter().filter(|r| r.path == "/errors").count(), 1);

    let steps: Vec<(u64, u64)> = events(&stream)
        .iter()
        .filter(|e| e["event"] == "rollout-step")
        .map(|e| (e["new"].as_u64().expect("new"), e["old"].as_u64().expect("old")))
        .collect();
    assert_eq!(steps, counts);
    let all = events(&stream);
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"rollout-started") && kinds.contains(&"rollout-finished"), "{kinds:?}");

    let status = f.ok(&["rollout", "status", "--env", "staging"], 0);
    assert!(status.contains("staging: release 2 (succeeded)"), "{status}");
    assert!(status.contains("succeeded, phase 6 of 6; new version 10, old version 0"), "{status}");
    let json = f.json(&["rollout", "status", "--env", "staging", "--format", "json"], 0);
    assert_eq!(json["rollouts"][0]["state"], "succeeded");

    // Applied again, nothing changes: no rollout without a new pod template.
    f.ok(&["apply", "--env", "staging"], 0);
    assert!(record(&f, 3).get("rollouts").is_none());
}

#[test]
fn a_canary_whose_check_fails_at_fifty_percent_restores_the_stable_version() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    // The first verify step passes (two measurements), then the service starts failing.
    let server =
        Server::start(
            move |_| {
                if seen.fetch_add(1, Ordering::SeqCst) < 2 { (200, "ok".into()) } else { (500, "boom".into()) }
            },
        );
    let f = fixture(&server.url, CANARY);
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let (code, out, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "a release whose rollout aborted failed\n{out}\n{err}");
    assert!(out.contains("rollout of Deployment.apps shop/web (canary): aborted"), "{out}");
    let web = live(&f, "web").expect("web");
    assert_eq!(image(&web), "example.org/web:1.0.0", "the stable version stays");
    assert_eq!(web["spec"]["replicas"], 10, "the stable replicas are restored");
    assert!(live(&f, "web-canary").is_none(), "the canary is deleted");

    let r = record(&f, 2);
    assert_eq!(r["outcome"], "failed");
    let rollout = &r["rollouts"][0];
    assert_eq!(rollout["state"], "aborted");
    assert_eq!(rollout["phase"], 3, "stopped at the second verify step");
    let reason = rollout["reason"].as_str().expect("reason");
    assert!(reason.starts_with("verify smoke, errors: failed"), "{reason}");
    assert_eq!(rollout["steps"][3]["verification"]["verdict"], "failed");
    let web_object =
        r["objects"].as_array().expect("objects").iter().find(|o| o["object"]["name"] == "web").expect("web");
    assert!(web_object["error"].as_str().is_some_and(|e| e.starts_with("rollout aborted")), "{web_object}");

    // The next plan still shows the rollout to come: nothing of the new version is live.
    let plan = f.ok(&["plan", "--env", "staging"], 0);
    assert!(plan.contains("is released as a canary"), "{plan}");
}

#[test]
fn blue_green_switches_the_active_service_only_after_the_preview_is_verified() {
    let server = Server::start(|_| (200, "ok".into()));
    let strategies = "strategies:\n  - name: web-bg\n    select: { kind: Deployment, name: web }\n    environments: [staging]\n    blue_green:\n      active_service: web\n      preview_service: web-preview\n      verify: [smoke]\n      scale_down_delay: 1h\n";
    let f = fixture(&server.url, strategies);
    f.write(
        "base/services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector: { app: web }\n  ports: [{ port: 80 }]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web-preview\n  namespace: shop\nspec:\n  selector: { app: web }\n  ports: [{ port: 80 }]\n",
    );
    f.commit("feat: services");
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let plan = f.ok(&["plan", "--env", "staging"], 0);
    for line in [
        "released as a blue-green",
        "2. point web-preview at the new version",
        "3. verify smoke",
        "4. switch web to the new version",
    ] {
        assert!(plan.contains(line), "missing `{line}`:\n{plan}");
    }
    f.ok(&["apply", "--env", "staging"], 0);
    let r = record(&f, 2);
    let rollout = &r["rollouts"][0];
    assert_eq!(rollout["state"], "succeeded", "{rollout:#}");
    assert_eq!(rollout["selectors"]["web"], serde_json::json!({"app": "web"}));
    assert!(rollout["pinned"].as_str().is_some_and(|h| h.len() == 10), "{rollout:#}");
    assert_eq!(image(&live(&f, "web").expect("web")), "example.org/web:2.0.0");
    assert!(live(&f, "web-preview").is_none(), "the preview Deployment is deleted");
    let service: Value =
        serde_json::from_str(&f.read(".cairn/live/staging/objects/Service.core/shop/web.json")).expect("service");
    assert_eq!(service["spec"]["selector"], serde_json::json!({"app": "web"}), "back to what git says");
    // The simulation does not wait an hour for the scale-down.
    assert!(rollout["steps"][4]["overhead_ms"].as_u64().is_some());
}

#[test]
fn a_killed_rollout_is_aborted_or_resumed_from_its_record() {
    let server = Server::start(|_| (200, "ok".into()));
    // A check that takes its time, so the job can be killed in the middle of it.
    let strategies = "strategies:\n  - name: web-canary\n    select: { kind: Deployment, name: web }\n    environments: [staging]\n    canary:\n      steps:\n        - weight: 20\n        - verify: [slow]\n        - weight: 60\n";
    let f = fixture(&server.url, strategies);
    f.write(
        "cairn.yaml",
        &f.read("cairn.yaml").replace(
            "      - name: errors\n",
            "      - name: slow\n        command: [sh, -c, 'test -e go || sleep 30']\n        timeout: 60s\n        count: 1\n      - name: errors\n",
        ),
    );
    f.commit("ci: a slow check");
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");

    let kill_mid_rollout = || {
        let mut child = spawn_apply(&f, "doomed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let phase = std::fs::read_dir(f.join(".cairn/live/staging/.cairn/releases"))
                .ok()
                .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).max())
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|r| {
                    (r["rollouts"][0]["state"] == "running").then(|| r["rollouts"][0]["phase"].as_u64()).flatten()
                });
            if phase == Some(1) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the rollout never reached its verify step");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    };

    kill_mid_rollout();
    assert_eq!(live(&f, "web-canary").expect("the canary runs")["spec"]["replicas"], 2);
    assert_eq!(live(&f, "web").expect("web")["spec"]["replicas"], 8);
    let status = f.ok(&["rollout", "status", "--env", "staging"], 0);
    assert!(status.contains("running, phase 1 of 4; new version 2, old version 8"), "{status}");
    let aborted = f.json(&["rollout", "abort", "--env", "staging", "--format", "json"], 0);
    assert_eq!(aborted["rollouts"][0]["state"], "aborted", "{aborted:#}");
    assert!(live(&f, "web-canary").is_none());
    let web = live(&f, "web").expect("web");
    assert_eq!((web["spec"]["replicas"].as_u64(), image(&web)), (Some(10), "example.org/web:1.0.0"));
    assert_eq!(record(&f, 2)["outcome"], "interrupted");
    let nothing = f.ok(&["rollout", "abort", "--env", "staging"], 0);
    assert!(nothing.contains("no rollout in progress"), "{nothing}");

    // Killed again, then resumed: the apply continues at the phase it stood at.
    kill_mid_rollout();
    f.write("go", "");
    let (code, out, err) = f.run(&["rollout", "resume", "--env", "staging"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let resumed = record(&f, 4);
    let rollout = &resumed["rollouts"][0];
    assert_eq!(rollout["state"], "succeeded", "{rollout:#}");
    assert_eq!(rollout["steps"][0]["phase"], 1, "resumed at the verify step, not from the start");
    assert_eq!(rollout["planned"]["stable_replicas"], 10, "an abort would restore what ran before the rollout");
    assert_eq!(record(&f, 3)["rollouts"][0]["state"], "resumed");
    assert_eq!(image(&live(&f, "web").expect("web")), "example.org/web:2.0.0");
    assert!(live(&f, "web-canary").is_none());
}

#[test]
fn strategies_that_cannot_work_are_refused_with_their_line_and_nothing_is_written() {
    let server = Server::start(|_| (200, "ok".into()));
    let cases: &[(&str, &str)] = &[
        (
            "strategies:\n  - name: s\n    select: { kind: StatefulSet, name: web }\n    canary: { steps: [{ weight: 10 }] }\n",
            "cairn.yaml:21:21: strategy `s`: a strategy releases Deployments only, not `StatefulSet`",
        ),
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment, name: web }\n    canary: { steps: [{ weight: 150 }] }\n",
            "cairn.yaml:22:33: strategy `s`: `weight` is the percent of the pods that run the new version: from 1 to 100, found 150",
        ),
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment, name: web }\n    canary: { steps: [{ weight: 50 }, { weight: 20 }] }\n",
            "strategy `s`: weights must increase from step to step: 20 follows 50",
        ),
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment, name: web }\n    environments: [staging]\n    canary: { steps: [{ weight: 50 }, { verify: [smok] }] }\n",
            "strategy `s`: environment `staging` has no check named `smok`; did you mean `smoke`?",
        ),
    ];
    for (strategies, message) in cases {
        let f = fixture(&server.url, strategies);
        let (code, out, err) = f.run(&["plan", "--env", "staging"]);
        assert_eq!(code, 2, "{strategies}\n{out}\n{err}");
        assert!(err.contains(message), "expected `{message}`:\n{err}");
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    }

    // One replica cannot carry a 25% canary: the apply stops before anything is written.
    let f = fixture(&server.url, CANARY.replace("weight: 10\n", "weight: 25\n").as_str());
    f.ok(&["apply", "--env", "staging"], 0);
    f.write(
        "environments/staging/web.yaml",
        &f.read("environments/staging/web.yaml").replace("replicas: 10", "replicas: 1"),
    );
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("environments/staging/web.yaml:1: Deployment.apps shop/web: a canary weight of 25% cannot be honoured with 1 replica(s)")
            && err.contains("no weight below 100% can be honoured; set `spec.replicas` to at least 2"),
        "{err}"
    );
    assert!(std::fs::read_to_string(f.join(".cairn/live/staging/.cairn/releases/000003.json")).is_err(), "no release");
    assert_eq!(image(&live(&f, "web").expect("web")), "example.org/web:1.0.0");

    // Blue/green with a Service that does not exist, and with one that selects other pods.
    let bg = "strategies:\n  - name: bg\n    select: { kind: Deployment, name: web }\n    blue_green: { active_service: web }\n";
    let f = fixture(&server.url, bg);
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("blue/green needs the Service `web` in this environment (namespace shop), and there is none"),
        "{err}"
    );
    f.write(
        "base/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector: { app: api }\n",
    );
    f.commit("svc");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "base/svc.yaml:1: Service shop/web: the Service `web` does not select the pods of Deployment.apps shop/web"
        ),
        "{err}"
    );

    // The annotation on a kind that is not a Deployment.
    let f = fixture(&server.url, "");
    f.write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: shop\n  annotations: { cairn/strategy: canary }\n");
    f.commit("cm");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`cairn/strategy` is on a ConfigMap; strategies release Deployments only"), "{err}");
}

#[test]
fn the_annotation_gives_a_deployment_the_default_canary_with_every_check() {
    let server = Server::start(|_| (200, "ok".into()));
    let f = fixture(&server.url, "");
    f.write(
        "environments/staging/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n    cairn/strategy: canary\n    cairn/canary-weights: \"30\"\nspec:\n  replicas: 10\n",
    );
    f.commit("canary by annotation");
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let plan = f.ok(&["plan", "--env", "staging"], 0);
    assert!(
        plan.contains("released as a canary (`annotation`)")
            && plan.contains("1. weight 30%: 3 new, 7 old")
            && plan.contains("2. verify smoke, errors"),
        "{plan}"
    );
    f.ok(&["apply", "--env", "staging"], 0);
    assert_eq!(record(&f, 2)["rollouts"][0]["state"], "succeeded");
    assert!(live(&f, "web-canary").is_none());
}

#[test]
fn the_pull_request_report_shows_the_steps_a_deployment_will_go_through() {
    let server = Server::start(|_| (200, "ok".into()));
    let f = fixture(&server.url, CANARY);
    let base = f.git(&["rev-parse", "HEAD"]);
    f.ok(&["apply", "--env", "staging"], 0);
    let head = bump(&f, "2.0.0");
    let report = f.ok(&["check", "--base", &base, "--head", &head, "--env", "staging"], 0);
    for line in [
        "**Rollout:** `Deployment.apps shop/web` is released as a canary (`web-canary`)",
        "1. weight 10%: 1 new, 9 old",
        "4. verify smoke, errors",
        "6. release: web takes the new version (10 replicas), web-canary is deleted",
    ] {
        assert!(report.contains(line), "missing `{line}`:\n{report}");
    }
    // The saved plan carries them too, for the merge job's apply.
    let plan = f.join("plan.json");
    f.ok(&["check", "--base", &base, "--head", &head, "--out", plan.to_str().expect("utf-8")], 0);
    let saved: Value = serde_json::from_str(&f.read("plan.json")).expect("json");
    let staging =
        saved["plans"].as_array().expect("plans").iter().find(|p| p["environment"] == "staging").expect("staging");
    assert_eq!(staging["rollouts"][0]["strategy"], "web-canary");
    f.ok(&["apply", "--plan", plan.to_str().expect("utf-8"), "--env", "staging"], 0);
    assert_eq!(record(&f, 2)["rollouts"][0]["state"], "succeeded");
}

#[test]
fn a_cancelled_job_aborts_its_rollout_and_a_second_apply_meanwhile_is_refused() {
    let server = Server::start(|_| (200, "ok".into()));
    // A check with a long interval: the job is cancelled while it waits for its next measurement.
    let strategies = "strategies:\n  - name: web-canary\n    select: { kind: Deployment, name: web }\n    environments: [staging]\n    canary:\n      steps:\n        - weight: 20\n        - verify: [waits]\n        - weight: 60\n";
    let f = fixture(&server.url, strategies);
    f.write(
        "cairn.yaml",
        &f.read("cairn.yaml").replace(
            "      - name: errors\n",
            &format!("      - name: waits\n        http: {{ url: '{}/healthz' }}\n        interval: 60s\n        count: 2\n      - name: errors\n", server.url),
        ),
    );
    f.commit("ci: a check that waits");
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let child = spawn_apply(&f, "ci-job");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server.requests().iter().any(|r| r.path == "/healthz") {
        assert!(std::time::Instant::now() < deadline, "the check never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Another apply while the rollout runs: refused, naming who holds the environment.
    let (code, _, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("environment `staging` is locked by ci-job"), "{err}");

    let cancelled = std::time::Instant::now();
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let out = child.wait_with_output().expect("wait");
    assert!(cancelled.elapsed() < std::time::Duration::from_secs(10), "the abort took {:?}", cancelled.elapsed());
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let rollout = &record(&f, 2)["rollouts"][0];
    assert_eq!(rollout["state"], "aborted", "{rollout:#}");
    assert!(rollout["reason"].as_str().is_some_and(|r| r.contains("cancelled")), "{rollout:#}");
    assert!(live(&f, "web-canary").is_none());
    let web = live(&f, "web").expect("web");
    assert_eq!((web["spec"]["replicas"].as_u64(), image(&web)), (Some(10), "example.org/web:1.0.0"));
}

#[test]
fn a_blue_green_rollout_that_fails_its_check_leaves_the_services_as_they_were() {
    let server = Server::start(|r| if r.path == "/healthz" { (503, "down".into()) } else { (200, "ok".into()) });
    let strategies = "strategies:\n  - name: web-bg\n    select: { kind: Deployment, name: web }\n    environments: [staging]\n    blue_green: { active_service: web, preview_service: web-preview, verify: [smoke] }\n";
    let f = fixture(&server.url, strategies);
    f.write(
        "base/services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector: { app: web }\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web-preview\n  namespace: shop\nspec:\n  selector: { app: web }\n",
    );
    f.commit("feat: services");
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let (code, out, _) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{out}");
    let rollout = &record(&f, 2)["rollouts"][0];
    assert_eq!(rollout["state"], "aborted", "{rollout:#}");
    for name in ["web", "web-preview"] {
        let service: Value =
            serde_json::from_str(&f.read(&format!(".cairn/live/staging/objects/Service.core/shop/{name}.json")))
                .expect("service");
        assert_eq!(service["spec"]["selector"], serde_json::json!({"app": "web"}), "{name}");
    }
    assert!(live(&f, "web-preview").is_none());
    assert_eq!(image(&live(&f, "web").expect("web")), "example.org/web:1.0.0");
}

#[test]
fn a_rollout_of_a_template_holding_decrypted_values_never_shows_them() {
    const OLD: &str = "rollout-token-old-5150";
    const NEW: &str = "rollout-token-new-6060";
    let server = Server::start(|_| (200, "ok".into()));
    let f = fixture(&server.url, CANARY);
    // The token is a layer of its own, over staging's.
    f.write(
        "cairn.yaml",
        &f.read("cairn.yaml")
            .replace("layers: [base, environments/staging]", "layers: [base, environments/staging, secrets/staging]"),
    );
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(".sops.yaml", &format!("creation_rules:\n  - age: {public}\n    encrypted_regex: ^value$\n"));
    let token = |value: &str| {
        f.write(
            "secrets/staging/token.yaml",
            &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env:\n            - name: API_TOKEN\n              value: {value}\n"),
        );
        common::sops_encrypt(f.path(), &f.join("secrets/staging/token.yaml"), &[]);
        f.commit("feat: the token")
    };
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    let base = token(OLD);
    f.ok(&["apply", "--env", "staging"], 0);
    let head = token(NEW);
    let stream = f.join("events.jsonl");
    let outputs = f.outputs_of(&[
        &["plan", "--env", "staging"],
        &["plan", "--env", "staging", "--format", "json"],
        &["check", "--base", &base, "--head", &head],
        &["apply", "--env", "staging", "--events", stream.to_str().expect("utf-8")],
        &["rollout", "status", "--env", "staging"],
        &["rollout", "status", "--env", "staging", "--format", "json"],
        &["history", "--env", "staging", "--format", "json"],
    ]);
    assert!(outputs.contains("is released as a canary"), "the change went through a rollout:\n{outputs}");
    assert_eq!(record(&f, 2)["rollouts"][0]["state"], "succeeded");
    let mut everything = outputs;
    everything.push_str(&std::fs::read_to_string(&stream).expect("events"));
    for entry in std::fs::read_dir(f.join(".cairn/live/staging/.cairn/releases")).expect("records") {
        everything.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("record"));
    }
    for secret in [OLD, NEW, &common::b64(OLD), &common::b64(NEW)] {
        assert!(!everything.contains(secret), "a decrypted value leaked: {secret}");
    }
    // The new version really carries it.
    let web = live(&f, "web").expect("web");
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], NEW);
}

#[test]
fn a_job_killed_after_the_deployment_took_the_new_version_is_not_scaled_back() {
    let server = Server::start(|_| (200, "ok".into()));
    let f = fixture(&server.url, CANARY);
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    f.ok(&["apply", "--env", "staging"], 0);
    // What a job killed in the last phase leaves: the Deployment already on 2.0.0, the canary
    // still there, the record in progress at the release phase.
    let path = f.join(".cairn/live/staging/.cairn/releases/000002.json");
    let mut r = record(&f, 2);
    r["outcome"] = "in-progress".into();
    r["rollouts"][0]["state"] = "running".into();
    r["rollouts"][0]["phase"] = 5.into();
    std::fs::write(&path, serde_json::to_string(&r).expect("json")).expect("write");
    let mut canary = live(&f, "web").expect("web");
    canary["metadata"]["name"] = "web-canary".into();
    std::fs::write(f.join(&format!(".cairn/live/staging/{DEPLOYMENT}/web-canary.json")), canary.to_string())
        .expect("write");

    let settled = f.json(&["rollout", "abort", "--env", "staging", "--format", "json"], 0);
    let rollout = &settled["rollouts"][0];
    assert_eq!(rollout["state"], "succeeded", "{rollout:#}");
    assert!(
        rollout["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("interrupted after the Deployment took the new version")),
        "{rollout:#}"
    );
    assert!(live(&f, "web-canary").is_none(), "the temporary Deployment is gone");
    let web = live(&f, "web").expect("web");
    assert_eq!(
        (web["spec"]["replicas"].as_u64(), image(&web)),
        (Some(10), "example.org/web:2.0.0"),
        "the new version stays"
    );
}

#[test]
fn abort_passes_the_gate_like_any_write_and_writes_nothing_when_it_is_blocked() {
    let server = Server::start(|_| (200, "ok".into()));
    let only_privileged = "{ rules: { host-namespaces: {enabled: false}, host-path: {enabled: false}, privilege-escalation: {enabled: false}, run-as-non-root: {enabled: false}, capabilities: {enabled: false}, resources: {enabled: false}, probes: {enabled: false}, image-tag: {enabled: false}, owner-label: {enabled: false}, default-namespace: {enabled: false}, replicas: {enabled: false}, node-port: {enabled: false} } }";
    let f = fixture(
        &server.url,
        &format!("{CANARY}policies:\n  - name: baseline\n    plugin: compliance\n    settings: {only_privileged}\n"),
    );
    f.ok(&["apply", "--env", "staging"], 0);
    // A privileged container goes out only on a recorded override.
    f.write(
        "environments/staging/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 10\n  template:\n    spec:\n      containers:\n        - name: web\n          securityContext:\n            privileged: true\n",
    );
    f.commit("feat: web privileged");
    f.ok(&["apply", "--env", "staging", "--override-findings", "incident 42"], 0);
    // Its job killed mid-rollout, as the record and the canary would be left.
    let path = f.join(".cairn/live/staging/.cairn/releases/000002.json");
    let mut r = record(&f, 2);
    r["outcome"] = "in-progress".into();
    r["rollouts"][0]["state"] = "running".into();
    r["rollouts"][0]["phase"] = 1.into();
    std::fs::write(&path, serde_json::to_string(&r).expect("json")).expect("write");
    let canary = f.join(&format!(".cairn/live/staging/{DEPLOYMENT}/web-canary.json"));
    std::fs::write(&canary, "{\"kind\": \"Deployment\"}").expect("write");

    let (code, out, _) = f.run(&["rollout", "abort", "--env", "staging"]);
    assert_eq!(code, 1, "the commit it would settle has an error finding\n{out}");
    assert!(out.contains("[policy/baseline/privileged]"), "{out}");
    assert!(canary.exists(), "nothing was written");
    assert_eq!(record(&f, 2)["rollouts"][0]["state"], "running");
}

#[test]
fn more_strategies_that_cannot_work_and_a_resume_with_nothing_to_resume() {
    let server = Server::start(|_| (200, "ok".into()));
    let cases: &[(&str, &str)] = &[
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment }\n    canary: { steps: [{ weight: 10 }] }\n  - name: s\n    select: { kind: Deployment }\n    canary: { steps: [{ weight: 10 }] }\n",
            "a second strategy is named `s`; names must be unique",
        ),
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment }\n    canary: { steps: [{ weight: 10 }] }\n    blue_green: { active_service: web }\n",
            "strategy `s`: give `canary` or `blue_green`, not both",
        ),
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment }\n    canary: { steps: [{ pause: 1m }] }\n",
            "strategy `s`: a canary needs at least one `weight:` step",
        ),
        (
            "strategies:\n  - name: s\n    select: { kind: Deployment }\n    blue_green: { active_service: web, preview_service: web }\n",
            "strategy `s`: `preview_service` must differ from `active_service`",
        ),
    ];
    for (strategies, message) in cases {
        let f = fixture(&server.url, strategies);
        let (code, _, err) = f.run(&["plan", "--env", "staging"]);
        assert_eq!(code, 2, "{strategies}\n{err}");
        assert!(err.contains(message), "expected `{message}`:\n{err}");
    }

    let f = fixture(&server.url, "");
    f.write(
        "environments/staging/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  annotations: { cairn/strategy: linear }\nspec:\n  replicas: 10\n",
    );
    f.commit("a strategy that does not exist");
    f.ok(&["apply", "--env", "staging"], 0);
    bump(&f, "2.0.0");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`cairn/strategy: linear` is not a strategy; use `canary` or `blue-green`"), "{err}");
    let (code, _, err) = f.run(&["rollout", "resume", "--env", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("environment `staging` has no rollout in progress to resume"), "{err}");
}
