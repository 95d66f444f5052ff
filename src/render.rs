//! Layers → objects per environment. A later layer's document is merged over the earlier one as
//! a strategic merge patch ([`strategic`]: lists with a merge key merge by key, the `$patch`
//! directives; kinds without merge information as a JSON merge patch, RFC 7386); a document
//! whose top level is `$patch: delete` removes the object; the output order is stable.

pub mod helm;
pub mod kustomize;
pub mod strategic;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Environment, Layer};
use crate::error::{Error, Result};
use crate::repo::{EntryKind, Snapshot};
use crate::yaml;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "cairn";
pub const ENVIRONMENT_LABEL: &str = "cairn/environment";

/// Identity of an object: (API group, kind, namespace, name). The version is not part of it, so
/// `apps/v1` and `apps/v1beta2` documents of one Deployment are the same object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectId {
    /// `Deployment.apps apps/web`, `ConfigMap apps/settings`, `Namespace apps`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " {ns}/{}", self.name),
            None => write!(f, " {}", self.name),
        }
    }
}

impl ObjectId {
    /// The order objects are applied in: namespaces and cluster-wide prerequisites first, then
    /// what others refer to, then workloads. Deletions run in reverse.
    pub fn apply_rank(&self) -> usize {
        const ORDER: &[&str] = &[
            "Namespace",
            "ResourceQuota",
            "LimitRange",
            "PodSecurityPolicy",
            "CustomResourceDefinition",
            "PriorityClass",
            "StorageClass",
            "ServiceAccount",
            "Secret",
            "ConfigMap",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "DaemonSet",
            "Pod",
            "ReplicaSet",
            "Deployment",
            "HorizontalPodAutoscaler",
            "StatefulSet",
            "Job",
            "CronJob",
            "Ingress",
        ];
        ORDER.iter().position(|k| *k == self.kind).unwrap_or(ORDER.len())
    }

    /// Key for the stable output order: apply rank, then group, kind, namespace, name.
    pub fn sort_key(&self) -> (usize, &str, &str, Option<&str>, &str) {
        (self.apply_rank(), &self.group, &self.kind, self.namespace.as_deref(), &self.name)
    }

    /// Reads the identity of a document, or says what is missing.
    pub fn of(value: &Value) -> std::result::Result<ObjectId, String> {
        let Value::Object(map) = value else {
            return Err(format!("a document must be a mapping, found {}", json_kind(value)));
        };
        let api_version = match map.get("apiVersion") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(_) => return Err("`apiVersion` must be a non-empty string".into()),
            None => return Err("missing `apiVersion` (for example `apiVersion: v1`)".into()),
        };
        let kind = match map.get("kind") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(_) => return Err("`kind` must be a non-empty string".into()),
            None => return Err("missing `kind` (for example `kind: ConfigMap`)".into()),
        };
        let metadata = match map.get("metadata") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err("`metadata` must be a mapping".into()),
            None => return Err("missing `metadata.name`".into()),
        };
        let name = match metadata.get("name") {
            Some(Value::String(s)) => s,
            Some(_) => return Err("`metadata.name` must be a string".into()),
            None => return Err("missing `metadata.name`".into()),
        };
        check_path_safe("metadata.name", name)?;
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                check_path_safe("metadata.namespace", s)?;
                Some(s.clone())
            }
            Some(_) => return Err("`metadata.namespace` must be a string".into()),
        };
        let group = match api_version.rsplit_once('/') {
            Some((group, _)) => group.to_string(),
            None => String::new(),
        };
        Ok(ObjectId { group, kind: kind.clone(), namespace, name: name.clone() })
    }
}

