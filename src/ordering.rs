//! The order objects are applied in, shared by plans and targets: an explicit wave annotation
//! first, then the phase a cluster needs (Namespaces, CRDs, other cluster-scoped objects,
//! namespaced objects).

use serde_json::Value;

use crate::render::ObjectId;

/// The annotation that orders objects explicitly: lower waves are applied first (default 0).
pub const WAVE_ANNOTATION: &str = "cairn/wave";

/// An object's wave (0 when it has none or it is not a number; `check_waves` reports those).
pub fn wave(body: &Value) -> i64 {
    body.pointer("/metadata/annotations/cairn~1wave")
        .and_then(Value::as_str)
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

/// The order of apply phases in a cluster: Namespaces, CustomResourceDefinitions, other
/// cluster-scoped objects, namespaced objects.
pub fn phase(id: &ObjectId, namespaced: bool) -> usize {
    match (id.group.as_str(), id.kind.as_str()) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        _ if !namespaced => 2,
        _ => 3,
    }
}
