//! A Helm chart as a layer: `{helm: {chart, version?, repo?, release, namespace?, values, set,
//! include_crds, timeout}}` in an environment's `layers:`.

use std::time::Duration;

use serde::Serialize;

use super::verify::Located;
use crate::error::Result;
use crate::yaml::{Key, Node, NodeValue};

/// The chart pins (digests of charts fetched from chart repositories), at the configuration
/// root beside `cairn.yaml`.
pub const LOCK_FILE: &str = "cairn.lock";

/// How long one `helm template` may run before it is stopped.
pub const DEFAULT_HELM_TIMEOUT: Duration = Duration::from_secs(120);

/// A chart layer, validated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HelmChart {
    /// Where the chart is: a directory or `.tgz` in the repository, or (with `repo`) the chart's
    /// name in that chart repository.
    pub chart: ChartSource,
    /// The release name helm templates with (`.Release.Name`).
    pub release: String,
    /// `.Release.Namespace`; the target's namespace when absent.
    pub namespace: Option<String>,
    /// Values files in the repository, in order (later ones win); SOPS files are decrypted.
    pub values: Vec<String>,
    /// Single values by dotted path (`image.tag`), after the files, as helm's `--set-json` reads
    /// them: the value keeps the YAML type it is written with.
    pub set: Vec<(String, serde_json::Value)>,
    /// Whether the chart's `crds/` are part of the output (the default, as helm installs them).
    pub include_crds: bool,
    /// Whether templates under `tests/` are rendered (helm's `--skip-tests` is the default here:
    /// test hooks are not part of a release's desired state).
    pub include_tests: bool,
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub timeout: Duration,
    pub line: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ChartSource {
    /// A chart directory or packaged `.tgz` inside the repository.
    Path { path: String },
    /// A chart from an HTTP chart repository, pinned to a version (and, in the lock file, to a
    /// digest).
    Repository { url: String, name: String, version: String },
}

impl HelmChart {
    /// The repository paths whose change changes what the chart renders: the chart (when it is
    /// in the repository) and the values files.
    pub fn paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.values.iter().map(String::as_str).collect();
        if let ChartSource::Path { path } = &self.chart {
            out.insert(0, path);
        }
        out
    }

    /// How the layer is named in messages and as a source: `charts/web` or
    /// `https://charts.example.org/ingress-nginx@4.11.0`.
    pub fn label(&self) -> String {
        match &self.chart {
            ChartSource::Path { path } => path.clone(),
            ChartSource::Repository { url, name, version } => {
                format!("{}/{name}@{version}", url.trim_end_matches('/'))
            }
        }
    }
}

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

