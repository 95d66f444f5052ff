//! The Kubernetes target (kube-rs, rustls): the kubeconfig as kubectl reads it, discovery of
//! every resource kind the API server serves (CRDs included, as dynamic objects), and for a plan
//! the live object next to what a server-side-apply dry run (field manager `cairn`) says the
//! server would store — both normalized, so defaulting and admission never show as a diff.
//!
//! The client is async; the target owns a small runtime and offers blocking calls, because the
//! rest of the pipeline is synchronous. Requests for many objects run concurrently (bounded).

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiResource, Discovery, Scope};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::render::{Object, ObjectId};

/// The field manager cairn applies as.
pub const FIELD_MANAGER: &str = "cairn";

/// How many requests are in flight at once.
const CONCURRENCY: usize = 16;

pub struct KubernetesTarget {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    /// `kubernetes:<context>`, for reports.
    label: String,
    /// The namespace of namespaced objects that name none.
    namespace: String,
    /// (group, kind) → (plural, namespaced), from discovery.
    kinds: HashMap<(String, String), (String, bool)>,
}

/// The live objects and the server's projection of the desired ones, normalized.
pub struct Observation {
    pub live: HashMap<ObjectId, Value>,
    pub projected: HashMap<ObjectId, Value>,
}

fn unreachable(context: &str, message: String) -> Error {
    Error::Usage { message: format!("kubernetes ({context}): {message}") }
}

