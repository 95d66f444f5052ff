//! Checks on rendered objects that hold for every kind: names, namespaces and labels the API
//! server would reject, whether or not a schema is known for the kind.

use serde_json::Value;

use super::{Code, Level, Unplaced};
use crate::render::Object;

/// Runs the built-in checks over one object.
pub(crate) fn check(object: &Object) -> Vec<Unplaced> {
    let mut out = Vec::new();
    let mut report = |code: Code, pointer: &str, message: String| {
        out.push(Unplaced {
            code,
            severity: Level::Error,
            pointer: pointer.to_string(),
            schema_path: String::new(),
            message,
        });
    };
    let id = &object.id;
    // RBAC objects may use path-segment names such as `system:controller`.
    let rbac = id.group == "rbac.authorization.k8s.io";
    if id.kind == "Namespace" && !is_dns_label(&id.name) {
        report(
            Code::ObjectInvalidName,
            "/metadata/name",
            format!(
                "namespace name `{}` must be a DNS label: lowercase letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit",
                id.name
            ),
        );
    } else if !rbac && !is_dns_subdomain(&id.name) {
        report(
            Code::ObjectInvalidName,
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
            Code::ObjectInvalidNamespace,
            "/metadata/namespace",
            format!("namespace `{ns}` must be a DNS label: lowercase letters, digits and `-`, at most 63 characters"),
        );
    }
    if let Some(labels) = object.body.pointer("/metadata/labels") {
        match labels {
            Value::Object(map) => {
                for (key, value) in map {
                    let pointer = format!("/metadata/labels/{}", crate::pointer::escape(key));
                    if !is_qualified_name(key) {
                        report(
                            Code::ObjectInvalidLabel,
                            &pointer,
                            format!(
                                "label key `{key}` is not a valid qualified name (optional DNS prefix and `/`, then at most 63 letters, digits, `-`, `_` or `.`)"
                            ),
                        );
                    }
                    match value {
                        Value::String(v) if is_label_value(v) => {}
                        Value::String(v) => report(
                            Code::ObjectInvalidLabel,
                            &pointer,
                            format!(
                                "label value `{v}` is not valid: at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
                            ),
                        ),
                        other => report(
                            Code::ObjectInvalidLabel,
                            &pointer,
                            format!("label value must be a string, found `{other}`; quote it"),
                        ),
                    }
                }
            }
            _ => report(
                Code::ObjectInvalidLabel,
                "/metadata/labels",
                "`metadata.labels` must be a mapping of strings".to_string(),
            ),
        }
    }
    out
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
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
    use crate::render::{ObjectId, SourceRef};
    use serde_json::json;

    fn object(body: Value) -> Object {
        Object::new(
            ObjectId::of(&body).expect("valid identity"),
            body,
            vec![SourceRef { file: "base/a.yaml".into(), line: 3 }],
        )
    }

    fn codes(body: Value) -> Vec<(Code, String)> {
        check(&object(body)).into_iter().map(|u| (u.code, u.pointer)).collect()
    }

    #[test]
    fn reports_bad_names_namespaces_and_labels() {
        assert_eq!(
            codes(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name", "namespace": "apps"}})
            ),
            vec![(Code::ObjectInvalidName, "/metadata/name".to_string())]
        );
        assert_eq!(
            codes(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "namespace": "Apps", "labels": {"team": "a b", "x/y/z": "1", "n": 5}}})
            ),
            vec![
                (Code::ObjectInvalidNamespace, "/metadata/namespace".to_string()),
                (Code::ObjectInvalidLabel, "/metadata/labels/team".to_string()),
                (Code::ObjectInvalidLabel, "/metadata/labels/x~1y~1z".to_string()),
                (Code::ObjectInvalidLabel, "/metadata/labels/n".to_string()),
            ]
        );
        assert!(codes(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:reader"}})).is_empty());
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