/// Names become file names in the local target and URL path segments in Kubernetes; reject the
/// few spellings that would escape either.
fn check_path_safe(field: &str, value: &str) -> std::result::Result<(), String> {
    if value.is_empty() || value == "." || value == ".." || value.contains('/') || value.contains('\0') {
        return Err(format!("`{field}` `{value}` is not a valid name (empty, `.`, `..`, or contains `/`)"));
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A document that contributed to an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub file: String,
    pub line: u64,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A rendered object: identity, merged body, and every document that shaped it (layer order).
///
/// An object may hold values decrypted from SOPS files, so it (and `Rendered`) has no
/// `Serialize`: outputs take a [`crate::secrets::Masked`] copy (see `Maskable for Rendered`).
#[derive(Clone, PartialEq, Deserialize)]
pub struct Object {
    pub id: ObjectId,
    pub body: Value,
    pub sources: Vec<SourceRef>,
    /// JSON pointers of the values that came from SOPS-encrypted documents: every output masks
    /// them, and they are zeroed when the object is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl Object {
    pub fn new(id: ObjectId, body: Value, sources: Vec<SourceRef>) -> Object {
        Object { id, body, sources, secrets: Vec::new() }
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("id", &self.id)
            .field("body", &crate::secrets::redacted(&self.body, &self.secrets))
            .field("sources", &self.sources)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        crate::secrets::zeroize_at(&mut self.body, &self.secrets);
    }
}

/// What the renderer does with SOPS-encrypted documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Decrypt them (verifying their MAC) with the age keys of the environment: for validation,
    /// policies, plans and applies.
    Decrypt,
    /// Keep their values encrypted, marked as secret: for outputs that never need a plaintext
    /// (release notes, status), so they run without keys.
    KeepEncrypted,
}

/// A parsed document and the JSON pointers of its secret values.
#[derive(Clone)]
struct Parsed {
    doc: yaml::Document,
    secrets: Vec<String>,
    /// What else shaped the document before it reached the layer (a kustomize patch or a
    /// generator merge), after the document itself in the object's sources.
    also: Vec<SourceRef>,
}

/// Every object of one environment, in stable order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Rendered {
    pub environment: String,
    pub objects: Vec<Object>,
    /// How each chart layer was rendered (chart, digest, helm version), in layer order.
    #[serde(default)]
    pub charts: Vec<helm::ChartRender>,
}

impl crate::secrets::Maskable for Rendered {
    fn mask_owned(mut self, masker: &crate::secrets::Masker) -> Rendered {
        for object in &mut self.objects {
            if object.secrets.is_empty() && object.body.get("kind").and_then(Value::as_str) != Some("Secret") {
                continue;
            }
            let masked = masker.mask_object(&object.body, &object.secrets);
            crate::secrets::zeroize_at(&mut object.body, &object.secrets);
            object.body = masked;
        }
        self
    }

    fn mask(&self, masker: &crate::secrets::Masker) -> Rendered {
        let objects = self
            .objects
            .iter()
            .map(|o| Object {
                id: o.id.clone(),
                body: masker.mask_object(&o.body, &o.secrets),
                sources: o.sources.clone(),
                secrets: o.secrets.clone(),
            })
            .collect();
        Rendered { environment: self.environment.clone(), objects, charts: self.charts.clone() }
    }

    fn serialize_masked<S: serde::Serializer>(
        &self,
        serializer: S,
        _: crate::secrets::Seal,
    ) -> std::result::Result<S::Ok, S::Error> {
        /// What `derive(Serialize)` wrote; destructured without `..`, so a new field of `Object`
        /// does not compile until it is added here.
        #[derive(Serialize)]
        struct ObjectOut<'a> {
            id: &'a ObjectId,
            body: &'a Value,
            sources: &'a [SourceRef],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            secrets: &'a [String],
        }
        #[derive(Serialize)]
        struct RenderedOut<'a> {
            environment: &'a str,
            objects: Vec<ObjectOut<'a>>,
            #[serde(skip_serializing_if = "<[helm::ChartRender]>::is_empty")]
            charts: &'a [helm::ChartRender],
        }
        let Rendered { environment, objects, charts } = self;
        let objects = objects
            .iter()
            .map(|object| {
                let Object { id, body, sources, secrets } = object;
                ObjectOut { id, body, sources, secrets }
            })
            .collect();
        RenderedOut { environment, objects, charts }.serialize(serializer)
    }
}

