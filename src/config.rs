//! `cairn.yaml`: read once into a located tree (the raw form), validated once into `Config`.
//! Nothing downstream re-checks what is validated here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::repo::Snapshot;
use crate::yaml::{Key, Node, NodeValue};

mod helm;
mod notifications;
mod promotion;
mod strategy;
mod verify;
pub use helm::{ChartSource, DEFAULT_HELM_TIMEOUT, HelmChart, LOCK_FILE};
pub use notifications::{Channel, ChannelKind, EventKind, Notifications, Route, SmtpTls};
pub use promotion::{Evidence, Promoted, Promotion};
pub use strategy::{BlueGreen, DEFAULT_SCALE_DOWN_DELAY, DEFAULT_STEP_TIMEOUT, How, Selector, Step, Strategy};
pub use verify::{
    AnalysisRef, Check, CommandProbe, Expect, HttpProbe, OnFailure, PLACEHOLDERS, Probe, PrometheusProbe, Text, Verify,
};
pub(crate) use verify::{Located, check_placeholders, check_url};

pub const CONFIG_FILE: &str = "cairn.yaml";

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// In the order they are declared.
    pub environments: Vec<Environment>,
    pub schemas: Vec<SchemaMapping>,
    pub policies: Vec<PolicyEntry>,
    /// Where the news of releases goes (`notifications:`).
    pub notifications: Notifications,
    /// Canary and blue/green rollouts of Deployments (`strategies:`).
    pub strategies: Vec<Strategy>,
    /// Indices of `environments` in the order of their names: a repository may have thousands,
    /// commands look them up by name once per environment, and a map of copied names would cost
    /// more than this index.
    #[serde(skip)]
    by_name: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    /// Later layers win.
    pub layers: Vec<Layer>,
    pub target: TargetConfig,
    /// What an apply does with live changes made outside git.
    pub drift: DriftPolicy,
    /// The checks that tell whether a release of the environment works (`verify:`).
    pub verify: Verify,
    /// What a failed verification does (`on_failure:`).
    pub on_failure: OnFailure,
    /// Where the environment's versions come from (`promotion:`, `cairn promote`).
    /// Boxed: most environments have none, and a repository may have ten thousand.
    pub promotion: Option<Box<Promotion>>,
    /// Line of the environment's key in `cairn.yaml`.
    pub line: u64,
}

/// `drift:` of an environment. Git is the source of truth, so the default repairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftPolicy {
    /// Objects changed outside git are put back as configured; in a cluster, fields another
    /// manager took over by an imperative edit (`kubectl edit/patch/scale`) are taken back.
    #[default]
    Repair,
    /// An object that drifted is not written: the apply fails it and says so.
    Refuse,
}

#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// A directory or a single file, relative to the configuration root; for a chart layer, the
    /// chart's label (its path, or `URL/NAME@VERSION`).
    pub path: String,
    /// A Helm chart rendered with `helm template` (`{helm: {...}}`); `None` for files. Boxed: a
    /// repository may have tens of thousands of file layers, each of which would carry the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<Box<HelmChart>>,
    pub line: u64,
}

impl Layer {
    /// Whether the layer is a chart fetched from a chart repository (nothing of it is in git but
    /// its pin).
    pub fn is_remote_chart(&self) -> bool {
        self.helm.as_ref().is_some_and(|h| matches!(h.chart, ChartSource::Repository { .. }))
    }

