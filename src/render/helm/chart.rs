//! A chart's files: read from the snapshot (a directory or a packaged `.tgz`), or fetched;
//! written to a temporary directory for helm; checked for `lookup`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error;
use crate::error::Result;
use crate::repo::{EntryKind, Snapshot};

pub struct Chart {
    /// `name` and `version` of `Chart.yaml`.
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the package, or of the directory's paths and contents.
    pub digest: String,
    /// Where the chart's files are named from in findings: its directory in the repository, or
    /// the layer's label for a fetched chart.
    source_root: String,
    pub body: Body,
}

pub enum Body {
    /// Files of a chart directory, relative to it, in path order.
    Dir(Vec<(String, Vec<u8>)>),
    /// A packaged chart.
    Package(Vec<u8>),
    /// Still to be fetched from a chart repository.
    Remote { url: String, name: String, version: String },
}

impl Chart {
    pub fn from_snapshot(snapshot: &Snapshot, path: &str, configured_at: &str) -> Result<Chart> {
        let missing = || {
            error(
                path,
                format!(
                    "the chart of {configured_at} does not exist in the repository; vendor it there (`helm pull --untar`) or give `repo` and `version`"
                ),
            )
        };
        match snapshot.entry_kind(path)? {
            None => Err(missing()),
            Some(EntryKind::File) => {
                if !(path.ends_with(".tgz") || path.ends_with(".tar.gz")) {
                    return Err(error(path, "a chart is a directory with Chart.yaml or a packaged .tgz"));
                }
                let bytes = snapshot.read(path)?.ok_or_else(missing)?;
                let chart_yaml = package_chart_yaml(path, &bytes)?;
                let (name, version) = name_and_version(path, &format!("{path}!Chart.yaml"), &chart_yaml)?;
                let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
                Ok(Chart { name, version, digest, source_root: path.to_string(), body: Body::Package(bytes) })
            }
            Some(EntryKind::Dir) => {
                let prefix = format!("{path}/");
                let files: Vec<(String, Vec<u8>)> = snapshot
                    .read_under(path, |_| true)?
                    .into_iter()
                    .filter_map(|(p, bytes)| p.strip_prefix(&prefix).map(|rel| (rel.to_string(), bytes)))
                    .collect();
                let Some((_, chart_yaml)) = files.iter().find(|(rel, _)| rel == "Chart.yaml") else {
                    return Err(error(
                        path,
                        "the directory has no Chart.yaml, so it is not a Helm chart; point `chart` at the chart's directory",
                    ));
                };
                let (name, version) = name_and_version(path, &format!("{path}/Chart.yaml"), chart_yaml)?;
                let mut hasher = Sha256::new();
                for (rel, bytes) in &files {
                    hasher.update((rel.len() as u64).to_le_bytes());
                    hasher.update(rel.as_bytes());
                    hasher.update((bytes.len() as u64).to_le_bytes());
                    hasher.update(bytes);
                }
                let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
                Ok(Chart { name, version, digest, source_root: path.to_string(), body: Body::Dir(files) })
            }
        }
    }

    /// Bytes of the chart's files (0 before a remote chart is fetched).
    pub fn size(&self) -> usize {
        match &self.body {
            Body::Dir(files) => files.iter().map(|(_, b)| b.len()).sum(),
            Body::Package(bytes) => bytes.len() * 4,
            Body::Remote { .. } => 0,
        }
    }

    pub fn remote(url: &str, name: &str, version: &str) -> Chart {
        Chart {
            name: name.to_string(),
            version: version.to_string(),
            digest: String::new(),
            source_root: format!("{}/{name}@{version}", url.trim_end_matches('/')),
            body: Body::Remote { url: url.to_string(), name: name.to_string(), version: version.to_string() },
        }
    }

    /// Takes the fetched package of a remote chart.
    pub fn fetched(&mut self, layer: &str, bytes: Vec<u8>, digest: String) -> Result<()> {
        let chart_yaml = package_chart_yaml(layer, &bytes)?;
        let (name, version) = name_and_version(layer, &format!("{layer}!Chart.yaml"), &chart_yaml)?;
        if let Body::Remote { name: wanted, version: wanted_version, .. } = &self.body
            && (name != *wanted || version != *wanted_version)
        {
            return Err(error(
                layer,
                format!(
                    "the chart repository served {name} {version} for {wanted} {wanted_version}; check the repository's index.yaml"
                ),
            ));
        }
        self.name = name;
        self.version = version;
        self.digest = digest;
        self.body = Body::Package(bytes);
        Ok(())
    }

    /// The repository path of a template helm names (`web/templates/x.yaml`, the chart's name
    /// first).
    pub fn source_path(&self, helm_path: &str) -> String {
        let rel = helm_path.split_once('/').map_or(helm_path, |(_, rest)| rest);
        format!("{}/{rel}", self.source_root)
    }

    /// Helm's error text with the chart's template paths spelled as repository paths.
    pub fn locate_message(&self, text: &str) -> String {
        text.replace(&format!("{}/templates/", self.name), &format!("{}/templates/", self.source_root))
            .replace(&format!("{}/charts/", self.name), &format!("{}/charts/", self.source_root))
    }