/// A layer's files, parsed: (file, documents) in path order.
type ParsedLayer = Arc<Vec<(String, Vec<Parsed>)>>;

/// What helm is told about an environment's cluster (discovery on Kubernetes, the bundled
/// schemas' version on the local target); asked only for environments with chart layers.
pub type CapabilitiesOf<'a> = dyn Fn(&Environment) -> Result<helm::Capabilities> + 'a;

/// Renders environments from one snapshot. Layers shared by several environments (`base`) are
/// read and parsed once per run, not once per environment.
pub struct Renderer<'a> {
    capabilities: Option<&'a CapabilitiesOf<'a>>,
    snapshot: &'a Snapshot,
    parsed: HashMap<String, ParsedLayer>,
    /// How many of the environments still to render use each layer: the last one takes the
    /// parsed documents instead of copying them.
    uses: HashMap<String, usize>,
    /// Values files of chart layers: read by helm, so a directory layer that holds them (an
    /// environment's directory, beside its patches) does not take them for documents.
    values_files: std::collections::HashSet<String>,
    secrets: Secrets,
    /// age keys, read when the first encrypted document is met (a repository without secrets
    /// needs none).
    identities: LazyIdentities,
}

impl<'a> Renderer<'a> {
    /// A renderer for these environments (each may then be rendered once, in any order).
    pub fn new(snapshot: &'a Snapshot, environments: &[&Environment]) -> Renderer<'a> {
        let mut uses: HashMap<String, usize> = HashMap::new();
        for env in environments {
            for layer in env.layers.iter().filter(|l| l.helm.is_none()) {
                *uses.entry(layer.path.clone()).or_default() += 1;
            }
        }
        let values_files = environments
            .iter()
            .flat_map(|env| env.layers.iter().filter_map(|l| l.helm.as_deref()))
            .flat_map(|helm| helm.values.iter().cloned())
            .collect();
        Renderer {
            values_files,
            capabilities: None,
            snapshot,
            parsed: HashMap::new(),
            uses,
            secrets: Secrets::Decrypt,
            identities: std::sync::OnceLock::new(),
        }
    }

    /// A renderer that leaves SOPS values encrypted (see [`Secrets`]).
    pub fn keep_encrypted(mut self) -> Renderer<'a> {
        self.secrets = Secrets::KeepEncrypted;
        self
    }

