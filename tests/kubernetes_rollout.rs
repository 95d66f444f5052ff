//! Canary and blue/green rollouts against a real Kubernetes API server (scripts/kube-test.sh;
//! never a hand-written fake). No controllers run there, so the tests play the Deployment
//! controller: they write each Deployment's status for its generation, and give each
//! Deployment a ReplicaSet with a `pod-template-hash` as the controller does. Meanwhile they
//! record every state the API server holds — replicas of `web` and `web-canary`, the Services'
//! selectors — and assert the sequence.
mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Fixture;
use common::cluster::Cluster;
use common::http::Server;
use serde_json::{Value, json};

const OBJECTS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 10\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:1.0.0\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector: { app: web }\n  ports: [{ port: 80, protocol: TCP }]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web-preview\n  namespace: shop\nspec:\n  selector: { app: web }\n  ports: [{ port: 80, protocol: TCP }]\n";

fn fixture(cluster: &Cluster, url: &str, strategy: &str) -> Fixture {
    let f = Fixture::new();
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base]\n    target:\n      kubernetes: {{ context: admin, namespace: shop, state_namespace: cairn-state }}\n    verify:\n      - name: smoke\n        http: {{ url: '{url}/healthz' }}\n        interval: 200ms\n        count: 2\nstrategies:\n  - name: web\n    select: {{ kind: Deployment, name: web }}\n    timeout: 30s\n{strategy}"
        ),
    );
    f.write("base/app.yaml", OBJECTS);
    f.commit("feat: the shop");
    f.set_env("KUBECONFIG", cluster.kubeconfig().to_str().expect("path"));
    f.set_env("CAIRN_ACTOR", "alice");
    f
}

fn bump(f: &Fixture) {
    f.write("base/app.yaml", &OBJECTS.replace("web:1.0.0", "web:2.0.0"));
    f.commit("feat: web 2.0.0");
}

/// What the API server holds at one moment.
#[derive(Debug, Clone, PartialEq)]
struct State {
    web: Option<u64>,
    canary: Option<u64>,
    preview: Option<u64>,
    active: Value,
    preview_service: Value,
}

