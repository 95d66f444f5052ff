//! The Kubernetes target (kube-rs, rustls): the kubeconfig as kubectl reads it, discovery of
//! every resource kind the API server serves (CRDs included, as dynamic objects), and for a plan
//! the live object next to what a server-side-apply dry run (field manager `cairn`) says the
//! server would store — both normalized, so defaulting and admission never show as a diff.
//!
//! The client is async; the target owns a small runtime and offers blocking calls, because the
//! rest of the pipeline is synchronous. Requests for many objects run concurrently (bounded).

pub mod apply;
pub mod health;
mod rollout;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::stream::{self, StreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiResource, Discovery, Scope};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::render::{Object, ObjectId};

pub use state::LeaseGuard;

/// The field manager cairn applies as.
pub const FIELD_MANAGER: &str = "cairn";

/// How many requests are in flight at once, unless `CAIRN_KUBE_CONCURRENCY` says otherwise.
const DEFAULT_CONCURRENCY: usize = 16;

/// Requests in flight at once: `CAIRN_KUBE_CONCURRENCY` (1–256), else the default.
fn concurrency() -> usize {
    std::env::var("CAIRN_KUBE_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=256).contains(n))
        .unwrap_or(DEFAULT_CONCURRENCY)
}

pub struct KubernetesTarget {
    /// Shared with lock guards, whose lease renewal runs on it in the background.
    runtime: Arc<tokio::runtime::Runtime>,
    client: kube::Client,
    /// `kubernetes:<context>`, for reports.
    label: String,
    /// The namespace of namespaced objects that name none.
    namespace: String,
    /// Where the lock, inventory, release records and digest key live.
    state_namespace: String,
    environment: String,
    /// (group, kind) → how to reach it, from discovery; CRDs applied by cairn are added once
    /// they are Established. Discovered on first use: commands that only read and write cairn's
    /// own records (`verify`, `notify`, `history`) never pay for the ~40 requests.
    kinds: RwLock<Option<HashMap<(String, String), Kind>>>,
}

/// A served resource kind.
#[derive(Debug, Clone)]
struct Kind {
    /// The preferred (or storage) version, for objects known only by identity (pruning).
    version: String,
    plural: String,
    namespaced: bool,
}

/// The live objects and the server's projection of the desired ones, normalized.
pub struct Observation {
    pub live: HashMap<ObjectId, Value>,
    pub projected: HashMap<ObjectId, Value>,
}

/// Where an environment lives in a cluster, from `cairn.yaml`.
pub struct Settings<'a> {
    pub context: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub state_namespace: Option<&'a str>,
    pub environment: &'a str,
}

fn unreachable(context: &str, message: String) -> Error {
    Error::Usage { message: format!("kubernetes ({context}): {message}") }
}

impl KubernetesTarget {
    /// A failed request about `subject` (an object, a list), with what the server answered.
    fn api_error(&self, subject: String, e: kube::Error) -> Error {
        let context = self.label.strip_prefix("kubernetes:").unwrap_or(&self.label).to_string();
        Error::Kubernetes { context, subject, source: crate::error::ApiAnswer(e) }
    }

    /// Connects with the kubeconfig kubectl would use (`KUBECONFIG`, else `~/.kube/config`), the
    /// given context (else the current one). The served kinds are discovered when first needed.
    pub fn connect(settings: &Settings) -> Result<KubernetesTarget> {
        let context = settings.context;
        // Two workers: lease renewal must go on while the main thread waits on requests.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
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
        let namespace = settings.namespace.map_or(default_namespace, str::to_string);
        Ok(KubernetesTarget {
            runtime: Arc::new(runtime),
            client,
            label: format!("kubernetes:{}", context.unwrap_or("current-context")),
            state_namespace: settings.state_namespace.map_or_else(|| namespace.clone(), str::to_string),
            namespace,
            environment: settings.environment.to_string(),
            kinds: RwLock::new(None),
        })
    }