    /// How chart layers learn the environment's cluster (see [`CapabilitiesOf`]); without it,
    /// a chart layer is an error.
    pub fn with_capabilities(mut self, capabilities: &'a CapabilitiesOf<'a>) -> Renderer<'a> {
        self.capabilities = Some(capabilities);
        self
    }

    /// Renders the chart layers of an environment, in parallel (helm is the slow part; reading
    /// the snapshot is not, and happens first, in order).
    fn render_charts(&self, env: &Environment) -> Result<Vec<helm::RenderedChart>> {
        let charts: Vec<&crate::config::HelmChart> = env.layers.iter().filter_map(|l| l.helm.as_deref()).collect();
        if charts.is_empty() {
            return Ok(Vec::new());
        }
        let Some(capabilities_of) = self.capabilities else {
            return Err(Error::Usage {
                message: format!(
                    "internal: environment `{}` has chart layers but no capabilities to render them with",
                    env.name
                ),
            });
        };
        let capabilities = capabilities_of(env)?;
        let prepared = charts
            .into_iter()
            .map(|chart| {
                let request = helm::ChartRequest::from_layer(chart, env);
                helm::prepare(self.snapshot, request, capabilities.clone(), self.secrets, &self.identities)
            })
            .collect::<Result<Vec<_>>>()?;
        // The largest charts start first, so a small one never leaves the largest to run alone
        // at the end; results go back into layer order.
        let mut prepared: Vec<(usize, helm::Prepared)> = prepared.into_iter().enumerate().collect();
        prepared.sort_by_key(|(_, p)| std::cmp::Reverse(p.weight()));
        let mut rendered: Vec<(usize, helm::RenderedChart)> =
            prepared.into_par_iter().map(|(i, p)| p.render().map(|r| (i, r))).collect::<Result<Vec<_>>>()?;
        rendered.sort_by_key(|(i, _)| *i);
        Ok(rendered.into_iter().map(|(_, r)| r).collect())
    }

    /// Renders one environment.
    pub fn render(&mut self, env: &Environment) -> Result<Rendered> {
        let mut charts = self.render_charts(env)?.into_iter();
        let mut records = Vec::new();
        // Every layer is read first: the CRDs of the whole environment say how its custom
        // resources merge, whichever layer defines them.
        let mut layers = Vec::with_capacity(env.layers.len());
        for layer in &env.layers {
            if layer.helm.is_some() {
                let Some((docs, record)) = charts.next() else {
                    return Err(Error::Usage { message: "internal: a chart layer was not rendered".into() });
                };
                records.push(record);
                layers.push((layer.path.as_str(), docs));
                continue;
            }
            let parsed = match self.parsed.get(&layer.path) {
                Some(parsed) => Arc::clone(parsed),
                None => {
                    let (parsed, charts) = self.parse_layer(env, layer)?;
                    let parsed = Arc::new(parsed);
                    if charts.is_empty() {
                        self.parsed.insert(layer.path.clone(), Arc::clone(&parsed));
                    } else {
                        // A kustomization's charts render for this environment's cluster; another
                        // environment builds the layer again for its own.
                        records.extend(charts);
                    }
                    parsed
                }
            };
            let remaining = self.uses.get_mut(&layer.path).map(|n| {
                *n = n.saturating_sub(1);
                *n
            });
            let owned = if remaining.unwrap_or(0) == 0 {
                self.parsed.remove(&layer.path);
                Arc::try_unwrap(parsed).unwrap_or_else(|shared| (*shared).clone())
            } else {
                (*parsed).clone()
            };
            layers.push((layer.path.as_str(), owned));
        }
        let schemas = strategic::Schemas::with_crds(
            layers.iter().flat_map(|(_, files)| files.iter().flat_map(|(_, docs)| docs.iter().map(|p| &p.doc.value))),
        );
        let mut objects: HashMap<ObjectId, Object> = HashMap::new();
        for (path, owned) in layers {
            apply_layer(&mut objects, path, owned, &schemas)?;
        }
        let mut objects: Vec<Object> = objects.into_values().collect();
        for object in &mut objects {
            label_managed(&mut object.body, &env.name);
        }
        // The rank is a table lookup; compute it once per object, not once per comparison.
        objects.sort_by_cached_key(|o| (o.id.apply_rank(), o.id.clone()));
        tracing::debug!(environment = %env.name, layers = env.layers.len(), objects = objects.len(), "rendered");
        Ok(Rendered { environment: env.name.clone(), objects, charts: records })
    }
}

/// Renders one environment from a snapshot.
pub fn render(snapshot: &Snapshot, env: &Environment) -> Result<Rendered> {
    Renderer::new(snapshot, &[env]).render(env)
}

