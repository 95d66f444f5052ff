//! Charts from HTTP chart repositories: `index.yaml` names the package of a version; the package
//! is fetched once into a content-addressed cache and pinned by its sha256 in [`LOCK_FILE`],
//! beside `cairn.yaml`. A pinned version whose package changes is refused (a supply-chain guard),
//! and a pinned package in the cache needs no network at all.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::chart::{Body, Chart};
use super::error;
use crate::error::Result;
use crate::repo::Snapshot;

pub use crate::config::LOCK_FILE;

/// How long one request to a chart repository may take; a repository that does not answer is
/// reported, not retried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest chart package fetched (helm's own limit for a chart archive is similar).
const PACKAGE_CAP: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    #[serde(default)]
    pub charts: Vec<Pin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub repo: String,
    pub chart: String,
    pub version: String,
    /// `sha256:<hex>` of the package.
    pub digest: String,
}

impl Lock {
    /// The lock file of the snapshot (none: no pins yet).
    pub fn read(snapshot: &Snapshot) -> Result<Lock> {
        let Some(bytes) = snapshot.read(LOCK_FILE)? else { return Ok(Lock::default()) };
        parse(&String::from_utf8_lossy(&bytes))
    }

    fn find(&self, repo: &str, chart: &str, version: &str) -> Option<&Pin> {
        self.charts.iter().find(|p| p.repo == repo && p.chart == chart && p.version == version)
    }
}

fn parse(text: &str) -> Result<Lock> {
    let docs = crate::yaml::parse_documents(LOCK_FILE, text)?;
    let Some(doc) = docs.into_iter().find(|d| !d.value.is_null()) else { return Ok(Lock::default()) };
    serde_json::from_value(doc.value).map_err(|e| crate::error::Error::Document {
        file: LOCK_FILE.to_string(),
        line: 1,
        message: format!("{e}; cairn writes this file — restore it from git, or delete it to pin the charts again"),
    })
}

/// Writers of the lock file in this process take turns.
static LOCK_WRITE: Mutex<()> = Mutex::new(());

/// Makes a remote chart's package available: from the cache when the lock pins it, else fetched
/// (and checked against the pin, or pinned).
pub fn resolve(chart: &mut Chart, lock: &Lock, work_tree: Option<&Path>, layer: &str) -> Result<()> {
    let Body::Remote { url, name, version } = &chart.body else { return Ok(()) };
    let (url, name, version) = (url.clone(), name.clone(), version.clone());
    let pin = lock.find(&url, &name, &version).cloned();
    let cache = super::run::cache_dir().map(|d| d.join("charts"));
    if let (Some(pin), Some(cache)) = (&pin, &cache)
        && let Ok(bytes) = std::fs::read(cache.join(file_of(&pin.digest)))
        && digest_of(&bytes) == pin.digest
    {
        return chart.fetched(layer, bytes, pin.digest.clone());
    }
    let (bytes, index_digest) = download(&url, &name, &version, layer)?;
    let digest = digest_of(&bytes);
    if let Some(expected) = index_digest
        && format!("sha256:{expected}") != digest
    {
        return Err(error(
            layer,
            format!(
                "the package the chart repository served does not match the digest its index.yaml gives ({digest} against sha256:{expected}); the repository is inconsistent — do not use it until it is fixed"
            ),
        ));
    }
    match &pin {
        Some(pin) if pin.digest != digest => {
            return Err(error(
                layer,
                format!(
                    "{LOCK_FILE} pins {name} {version} to {}, but {url} now serves {digest}: the same version changed, which is how a supply-chain attack looks; find out why, and only then remove the entry from {LOCK_FILE} to pin the new package",
                    pin.digest
                ),
            ));
        }
        Some(_) => {}
        None => pin_chart(
            work_tree,
            Pin { repo: url.clone(), chart: name.clone(), version: version.clone(), digest: digest.clone() },
            layer,
        )?,
    }
    if let Some(cache) = &cache
        && let Err(e) = crate::fs::write_replacing(&cache.join(file_of(&digest)), &bytes)
    {
        tracing::debug!(error = %e.chain(), "chart package not cached");
    }
    chart.fetched(layer, bytes, digest)
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn file_of(digest: &str) -> String {
    format!("{}.tgz", digest.trim_start_matches("sha256:"))
}

/// Adds a pin to the lock file of the work tree.
fn pin_chart(work_tree: Option<&Path>, pin: Pin, layer: &str) -> Result<()> {
    // At a revision (a pull request's check, a merge's apply) every fetched chart must already be
    // pinned: what CI renders is what a person committed, digest and all.
    let Some(root) = work_tree else {
        return Err(error(
            layer,
            format!(
                "{LOCK_FILE} does not pin {} {} at this revision; run `cairn render` in the work tree (it pins the chart) and commit {LOCK_FILE}",
                pin.chart, pin.version
            ),
        ));
    };
    let _turn = LOCK_WRITE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = root.join(LOCK_FILE);
    let mut lock = match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text)?,
        Err(_) => Lock::default(),
    };
    if lock.find(&pin.repo, &pin.chart, &pin.version).is_some() {
        return Ok(());
    }
    tracing::info!(chart = %pin.chart, version = %pin.version, digest = %pin.digest, "pinned in {LOCK_FILE}; commit it");
    lock.charts.push(pin);
    lock.charts.sort_by(|a, b| (&a.repo, &a.chart, &a.version).cmp(&(&b.repo, &b.chart, &b.version)));
    let mut text = String::from(
        "# Written by cairn: the sha256 of every chart fetched from a chart repository.\n# Commit it; a pinned version whose package changes is refused.\n",
    );
    text.push_str(&crate::yaml::to_yaml(&serde_json::to_value(&lock).unwrap_or(Value::Null)));
    crate::fs::write_atomically(&path, text.as_bytes())
}

