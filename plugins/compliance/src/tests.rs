use cairn_policy_sdk::{Input, Object, Output};
use serde_json::{Value, json};

use super::evaluate;

/// A Deployment every rule accepts in production.
fn good() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"owner": "team-shop"}},
        "spec": {"replicas": 2, "template": {"spec": {
            "securityContext": {"runAsNonRoot": true},
            "containers": [{
                "name": "web", "image": "ghcr.io/example/web:1.4.2",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}}
            }]
        }}}
    })
}

fn run(objects: Vec<Value>, settings: Value) -> Output {
    let input = Input {
        settings,
        environment: "production".into(),
        objects: objects.into_iter().map(Object).collect(),
        ..Input::default()
    };
    evaluate(input).expect("evaluates")
}

fn rules(out: &Output) -> Vec<String> {
    out.violations.iter().map(|v| format!("{} {}", v.rule, v.path)).collect()
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = object.pointer_mut(parent).expect("parent exists");
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(list) => list[key.parse::<usize>().expect("index")] = value,
        _ => panic!("cannot set {pointer}"),
    }
    object
}

#[test]
fn a_good_deployment_passes() {
    let out = run(vec![good()], Value::Null);
    assert!(out.allowed, "{:?}", rules(&out));
    assert!(out.warnings.is_empty());
}

#[test]
fn each_rule_fires_on_its_own_fault() {
    let c = "/spec/template/spec/containers/0";
    let cases: Vec<(Value, &str)> = vec![
        (with(good(), &format!("{c}/securityContext/privileged"), json!(true)), "privileged"),
        (with(good(), "/spec/template/spec/hostNetwork", json!(true)), "host-namespaces"),
        (with(good(), "/spec/template/spec/volumes", json!([{"name": "h", "hostPath": {"path": "/"}}])), "host-path"),
        (with(good(), &format!("{c}/securityContext/allowPrivilegeEscalation"), json!(true)), "privilege-escalation"),
        (with(good(), "/spec/template/spec/securityContext", json!({})), "run-as-non-root"),
        (
            with(good(), &format!("{c}/securityContext/capabilities"), json!({"drop": ["ALL"], "add": ["SYS_ADMIN"]})),
            "capabilities",
        ),
        (with(good(), &format!("{c}/resources"), json!({})), "resources"),
        (with(good(), &format!("{c}/livenessProbe"), Value::Null), "probes"),
        (with(good(), &format!("{c}/image"), json!("nginx")), "image-tag"),
        (with(good(), &format!("{c}/image"), json!("ghcr.io/x/web:latest")), "image-tag"),
        (with(good(), "/metadata/labels", json!({})), "owner-label"),
        (with(good(), "/metadata/namespace", json!("default")), "default-namespace"),
        (with(good(), "/spec/replicas", json!(1)), "replicas"),
    ];
    for (object, rule) in cases {
        // A null probe is how the case removes one; drop it so the object looks as written.
        let mut object = object;
        if let Some(map) = object.pointer_mut(c).and_then(Value::as_object_mut) {
            map.retain(|_, v| !v.is_null());
        }
        let out = run(vec![object], Value::Null);
        let fired: Vec<&str> = out.violations.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(fired, [rule], "{rule}: {:?}", rules(&out));
        assert!(!out.allowed);
    }
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "shop", "labels": {"owner": "x"}}, "spec": {"type": "NodePort"}});
    assert_eq!(rules(&run(vec![service], Value::Null)), ["node-port /spec/type"]);
}

#[test]
fn pointers_name_the_offending_value() {
    let object = with(good(), "/spec/template/spec/containers/0/securityContext/privileged", json!(true));
    assert_eq!(
        rules(&run(vec![object], Value::Null)),
        ["privileged /spec/template/spec/containers/0/securityContext/privileged"]
    );
}

#[test]
fn registries_are_checked_only_when_configured() {
    let object = with(good(), "/spec/template/spec/containers/0/image", json!("nginx:1.27"));
    assert!(run(vec![object.clone()], Value::Null).allowed);
    let settings = json!({"rules": {"allowed-registries": {"registries": ["ghcr.io/example"]}}});
    assert_eq!(
        rules(&run(vec![object, good()], settings)),
        ["allowed-registries /spec/template/spec/containers/0/image"]
    );
}

#[test]
fn rules_can_be_switched_off_or_made_warnings() {
    let object = with(good(), "/spec/replicas", json!(1));
    assert!(run(vec![object.clone()], json!({"rules": {"replicas": {"enabled": false}}})).allowed);
    let out = run(vec![object.clone()], json!({"rules": {"replicas": {"severity": "warning"}}}));
    assert!(out.allowed);
    assert_eq!(out.warnings.len(), 1);
    assert!(run(vec![object], json!({"rules": {"replicas": {"min": 1}}})).allowed);
}

#[test]
fn suppressions_need_a_reason() {
    let object = with(good(), "/spec/replicas", json!(1));
    let reasoned =
        with(object.clone(), "/metadata/annotations", json!({"cairn/ignore-replicas": "a singleton by design"}));
    assert!(run(vec![reasoned], Value::Null).allowed);
    let bare = with(object, "/metadata/annotations", json!({"cairn/ignore-replicas": ""}));
    let out = run(vec![bare], Value::Null);
    let fired: Vec<&str> = out.violations.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(fired, ["suppression", "replicas"]);
}

#[test]
fn bad_settings_are_refused_with_the_reason() {
    for (settings, needle) in [
        (json!({"rule": {}}), "unknown setting `rule`"),
        (json!({"rules": {"privileges": {}}}), "unknown rule `privileges`"),
        (json!({"rules": {"replicas": {"min": "two"}}}), "replicas.min must be a whole number"),
        (json!({"rules": {"probes": {"enabled": "no"}}}), "probes.enabled must be true or false"),
        (json!({"rules": {"probes": {"severity": "fatal"}}}), "severity must be"),
        (json!({"rules": {"probes": {"timeout": 1}}}), "unknown option `timeout`"),
    ] {
        let input = Input { settings, ..Input::default() };
        let err = evaluate(input).expect_err("refused");
        assert!(err.contains(needle), "{err}");
    }
}
