//! Checks on rendered objects that hold for every kind: names, namespaces and labels the API
//! server would reject. Findings are diagnostics (data with a stable code), not errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::render::{Object, ObjectId, Rendered};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code, documented in docs/findings.md.
    pub code: String,
    pub severity: Level,
    pub environment: String,
    pub object: ObjectId,
    /// The document that defined the object (relative to the repository root).
    pub file: String,
    pub line: u64,
    /// JSON pointer of the offending value in the rendered object.
    pub pointer: String,
    pub message: String,
}

/// Runs every built-in check over an environment's objects.
pub fn validate(rendered: &Rendered) -> Vec<Finding> {
    let mut findings = Vec::new();
    for object in &rendered.objects {
        check_object(&rendered.environment, object, &mut findings);
    }
    findings
}

fn check_object(environment: &str, object: &Object, out: &mut Vec<Finding>) {
    let mut report = |code: &str, pointer: &str, message: String| {
        let source = object.sources.first();
        out.push(Finding {
            code: code.to_string(),
            severity: Level::Error,
            environment: environment.to_string(),
            object: object.id.clone(),
            file: source.map(|s| s.file.clone()).unwrap_or_default(),
            line: source.map_or(0, |s| s.line),
            pointer: pointer.to_string(),
            message,
        });
    };
    let id = &object.id;
    // RBAC objects may use path-segment names such as `system:controller`.
    let rbac = id.group == "rbac.authorization.k8s.io";
    if id.kind == "Namespace" && !is_dns_label(&id.name) {
        report(
            "object/invalid-name",
            "/metadata/name",
            format!(
                "namespace name `{}` must be a DNS label: lowercase letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit",
                id.name
            ),
        );
    } else if !rbac && !is_dns_subdomain(&id.name) {
        report(
            "object/invalid-name",
            "/metadata/name",
            format!(
                "name `{}` must be a DNS subdomain: lowercase letters, digits, `-` and `.`, at most 253 characters, starting and ending with a letter or digit",
                id.name
            ),
        );
    }
    if let Some(ns) = &id.namespace
        && !is_dns_label(ns)
    {
        report(
            "object/invalid-namespace",
            "/metadata/namespace",
            format!("namespace `{ns}` must be a DNS label: lowercase letters, digits and `-`, at most 63 characters"),
        );
    }
    if let Some(labels) = object.body.pointer("/metadata/labels") {
        match labels {
            Value::Object(map) => {
                for (key, value) in map {
                    let pointer = format!("/metadata/labels/{}", key.replace('~', "~0").replace('/', "~1"));
                    if !is_qualified_name(key) {
                        report(
                            "object/invalid-label",
                            &pointer,
                            format!(
                                "label key `{key}` is not a valid qualified name (optional DNS prefix and `/`, then at most 63 letters, digits, `-`, `_` or `.`)"
                            ),
                        );
                    }
                    match value {
                        Value::String(v) if is_label_value(v) => {}
                        Value::String(v) => report(
                            "object/invalid-label",
                            &pointer,
                            format!(
                                "label value `{v}` is not valid: at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
                            ),
                        ),
                        other => report(
                            "object/invalid-label",
                            &pointer,
                            format!("label value must be a string, found `{other}`; quote it"),
                        ),
                    }
                }
            }
            _ => report(
                "object/invalid-label",
                "/metadata/labels",
                "`metadata.labels` must be a mapping of strings".to_string(),
            ),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::SourceRef;
    use serde_json::json;

    fn object(body: Value) -> Object {
        Object {
            id: ObjectId::of(&body).expect("valid identity"),
            body,
            sources: vec![SourceRef {
                file: "base/a.yaml".into(),
                line: 3,
            }],
        }
    }

    #[test]
    fn reports_bad_names_namespaces_and_labels() {
        let rendered = Rendered {
            environment: "staging".into(),
            objects: vec![
                object(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name", "namespace": "apps"}}),
                ),
                object(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "namespace": "Apps", "labels": {"team": "a b", "x/y/z": "1", "n": 5}}}),
                ),
                object(
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:reader"}}),
                ),
            ],
        };
        let findings = validate(&rendered);
        let got: Vec<(&str, &str)> = findings.iter().map(|f| (f.code.as_str(), f.pointer.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("object/invalid-name", "/metadata/name"),
                ("object/invalid-namespace", "/metadata/namespace"),
                ("object/invalid-label", "/metadata/labels/team"),
                ("object/invalid-label", "/metadata/labels/x~1y~1z"),
                ("object/invalid-label", "/metadata/labels/n"),
            ]
        );
        assert_eq!((findings[0].file.as_str(), findings[0].line), ("base/a.yaml", 3));
    }

    #[test]
    fn label_syntax() {
        assert!(is_qualified_name("app.kubernetes.io/managed-by"));
        assert!(is_qualified_name("cairn/environment"));
        assert!(!is_qualified_name("Bad Prefix/x"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }
}