    /// Discovers the served kinds, once.
    fn discovered(&self) -> Result<()> {
        if self.kinds.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some() {
            return Ok(());
        }
        let discovery = self
            .runtime
            .block_on(Discovery::new(self.client.clone()).run())
            .map_err(|e| self.api_error("cannot discover the served kinds".into(), e))?;
        let mut kinds = HashMap::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                let namespaced = capabilities.scope == Scope::Namespaced;
                kinds.insert(
                    (resource.group.clone(), resource.kind.clone()),
                    Kind { version: resource.version.clone(), plural: resource.plural.clone(), namespaced },
                );
            }
        }
        let mut known = self.kinds.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.is_none() {
            *known = Some(kinds);
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        self.label.clone()
    }

    /// The server's version and every group/version (and group/version/kind) it serves.
    pub fn capabilities(&self) -> Result<crate::render::helm::Capabilities> {
        let info = self
            .runtime
            .block_on(self.client.apiserver_version())
            .map_err(|e| self.api_error("cannot read the server's version".into(), e))?;
        let discovery = self
            .runtime
            .block_on(Discovery::new(self.client.clone()).run())
            .map_err(|e| self.api_error("cannot discover the served kinds".into(), e))?;
        let mut api_versions = std::collections::BTreeSet::new();
        for group in discovery.groups() {
            for version in group.versions() {
                let gv =
                    if group.name().is_empty() { version.to_string() } else { format!("{}/{version}", group.name()) };
                for (resource, _) in group.versioned_resources(version) {
                    api_versions.insert(format!("{gv}/{}", resource.kind));
                }
                api_versions.insert(gv);
            }
        }
        // `v1.20.2`, or a distribution's `v1.29.3+k3s1`: helm takes the semantic version.
        let kube_version = info.git_version.trim_start_matches('v').to_string();
        Ok(crate::render::helm::Capabilities { kube_version, api_versions: api_versions.into_iter().collect() })
    }

    /// A served kind. The methods that can fail discover first and report a failure; here a
    /// failed discovery reads as "not served".
    fn kind(&self, group: &str, kind: &str) -> Option<Kind> {
        if self.discovered().is_err() {
            return None;
        }
        let kinds = self.kinds.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        kinds.as_ref()?.get(&(group.to_string(), kind.to_string())).cloned()
    }

    /// Whether objects of this identity's kind live in a namespace. A kind the server does not
    /// serve yet (its CRD comes with the same plan) is judged by the CRD among `objects`.
    pub fn namespaced(&self, id: &ObjectId, objects: &[Object]) -> bool {
        match self.kind(&id.group, &id.kind) {
            Some(kind) => kind.namespaced,
            None => crds_of(objects)
                .into_iter()
                .find(|c| c.group == id.group && c.kind == id.kind)
                .map_or(id.namespace.is_some(), |c| c.namespaced),
        }
    }

    /// The API of one object, at `api_version` (else the kind's preferred version).
    fn api_for(&self, id: &ObjectId, api_version: Option<&str>) -> Option<(Api<DynamicObject>, bool)> {
        let kind = self.kind(&id.group, &id.kind)?;
        let version = api_version.and_then(|v| v.rsplit('/').next()).unwrap_or(&kind.version).to_string();
        let api_version = if id.group.is_empty() { version.clone() } else { format!("{}/{version}", id.group) };
        let resource =
            ApiResource { group: id.group.clone(), version, api_version, kind: id.kind.clone(), plural: kind.plural };
        let api = if kind.namespaced {
            let ns = id.namespace.as_deref().unwrap_or(&self.namespace);
            Api::namespaced_with(self.client.clone(), ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        Some((api, kind.namespaced))
    }

    /// The body to send: the namespace filled in when the kind is namespaced and names none.
    fn placed(&self, id: &ObjectId, body: &Value, namespaced: bool) -> Value {
        let mut body = body.clone();
        if namespaced && let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            let ns = id.namespace.clone().unwrap_or_else(|| self.namespace.clone());
            meta.insert("namespace".into(), Value::String(ns));
        }
        body
    }

    /// The API of one desired object, with its body placed; `None` when its CRD arrives in the
    /// same plan. An unknown kind without such a CRD is an error naming the object.
    fn api(&self, object: &Object, crds: &[CrdKind]) -> Result<Option<(Api<DynamicObject>, Value)>> {
        self.discovered()?;
        let api_version = object.body.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
        match self.api_for(&object.id, Some(api_version)) {
            Some((api, namespaced)) => Ok(Some((api, self.placed(&object.id, &object.body, namespaced)))),
            None if crds.iter().any(|c| c.group == object.id.group && c.kind == object.id.kind) => Ok(None),
            None => Err(Error::Usage {
                message: format!(
                    "{}: the API server has no kind `{}` in `{api_version}`, and no CustomResourceDefinition in this environment defines it",
                    object.id, object.id.kind
                ),
            }),
        }
    }

    /// Reads the live objects with these identities, normalized (absent ones, and kinds the
    /// server does not serve, are left out).
    pub fn read_objects(&self, ids: &[&ObjectId]) -> Result<HashMap<ObjectId, Value>> {
        let mut live = self.read_raw(ids)?;
        live.values_mut().for_each(normalize);
        Ok(live)
    }

    /// Like `read_objects`, with status and server-owned metadata kept (for health checks).
    pub fn read_raw(&self, ids: &[&ObjectId]) -> Result<HashMap<ObjectId, Value>> {
        self.discovered()?;
        let work: Vec<(ObjectId, Api<DynamicObject>)> =
            ids.iter().filter_map(|id| self.api_for(id, None).map(|(api, _)| ((*id).clone(), api))).collect();
        let results: Vec<Result<Option<(ObjectId, Value)>>> = self.runtime.block_on(
            stream::iter(work)
                .map(|(id, api)| async move {
                    match api.get_opt(&id.name).await {
                        Ok(Some(found)) => Ok(Some((id, to_value(found)?))),
                        Ok(None) => Ok(None),
                        Err(e) => Err(self.api_error(id.to_string(), e)),
                    }
                })
                .buffer_unordered(concurrency())
                .collect(),
        );
        let mut live = HashMap::new();
        for result in results {
            if let Some((id, value)) = result? {
                live.insert(id, value);
            }
        }
        Ok(live)
    }

    /// For every object: its live state, and what the server would store after a server-side
    /// apply (a dry run: nothing is written). An object the server rejects is an error naming it
    /// and the server's message.
    ///
    /// Live objects are listed per kind and namespace where several are wanted (one request
    /// instead of one per object). `reuse` may answer the projection without a dry run (an
    /// object whose rendered form and live state are exactly as cairn last left them projects
    /// to its live state); with `skip_creates`, objects that do not exist are not dry-run (an
    /// apply writes them next anyway).
    pub fn observe(
        &self,
        objects: &[Object],
        reuse: &dyn Fn(&Object, &Value) -> bool,
        skip_creates: bool,
    ) -> Result<Observation> {
        let crds = crds_of(objects);
        let mut work = Vec::new();
        for object in objects {
            if let Some((api, body)) = self.api(object, &crds)? {
                work.push((object, api, body));
            }
        }
        let planned_namespaces: Vec<&str> = objects
            .iter()
            .filter(|o| o.id.kind == "Namespace" && o.id.group.is_empty())
            .map(|o| o.id.name.as_str())
            .collect();
        let listed = self.list_live(&work, &planned_namespaces)?;
        let params = PatchParams::apply(FIELD_MANAGER).dry_run().force();
        let results: Vec<Result<Seen>> = self.runtime.block_on(
            stream::iter(work)
                .map(|(object, api, body)| {
                    let params = params.clone();
                    let planned_namespaces = &planned_namespaces;
                    let listed = &listed;
                    async move {
                        let id = object.id.clone();
                        let fail = |e: kube::Error| self.api_error(id.to_string(), e);
                        let live = match listed.get(&id) {
                            Some(found) => found.clone(),
                            None => match api.get_opt(&id.name).await {
                                Ok(live) => live.map(to_value).transpose()?.map(|mut v| {
                                    normalize(&mut v);
                                    v
                                }),
                                // Its namespace arrives in the same plan: it is a create.
                                Err(e) if missing_namespace(&e, planned_namespaces) => return Ok((id, None, None)),
                                Err(e) => return Err(fail(e)),
                            },
                        };
                        match &live {
                            None if skip_creates => return Ok((id, None, None)),
                            Some(live) if reuse(object, live) => {
                                return Ok((id.clone(), Some(live.clone()), Some(live.clone())));
                            }
                            _ => {}
                        }
                        let projected = match api.patch(&id.name, &params, &Patch::Apply(&body)).await {
                            Ok(projected) => {
                                let mut value = to_value(projected)?;
                                normalize(&mut value);
                                Some(value)
                            }
                            Err(e) if missing_namespace(&e, planned_namespaces) => None,
                            Err(e) => return Err(fail(e)),
                        };
                        Ok((id, live, projected))
                    }
                })
                .buffer_unordered(concurrency())
                .collect(),
        );
        let mut observation = Observation { live: HashMap::new(), projected: HashMap::new() };
        for result in results {
            let (id, live, projected) = result?;
            if let Some(live) = live {
                observation.live.insert(id.clone(), live);
            }
            if let Some(projected) = projected {
                observation.projected.insert(id, projected);
            }
        }
        Ok(observation)
    }

    /// The live objects (normalized) of every kind and namespace from which at least
    /// `LIST_FROM` objects are wanted, one list request each; absent ones are known absent
    /// (`None`). Other objects are left to a GET each.
    fn list_live(
        &self,
        work: &[(&Object, Api<DynamicObject>, Value)],
        planned_namespaces: &[&str],
    ) -> Result<HashMap<ObjectId, Option<Value>>> {
        const LIST_FROM: usize = 4;
        let mut buckets: HashMap<(String, String, Option<String>), Vec<usize>> = HashMap::new();
        for (i, (object, _, body)) in work.iter().enumerate() {
            let namespace = body.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            buckets.entry((object.id.group.clone(), object.id.kind.clone(), namespace)).or_default().push(i);
        }
        let lists: Vec<&Vec<usize>> = buckets.values().filter(|b| b.len() >= LIST_FROM).collect();
        let results: Vec<Result<Vec<Listed>>> = self.runtime.block_on(
            stream::iter(lists)
                .map(|bucket| async move {
                    let api = &work[bucket[0]].1;
                    let list = match api.list(&kube::api::ListParams::default()).await {
                        Ok(list) => list,
                        // The namespace itself arrives with the plan: nothing in it exists.
                        Err(e) if missing_namespace(&e, planned_namespaces) => kube::api::ObjectList {
                            types: Default::default(),
                            metadata: Default::default(),
                            items: Vec::new(),
                        },
                        Err(e) => {
                            let id = &work[bucket[0]].0.id;
                            return Err(self.api_error(id.to_string(), e));
                        }
                    };
                    let mut by_name: HashMap<String, DynamicObject> =
                        list.items.into_iter().filter_map(|item| Some((item.metadata.name.clone()?, item))).collect();
                    bucket
                        .iter()
                        .map(|&i| {
                            let (object, _, body) = &work[i];
                            let live = by_name.remove(&object.id.name).map(to_value).transpose()?.map(|mut v| {
                                // Items of a list do not repeat their kind and version.
                                if let Some(map) = v.as_object_mut() {
                                    for key in ["apiVersion", "kind"] {
                                        if let Some(value) = body.get(key) {
                                            map.insert(key.to_string(), value.clone());
                                        }
                                    }
                                }
                                normalize(&mut v);
                                v
                            });
                            Ok((object.id.clone(), live))
                        })
                        .collect()
                })
                .buffer_unordered(concurrency())
                .collect(),
        );
        let mut live = HashMap::new();
        for result in results {
            live.extend(result?);
        }
        Ok(live)
    }
}