/// A release name as helm accepts it (a DNS-1123 label of at most 53 characters).
fn valid_release(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 53
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Parses `{helm: {...}}` (the node is the value of `helm`).
pub(crate) fn parse_helm(loc: &Located, node: &Node, what: &str) -> Result<HelmChart> {
    let what = format!("{what}: `helm` layer");
    let map = loc.map(node, &what)?;
    loc.keys(
        map,
        &[
            "chart",
            "version",
            "repo",
            "release",
            "namespace",
            "values",
            "set",
            "include_crds",
            "include_tests",
            "timeout",
        ],
        &what,
    )?;
    let chart = match find(map, "chart") {
        Some(v) => loc.string(v, &format!("{what}: `chart`"))?,
        None => {
            return Err(loc.at(
                node,
                &format!(
                    "{what} needs `chart` (a chart directory or .tgz in the repository, or a chart name with `repo`)"
                ),
            ));
        }
    };
    let version = find(map, "version").map(|v| loc.string(v, &format!("{what}: `version`"))).transpose()?;
    let chart = match find(map, "repo") {
        Some(repo_node) => {
            let url = loc.string(repo_node, &format!("{what}: `repo`"))?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                let hint = if url.starts_with("oci://") {
                    "OCI registries are not supported; vendor the chart (`helm pull --untar`) into the repository"
                } else {
                    "give the chart repository's http(s) URL, or drop `repo` for a chart in this repository"
                };
                return Err(loc.at(repo_node, &format!("{what}: `repo` `{url}` is not an http(s) URL; {hint}")));
            }
            let Some(version) = version else {
                return Err(loc.at(
                    node,
                    &format!("{what}: a chart from `repo` needs `version` (an exact version such as `4.11.0`), so git says which one runs"),
                ));
            };
            if version.is_empty() || version.contains(['*', '^', '~', '>', '<', ' ', ',', '|']) {
                return Err(loc.at(
                    find(map, "version").unwrap_or(node),
                    &format!("{what}: `version` `{version}` must be one exact version, not a range"),
                ));
            }
            if chart.contains('/') {
                return Err(loc.at(
                    find(map, "chart").unwrap_or(node),
                    &format!("{what}: with `repo`, `chart` is the chart's name in that repository, not `{chart}`"),
                ));
            }
            ChartSource::Repository { url: url.trim_end_matches('/').to_string(), name: chart, version }
        }
        None => {
            if let Some(v) = find(map, "version") {
                return Err(loc.at(
                    v,
                    &format!("{what}: `version` is for a chart from `repo`; a chart in the repository is the version git holds"),
                ));
            }
            let path = super::normalize_relative(&chart).ok_or_else(|| {
                loc.at(
                    find(map, "chart").unwrap_or(node),
                    &format!(
                        "{what}: `chart` `{chart}` must be a relative path inside the repository (or give `repo`)"
                    ),
                )
            })?;
            ChartSource::Path { path }
        }
    };
    let release = match find(map, "release") {
        Some(v) => loc.string(v, &format!("{what}: `release`"))?,
        None => return Err(loc.at(node, &format!("{what} needs `release` (the release name, `.Release.Name`)"))),
    };
    if !valid_release(&release) {
        return Err(loc.at(
            find(map, "release").unwrap_or(node),
            &format!("{what}: `release` `{release}` is not a valid release name (lowercase letters, digits and `-`, at most 53)"),
        ));
    }
    let namespace = find(map, "namespace").map(|v| loc.string(v, &format!("{what}: `namespace`"))).transpose()?;
    let values = match find(map, "values") {
        None => Vec::new(),
        Some(v) => {
            let NodeValue::Seq(items) = &v.value else {
                return Err(loc.at(v, &format!("{what}: `values` must be a list of files, found {}", v.kind_name())));
            };
            let mut out = Vec::new();
            for item in items {
                let text = loc.string(item, &format!("{what}: a `values` entry"))?;
                let path = super::normalize_relative(&text).ok_or_else(|| {
                    loc.at(item, &format!("{what}: values file `{text}` must be a relative path inside the repository"))
                })?;
                out.push(path);
            }
            out
        }
    };
    let set = match find(map, "set") {
        None => Vec::new(),
        Some(v) => {
            let entries = loc.map(v, &format!("{what}: `set`"))?;
            let mut out = Vec::new();
            for (key, value) in entries {
                if key.name.is_empty() || key.name.contains(['=', ',']) {
                    return Err(loc.at_key(
                        key,
                        &format!("{what}: `set` key `{}` must be a dotted path such as `image.tag`", key.name),
                    ));
                }
                out.push((key.name.clone(), value.to_json()));
            }
            out
        }
    };
    let flag = |name: &str, default: bool| -> Result<bool> {
        match find(map, name) {
            None => Ok(default),
            Some(v) => match &v.value {
                NodeValue::Bool(b) => Ok(*b),
                _ => Err(loc.at(v, &format!("{what}: `{name}` must be true or false, found {}", v.kind_name()))),
            },
        }
    };
    let include_crds = flag("include_crds", true)?;
    let include_tests = flag("include_tests", false)?;
    let timeout = match find(map, "timeout") {
        None => DEFAULT_HELM_TIMEOUT,
        Some(v) => loc.duration(v, &format!("{what}: `timeout`"))?,
    };
    Ok(HelmChart { chart, release, namespace, values, set, include_crds, include_tests, timeout, line: node.line })
}