impl Renderer<'_> {
    /// Reads and parses a layer: every `*.yaml`/`*.yml` under a directory, or the file itself, or
    /// a kustomization built (with the charts its `helmCharts` rendered).
    fn parse_layer(&self, env: &Environment, layer: &Layer) -> Result<(ParsedFiles, Vec<helm::ChartRender>)> {
        let snapshot = self.snapshot;
        let texts = match snapshot.entry_kind(&layer.path)? {
            Some(EntryKind::File) => {
                vec![(layer.path.clone(), snapshot.read(&layer.path)?.unwrap_or_default())]
            }
            Some(EntryKind::Dir) if kustomize::kustomization_file(snapshot, &layer.path)?.is_some() => {
                let (mode, identities) = (self.secrets, &self.identities);
                let read = |file: &str, bytes: Vec<u8>| -> Result<Vec<Parsed>> {
                    let text = String::from_utf8(bytes).map_err(|e| Error::Document {
                        file: file.to_string(),
                        line: 1,
                        message: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                    })?;
                    open_secrets(mode, identities, file, yaml::parse_documents_yaml12(file, &text)?)
                };
                let records = std::cell::RefCell::new(Vec::new());
                let capabilities = std::cell::OnceCell::new();
                let render_chart = |request: helm::ChartRequest| -> Result<helm::RenderedChart> {
                    let capabilities = match capabilities.get() {
                        Some(c) => c,
                        None => {
                            let Some(of) = self.capabilities else {
                                return Err(Error::Usage {
                                    message:
                                        "internal: a kustomization's helmCharts need the environment's capabilities"
                                            .into(),
                                });
                            };
                            let _ = capabilities.set(of(env)?);
                            capabilities
                                .get()
                                .ok_or_else(|| Error::Usage { message: "internal: capabilities".into() })?
                        }
                    };
                    let rendered =
                        helm::prepare(snapshot, request, capabilities.clone(), mode, identities)?.render()?;
                    records.borrow_mut().push(rendered.1.clone());
                    Ok(rendered)
                };
                let built = kustomize::build(snapshot, &layer.path, &read, Some(&render_chart))?;
                tracing::debug!(layer = %layer.path, objects = built.iter().map(|(_, d)| d.len()).sum::<usize>(), "built kustomization");
                return Ok((built, records.into_inner()));
            }
            Some(EntryKind::Dir) => snapshot.read_under(&layer.path, |f| {
                (f.ends_with(".yaml") || f.ends_with(".yml")) && !self.values_files.contains(f)
            })?,
            None => {
                return Err(Error::MissingLayer {
                    environment: env.name.clone(),
                    layer: layer.path.clone(),
                    line: layer.line,
                });
            }
        };
        tracing::debug!(layer = %layer.path, files = texts.len(), "read");
        // Parsing dominates rendering time; files are independent.
        let (mode, identities) = (self.secrets, &self.identities);
        let files = texts
            .into_par_iter()
            .map(|(file, bytes)| {
                let text = String::from_utf8(bytes).map_err(|e| Error::Document {
                    file: file.clone(),
                    line: 1,
                    message: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                })?;
                let docs = yaml::parse_documents(&file, &text)?;
                let docs = open_secrets(mode, identities, &file, docs)?;
                Ok((file, docs))
            })
            .collect::<Result<ParsedFiles>>()?;
        Ok((files, Vec::new()))
    }
}

/// A layer's documents, grouped by the file that wrote them.
type ParsedFiles = Vec<(String, Vec<Parsed>)>;

/// age keys, read once when the first encrypted document is met.
type LazyIdentities = std::sync::OnceLock<std::result::Result<crate::secrets::Identities, String>>;

