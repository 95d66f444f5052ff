//! The real kustomize (`kubectl kustomize`), and comparing its output with cairn's render as data.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The real kubectl (scripts/test.sh makes sure there is one and names it in CAIRN_TEST_KUBECTL).
pub fn kubectl() -> String {
    let kubectl = std::env::var("CAIRN_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    let ok = Command::new(&kubectl).args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the real kubectl is needed for its kustomize (scripts/test.sh installs it; or set CAIRN_TEST_KUBECTL)"
    );
    kubectl
}

/// `kubectl kustomize DIR`: the objects, read as kubectl reads YAML (cairn's YAML 1.1 reader).
pub fn build(dir: &Path) -> Vec<Value> {
    let out = Command::new(kubectl()).arg("kustomize").arg(dir).output().expect("run kubectl kustomize");
    assert!(out.status.success(), "kubectl kustomize {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    cairn::yaml::parse_documents("kustomize output", &text)
        .expect("kustomize output parses")
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// The objects of `cairn render --env ENV --format json`, without cairn's two labels.
pub fn cairn_objects(rendered: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for env in rendered.as_array().expect("environments") {
        for object in env["objects"].as_array().expect("objects") {
            let mut body = object["body"].clone();
            if let Some(labels) = body.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
                labels.remove(cairn::render::MANAGED_BY_LABEL);
                labels.remove(cairn::render::ENVIRONMENT_LABEL);
                if labels.is_empty()
                    && let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    metadata.remove("labels");
                }
            }
            out.push(body);
        }
    }
    out
}

/// The value with every map's keys in order, so a diff shows only what differs.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn identity(object: &Value) -> String {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let group = text("/apiVersion").rsplit_once('/').map_or(String::new(), |(g, _)| g.to_string());
    format!("{group}/{}/{}/{}", text("/kind"), text("/metadata/namespace"), text("/metadata/name"))
}

/// Asserts that both hold the same objects with the same values (maps as maps, so key order does
/// not matter; list order does), object for object by identity; shows a diff when not.
pub fn assert_same_objects(case: &str, cairn: &[Value], kustomize: &[Value]) {
    let index =
        |objects: &[Value]| -> BTreeMap<String, Value> { objects.iter().map(|o| (identity(o), o.clone())).collect() };
    let (ours, theirs) = (index(cairn), index(kustomize));
    let ours_ids: Vec<&String> = ours.keys().collect();
    let theirs_ids: Vec<&String> = theirs.keys().collect();
    assert_eq!(ours_ids, theirs_ids, "{case}: cairn and kustomize render different objects");
    for (id, object) in &ours {
        let other = &theirs[id];
        if object != other {
            let a = serde_json::to_string_pretty(&sorted(object)).expect("json");
            let b = serde_json::to_string_pretty(&sorted(other)).expect("json");
            let diff = similar::TextDiff::from_lines(&b, &a).unified_diff().header("kustomize", "cairn").to_string();
            panic!("{case}: {id} differs from kustomize's:\n{diff}");
        }
    }
}