/// Fetches `index.yaml` and the package of `name` `version`; returns the package and the digest
/// the index gives for it.
fn download(repo: &str, name: &str, version: &str, layer: &str) -> Result<(Vec<u8>, Option<String>)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let index_url = format!("{repo}/index.yaml");
    let index = get(&agent, &index_url, layer, 16 * 1024 * 1024)?;
    let text = String::from_utf8_lossy(&index);
    let docs = crate::yaml::parse_documents(&index_url, &text)?;
    let index = docs.into_iter().next().map(|d| d.value).unwrap_or(Value::Null);
    let Some(entries) = index.get("entries").and_then(|e| e.get(name)).and_then(Value::as_array) else {
        return Err(error(layer, format!("{index_url} has no chart `{name}`; check `chart` and `repo`")));
    };
    let entry =
        entries.iter().find(|e| e.get("version").and_then(Value::as_str) == Some(version)).ok_or_else(|| {
            let mut known: Vec<&str> =
                entries.iter().filter_map(|e| e.get("version").and_then(Value::as_str)).collect();
            known.truncate(8);
            error(layer, format!("{index_url} has no version {version} of `{name}` (it has {})", known.join(", ")))
        })?;
    let Some(url) = entry.get("urls").and_then(Value::as_array).and_then(|u| u.first()).and_then(Value::as_str) else {
        return Err(error(layer, format!("{index_url}: {name} {version} has no `urls`")));
    };
    let url = if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("{repo}/{}", url.trim_start_matches("./"))
    };
    let digest = entry.get("digest").and_then(Value::as_str).map(str::to_string);
    Ok((get(&agent, &url, layer, PACKAGE_CAP)?, digest))
}

fn get(agent: &ureq::Agent, url: &str, layer: &str, cap: u64) -> Result<Vec<u8>> {
    let mut response = agent.get(url).call().map_err(|e| {
        error(
            layer,
            format!(
                "cannot reach the chart repository at {url} ({e}); check the URL and the network (cairn does not retry)"
            ),
        )
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(error(
            layer,
            format!("{url} answered HTTP {status}; check the URL (and that the repository is public)"),
        ));
    }
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(layer, format!("reading {url} failed ({e})")))?;
    if bytes.len() as u64 > cap {
        return Err(error(layer, format!("{url} is larger than {} MiB; that is not a chart", cap / 1024 / 1024)));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_reads_back_what_is_written() {
        let lock = Lock {
            charts: vec![Pin {
                repo: "http://127.0.0.1:1/charts".into(),
                chart: "web".into(),
                version: "1.2.3".into(),
                digest: "sha256:ab".into(),
            }],
        };
        let text = crate::yaml::to_yaml(&serde_json::to_value(&lock).expect("serializes"));
        assert_eq!(parse(&text).expect("parses"), lock);
        assert!(parse("charts: 3\n").is_err());
    }
}