/// A SOPS file (a `sops:` block in its first document) decrypted, or its encrypted values
/// marked; any other file as it is.
fn open_secrets(
    mode: Secrets,
    identities: &LazyIdentities,
    file: &str,
    docs: Vec<yaml::Document>,
) -> Result<Vec<Parsed>> {
    {
        if !docs.first().is_some_and(|d| crate::secrets::is_encrypted(&d.value)) {
            return Ok(docs.into_iter().map(|doc| Parsed { doc, secrets: Vec::new(), also: Vec::new() }).collect());
        }
        if mode == Secrets::KeepEncrypted {
            return Ok(docs
                .into_iter()
                .map(|mut doc| {
                    if let Some(map) = doc.value.as_object_mut() {
                        map.remove("sops");
                    }
                    let secrets = crate::secrets::encrypted_pointers(&doc.value);
                    Parsed { doc, secrets, also: Vec::new() }
                })
                .collect());
        }
        let identities = identities
            .get_or_init(|| crate::secrets::Identities::from_environment().map_err(|e| e.chain()))
            .as_ref()
            .map_err(|message| {
                // As sops does: say whom the file is encrypted for, so the right key can be found.
                let recipients = docs.first().map(|d| crate::secrets::sops::recipients(&d.value)).unwrap_or_default();
                let for_whom = if recipients.is_empty() {
                    String::new()
                } else {
                    format!("; the file is encrypted for {}", recipients.join(", "))
                };
                Error::Secret { file: file.to_string(), message: format!("cannot decrypt: {message}{for_whom}") }
            })?;
        let values: Vec<Value> = docs.iter().map(|d| d.value.clone()).collect();
        let decrypted = crate::secrets::decrypt_documents(file, &values, identities)?;
        Ok(docs
            .into_iter()
            .zip(decrypted)
            .map(|(doc, d)| Parsed {
                doc: yaml::Document { value: d.value.into_exposed(), line: doc.line },
                secrets: d.secret_pointers,
                also: Vec::new(),
            })
            .collect())
    }
}

