//! Helm charts as layers: the chart (from the repository, or fetched from a chart repository and
//! pinned in [`LOCK_FILE`]) is rendered by the real `helm template` for the target's Kubernetes
//! version and API versions, and its documents enter the environment like any layer's.
//!
//! Reading happens in [`prepare`] (the snapshot is one thread's); helm runs in
//! [`Prepared::render`], which the renderer calls for the charts of an environment in parallel.
//! Output is cached by everything it depends on, so a re-plan with nothing changed runs no helm.

mod chart;
mod fetch;
mod run;
mod values;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LazyIdentities, Parsed, Secrets};
use crate::config::{ChartSource, Environment, HelmChart};
use crate::error::{Error, Result};
use crate::repo::Snapshot;
use crate::yaml;

pub use fetch::LOCK_FILE;
pub use run::helm_binary;

/// What helm is told about the cluster it templates for (`--kube-version`, `--api-versions`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capabilities {
    /// `1.37.0`.
    pub kube_version: String,
    /// `apps/v1`, and `apps/v1/Deployment`, as helm's `.Capabilities.APIVersions.Has` takes them.
    pub api_versions: Vec<String>,
}

/// How a chart layer was rendered: kept in plans and release records, so a release says which
/// chart, which digest and which helm made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartRender {
    /// The layer's label in `cairn.yaml` (`charts/web`, `https://…/ingress-nginx@4.11.0`).
    pub layer: String,
    pub release: String,
    /// `name` and `version` of the chart's `Chart.yaml`.
    pub chart: String,
    pub version: String,
    /// sha256 of the chart's files (a directory) or of the package (`.tgz`).
    pub digest: String,
    /// `helm version` of the binary that rendered it.
    pub helm: String,
    pub kube_version: String,
    /// Whether the output came from the cache (helm not run).
    pub cached: bool,
}

/// A chart layer's documents, by template, and how they were made.
pub(super) type RenderedChart = (Vec<(String, Vec<Parsed>)>, ChartRender);

/// Where one values file of a chart comes from, in helm's order (later ones win).
#[derive(Debug, Clone)]
pub(super) enum ValuesSource {
    /// A file of the repository (a SOPS file is decrypted).
    File(String),
    /// Values written inline (kustomize's `valuesInline`), named for messages.
    Inline { label: String, values: Value },
}

/// One chart to render: from a `helm` layer of `cairn.yaml`, or a kustomization's `helmCharts`.
#[derive(Debug, Clone)]
pub(super) struct ChartRequest {
    /// How the chart is named in messages and records.
    pub label: String,
    pub chart: ChartSource,
    pub release: String,
    pub namespace: Option<String>,
    /// Whether namespaced objects without a namespace get `namespace` (a `helm` layer, as
    /// `helm install -n` does; kustomize leaves that to its namespace transformer).
    pub default_namespace: bool,
    pub values: Vec<ValuesSource>,
    pub set: Vec<(String, Value)>,
    pub include_crds: bool,
    pub include_tests: bool,
    pub no_hooks: bool,
    /// API versions added to the target's, and a Kubernetes version instead of the target's.
    pub api_versions: Vec<String>,
    pub kube_version: Option<String>,
    pub timeout: std::time::Duration,
    /// Where the chart is configured (`cairn.yaml:LINE`, or the kustomization), for messages.
    pub configured_at: String,
}

impl ChartRequest {
    /// The request of a `helm` layer. A release's namespace is the layer's, else the target's
    /// (as `helm install -n` would be).
    pub fn from_layer(helm: &HelmChart, env: &Environment) -> ChartRequest {
        let namespace = helm.namespace.clone().or_else(|| match &env.target {
            crate::config::TargetConfig::Kubernetes { namespace, .. } => namespace.clone(),
            crate::config::TargetConfig::Local { .. } => None,
        });
        ChartRequest {
            label: helm.label(),
            chart: helm.chart.clone(),
            release: helm.release.clone(),
            namespace,
            default_namespace: true,
            values: helm.values.iter().cloned().map(ValuesSource::File).collect(),
            set: helm.set.clone(),
            include_crds: helm.include_crds,
            include_tests: helm.include_tests,
            no_hooks: false,
            api_versions: Vec::new(),
            kube_version: None,
            timeout: helm.timeout,
            configured_at: format!("environment `{}` (cairn.yaml:{})", env.name, helm.line),
        }
    }
}

/// A chart read from the snapshot, ready for helm.
pub(super) struct Prepared {
    request: ChartRequest,
    chart: chart::Chart,
    values: values::Values,
    capabilities: Capabilities,
    /// Where the chart's pin is looked up and recorded.
    lock: fetch::Lock,
    work_tree: Option<PathBuf>,
}