    /// Writes the chart where helm can read it; returns the path to give helm.
    pub fn materialize(&self, dir: &Path, layer: &str) -> Result<PathBuf> {
        match &self.body {
            Body::Dir(files) => {
                let root = dir.join(&self.name);
                for (rel, bytes) in files {
                    let path = root.join(rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            crate::error::Error::io(parent, "cannot create a directory for the chart in", e)
                        })?;
                    }
                    std::fs::write(&path, bytes)
                        .map_err(|e| crate::error::Error::io(&path, "cannot write the chart file", e))?;
                }
                Ok(root)
            }
            Body::Package(bytes) => {
                let path = dir.join(format!("{}-{}.tgz", self.name, self.version));
                std::fs::write(&path, bytes)
                    .map_err(|e| crate::error::Error::io(&path, "cannot write the chart", e))?;
                Ok(path)
            }
            Body::Remote { .. } => Err(error(layer, "internal: the chart was not fetched before rendering")),
        }
    }

    /// Refuses a chart whose templates call `lookup`: its output would depend on what the
    /// cluster holds when helm runs, not on git.
    pub fn refuse_lookup(&self, layer: &str) -> Result<()> {
        let found = match &self.body {
            Body::Dir(files) => {
                let mut found = None;
                for (rel, bytes) in files {
                    found = if is_template(rel) {
                        lookup_line(bytes).map(|line| (rel.clone(), line))
                    } else if rel.starts_with("charts/") && rel.ends_with(".tgz") {
                        package_lookup(bytes).map(|(inner, line)| (format!("{rel}!{inner}"), line))
                    } else {
                        None
                    };
                    if found.is_some() {
                        break;
                    }
                }
                found
            }
            Body::Package(bytes) => package_lookup(bytes),
            Body::Remote { .. } => None,
        };
        match found {
            Some((file, line)) => Err(error(
                layer,
                format!(
                    "{}/{file}:{line}: the template calls `lookup`, so what it renders depends on the live cluster, not on git; cairn refuses such charts — set the value through `values` instead (or patch the chart)",
                    self.source_root
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Whether a chart-relative path is a template helm renders (or a helper it includes).
fn is_template(rel: &str) -> bool {
    rel.starts_with("templates/") || rel.contains("/templates/") && rel.starts_with("charts/")
}

/// The first line with a template action that calls `lookup`.
fn lookup_line(bytes: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        let action = after[..close].trim_start_matches('-').trim_start();
        if !action.starts_with("/*") && calls_lookup(action) {
            return Some(text[..offset + open].matches('\n').count() as u64 + 1);
        }
        let consumed = open + 2 + close;
        offset += consumed;
        rest = &rest[consumed..];
    }
    None
}

/// `lookup` as a function name: not a field (`.Values.lookup`), a variable (`$lookup`) or part
/// of a longer name.
fn calls_lookup(action: &str) -> bool {
    let bytes = action.as_bytes();
    let mut start = 0;
    while let Some(i) = action[start..].find("lookup") {
        let at = start + i;
        let before = at.checked_sub(1).map(|b| bytes[b]);
        let after = bytes.get(at + 6).copied();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if !before.is_some_and(|c| word(c) || c == b'.' || c == b'$') && !after.is_some_and(word) {
            return true;
        }
        start = at + 6;
    }
    false
}

/// Every file of a packaged chart: (path inside the archive, contents).
fn package_files(bytes: &[u8]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().to_string();
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents)?;
        out.push((path, contents));
    }
    Ok(out)
}

fn package_lookup(bytes: &[u8]) -> Option<(String, u64)> {
    for (path, contents) in package_files(bytes).ok()? {
        // `web/templates/x.yaml`, `web/charts/redis/templates/y.yaml`.
        let rel = path.split_once('/').map_or(path.as_str(), |(_, r)| r);
        if is_template(rel) {
            if let Some(line) = lookup_line(&contents) {
                return Some((rel.to_string(), line));
            }
        } else if rel.starts_with("charts/")
            && rel.ends_with(".tgz")
            && let Some((inner, line)) = package_lookup(&contents)
        {
            return Some((format!("{rel}!{inner}"), line));
        }
    }
    None
}

/// The `Chart.yaml` at the top of a packaged chart.
fn package_chart_yaml(layer: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let files = package_files(bytes).map_err(|e| {
        error(
            layer,
            format!("the chart package cannot be read as a .tgz archive ({e}); package it with `helm package`"),
        )
    })?;
    files
        .into_iter()
        .find(|(path, _)| path.split('/').count() == 2 && path.ends_with("/Chart.yaml"))
        .map(|(_, contents)| contents)
        .ok_or_else(|| error(layer, "the chart package has no Chart.yaml at its top; package it with `helm package`"))
}

fn name_and_version(layer: &str, file: &str, bytes: &[u8]) -> Result<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let doc = crate::yaml::parse_documents(file, &text)?.into_iter().next().map(|d| d.value).unwrap_or(Value::Null);
    let field = |key: &str| match doc.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(error(layer, format!("{file}: missing `{key}`; a Chart.yaml names the chart and its version"))),
    };
    Ok((field("name")?, field("version")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_calls_are_found_and_lookalikes_are_not() {
        assert_eq!(lookup_line(b"a: 1\nb: {{ (lookup \"v1\" \"Secret\" \"ns\" \"x\").data }}\n"), Some(2));
        assert_eq!(lookup_line(b"{{- $s := lookup \"v1\" \"Secret\" .Release.Namespace \"x\" -}}"), Some(1));
        assert_eq!(lookup_line(b"a: {{ .Values.lookup }}\nb: {{ $lookup }}\nc: {{ lookupTable }}"), None);
        assert_eq!(lookup_line(b"{{/* we never call lookup here */}}\nlookup: plain text"), None);
    }

    #[test]
    fn templates_are_recognised_in_the_chart_and_its_subcharts() {
        assert!(is_template("templates/deployment.yaml"));
        assert!(is_template("charts/redis/templates/_helpers.tpl"));
        assert!(!is_template("values.yaml"));
        assert!(!is_template("crds/crd.yaml"));
    }
}