fn apply_layer(
    objects: &mut HashMap<ObjectId, Object>,
    layer: &str,
    parsed: Vec<(String, Vec<Parsed>)>,
    schemas: &strategic::Schemas,
) -> Result<()> {
    use rayon::prelude::*;
    // Most documents of a layer create an object (every document of the first layer does):
    // their identities and bodies are worked out in parallel beforehand, and the loop below, which
    // must run in document order for duplicates and merges, only inserts them. Errors wait for
    // their document's turn, so the first one reported is still the first in the layer.
    let prepared: Vec<PreparedFile> = {
        let existing = &*objects;
        parsed
            .into_par_iter()
            .map(|(file, docs)| {
                let docs = docs
                    .into_iter()
                    .map(|parsed| {
                        let id = ObjectId::of(&parsed.doc.value);
                        let creates = matches!(&id, Ok(id) if !existing.contains_key(id))
                            && parsed.doc.value.get("$patch").is_none();
                        let prepared = match &id {
                            Ok(id) if creates => Prepared::Created(create_body(parsed, id, schemas)),
                            _ => Prepared::Pending(parsed),
                        };
                        (id, prepared)
                    })
                    .collect();
                (file, docs)
            })
            .collect()
    };
    let mut seen: HashMap<ObjectId, SourceRef> = HashMap::new();
    for (file, docs) in prepared {
        for (id, prepared) in docs {
            let line = match &prepared {
                Prepared::Created(Ok(created)) => created.line,
                Prepared::Created(Err((line, _))) => *line,
                Prepared::Pending(parsed) => parsed.doc.line,
            };
            let here = SourceRef { file: file.clone(), line };
            let id = id.map_err(|message| Error::Document { file: file.clone(), line, message })?;
            if let Some(first) = seen.get(&id) {
                return Err(Error::DuplicateObject {
                    object: id.to_string(),
                    layer: layer.to_string(),
                    first: first.file.clone(),
                    first_line: first.line,
                    second: here.file,
                    second_line: here.line,
                });
            }
            seen.insert(id.clone(), here.clone());
            let Parsed { doc, secrets, also } = match prepared {
                Prepared::Created(Ok(Created { body, secrets, also, .. })) => {
                    let mut sources = vec![here];
                    sources.extend(also);
                    objects.insert(id.clone(), Object { id, body, sources, secrets });
                    continue;
                }
                Prepared::Created(Err((line, message))) => {
                    return Err(Error::Document { file: file.clone(), line, message });
                }
                Prepared::Pending(parsed) => parsed,
            };
            let mut doc = doc;
            let mut replace = false;
            if let Some(directive) = doc.value.get("$patch") {
                match directive.as_str() {
                    Some("delete") => {
                        if objects.remove(&id).is_none() {
                            return Err(Error::Document {
                                file: file.clone(),
                                line: doc.line,
                                message: format!(
                                    "`$patch: delete` of {id}, which no earlier layer defines; check the identity or remove the document"
                                ),
                            });
                        }
                        continue;
                    }
                    // The document stands for the whole object: nothing of the earlier one (nor
                    // its secret pointers) is kept.
                    Some("replace") => replace = true,
                    Some("merge") => {}
                    _ => {
                        return Err(Error::Document {
                            file: file.clone(),
                            line: doc.line,
                            message: format!(
                                "unsupported `$patch: {directive}`; a document's `$patch` is delete, replace or merge"
                            ),
                        });
                    }
                }
                if let Some(map) = doc.value.as_object_mut() {
                    map.remove("$patch");
                }
            }
            if replace {
                objects.remove(&id);
            }
            let api_version = doc.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
            let shape = schemas.shape_of(&api_version, &id.kind);
            let failed = |message: String| Error::Document {
                file: file.clone(),
                line: doc.line,
                message: format!("cannot merge this document over {id}: {message}"),
            };
            match objects.get_mut(&id) {
                Some(existing) => {
                    let had_secrets = !existing.secrets.is_empty() || !secrets.is_empty();
                    match shape {
                        // A list merged by key moves items, so the pointers of secret values are
                        // found again after the merge (see `strategic::track`).
                        Some(shape) if had_secrets => {
                            let found = strategic::merge_tracking(
                                &mut existing.body,
                                &existing.secrets,
                                doc.value,
                                &secrets,
                                shape,
                            )
                            .map_err(failed)?;
                            existing.secrets = found;
                        }
                        Some(shape) => strategic::merge(&mut existing.body, doc.value, shape).map_err(failed)?,
                        None => merge_patch(&mut existing.body, doc.value),
                    }
                    existing.sources.push(here);
                    existing.sources.extend(also);
                    // A value once secret stays masked, even where a later layer replaces it.
                    for pointer in secrets {
                        if !existing.secrets.contains(&pointer) {
                            existing.secrets.push(pointer);
                        }
                    }
                }
                None => {
                    let Created { body, secrets, also, .. } = create_body(Parsed { doc, secrets, also }, &id, schemas)
                        .map_err(|(line, message)| Error::Document { file: file.clone(), line, message })?;
                    let mut sources = vec![here];
                    sources.extend(also);
                    objects.insert(id.clone(), Object { id, body, sources, secrets });
                }
            }
        }
    }
    Ok(())
}

/// A file's documents, each with its identity (or why it has none), before the ordered pass.
type PreparedFile = (String, Vec<(std::result::Result<ObjectId, String>, Prepared)>);

/// A document of a layer, before the ordered pass over the layer.
enum Prepared {
    /// It creates an object: its body, or (line, message) why it cannot be made.
    Created(std::result::Result<Created, (u64, String)>),
    /// It changes or removes an object of an earlier layer, or carries a `$patch` directive.
    Pending(Parsed),
}

struct Created {
    body: Value,
    line: u64,
    secrets: Vec<String>,
    also: Vec<SourceRef>,
}

/// The body of an object a document creates, as the ordered pass would make it.
fn create_body(
    parsed: Parsed,
    id: &ObjectId,
    schemas: &strategic::Schemas,
) -> std::result::Result<Created, (u64, String)> {
    let Parsed { doc, secrets, also } = parsed;
    let api_version = doc.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let body = match schemas.shape_of(api_version, &id.kind) {
        Some(shape) => strategic::create(doc.value, shape, "")
            .map_err(|message| (doc.line, format!("cannot merge this document over {id}: {message}")))?,
        // Applying a merge patch to nothing is the document without its nulls.
        None => {
            let mut body = doc.value;
            remove_nulls(&mut body);
            body
        }
    };
    Ok(Created { body, line: doc.line, secrets, also })
}