/// Reads what a chart needs from the snapshot: the chart (or its pin), the values files (SOPS
/// files decrypted, or kept encrypted), and the environment's capabilities.
pub(super) fn prepare(
    snapshot: &Snapshot,
    request: ChartRequest,
    mut capabilities: Capabilities,
    mode: Secrets,
    identities: &LazyIdentities,
) -> Result<Prepared> {
    let chart = match &request.chart {
        ChartSource::Path { path } => chart::Chart::from_snapshot(snapshot, path, &request.configured_at)?,
        ChartSource::Repository { url, name, version } => chart::Chart::remote(url, name, version),
    };
    let values = values::Values::read(snapshot, &request, mode, identities)?;
    let lock = fetch::Lock::read(snapshot)?;
    if let Some(version) = &request.kube_version {
        capabilities.kube_version = version.trim_start_matches('v').to_string();
    }
    for extra in &request.api_versions {
        if !capabilities.api_versions.contains(extra) {
            capabilities.api_versions.push(extra.clone());
        }
    }
    Ok(Prepared {
        request,
        chart,
        values,
        capabilities,
        lock,
        work_tree: snapshot.work_tree_root().map(|p| p.to_path_buf()),
    })
}

impl Prepared {
    /// About how long helm takes for the chart: its size.
    pub(super) fn weight(&self) -> usize {
        self.chart.size()
    }

    /// Runs helm (or reads its cached output) and parses the documents.
    pub(super) fn render(self) -> Result<RenderedChart> {
        let Prepared { request, mut chart, values, capabilities, lock, work_tree } = self;
        let layer = request.label.as_str();
        fetch::resolve(&mut chart, &lock, work_tree.as_deref(), layer)?;
        chart.refuse_lookup(layer)?;
        let binary = run::helm_binary()?;
        let namespace = if request.default_namespace { request.namespace.as_deref() } else { None };
        let run_request = run::Request {
            release: &request.release,
            namespace: request.namespace.as_deref(),
            default_namespace: request.default_namespace,
            chart: &chart,
            values: &values,
            set: &request.set,
            include_crds: request.include_crds,
            include_tests: request.include_tests,
            no_hooks: request.no_hooks,
            capabilities: &capabilities,
            timeout: request.timeout,
            layer,
        };
        // The cache holds the parsed output, so a warm render neither runs helm nor parses YAML.
        let cache = run::cache_file(&binary, &run_request);
        let (docs, cached) = match cache.as_deref().and_then(cached_docs) {
            Some(docs) => (docs, true),
            None => {
                let stdout = run::run(&binary, &run_request)?;
                let docs = parse_output(layer, &chart, &stdout, namespace)?;
                if let Some(file) = &cache {
                    keep_docs(file, &docs);
                }
                (docs, false)
            }
        };
        let docs = mark_secrets(docs, &values);
        let record = ChartRender {
            layer: layer.to_string(),
            release: request.release.clone(),
            chart: chart.name.clone(),
            version: chart.version.clone(),
            digest: chart.digest.clone(),
            helm: binary.version.clone(),
            kube_version: capabilities.kube_version.clone(),
            cached,
        };
        tracing::debug!(layer, chart = %chart.name, version = %chart.version, cached, "rendered chart");
        Ok((docs, record))
    }
}

/// A chart's parsed output as the cache keeps it.
#[derive(Serialize, Deserialize)]
struct CachedFile {
    file: String,
    docs: Vec<CachedDoc>,
}

#[derive(Serialize, Deserialize)]
struct CachedDoc {
    line: u64,
    value: Value,
}

fn cached_docs(file: &std::path::Path) -> Option<Vec<(String, Vec<Parsed>)>> {
    let bytes = std::fs::read(file).ok()?;
    let files: Vec<CachedFile> = serde_json::from_slice(&bytes).ok()?;
    Some(
        files
            .into_iter()
            .map(|f| {
                let docs = f
                    .docs
                    .into_iter()
                    .map(|d| Parsed {
                        doc: yaml::Document { value: d.value, line: d.line },
                        secrets: Vec::new(),
                        also: Vec::new(),
                    })
                    .collect();
                (f.file, docs)
            })
            .collect(),
    )
}

/// Keeps a chart's parsed output; a cache that cannot be written only costs the next run a
/// helm call.
fn keep_docs(file: &std::path::Path, docs: &[(String, Vec<Parsed>)]) {
    #[derive(Serialize)]
    struct FileOut<'a> {
        file: &'a str,
        docs: Vec<DocOut<'a>>,
    }
    #[derive(Serialize)]
    struct DocOut<'a> {
        line: u64,
        value: &'a Value,
    }
    let out: Vec<FileOut> = docs
        .iter()
        .map(|(file, docs)| FileOut {
            file,
            docs: docs.iter().map(|p| DocOut { line: p.doc.line, value: &p.doc.value }).collect(),
        })
        .collect();
    let bytes = serde_json::to_vec(&out).unwrap_or_default();
    if let Err(e) = crate::fs::write_replacing(file, &bytes) {
        tracing::debug!(error = %e.chain(), "chart output not cached");
    }
}

