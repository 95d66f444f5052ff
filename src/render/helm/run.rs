//! Running the real `helm template`: which binary, its version, the arguments, a timeout, and a
//! cache of its output keyed by everything the output depends on.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::chart::Chart;
use super::values::Values;
use super::{Capabilities, error};
use crate::error::{Error, Result};

/// The helm that renders charts.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    /// `v3.16.2`, `v4.1.4`.
    pub version: String,
}

/// How to install helm, for the message of a missing one.
const INSTALL: &str = "install helm 3.8 or later (https://helm.sh/docs/intro/install/) or set CAIRN_HELM to its path";

/// `CAIRN_HELM`, else `helm` on `PATH`, with its version (read once per binary and kept in the
/// cache, so a cached render runs no helm at all).
pub fn helm_binary() -> Result<Binary> {
    let path = match std::env::var_os("CAIRN_HELM").filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(error(
                    "helm",
                    format!("CAIRN_HELM is `{}`, which is not a file; {INSTALL}", path.display()),
                ));
            }
            path
        }
        None => std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("helm")).find(|p| p.is_file()))
            .ok_or_else(|| error("helm", format!("the helm binary is not on PATH; {INSTALL}")))?,
    };
    let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, "cannot read the helm binary", e))?;
    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    let identity = format!("{}\0{}\0{}", path.display(), meta.len(), modified.as_nanos());
    let cached =
        cache_dir().map(|d| d.join(format!("binary-{}", hex::encode(&Sha256::digest(identity.as_bytes())[..16]))));
    if let Some(version) = cached.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).filter(|v| !v.is_empty()) {
        return Ok(Binary { path, version });
    }
    let output = Command::new(&path)
        .args(["version", "--template", "{{.Version}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| error("helm", format!("`{}` cannot be run ({e}); {INSTALL}", path.display())))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || !version.starts_with('v') {
        return Err(error(
            "helm",
            format!(
                "`{} version` did not say its version ({}); {INSTALL}",
                path.display(),
                first_lines(&String::from_utf8_lossy(&output.stderr), 3)
            ),
        ));
    }
    if let Some(file) = cached {
        let _ = crate::fs::write_replacing(&file, version.as_bytes());
    }
    Ok(Binary { path, version })
}

/// `$CAIRN_CACHE_DIR/helm` (or the XDG cache's).
pub(super) fn cache_dir() -> Option<PathBuf> {
    crate::fs::cache_dir().map(|d| d.join("helm"))
}

pub struct Request<'a> {
    pub release: &'a str,
    pub namespace: Option<&'a str>,
    /// Whether the output's namespaced objects get `namespace` (part of the cached output).
    pub default_namespace: bool,
    pub chart: &'a Chart,
    pub values: &'a Values,
    pub set: &'a [(String, serde_json::Value)],
    pub include_crds: bool,
    pub include_tests: bool,
    pub no_hooks: bool,
    pub capabilities: &'a Capabilities,
    pub timeout: Duration,
    pub layer: &'a str,
}

/// What a render's output depends on; its sha256 names the cache entry.
#[derive(Serialize)]
struct Key<'a> {
    format: u32,
    helm: &'a str,
    chart: &'a str,
    values: &'a str,
    set: &'a [(String, serde_json::Value)],
    release: &'a str,
    namespace: Option<&'a str>,
    default_namespace: bool,
    include_crds: bool,
    include_tests: bool,
    no_hooks: bool,
    capabilities: &'a Capabilities,
}

/// The cache file of the request's parsed output; `None` for secret values (their output holds
/// plaintext, never written to the cache) or without a cache directory.
pub fn cache_file(binary: &Binary, request: &Request) -> Option<PathBuf> {
    let (values, dir) = (request.values.digest()?, cache_dir()?);
    let key = Key {
        format: 2,
        helm: &binary.version,
        chart: &request.chart.digest,
        values,
        set: request.set,
        release: request.release,
        namespace: request.namespace,
        default_namespace: request.default_namespace,
        include_crds: request.include_crds,
        include_tests: request.include_tests,
        no_hooks: request.no_hooks,
        capabilities: request.capabilities,
    };
    let json = serde_json::to_vec(&key).unwrap_or_default();
    Some(dir.join("renders").join(format!("{}.json", hex::encode(Sha256::digest(&json)))))
}

/// Runs `helm template` for the request, within its timeout; its standard output.
pub fn run(binary: &Binary, request: &Request) -> Result<String> {
    let layer = request.layer;
    let work = tempfile::Builder::new()
        .prefix("cairn-helm-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), "cannot create a directory for helm in", e))?;
    let chart_path = request.chart.materialize(work.path(), layer)?;
    let (values, secret_dir) = request.values.write(work.path(), layer)?;
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).map_err(|e| Error::io(&home, "cannot create a directory for helm in", e))?;

    let mut command = Command::new(&binary.path);
    command.arg("template").arg(request.release).arg(&chart_path);
    if let Some(namespace) = request.namespace {
        command.args(["--namespace", namespace]);
    }
    command.args(["--kube-version", &request.capabilities.kube_version]);
    if !request.capabilities.api_versions.is_empty() {
        command.arg("--api-versions").arg(request.capabilities.api_versions.join(","));
    }
    for path in &values {
        command.arg("--values").arg(path);
    }
    for (key, value) in request.set {
        command.arg("--set-json").arg(format!("{key}={value}"));
    }
    if request.include_crds {
        command.arg("--include-crds");
    }
    if !request.include_tests {
        command.arg("--skip-tests");
    }
    if request.no_hooks {
        command.arg("--no-hooks");
    }
    // Hermetic: no repositories, plugins or kubeconfig of the machine change what renders.
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout or a stop ends whatever it started too.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| error(layer, format!("`{}` cannot be started ({e}); {INSTALL}", binary.path.display())))?;
    if let Some(dir) = &secret_dir {
        dir.helm_group.store(child.id(), Ordering::SeqCst);
    }
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut kept);
            }
            kept
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    // A watchdog stops helm at the timeout; this thread waits for helm itself, so its exit is
    // seen at once (polling would add up to the poll interval to every render).
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let pid = child.id();
    let timeout = request.timeout;
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            crate::process::kill_group(pid);
            return true;
        }
        false
    });
    let status = child.wait();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = status.map_err(|e| Error::io(&binary.path, "cannot wait for helm", e))?;
    if timed_out {
        return Err(error(
            layer,
            format!(
                "helm template did not finish within {} and was stopped; raise the layer's `timeout` if the chart is that large",
                crate::duration::format(request.timeout)
            ),
        ));
    }
    if let Some(dir) = &secret_dir {
        dir.helm_group.store(0, Ordering::SeqCst);
    }
    drop(secret_dir);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    tracing::debug!(layer, elapsed_ms = started.elapsed().as_millis() as u64, "helm template ran");
    if !status.success() {
        let text = request.values.redactor().clean(&String::from_utf8_lossy(&stderr));
        let text = request.chart.locate_message(&text);
        let text = text.trim().trim_start_matches("Error: ");
        return Err(error(layer, format!("helm template failed: {}", first_lines(text, 12))));
    }
    String::from_utf8(stdout).map_err(|_| error(layer, "helm template wrote output that is not UTF-8"))
}

fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = lines.iter().take(n).copied().collect::<Vec<_>>().join("; ");
    if lines.len() > n {
        out.push_str(" …");
    }
    out
}