/// Removes `null` members of maps, recursively (lists are kept as they are, as RFC 7386 does).
fn remove_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(remove_nulls);
    }
}

/// RFC 7386 JSON merge patch: maps merge, scalars and lists replace, `null` deletes a key.
pub fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(target) = target {
                for (key, value) in patch {
                    if value.is_null() {
                        target.remove(&key);
                    } else {
                        let slot = target.entry(key).or_insert(Value::Null);
                        merge_patch(slot, value);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// Marks an object as managed by cairn for this environment; prune and inventory rely on it.
fn label_managed(body: &mut Value, environment: &str) {
    let Some(map) = body.as_object_mut() else { return };
    let metadata = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(MANAGED_BY_LABEL.into(), Value::String(MANAGED_BY_VALUE.into()));
        labels.insert(ENVIRONMENT_LABEL.into(), Value::String(environment.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masked_rendered_objects_write_every_field_and_no_secret() {
        let id = ObjectId { group: String::new(), kind: "AppSettings".into(), namespace: None, name: "app".into() };
        let mut object = Object::new(
            id,
            json!({"kind": "AppSettings", "spec": {"password": "hunter2", "user": "app"}}),
            vec![SourceRef { file: "base/app.yaml".into(), line: 3 }],
        );
        object.secrets = vec!["/spec/password".into()];
        let rendered = Rendered { environment: "staging".into(), objects: vec![object], charts: Vec::new() };
        let masked = crate::secrets::Masked::new(&vec![rendered]);
        let json = serde_json::to_value(&masked).expect("serializes");
        assert!(!json.to_string().contains("hunter2"), "{json}");
        let back: Vec<Rendered> = serde_json::from_value(json).expect("reads back");
        assert_eq!(&back, &*masked);
        assert_eq!(back[0].objects[0].body["spec"]["user"], "app");
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The RFC's own example.
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));

        let mut lists = json!({"a": [1, 2], "b": 1});
        merge_patch(&mut lists, json!({"a": [3], "b": {"x": null, "y": 1}}));
        assert_eq!(lists, json!({"a": [3], "b": {"y": 1}}));
    }

    #[test]
    fn identity_uses_group_not_version() {
        let a = ObjectId::of(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "n"}}),
        );
        let b = ObjectId::of(
            &json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "metadata": {"name": "w", "namespace": "n"}}),
        );
        assert_eq!(a, b);
        assert_eq!(a.expect("valid").to_string(), "Deployment.apps n/w");
        let core = ObjectId::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert_eq!(core.expect("valid").to_string(), "ConfigMap c");
    }

    #[test]
    fn identity_errors_say_what_is_missing() {
        let err = ObjectId::of(&json!({"apiVersion": "v1", "metadata": {"name": "x"}})).err();
        assert!(err.expect("missing kind").contains("missing `kind`"));
        let err = ObjectId::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})).err();
        assert!(err.expect("missing name").contains("metadata.name"));
        let err = ObjectId::of(&json!(["a"])).err();
        assert!(err.expect("not a map").contains("must be a mapping, found a list"));
        let err = ObjectId::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "../x"}})).err();
        assert!(err.expect("unsafe").contains("not a valid name"));
    }

    #[test]
    fn apply_order_puts_namespaces_first() {
        let ns = ObjectId { group: String::new(), kind: "Namespace".into(), namespace: None, name: "z".into() };
        let dep =
            ObjectId { group: "apps".into(), kind: "Deployment".into(), namespace: Some("z".into()), name: "a".into() };
        let custom =
            ObjectId { group: "example.org".into(), kind: "AppSettings".into(), namespace: None, name: "a".into() };
        assert!(ns.sort_key() < dep.sort_key());
        assert!(dep.sort_key() < custom.sort_key());
    }
}