/// Splits helm's output into documents, each under the template that made it
/// (`# Source: web/templates/deployment.yaml` → `charts/web/templates/deployment.yaml`).
fn parse_output(
    layer: &str,
    chart: &chart::Chart,
    text: &str,
    namespace: Option<&str>,
) -> Result<Vec<(String, Vec<Parsed>)>> {
    // (line of the `# Source:` comment, the template's path in the repository).
    let mut sources: Vec<(u64, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(source) = line.strip_prefix("# Source: ") {
            sources.push((i as u64 + 1, chart.source_path(source.trim())));
        }
    }
    let label = format!("{layer} (helm template output)");
    let docs = yaml::parse_documents(&label, text)?;
    let mut files: Vec<(String, Vec<Parsed>)> = Vec::new();
    for mut doc in docs {
        if doc.value.is_null() {
            continue;
        }
        let (file, line) = match sources.iter().rev().find(|(line, _)| *line <= doc.line) {
            Some((at, file)) => (file.clone(), doc.line.saturating_sub(*at).max(1)),
            None => (layer.to_string(), doc.line),
        };
        if let Some(namespace) = namespace {
            default_namespace(&mut doc.value, namespace);
        }
        let parsed = Parsed { doc: yaml::Document { value: doc.value, line }, secrets: Vec::new(), also: Vec::new() };
        match files.last_mut() {
            Some((last, docs)) if *last == file => docs.push(parsed),
            _ => files.push((file, vec![parsed])),
        }
    }
    Ok(files)
}

/// Puts a namespaced object without a namespace into the release's namespace, as `helm install
/// -n` does.
fn default_namespace(value: &mut Value, namespace: &str) {
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    if super::kustomize::resource::is_cluster_scoped(&api_version, &kind) {
        return;
    }
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if metadata.get("namespace").is_none_or(Value::is_null) {
        metadata.insert("namespace".into(), Value::String(namespace.to_string()));
    }
}

/// Marks every rendered string that holds a decrypted value (or its base64) as secret: values
/// flow through templates where no pointer follows them.
fn mark_secrets(mut files: Vec<(String, Vec<Parsed>)>, values: &values::Values) -> Vec<(String, Vec<Parsed>)> {
    let forms = values.secret_forms();
    if forms.is_empty() {
        return files;
    }
    for parsed in files.iter_mut().flat_map(|(_, docs)| docs.iter_mut()) {
        let mut found = BTreeSet::new();
        let mut path = Vec::new();
        find_secret_strings(&parsed.doc.value, forms, &mut path, &mut found);
        parsed.secrets.extend(found);
    }
    files
}

/// Strings at least this long are masked wherever they appear inside a rendered string; shorter
/// ones only where the whole string is the value (a `3` in a values file does not mask every
/// string with a `3` in it).
const SUBSTRING_MIN: usize = 6;

fn find_secret_strings(value: &Value, forms: &[String], path: &mut Vec<String>, found: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            let holds = forms.iter().any(|f| s == f || (f.len() >= SUBSTRING_MIN && s.contains(f.as_str())));
            if holds {
                found.insert(pointer_of(path));
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                find_secret_strings(v, forms, path, found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                find_secret_strings(v, forms, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

fn pointer_of(path: &[String]) -> String {
    let mut pointer = String::new();
    for token in path {
        crate::pointer::push(&mut pointer, token);
    }
    pointer
}

/// The error of a chart layer: which chart, what happened, what to do.
pub(crate) fn error(layer: &str, message: impl Into<String>) -> Error {
    Error::Helm { layer: layer.to_string(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_holding_a_secret_are_found_by_pointer() {
        let doc = json!({"data": {"url": "postgres://app:s3cr3t-pw@db/app", "n": "3", "other": "fine"}, "list": ["s3cr3t-pw"]});
        let mut found = BTreeSet::new();
        find_secret_strings(&doc, &["s3cr3t-pw".to_string(), "3".to_string()], &mut Vec::new(), &mut found);
        let found: Vec<_> = found.into_iter().collect();
        assert_eq!(found, vec!["/data/n", "/data/url", "/list/0"]);
    }

    #[test]
    fn namespaced_objects_get_the_release_namespace() {
        let mut dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}});
        default_namespace(&mut dep, "apps");
        assert_eq!(dep["metadata"]["namespace"], "apps");
        let mut role =
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}});
        default_namespace(&mut role, "apps");
        assert!(role["metadata"].get("namespace").is_none());
        let mut set = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}});
        default_namespace(&mut set, "apps");
        assert_eq!(set["metadata"]["namespace"], "other");
    }
}