    /// The repository paths whose change changes the layer's documents.
    pub fn paths(&self) -> Vec<&str> {
        match &self.helm {
            None => vec![self.path.as_str()],
            Some(helm) => {
                let mut paths = helm.paths();
                // A chart from a chart repository is pinned by the lock file.
                if matches!(helm.chart, ChartSource::Repository { .. }) {
                    paths.push(LOCK_FILE);
                }
                paths
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TargetConfig {
    /// The embedded default: live state is a directory (relative paths are relative to the
    /// configuration root).
    Local { path: String },
    Kubernetes {
        context: Option<String>,
        namespace: Option<String>,
        /// Where cairn keeps its own records for the environment: the lock (a Lease), the
        /// inventory, release records and the digest key. Default: `namespace`.
        state_namespace: Option<String>,
    },
}

/// `schemas:` — a JSON Schema for one of the repository's own kinds.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaMapping {
    pub api_version: String,
    pub kind: String,
    pub schema: String,
    pub line: u64,
}

/// `policies:` — a policy binding, or a file holding more bindings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyEntry {
    Binding {
        name: String,
        plugin: String,
        environments: Option<Vec<String>>,
        severity: Severity,
        settings: serde_json::Value,
        /// Per-binding overrides of the sandbox limits.
        timeout_ms: Option<u64>,
        fuel: Option<u64>,
        memory_mib: Option<u64>,
        /// The file the binding is written in (`cairn.yaml` or an included file).
        file: String,
        line: u64,
    },
    Include {
        path: String,
        line: u64,
    },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Config {
    /// Reads and validates `cairn.yaml` from a snapshot.
    pub fn load(snapshot: &Snapshot) -> Result<Config> {
        let bytes = snapshot.read(CONFIG_FILE)?.ok_or_else(|| Error::Config {
            message: format!("{CONFIG_FILE}: not found at the repository root; run `cairn init` to create one"),
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config { message: format!("{CONFIG_FILE}: not valid UTF-8") })?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config> {
        // Each environment is converted and checked against the schema as soon as it is read,
        // and its tree dropped: with 10,000 environments the file's located tree would
        // otherwise cost several times the environments themselves. Errors wait their turn:
        // the top level first, then the environments, then the other sections, then the schema.
        let schema = ConfigSchema::new()?;
        let mut reader = EnvironmentReader::new(&schema);
        let root = Node::parse_streaming(CONFIG_FILE, text, "environments", &mut |key, node| reader.read(key, &node))?;
        let top = expect_map(&root, "the top level")?;
        check_keys(
            top,
            &["version", "environments", "schemas", "policies", "notifications", "strategies"],
            "the top level",
        )?;
        if let Some((_, v)) = find(top, "version") {
            let ok = matches!(&v.value, NodeValue::Number(n) if n.as_u64() == Some(1)) || v.as_str() == Some("1");
            if !ok {
                return Err(at(v, "unsupported `version`; this cairn reads version 1"));
            }
        }
        let Some((_, envs)) = find(top, "environments") else {
            return Err(at(&root, "missing `environments`: declare at least one environment"));
        };
        let entries = expect_map(envs, "`environments`")?;
        if entries.is_empty() {
            return Err(at(envs, "`environments` is empty: declare at least one environment"));
        }
        // Entries merged in with `<<` (or a whole section from an alias) stayed in the tree.
        for (key, node) in entries.iter().skip(reader.streamed) {
            reader.read(key, node);
        }
        let (environments, unmatched) = reader.finish()?;
        let schemas = match find(top, "schemas") {
            Some((_, node)) => parse_schemas(node)?,
            None => Vec::new(),
        };
        let policies = match find(top, "policies") {
            Some((_, node)) => parse_policies(node, &environments)?,
            None => Vec::new(),
        };
        let notifications = match find(top, "notifications") {
            Some((_, node)) => {
                let names: Vec<&str> = environments.iter().map(|e| e.name.as_str()).collect();
                notifications::parse_notifications(&HERE, node, &names)?
            }
            None => Notifications::default(),
        };
        let strategies = match find(top, "strategies") {
            Some((_, node)) => strategy::parse_strategies(&HERE, node, &environments)?,
            None => Vec::new(),
        };
        schema.check_top(&root)?;
        if let Some(error) = unmatched {
            return Err(error);
        }
        let mut by_name: Vec<u32> = (0..environments.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| environments[a as usize].name.cmp(&environments[b as usize].name));
        Ok(Config { environments, schemas, policies, notifications, strategies, by_name })
    }

    pub fn environment(&self, name: &str) -> Result<&Environment> {
        let found = self.by_name.binary_search_by(|&i| self.environments[i as usize].name.as_str().cmp(name)).ok();
        found.map(|at| &self.environments[self.by_name[at] as usize]).ok_or_else(|| Error::UnknownEnvironment {
            name: name.to_string(),
            known: self.environment_names().join(", "),
        })
    }

    pub fn environment_names(&self) -> Vec<&str> {
        self.environments.iter().map(|e| e.name.as_str()).collect()
    }

    /// The environments a command works on: the named ones (each must exist), or all of them.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Environment>> {
        if names.is_empty() {
            return Ok(self.environments.iter().collect());
        }
        let mut out: Vec<&Environment> = Vec::new();
        for name in names {
            let env = self.environment(name)?;
            if !out.iter().any(|e| e.name == env.name) {
                out.push(env);
            }
        }
        Ok(out)
    }
}

/// Reads the environments of `cairn.yaml` one at a time, as the loader hands them over: each is
/// converted, then checked against the schema, and its tree dropped. The first error of each
/// kind is kept for its turn.
struct EnvironmentReader<'a> {
    schema: &'a ConfigSchema,
    environments: Vec<Environment>,
    /// How many were handed over while the file was read (the rest are in the tree).
    streamed: usize,
    invalid: Option<Error>,
    unmatched: Option<Error>,
}

impl<'a> EnvironmentReader<'a> {
    fn new(schema: &'a ConfigSchema) -> EnvironmentReader<'a> {
        EnvironmentReader { schema, environments: Vec::new(), streamed: 0, invalid: None, unmatched: None }
    }

    fn read(&mut self, key: &Key, node: &Node) {
        self.streamed += 1;
        if self.invalid.is_none() {
            match parse_environment(key, node) {
                Ok(env) => self.environments.push(env),
                Err(e) => self.invalid = Some(e),
            }
        }
        if self.unmatched.is_none() {
            self.unmatched = self.schema.check_environment(key, node).err();
        }
    }

    /// The environments, checked against one another, and the first schema mismatch.
    fn finish(self) -> Result<(Vec<Environment>, Option<Error>)> {
        if let Some(error) = self.invalid {
            return Err(error);
        }
        let mut out = self.environments;
        out.shrink_to_fit();
        for env in &out {
            let Some(p) = &env.promotion else { continue };
            if p.from == env.name {
                return Err(Error::Config {
                    message: format!(
                        "{CONFIG_FILE}:{}: environment `{}` cannot be promoted from itself",
                        p.line, env.name
                    ),
                });
            }
            if !out.iter().any(|e| e.name == p.from) {
                return Err(Error::Config {
                    message: format!(
                        "{CONFIG_FILE}:{}: environment `{}`: `promotion.from` names `{}`, which is not an environment{}",
                        p.line,
                        env.name,
                        p.from,
                        suggest(&p.from, out.iter().map(|e| e.name.as_str()))
                    ),
                });
            }
        }
        Ok((out, self.unmatched))
    }
}

fn parse_environment(key: &Key, value: &Node) -> Result<Environment> {
    let name = key.name.clone();
    if !valid_name(&name) {
        return Err(at_key(
            key,
            &format!(
                "environment name `{name}` is not valid: use lowercase letters, digits, `-` and `_`, starting with a letter or digit"
            ),
        ));
    }
    let what = format!("environment `{name}`");
    let map = expect_map(value, &what)?;
    check_keys(map, &["layers", "target", "drift", "verify", "on_failure", "promotion"], &what)?;
    let Some((_, layers_node)) = find(map, "layers") else {
        return Err(at_key(key, &format!("{what}: missing `layers` (a list of directories, later ones win)")));
    };
    let NodeValue::Seq(items) = &layers_node.value else {
        return Err(at(layers_node, &format!("{what}: `layers` must be a list, found {}", layers_node.kind_name())));
    };
    if items.is_empty() {
        return Err(at(layers_node, &format!("{what}: `layers` is empty")));
    }
    let mut layers = Vec::with_capacity(items.len());
    for item in items {
        if let NodeValue::Map(entries) = &item.value {
            check_keys(entries, &["helm"], &format!("{what}: a layer"))?;
            let Some((_, helm_node)) = find(entries, "helm") else {
                return Err(at(item, &format!("{what}: a layer is a path or `{{helm: {{chart, release, ...}}}}`")));
            };
            let helm = helm::parse_helm(&HERE, helm_node, &what)?;
            layers.push(Layer { path: helm.label(), helm: Some(Box::new(helm)), line: item.line });
            continue;
        }
        let Some(path) = item.as_str() else {
            return Err(at(
                item,
                &format!("{what}: a layer must be a path or a `helm` chart, found {}", item.kind_name()),
            ));
        };
        let path = normalize_relative(path).ok_or_else(|| {
            at(item, &format!("{what}: layer `{path}` must be a relative path inside the repository"))
        })?;
        layers.push(Layer { path, helm: None, line: item.line });
    }
    let Some((_, target_node)) = find(map, "target") else {
        return Err(at_key(
            key,
            &format!("{what}: missing `target` (for example `target: {{ local: {{ path: .cairn/live/{name} }} }}`)"),
        ));
    };
    let target = parse_target(target_node, &what)?;
    let drift = match find(map, "drift") {
        None => DriftPolicy::default(),
        Some((_, node)) => match node.as_str() {
            Some("repair") => DriftPolicy::Repair,
            Some("refuse") => DriftPolicy::Refuse,
            _ => {
                return Err(at(
                    node,
                    &format!(
                        "{what}: `drift` must be `repair` (the default) or `refuse`, found {}",
                        node.as_str().map_or_else(|| node.kind_name().to_string(), |t| format!("`{t}`"))
                    ),
                ));
            }
        },
    };
    let verify = match find(map, "verify") {
        Some((_, node)) => verify::parse_verify(&HERE, node, &what)?,
        None => Verify::default(),
    };
    let on_failure = match find(map, "on_failure") {
        Some((_, node)) => verify::parse_on_failure(&HERE, node, &what)?,
        None => OnFailure::default(),
    };
    let promotion = match find(map, "promotion") {
        Some((_, node)) => Some(Box::new(promotion::parse_promotion(&HERE, node, &what)?)),
        None => None,
    };
    Ok(Environment { name, layers, target, drift, verify, on_failure, promotion, line: key.line })
}

fn parse_target(node: &Node, what: &str) -> Result<TargetConfig> {
    let map = expect_map(node, &format!("{what}: `target`"))?;
    check_keys(map, &["local", "kubernetes"], &format!("{what}: `target`"))?;
    if map.len() != 1 {
        return Err(at(node, &format!("{what}: `target` must name exactly one of `local` or `kubernetes`")));
    }
    let (key, value) = &map[0];
    match key.name.as_str() {
        "local" => {
            let inner = expect_map(value, &format!("{what}: `target.local`"))?;
            check_keys(inner, &["path"], &format!("{what}: `target.local`"))?;
            let path = find(inner, "path")
                .and_then(|(_, v)| v.as_str())
                .filter(|p| !p.trim().is_empty())
                .ok_or_else(|| at(value, &format!("{what}: `target.local.path` must be a directory path")))?;
            Ok(TargetConfig::Local { path: path.to_string() })
        }
        _ => {
            let inner = match &value.value {
                NodeValue::Null => &[][..],
                _ => expect_map(value, &format!("{what}: `target.kubernetes`"))?,
            };
            check_keys(inner, &["context", "namespace", "state_namespace"], &format!("{what}: `target.kubernetes`"))?;
            let string = |k: &str| -> Result<Option<String>> {
                match find(inner, k) {
                    None => Ok(None),
                    Some((_, v)) => v
                        .as_str()
                        .map(|s| Some(s.to_string()))
                        .ok_or_else(|| at(v, &format!("{what}: `target.kubernetes.{k}` must be a string"))),
                }
            };
            Ok(TargetConfig::Kubernetes {
                context: string("context")?,
                namespace: string("namespace")?,
                state_namespace: string("state_namespace")?,
            })
        }
    }
}

fn parse_schemas(node: &Node) -> Result<Vec<SchemaMapping>> {
    let NodeValue::Seq(items) = &node.value else {
        return Err(at(node, &format!("`schemas` must be a list, found {}", node.kind_name())));
    };
    let mut out = Vec::new();
    for item in items {
        let map = expect_map(item, "a `schemas` entry")?;
        check_keys(map, &["apiVersion", "kind", "schema"], "a `schemas` entry")?;
        let field = |k: &str| -> Result<String> {
            find(map, k)
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| at(item, &format!("a `schemas` entry needs `{k}` (a string)")))
        };
        out.push(SchemaMapping {
            api_version: field("apiVersion")?,
            kind: field("kind")?,
            schema: field("schema")?,
            line: item.line,
        });
    }
    Ok(out)
}

fn parse_policies(node: &Node, environments: &[Environment]) -> Result<Vec<PolicyEntry>> {
    let NodeValue::Seq(items) = &node.value else {
        return Err(at(node, &format!("`policies` must be a list, found {}", node.kind_name())));
    };
    let mut out = Vec::new();
    for item in items {
        let map = expect_map(item, "a `policies` entry")?;
        if let Some((_, path)) = find(map, "include") {
            check_keys(map, &["include"], "a `policies` include")?;
            let path = path
                .as_str()
                .and_then(normalize_relative)
                .ok_or_else(|| at(path, "`include` must be a relative path to a file of policy bindings"))?;
            out.push(PolicyEntry::Include { path, line: item.line });
            continue;
        }
        check_keys(
            map,
            &["name", "plugin", "environments", "severity", "settings", "timeout", "fuel", "memory"],
            "a `policies` entry",
        )?;
        let string = |k: &str| -> Result<String> {
            find(map, k)
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| at(item, &format!("a `policies` entry needs `{k}` (a string)")))
        };
        let envs = match find(map, "environments") {
            None => None,
            Some((_, v)) => {
                let NodeValue::Seq(names) = &v.value else {
                    return Err(at(v, "`environments` must be a list of environment names"));
                };
                let mut list = Vec::new();
                for n in names {
                    let name = n.as_str().ok_or_else(|| at(n, "an environment name must be a string"))?;
                    if !environments.iter().any(|e| e.name == name) {
                        return Err(at(
                            n,
                            &format!(
                                "unknown environment `{name}`{}",
                                suggest(name, environments.iter().map(|e| e.name.as_str()))
                            ),
                        ));
                    }
                    list.push(name.to_string());
                }
                Some(list)
            }
        };
        let severity = match find(map, "severity") {
            None => Severity::Error,
            Some((_, v)) => match v.as_str() {
                Some("error") => Severity::Error,
                Some("warning") => Severity::Warning,
                _ => return Err(at(v, "`severity` must be `error` or `warning`")),
            },
        };
        out.push(PolicyEntry::Binding {
            name: string("name")?,
            plugin: string("plugin")?,
            environments: envs,
            severity,
            settings: find(map, "settings").map(|(_, v)| v.to_json()).unwrap_or(serde_json::Value::Null),
            timeout_ms: find(map, "timeout").map(|(_, v)| parse_duration_ms(v)).transpose()?,
            fuel: find(map, "fuel")
                .map(|(_, v)| match &v.value {
                    NodeValue::Number(n) if n.as_u64().is_some_and(|f| f > 0) => Ok(n.as_u64().unwrap_or_default()),
                    _ => Err(at(v, "`fuel` must be a whole number of fuel units, e.g. 20000000000")),
                })
                .transpose()?,
            memory_mib: find(map, "memory").map(|(_, v)| parse_mib(v)).transpose()?,
            file: CONFIG_FILE.to_string(),
            line: item.line,
        });
    }
    Ok(out)
}

/// `timeout: 2s`, `500ms`, `1m`, or a number of seconds: the grammar of [`crate::duration`],
/// from 1ms to 1h.
fn parse_duration_ms(v: &Node) -> Result<u64> {
    let bad = || at(v, "`timeout` must be a duration such as `2s`, `500ms` or `1m` (1ms to 1h)");
    let text = match &v.value {
        NodeValue::Number(n) => n.to_string(),
        _ => v.as_str().ok_or_else(bad)?.to_string(),
    };
    let duration = crate::duration::parse(&text).map_err(|_| bad())?;
    match u64::try_from(duration.as_millis()) {
        Ok(ms) if (1..=3_600_000).contains(&ms) => Ok(ms),
        _ => Err(bad()),
    }
}

/// `memory: 256Mi`, `1Gi`, or a number of MiB.
fn parse_mib(v: &Node) -> Result<u64> {
    let bad = || at(v, "`memory` must be a size such as `256Mi` or `1Gi` (at most 4Gi)");
    let mib = match &v.value {
        NodeValue::Number(n) => n.as_u64(),
        _ => {
            let text = v.as_str().ok_or_else(bad)?.trim();
            if let Some(d) = text.strip_suffix("Gi") {
                d.trim().parse::<u64>().ok().map(|g| g * 1024)
            } else {
                text.strip_suffix("Mi").unwrap_or(text).trim().parse::<u64>().ok()
            }
        }
    };
    match mib {
        Some(m) if (1..=4096).contains(&m) => Ok(m),
        _ => Err(bad()),
    }
}

/// Reads a file of more policy bindings (`include:`): a list of bindings, or a mapping with a
/// `policies:` list. Includes inside it are returned for the caller to follow.
pub fn parse_policy_file(file: &str, text: &str, environments: &[Environment]) -> Result<Vec<PolicyEntry>> {
    // The shared helpers prefix messages with cairn.yaml; name the included file instead.
    let rename = |e: Error| match e {
        Error::Config { message } => Error::Config {
            message: match message.strip_prefix(CONFIG_FILE) {
                Some(rest) => format!("{file}{rest}"),
                None => message,
            },
        },
        other => other,
    };
    let root = Node::parse(file, text)?;
    let list = match &root.value {
        NodeValue::Map(entries) => {
            check_keys(entries, &["policies"], "a policy bindings file").map_err(rename)?;
            match find(entries, "policies") {
                Some((_, node)) => node,
                None => return Ok(Vec::new()),
            }
        }
        _ => &root,
    };
    let mut entries = parse_policies(list, environments).map_err(rename)?;
    for entry in &mut entries {
        if let PolicyEntry::Binding { file: f, .. } = entry {
            *f = file.to_string();
        }
    }
    Ok(entries)
}

/// The published schema of `cairn.yaml` (editors use it for completion). The checks above give
/// the friendlier messages; this keeps the file and the code from drifting apart.
pub const CONFIG_SCHEMA: &str = include_str!("../schemas/cairn.schema.json");

/// `schemas/cairn.schema.json`, compiled: the top level with every environment's body left out,
/// and one environment. Each environment is checked on its own, as it is read: a JSON copy of
/// the whole file would cost as much memory again as the file itself.
struct ConfigSchema {
    top: jsonschema::Validator,
    environment: jsonschema::Validator,
}

impl ConfigSchema {
    fn new() -> Result<ConfigSchema> {
        let mut schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA)
            .map_err(|e| Error::Config { message: format!("the bundled cairn.yaml schema is corrupt: {e}") })?;
        let environment = serde_json::json!({
            "$defs": schema.get("$defs").cloned().unwrap_or(serde_json::Value::Null),
            "$ref": "#/$defs/environment",
        });
        if let Some(envs) = schema.pointer_mut("/properties/environments/additionalProperties") {
            *envs = serde_json::Value::Bool(true);
        }
        let build = |schema: &serde_json::Value| {
            jsonschema::options()
                .build(schema)
                .map_err(|e| Error::Config { message: format!("the bundled cairn.yaml schema cannot be used: {e}") })
        };
        Ok(ConfigSchema { top: build(&schema)?, environment: build(&environment)? })
    }

    fn refused(pointer: &str, (line, column): (u64, u64), error: &jsonschema::ValidationError) -> Error {
        Error::Config {
            message: format!(
                "{CONFIG_FILE}:{line}:{column}: `{}` does not match schemas/cairn.schema.json: {}",
                if pointer.is_empty() { "/" } else { pointer },
                error.masked()
            ),
        }
    }

    /// The top level, each environment an empty map (their bodies are checked as they are read).
    fn check_top(&self, root: &Node) -> Result<()> {
        let instance = match &root.value {
            NodeValue::Map(entries) => {
                let mut instance = serde_json::Map::new();
                for (key, value) in entries {
                    let json = match (&value.value, key.name.as_str()) {
                        (NodeValue::Map(envs), "environments") => serde_json::Value::Object(
                            envs.iter()
                                .map(|(k, _)| (k.name.clone(), serde_json::Value::Object(Default::default())))
                                .collect(),
                        ),
                        _ => value.to_json(),
                    };
                    instance.insert(key.name.clone(), json);
                }
                serde_json::Value::Object(instance)
            }
            _ => root.to_json(),
        };
        match self.top.iter_errors(&instance).next() {
            Some(error) => {
                let pointer = error.instance_path().as_str();
                let (_, line, column) = root.walk(pointer);
                Err(ConfigSchema::refused(pointer, (line, column), &error))
            }
            None => Ok(()),
        }
    }

    fn check_environment(&self, key: &Key, node: &Node) -> Result<()> {
        let body = node.to_json();
        let Some(error) = self.environment.iter_errors(&body).next() else { return Ok(()) };
        let inner = error.instance_path().as_str();
        let at = match node.walk(inner) {
            (0, ..) => (key.line, key.column),
            (_, line, column) => (line, column),
        };
        let pointer = format!("/environments/{}{inner}", crate::pointer::escape(&key.name));
        Err(ConfigSchema::refused(&pointer, at, &error))
    }
}

/// A relative path inside the repository, normalised (no `./`, no trailing `/`); `None` for an
/// absolute path or one that leaves the repository.
pub fn normalize_relative(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    if path.starts_with('/') || path.contains('\\') {
        return None;
    }
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// `cairn.yaml`'s own locator: the helpers below are [`Located`]'s, naming this file.
const HERE: Located<'static> = Located { file: CONFIG_FILE };

fn expect_map<'a>(node: &'a Node, what: &str) -> Result<&'a [(Key, Node)]> {
    HERE.map(node, what)
}

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a (Key, Node)> {
    map.iter().find(|(k, _)| k.name == name)
}