/// One object's live state from a list (absent: it does not exist).
type Listed = (ObjectId, Option<Value>);

/// One object's live state and server projection (absent: none yet).
type Seen = (ObjectId, Option<Value>, Option<Value>);

/// A kind defined by a CustomResourceDefinition among the desired objects.
#[derive(Debug, Clone)]
struct CrdKind {
    group: String,
    kind: String,
    plural: String,
    namespaced: bool,
    /// The storage version.
    version: String,
}

/// The kinds the CustomResourceDefinitions among the objects define.
fn crds_of(objects: &[Object]) -> Vec<CrdKind> {
    objects.iter().filter(|o| o.id.kind == "CustomResourceDefinition").filter_map(|o| crd_kind(&o.body)).collect()
}

fn crd_kind(body: &Value) -> Option<CrdKind> {
    let spec = body.get("spec")?;
    let versions = spec.get("versions").and_then(Value::as_array);
    let version = versions
        .and_then(|vs| vs.iter().find(|v| v.get("storage") == Some(&Value::Bool(true))).or(vs.first()))
        .and_then(|v| v.get("name")?.as_str())
        .or_else(|| spec.get("version")?.as_str())?;
    Some(CrdKind {
        group: spec.get("group")?.as_str()?.to_string(),
        kind: spec.pointer("/names/kind")?.as_str()?.to_string(),
        plural: spec.pointer("/names/plural")?.as_str()?.to_string(),
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        version: version.to_string(),
    })
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
pub fn describe_error(e: &kube::Error) -> String {
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