/// Plays the Deployment controller until `done`, recording each distinct state it sees.
fn controller(cluster: &Cluster, done: &AtomicBool, seen: &Mutex<Vec<State>>) {
    while !done.load(Ordering::SeqCst) {
        let (code, list, _) = cluster.kubectl_status(&["-n", "shop", "get", "deployments", "-o", "json"]);
        if code == 0
            && let Ok(list) = serde_json::from_str::<Value>(&list)
        {
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let replicas = |name: &str| {
                items
                    .iter()
                    .find(|d| d["metadata"]["name"] == name)
                    .map(|d| d["spec"]["replicas"].as_u64().unwrap_or(1))
            };
            let selector = |name: &str| {
                let (code, out, _) =
                    cluster.kubectl_status(&["-n", "shop", "get", "service", name, "-o", "jsonpath={.spec.selector}"]);
                if code == 0 { serde_json::from_str(&out).unwrap_or(Value::Null) } else { Value::Null }
            };
            let state = State {
                web: replicas("web"),
                canary: replicas("web-canary"),
                preview: replicas("web-preview"),
                active: selector("web"),
                preview_service: selector("web-preview"),
            };
            {
                let mut seen = seen.lock().expect("lock");
                if seen.last() != Some(&state) {
                    seen.push(state);
                }
            }
            for d in &items {
                let name = d["metadata"]["name"].as_str().unwrap_or_default();
                let generation = d["metadata"]["generation"].as_u64().unwrap_or(0);
                if d["metadata"]["annotations"]["deployment.kubernetes.io/revision"].is_null() {
                    // The controller's newest ReplicaSet, whose hash labels the pods.
                    let hash = format!("{:x}", generation * 7919 + name.len() as u64);
                    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": format!("{name}-{hash}"), "namespace": "shop",
                            "labels": {"app": "web", "pod-template-hash": hash},
                            "annotations": {"deployment.kubernetes.io/revision": "1"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                "uid": d["metadata"]["uid"], "controller": true}]},
                        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                            "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
                                "spec": d["spec"]["template"]["spec"]}}});
                    let file = std::env::temp_dir().join(format!("cairn-rs-{}-{name}.json", std::process::id()));
                    std::fs::write(&file, rs.to_string()).expect("write");
                    let _ = cluster.kubectl_status(&["apply", "-f", file.to_str().expect("utf-8")]);
                    let _ = cluster.kubectl_status(&[
                        "-n",
                        "shop",
                        "annotate",
                        "deployment",
                        name,
                        "deployment.kubernetes.io/revision=1",
                        "--overwrite",
                    ]);
                }
                if d["status"]["observedGeneration"].as_u64() != Some(generation) {
                    let n = d["spec"]["replicas"].as_u64().unwrap_or(1);
                    let status = json!({"status": {"observedGeneration": generation, "replicas": n,
                        "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n}});
                    let path = format!("/apis/apps/v1/namespaces/shop/deployments/{name}/status");
                    let _ = std::panic::catch_unwind(|| {
                        cluster.request("PATCH", &path, "application/merge-patch+json", &status.to_string())
                    });
                }
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Runs `work` while the controller plays; returns what it returned and the states seen.
fn with_controller<T>(cluster: &Cluster, work: impl FnOnce() -> T) -> (T, Vec<State>) {
    let done = AtomicBool::new(false);
    let seen = Mutex::new(Vec::new());
    /// Stops the controller however the work ends: a failed assertion in it would otherwise
    /// wait forever for the controller's thread.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let result = std::thread::scope(|scope| {
        scope.spawn(|| controller(cluster, &done, &seen));
        let _stop = Stop(&done);
        let result = work();
        // One more look after the work, so the final state is recorded.
        std::thread::sleep(Duration::from_millis(300));
        result
    });
    (result, seen.into_inner().expect("states"))
}

/// Whether `wanted` appears in `seen` in order (other states may come between).
fn in_order<T: PartialEq + std::fmt::Debug>(seen: &[T], wanted: &[T]) -> bool {
    let mut rest = seen.iter();
    wanted.iter().all(|w| rest.any(|s| s == w))
}

fn image(cluster: &Cluster, name: &str) -> String {
    cluster.kubectl(
        &["-n", "shop", "get", "deployment", name, "-o", "jsonpath={.spec.template.spec.containers[0].image}"],
        None,
    )
}

fn gone(cluster: &Cluster, kind: &str, name: &str) -> bool {
    cluster.kubectl_status(&["-n", "shop", "get", kind, name]).0 != 0
}

const CANARY: &str = "    canary:\n      steps:\n        - weight: 10\n        - verify: [smoke]\n        - weight: 50\n        - verify: [smoke]\n        - weight: 100\n";

#[test]
fn a_canary_goes_ten_fifty_hundred_in_the_cluster_and_a_failing_one_restores_stable() {
    let cluster = Cluster::start();
    let healthy = std::sync::Arc::new(AtomicBool::new(true));
    let answer = std::sync::Arc::clone(&healthy);
    let server =
        Server::start(move |_| if answer.load(Ordering::SeqCst) { (200, "ok".into()) } else { (500, "no".into()) });
    let f = fixture(&cluster, &server.url, CANARY);
    let (report, _) = with_controller(&cluster, || f.json(&["apply", "--env", "staging", "--format", "json"], 0));
    assert_eq!(report[0]["release"]["outcome"], "succeeded", "{report:#}");
    bump(&f);

    let (out, seen) = with_controller(&cluster, || f.ok(&["apply", "--env", "staging"], 0));
    assert!(out.contains("rollout of Deployment.apps shop/web (canary): succeeded after 6 of 6 phases"), "{out}");
    let pairs: Vec<(Option<u64>, Option<u64>)> = seen.iter().map(|s| (s.web, s.canary)).collect();
    let wanted = [(Some(10), None), (Some(9), Some(1)), (Some(5), Some(5)), (Some(0), Some(10)), (Some(10), None)];
    assert!(in_order(&pairs, &wanted), "states seen: {pairs:?}");
    assert_eq!(image(&cluster, "web"), "example.org/web:2.0.0");
    assert!(gone(&cluster, "deployment", "web-canary"));
    // The canary's pods carried the stable selector's labels plus the track.
    let history = f.json(&["history", "--env", "staging", "--format", "json"], 0);
    let release = history.as_array().and_then(|h| h.iter().find(|r| r["id"] == 2)).expect("release 2");
    let rollout = &release["rollouts"][0];
    assert_eq!(rollout["state"], "succeeded", "{rollout:#}");
    for step in rollout["steps"].as_array().expect("steps") {
        assert!(step["overhead_ms"].as_u64().expect("overhead") < 5000, "{step:#}");
    }
    // The field manager of the rollout's writes gave every field back: what git says is cairn's.
    let managed =
        cluster.kubectl(&["-n", "shop", "get", "deployment", "web", "-o", "json", "--show-managed-fields"], None);
    let managers: Vec<Value> = serde_json::from_str::<Value>(&managed).expect("json")["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(managers.iter().any(|m| m["manager"] == "cairn"), "{managers:#?}");
    assert!(!managers.iter().any(|m| m["manager"] == "cairn-rollout"), "{managers:#?}");

    // 3.0.0 fails its checks at 50%: stable back at 10 replicas of 2.0.0, the canary gone.
    f.write("base/app.yaml", &OBJECTS.replace("web:1.0.0", "web:3.0.0"));
    f.commit("feat: web 3.0.0");
    let (result, seen) = with_controller(&cluster, || {
        let f = &f;
        let healthy = &healthy;
        std::thread::scope(|scope| {
            // Fail once the canary is at 50%.
            scope.spawn(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while std::time::Instant::now() < deadline {
                    let (code, out, _) = cluster.kubectl_status(&[
                        "-n",
                        "shop",
                        "get",
                        "deployment",
                        "web-canary",
                        "-o",
                        "jsonpath={.spec.replicas}",
                    ]);
                    if code == 0 && out.trim() == "5" {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                healthy.store(false, Ordering::SeqCst);
            });
            f.run(&["apply", "--env", "staging"])
        })
    });
    let (code, out, err) = result;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.contains("(canary): aborted"), "{out}");
    let pairs: Vec<(Option<u64>, Option<u64>)> = seen.iter().map(|s| (s.web, s.canary)).collect();
    assert!(in_order(&pairs, &[(Some(9), Some(1)), (Some(5), Some(5)), (Some(10), None)]), "states seen: {pairs:?}");
    assert!(!pairs.contains(&(Some(0), Some(10))), "never went past 50%: {pairs:?}");
    assert_eq!(image(&cluster, "web"), "example.org/web:2.0.0");
    assert!(gone(&cluster, "deployment", "web-canary"));
    let status = f.json(&["rollout", "status", "--env", "staging", "--format", "json"], 0);
    assert_eq!(status["rollouts"][0]["state"], "aborted", "{status:#}");
    assert_eq!(status["rollouts"][0]["phase"], 3, "{status:#}");

    // The next apply of the same version is not refused by the rollout's own field manager.
    healthy.store(true, Ordering::SeqCst);
    let (out, _) = with_controller(&cluster, || f.ok(&["apply", "--env", "staging"], 0));
    assert!(out.contains("(canary): succeeded"), "{out}");
    assert_eq!(image(&cluster, "web"), "example.org/web:3.0.0");
}

const BLUE_GREEN: &str = "    blue_green:\n      active_service: web\n      preview_service: web-preview\n      verify: [smoke]\n      scale_down_delay: 1s\n";

#[test]
fn blue_green_switches_the_active_service_after_the_preview_passes_and_an_abort_keeps_it_on_the_old_pods() {
    let cluster = Cluster::start();
    let healthy = std::sync::Arc::new(AtomicBool::new(true));
    let answer = std::sync::Arc::clone(&healthy);
    let server =
        Server::start(move |_| if answer.load(Ordering::SeqCst) { (200, "ok".into()) } else { (500, "no".into()) });
    let f = fixture(&cluster, &server.url, BLUE_GREEN);
    with_controller(&cluster, || f.ok(&["apply", "--env", "staging"], 0));
    bump(&f);
    let (out, seen) = with_controller(&cluster, || f.ok(&["apply", "--env", "staging"], 0));
    assert!(out.contains("(blue-green): succeeded"), "{out}");
    let app = json!({"app": "web"});
    let preview = json!({"app": "web", "cairn/track": "preview"});
    let pinned =
        seen.iter().find(|s| s.active.get("pod-template-hash").is_some()).expect("the active Service was pinned");
    assert_eq!(pinned.active["app"], "web");
    // The order of what the API server held: pinned to the old pods, the preview up and
    // reached through the preview Service, then the switch, then everything as git says.
    let states: Vec<(Value, Value, Option<u64>)> =
        seen.iter().map(|s| (s.active.clone(), s.preview_service.clone(), s.preview)).collect();
    assert!(
        in_order(
            &states,
            &[
                (pinned.active.clone(), preview.clone(), Some(10)),
                (preview.clone(), preview.clone(), Some(10)),
                (app.clone(), app.clone(), None),
            ]
        ),
        "{states:#?}"
    );
    assert_eq!(image(&cluster, "web"), "example.org/web:2.0.0");
    assert!(gone(&cluster, "deployment", "web-preview"));

    // A preview that fails its check: the active Service never moves, the preview goes.
    healthy.store(false, Ordering::SeqCst);
    f.write("base/app.yaml", &OBJECTS.replace("web:1.0.0", "web:3.0.0"));
    f.commit("feat: web 3.0.0");
    let ((code, out, err), seen) = with_controller(&cluster, || f.run(&["apply", "--env", "staging"]));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.contains("(blue-green): aborted"), "{out}");
    assert!(seen.iter().all(|s| s.active != preview), "the active Service was switched: {seen:#?}");
    assert_eq!(seen.last().map(|s| (&s.active, &s.preview_service, s.preview)), Some((&app, &app, None)));
    assert_eq!(image(&cluster, "web"), "example.org/web:2.0.0");
}

/// Starts an apply, kills it (SIGKILL) once its rollout is in the pause (phase 1).
fn kill_in_pause(cluster: &Cluster, f: &Fixture) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .args(["apply", "--env", "staging"])
        .env("CAIRN_REPO", f.path())
        .env("CAIRN_ACTOR", "doomed")
        .env("HOME", f.path())
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = f.json(&["rollout", "status", "--env", "staging", "--format", "json"], 0);
        let rollout = &status["rollouts"][0];
        if rollout["phase"] == 1 && rollout["state"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reached the pause: {status:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

#[test]
fn a_rollout_killed_in_the_cluster_is_resumed_from_its_phase_or_aborted() {
    let cluster = Cluster::start();
    let server = Server::start(|_| (200, "ok".into()));
    let steps = "    canary:\n      steps:\n        - weight: 20\n        - pause: 4s\n        - weight: 60\n";
    let f = fixture(&cluster, &server.url, steps);
    with_controller(&cluster, || f.ok(&["apply", "--env", "staging"], 0));
    bump(&f);
    with_controller(&cluster, || kill_in_pause(&cluster, &f));
    // Two versions run at the weight the record says.
    assert_eq!(image(&cluster, "web-canary"), "example.org/web:2.0.0");
    let replicas = |name: &str| {
        cluster.kubectl(&["-n", "shop", "get", "deployment", name, "-o", "jsonpath={.spec.replicas}"], None)
    };
    assert_eq!((replicas("web"), replicas("web-canary")), ("8".to_string(), "2".to_string()));
    let (out, _) = with_controller(&cluster, || f.ok(&["rollout", "resume", "--env", "staging"], 0));
    assert!(out.contains("(canary): succeeded"), "{out}");
    let status = f.json(&["rollout", "status", "--env", "staging", "--format", "json"], 0);
    assert_eq!(status["rollouts"][0]["steps"][0]["phase"], 1, "resumed at the pause: {status:#}");
    assert_eq!(image(&cluster, "web"), "example.org/web:2.0.0");
    assert!(gone(&cluster, "deployment", "web-canary"));

    // Killed again with 3.0.0, and aborted: 2.0.0 at ten replicas, the canary gone.
    f.write("base/app.yaml", &OBJECTS.replace("web:1.0.0", "web:3.0.0"));
    f.commit("feat: web 3.0.0");
    with_controller(&cluster, || kill_in_pause(&cluster, &f));
    let aborted = f.json(&["rollout", "abort", "--env", "staging", "--format", "json"], 0);
    assert_eq!(aborted["rollouts"][0]["state"], "aborted", "{aborted:#}");
    assert!(gone(&cluster, "deployment", "web-canary"));
    assert_eq!(replicas("web"), "10");
    assert_eq!(image(&cluster, "web"), "example.org/web:2.0.0");
}

#[test]
fn a_step_whose_pods_never_become_ready_times_out_and_aborts() {
    let cluster = Cluster::start();
    let server = Server::start(|_| (200, "ok".into()));
    let f = fixture(&cluster, &server.url, CANARY);
    f.write("cairn.yaml", &f.read("cairn.yaml").replace("timeout: 30s", "timeout: 2s"));
    f.commit("ci: a short step timeout");
    with_controller(&cluster, || f.ok(&["apply", "--env", "staging"], 0));
    bump(&f);
    // No controller now: the canary's pods never report ready.
    let (code, out, err) = f.run(&["apply", "--env", "staging"]);
    assert_eq!(code, 2, "{out}\n{err}");
    let status = f.json(&["rollout", "status", "--env", "staging", "--format", "json"], 0);
    let rollout = &status["rollouts"][0];
    assert_eq!(rollout["state"], "aborted", "{rollout:#}");
    let reason = rollout["reason"].as_str().expect("reason");
    assert!(reason.starts_with("weight 10%:") && reason.contains("not healthy after 2s"), "{reason}");
    assert!(gone(&cluster, "deployment", "web-canary"));
    let replicas =
        cluster.kubectl(&["-n", "shop", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], None);
    assert_eq!(replicas, "10");
    assert_eq!(image(&cluster, "web"), "example.org/web:1.0.0");
}