/// Rejects unknown keys, naming the key, its line and the nearest valid key.
fn check_keys(map: &[(Key, Node)], allowed: &[&str], what: &str) -> Result<()> {
    HERE.keys(map, allowed, what)
}

pub(crate) use crate::suggest::suggest;

fn at(node: &Node, message: &str) -> Error {
    HERE.at(node, message)
}

fn at_key(key: &Key, message: &str) -> Error {
    HERE.at_key(key, message)
}

/// Environment names mapped to their index, for stable ordering in reports.
pub fn environment_order(config: &Config) -> BTreeMap<&str, usize> {
    config.environments.iter().enumerate().map(|(i, e)| (e.name.as_str(), i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "environments:\n  staging:\n    layers: [base, environments/staging/]\n    target:\n      local: { path: .cairn/live/staging }\n  production:\n    layers: [base, ./environments/production]\n    target:\n      kubernetes: { context: prod, namespace: apps }\n";

    #[test]
    fn minimal_form_is_accepted() {
        let config = Config::parse(GOOD).expect("valid");
        assert_eq!(config.environment_names(), vec!["staging", "production"]);
        let staging = config.environment("staging").expect("exists");
        let layers: Vec<&str> = staging.layers.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(layers, vec!["base", "environments/staging"]);
        assert_eq!(staging.target, TargetConfig::Local { path: ".cairn/live/staging".into() });
        assert_eq!(
            config.environment("production").expect("exists").target,
            TargetConfig::Kubernetes {
                context: Some("prod".into()),
                namespace: Some("apps".into()),
                state_namespace: None
            }
        );
    }

    #[test]
    fn unknown_key_names_key_line_and_nearest() {
        let text = GOOD.replace("    layers: [base, environments/staging/]", "    layer: [base]");
        let err = Config::parse(&text).expect_err("invalid").to_string();
        assert!(err.starts_with("cairn.yaml:3:5: unknown key `layer`"), "{err}");
        assert!(err.contains("did you mean `layers`?"), "{err}");
    }

    #[test]
    fn layer_outside_the_repository_is_rejected() {
        let text = GOOD.replace("environments/staging/", "../elsewhere");
        let err = Config::parse(&text).expect_err("invalid").to_string();
        assert!(err.contains("cairn.yaml:3:") && err.contains("relative path inside"), "{err}");
    }

    #[test]
    fn unknown_environment_lists_known_ones() {
        let config = Config::parse(GOOD).expect("valid");
        let err = config.select(&["prod".into()]).expect_err("unknown").to_string();
        assert!(err.contains("`prod`") && err.contains("staging, production"), "{err}");
    }

    /// The whole schema check of a tree: the top level, then each environment.
    fn check_against_schema(root: &Node) -> Result<()> {
        let schema = ConfigSchema::new()?;
        schema.check_top(root)?;
        let envs = expect_map(root, "the top level")?.iter().find(|(k, _)| k.name == "environments");
        if let Some((_, NodeValue::Map(entries))) = envs.map(|(k, v)| (k, &v.value)) {
            for (key, node) in entries {
                schema.check_environment(key, node)?;
            }
        }
        Ok(())
    }

    #[test]
    fn the_published_schema_accepts_the_example_and_agrees_on_errors() {
        let example = include_str!("../examples/shop/cairn.yaml");
        Config::parse(example).expect("the example is valid");
        let full = format!(
            "version: 1\n{}schemas:\n  - {{ apiVersion: example.org/v1, kind: A, schema: schemas/a.json }}\npolicies:\n  - {{ name: baseline, plugin: compliance, environments: [staging], severity: warning, settings: {{ x: 1 }} }}\n  - include: policies/more.yaml\n",
            GOOD
        );
        let root = Node::parse(CONFIG_FILE, &full).expect("parses");
        check_against_schema(&root).expect("the full form matches the schema");
        let bad = Node::parse(CONFIG_FILE, &GOOD.replace("layers:", "layer:")).expect("parses");
        let err = check_against_schema(&bad).expect_err("schema rejects unknown keys");
        assert!(err.to_string().starts_with("cairn.yaml:2:3: `/environments/staging`"), "{err}");
        // Environments are checked one by one: a field deep in the second one is still named by
        // its full pointer and its own line.
        let deep = Node::parse(
            CONFIG_FILE,
            &GOOD.replace("      kubernetes: { context: prod, namespace: apps }", "      kubernetes: { context: 3 }"),
        )
        .expect("parses");
        let err = check_against_schema(&deep).expect_err("a number is not a context");
        assert!(
            err.to_string().starts_with("cairn.yaml:9:21: `/environments/production/target/kubernetes/context`"),
            "{err}"
        );
        // The top level still sees the environments' names.
        let named = Node::parse(CONFIG_FILE, &GOOD.replace("  staging:", "  Staging:")).expect("parses");
        let err = check_against_schema(&named).expect_err("names are lowercase");
        assert!(err.to_string().contains("`/environments`"), "{err}");
    }

    #[test]
    fn environments_read_as_they_stream_keep_their_order_errors_and_merged_entries() {
        let text = "environments:\n  staging: &staging\n    layers: [base, environments/staging]\n    target: { local: { path: .cairn/live/staging } }\n  <<: { production: { layers: [base], target: { local: { path: .cairn/live/production } } } }\n  dev: *staging\n";
        let config = Config::parse(text).expect("valid");
        assert_eq!(config.environment_names(), ["staging", "dev", "production"]);
        assert_eq!(config.environment("dev").expect("dev").layers[1].path, "environments/staging");
        assert_eq!(config.environment("production").expect("merged").line, 5);
        // The first environment that does not parse is named, whatever follows it.
        let bad = "environments:\n  a:\n    layers: [x]\n    target: { local: { path: a } }\n  b:\n    layers: []\n    target: { local: { path: b } }\n  c:\n    target: { local: { path: c } }\n";
        let err = Config::parse(bad).expect_err("invalid").to_string();
        assert!(err.starts_with("cairn.yaml:6:") && err.contains("`layers` is empty"), "{err}");
        // The top level is judged before any environment.
        let err = Config::parse(&format!("{bad}extra: 1\n")).expect_err("invalid").to_string();
        assert!(err.contains("extra"), "{err}");
    }

    #[test]
    fn target_must_name_one_kind() {
        let text = "environments:\n  a:\n    layers: [x]\n    target: {}\n";
        let err = Config::parse(text).expect_err("invalid").to_string();
        assert!(err.contains("exactly one"), "{err}");
    }
}