impl KubernetesTarget {
    /// Connects with the kubeconfig kubectl would use (`KUBECONFIG`, else `~/.kube/config`), the
    /// given context (else the current one), and discovers the served kinds.
    pub fn connect(context: Option<&str>, namespace: Option<&str>) -> Result<KubernetesTarget> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio", "cannot start the runtime for", e))?;
        let shown = context.unwrap_or("current context").to_string();
        let kubeconfig = Kubeconfig::read().map_err(|e| {
            unreachable(&shown, format!("cannot read the kubeconfig ({e}); set KUBECONFIG or create ~/.kube/config"))
        })?;
        let options = KubeConfigOptions { context: context.map(str::to_string), ..KubeConfigOptions::default() };
        let (client, default_namespace) = runtime.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| unreachable(&shown, format!("{e}")))?;
            let default_namespace = config.default_namespace.clone();
            let client = kube::Client::try_from(config).map_err(|e| unreachable(&shown, format!("{e}")))?;
            Ok::<_, Error>((client, default_namespace))
        })?;
        let discovery = runtime
            .block_on(Discovery::new(client.clone()).run())
            .map_err(|e| unreachable(&shown, describe_error(&e)))?;
        let mut kinds = HashMap::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                let namespaced = capabilities.scope == Scope::Namespaced;
                kinds.insert((resource.group.clone(), resource.kind.clone()), (resource.plural.clone(), namespaced));
            }
        }
        Ok(KubernetesTarget {
            runtime,
            client,
            label: format!("kubernetes:{}", context.unwrap_or("current-context")),
            namespace: namespace.map_or(default_namespace, str::to_string),
            kinds,
        })
    }

    pub fn describe(&self) -> String {
        self.label.clone()
    }

    /// The API of one object, with its namespace filled in when it is namespaced and names none.
    fn api(&self, object: &Object, crds: &[(String, String)]) -> Result<Option<(Api<DynamicObject>, Value)>> {
        let api_version = object.body.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let key = (group.clone(), object.id.kind.clone());
        let (plural, namespaced) = match self.kinds.get(&key) {
            Some(found) => found.clone(),
            // Its CRD arrives in the same plan: nothing to ask the server yet.
            None if crds.iter().any(|(g, k)| *g == group && *k == object.id.kind) => return Ok(None),
            None => {
                return Err(Error::Usage {
                    message: format!(
                        "{}: the API server has no kind `{}` in `{api_version}`, and no CustomResourceDefinition in this environment defines it",
                        object.id, object.id.kind
                    ),
                });
            }
        };
        let resource =
            ApiResource { group, version, api_version: api_version.to_string(), kind: object.id.kind.clone(), plural };
        let mut body = object.body.clone();
        let api = if namespaced {
            let ns = object.id.namespace.clone().unwrap_or_else(|| self.namespace.clone());
            if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            Api::namespaced_with(self.client.clone(), &ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        Ok(Some((api, body)))
    }

    /// For every object: its live state, and what the server would store after a server-side
    /// apply (a dry run: nothing is written). An object the server rejects is an error naming it
    /// and the server's message.
    pub fn observe(&self, objects: &[Object]) -> Result<Observation> {
        let crds = crds_of(objects);
        let mut work = Vec::new();
        for object in objects {
            if let Some((api, body)) = self.api(object, &crds)? {
                work.push((object.id.clone(), api, body));
            }
        }
        let params = PatchParams::apply(FIELD_MANAGER).dry_run().force();
        let planned_namespaces: Vec<&str> = objects
            .iter()
            .filter(|o| o.id.kind == "Namespace" && o.id.group.is_empty())
            .map(|o| o.id.name.as_str())
            .collect();
        let results: Vec<Result<Seen>> = self.runtime.block_on(
            stream::iter(work)
                .map(|(id, api, body)| {
                    let params = params.clone();
                    let planned_namespaces = &planned_namespaces;
                    async move {
                        let fail = |e: kube::Error| Error::Usage { message: format!("{id}: {}", describe_error(&e)) };
                        let live = match api.get_opt(&id.name).await {
                            Ok(live) => live,
                            // Its namespace arrives in the same plan: it is a create.
                            Err(e) if missing_namespace(&e, planned_namespaces) => return Ok((id, None, None)),
                            Err(e) => return Err(fail(e)),
                        };
                        let projected = match api.patch(&id.name, &params, &Patch::Apply(&body)).await {
                            Ok(projected) => Some(to_value(projected)?),
                            Err(e) if missing_namespace(&e, planned_namespaces) => None,
                            Err(e) => return Err(fail(e)),
                        };
                        Ok((id, live.map(to_value).transpose()?, projected))
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect(),
        );
        let mut observation = Observation { live: HashMap::new(), projected: HashMap::new() };
        for result in results {
            let (id, live, projected) = result?;
            if let Some(mut live) = live {
                normalize(&mut live);
                observation.live.insert(id.clone(), live);
            }
            if let Some(mut projected) = projected {
                normalize(&mut projected);
                observation.projected.insert(id, projected);
            }
        }
        Ok(observation)
    }
}

/// One object's live state and server projection (absent: none yet).
type Seen = (ObjectId, Option<Value>, Option<Value>);

/// (group, kind) of the custom resources the CustomResourceDefinitions among the objects define.
fn crds_of(objects: &[Object]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| o.id.kind == "CustomResourceDefinition")
        .filter_map(|o| {
            let spec = o.body.get("spec")?;
            Some((spec.get("group")?.as_str()?.to_string(), spec.pointer("/names/kind")?.as_str()?.to_string()))
        })
        .collect()
}

fn to_value(object: DynamicObject) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| Error::Usage { message: format!("an object from the API server: {e}") })
}

/// Whether the server refused because the object's namespace does not exist yet, and that
/// namespace is created by the same plan.
fn missing_namespace(e: &kube::Error, planned: &[&str]) -> bool {
    match e {
        kube::Error::Api(status) if status.code == 404 => {
            planned.iter().any(|ns| status.message == format!("namespaces \"{ns}\" not found"))
        }
        _ => false,
    }
}

/// The server's message (for API errors) or the transport error.
fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({} {})", status.message, status.code, status.reason),
        other => other.to_string(),
    }
}

/// Removes what the server owns, so a diff shows only what configuration decides.
pub fn normalize(object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            annotations.remove("deployment.kubernetes.io/revision");
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_drops_server_owned_fields_only() {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "1", "generation": 2,
                "creationTimestamp": "t", "managedFields": [], "labels": {"x": "y"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"k": "v"}, "status": {"phase": "x"}});
        normalize(&mut v);
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "labels": {"x": "y"}}, "data": {"k": "v"}})
        );
    }
}
