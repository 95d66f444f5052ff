//! Policy plugin benchmark: cold compile and cached load of each shipped plugin, per-evaluation
//! overhead of a trivial plugin with a warm cache, and the compliance plugin over 10,000
//! objects. Run with `cargo bench --bench policy` (optionally `-- --runs N`); results are
//! medians over the runs, printed as a table and as JSON on the last line.

// A benchmark binary reports on stderr and stdout itself.
#![allow(clippy::disallowed_macros)]

use std::time::{Duration, Instant};

use cairn::policy::{BUILTIN, Host, Limits};
use serde_json::json;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn deployment(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("app-{i}"), "namespace": format!("team-{}", i % 50), "labels": {"owner": "team"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": format!("app-{i}")}}, "spec": {
            "securityContext": {"runAsNonRoot": true},
            "containers": [{
                "name": "app", "image": format!("ghcr.io/example/app-{i}:1.{i}.0"),
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                "env": [{"name": "LOG_LEVEL", "value": if i.is_multiple_of(7) { "debug" } else { "info" }}]
            }]
        }}}
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize =
        args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(5);
    let host = Host::new().expect("host");
    let mut report = serde_json::Map::new();
    eprintln!("runs: {runs} (medians)");

    for (name, bytes) in BUILTIN {
        let mut cold = Vec::new();
        let mut cached = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir().expect("tempdir");
            let started = Instant::now();
            host.load_with_cache(bytes, Some(dir.path().to_path_buf())).expect("compiles");
            cold.push(started.elapsed());
            let started = Instant::now();
            host.load_with_cache(bytes, Some(dir.path().to_path_buf())).expect("loads");
            cached.push(started.elapsed());
        }
        let (cold, cached) = (median(cold), median(cached));
        eprintln!(
            "{name:<11} {:>7} KiB  cold compile {:>8.1} ms  cached load {:>6.2} ms",
            bytes.len() / 1024,
            ms(cold),
            ms(cached)
        );
        report.insert(
            (*name).to_string(),
            json!({"bytes": bytes.len(), "cold_compile_ms": ms(cold), "cached_load_ms": ms(cached)}),
        );
    }

    // A trivial plugin: reads nothing, writes a fixed decision.
    let trivial = wat::parse_str(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{\"allowed\":true}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .expect("WAT");
    let plugin = host.load_with_cache(&trivial, None).expect("loads");
    let input = br#"{"settings":null,"environment":"production","objects":[]}"#;
    for _ in 0..200 {
        host.evaluate(&plugin, input.to_vec(), Limits::default()).expect("warm-up");
    }
    let mut medians = Vec::new();
    for _ in 0..runs {
        let mut samples = Vec::new();
        for _ in 0..2000 {
            let started = Instant::now();
            host.evaluate(&plugin, input.to_vec(), Limits::default()).expect("evaluates");
            samples.push(started.elapsed());
        }
        medians.push(median(samples));
    }
    let per_eval = median(medians);
    eprintln!("trivial plugin, warm: {:.1} µs per evaluation (goal < 1000 µs)", per_eval.as_secs_f64() * 1e6);
    report.insert("trivial_eval_us".into(), json!(per_eval.as_secs_f64() * 1e6));

    // Compliance over 10,000 objects: one evaluation, the input already encoded.
    let compliance = BUILTIN.iter().find(|(n, _)| *n == "compliance").expect("shipped").1;
    let plugin = host.load_with_cache(compliance, None).expect("loads");
    let objects: Vec<serde_json::Value> = (0..10_000).map(deployment).collect();
    let input = serde_json::to_vec(&json!({
        "settings": null, "policy": {"name": "baseline", "severity": "error"}, "environment": "production",
        "objects": objects, "changes": [], "changed_paths": null, "commit": null, "approvals": [],
        "owners": {"file": null, "rules": []},
    }))
    .expect("encode");
    let mut samples = Vec::new();
    let mut output = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        output = host.evaluate(&plugin, input.clone(), Limits::default()).expect("evaluates");
        samples.push(started.elapsed());
    }
    let decision: serde_json::Value = serde_json::from_slice(&output).expect("decision");
    assert_eq!(decision["allowed"], true, "the generated objects comply");
    let compliance_time = median(samples);
    eprintln!(
        "compliance over 10,000 objects ({:.1} MiB input): {:.0} ms (goal < 1000 ms)",
        input.len() as f64 / (1 << 20) as f64,
        ms(compliance_time)
    );
    report.insert("compliance_10k_ms".into(), json!(ms(compliance_time)));
    report.insert("compliance_input_bytes".into(), json!(input.len()));
    println!("{}", serde_json::Value::Object(report));
}
