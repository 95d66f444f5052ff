//! A resource inside a kustomize build: its body, where it was written, and the identities it had
//! before transformers renamed it (name references and selectors match those too).

use serde_json::{Map, Value};

use crate::render::SourceRef;

use super::file::Behavior;

/// What kustomize calls a resource id: group, version, kind, name, namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl Id {
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
    }

    /// The namespace kustomize compares: `default` for an unset one, none for cluster-wide kinds.
    pub fn effective_namespace(&self) -> String {
        effective_namespace(&self.api_version, &self.kind, &self.namespace)
    }

    /// Same group, kind, name and effective namespace (the version does not count).
    pub fn same_object(&self, other: &Id) -> bool {
        self.group() == other.group()
            && self.kind == other.kind
            && self.name == other.name
            && self.effective_namespace() == other.effective_namespace()
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.group().is_empty() {
            write!(f, ".{}", self.group())?;
        }
        if self.namespace.is_empty() {
            write!(f, " {}", self.name)
        } else {
            write!(f, " {}/{}", self.namespace, self.name)
        }
    }
}

pub fn effective_namespace(api_version: &str, kind: &str, namespace: &str) -> String {
    if is_cluster_scoped(api_version, kind) {
        String::new()
    } else if namespace.is_empty() {
        "default".to_string()
    } else {
        namespace.to_string()
    }
}

/// Whether kustomize takes a kind as cluster-wide: its own table of built-in kinds, each under
/// the API versions it lists. Anything else (custom resources, and built-in kinds the table does
/// not know, such as ValidatingAdmissionPolicy) is namespaced to kustomize, and so here.
pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    match kind {
        "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus" | "NodeProxyOptions" => api_version == "v1",
        "PodSecurityPolicy" => group == "policy" && version == "v1beta1",
        "FlowSchema" | "PriorityLevelConfiguration" => group == "flowcontrol.apiserver.k8s.io" && version == "v1beta1",
        _ => {
            let expected = match kind {
                "APIService" => "apiregistration.k8s.io",
                "CSIDriver" | "CSINode" | "StorageClass" | "VolumeAttachment" => "storage.k8s.io",
                "CertificateSigningRequest" => "certificates.k8s.io",
                "ClusterRole" | "ClusterRoleBinding" => "rbac.authorization.k8s.io",
                "CustomResourceDefinition" => "apiextensions.k8s.io",
                "IngressClass" => "networking.k8s.io",
                "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => "admissionregistration.k8s.io",
                "PriorityClass" => "scheduling.k8s.io",
                "RuntimeClass" => "node.k8s.io",
                _ => return false,
            };
            group == expected && (version == "v1" || version == "v1beta1")
        }
    }
}

/// How a generated resource meets one of the same name from a base.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub behavior: Behavior,
    /// Whether the content-hash suffix is added to its name at the end of the build.
    pub hash: bool,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub body: Value,
    /// The document (or generator entry) it came from.
    pub origin: SourceRef,
    /// Its identity when it entered the build.
    pub original: Id,
    /// Identities it had since, oldest first, not counting the current one.
    pub previous: Vec<Id>,
    pub generated: Option<Generated>,
    /// Name prefixes and suffixes applied, innermost kustomization first (name references
    /// prefer an object renamed the way the referrer was).
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    /// Patches and generator merges that changed it, in order.
    pub shaped_by: Vec<SourceRef>,
}

/// `body[a][b]` as a string, "" when absent (a direct lookup: these run for every object in
/// every step).
fn str_at<'a>(body: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(body, |v, key| v.get(key)).and_then(Value::as_str).unwrap_or("")
}

impl Resource {
    pub fn new(body: Value, origin: SourceRef) -> Resource {
        let mut r = Resource {
            original: Id {
                api_version: String::new(),
                kind: String::new(),
                name: String::new(),
                namespace: String::new(),
            },
            body,
            origin,
            previous: Vec::new(),
            generated: None,
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            shaped_by: Vec::new(),
        };
        r.original = r.id();
        r
    }

    pub fn id(&self) -> Id {
        Id {
            api_version: self.api_version().to_string(),
            kind: self.kind().to_string(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }

    pub fn api_version(&self) -> &str {
        str_at(&self.body, &["apiVersion"])
    }

    pub fn kind(&self) -> &str {
        str_at(&self.body, &["kind"])
    }

    pub fn name(&self) -> &str {
        str_at(&self.body, &["metadata", "name"])
    }

    pub fn namespace(&self) -> &str {
        str_at(&self.body, &["metadata", "namespace"])
    }

    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version().rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version()),
        }
    }

    pub fn effective_namespace(&self) -> String {
        effective_namespace(self.api_version(), self.kind(), self.namespace())
    }

    pub fn is_cluster_scoped(&self) -> bool {
        is_cluster_scoped(self.api_version(), self.kind())
    }

    /// Records the current identity as a previous one (kustomize's `StorePreviousId`), whether or
    /// not what follows changes it: name references match previous identities only.
    pub fn record_previous(&mut self) {
        let id = self.id();
        self.previous.push(id);
    }

    pub fn original_effective_namespace(&self) -> String {
        self.original.effective_namespace()
    }

    /// Every identity the resource has had, the current one last.
    pub fn ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.previous.iter().cloned().chain(std::iter::once(self.id()))
    }

    /// Runs a change that renames the resource, keeping the identity it had before.
    pub fn renaming<T>(&mut self, change: impl FnOnce(&mut Value) -> T) -> T {
        self.record_previous();
        change(&mut self.body)
    }

    /// The identity kustomize calls original: the first previous one, or the current one.
    pub fn org_id(&self) -> Id {
        self.previous.first().cloned().unwrap_or_else(|| self.id())
    }

    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let Some(body) = self.body.as_object_mut() else {
            unreachable!("a resource body is always a mapping (checked when it is read)")
        };
        let metadata = body.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        match metadata {
            Value::Object(m) => m,
            _ => unreachable!("just made a mapping"),
        }
    }
}
