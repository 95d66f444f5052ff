//! Policy plugins: the bindings of `cairn.yaml` (and the files it includes), the input each
//! plugin gets per environment, and its decision turned into findings. The sandbox is in
//! [`host`]; the ABI is `schemas/policy-input.schema.json` → `schemas/policy-output.schema.json`.

mod approvals;
mod cache;
pub mod host;
pub mod test;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{CONFIG_FILE, Config, Environment, PolicyEntry, Severity, normalize_relative};
use crate::error::{Error, Result};
use crate::owners::{self, CodeOwners};
use crate::render::{ObjectId, Rendered};
use crate::repo::{CommitInfo, Snapshot};
use crate::secrets::mask::Masker;
use crate::validate::codes::{PolicyRule, policy_code};
use crate::validate::locate::Locator;
use crate::validate::{Finding, Level};

pub use approvals::{Approval, add_approvals, read_approvals, trailer_approvals};
pub use host::{Failure, Host, Limits, Plugin};

/// The plugins shipped with cairn, built from `plugins/` for wasm32-wasip1 by build.rs.
pub const BUILTIN: &[(&str, &[u8])] = &[
    ("approvals", include_bytes!(env!("CAIRN_PLUGIN_APPROVALS"))),
    ("compliance", include_bytes!(env!("CAIRN_PLUGIN_COMPLIANCE"))),
];

/// The contract a plugin's output is checked against.
pub const OUTPUT_SCHEMA: &str = include_str!("../../schemas/policy-output.schema.json");
/// The contract of what plugins receive.
pub const INPUT_SCHEMA: &str = include_str!("../../schemas/policy-input.schema.json");

/// How deep `include:` files may nest (a cycle is refused before this).
const MAX_INCLUDE_DEPTH: usize = 8;

/// One policy bound to environments, with its settings and limits.
#[derive(Debug, Clone)]
pub struct Binding {
    pub name: String,
    pub plugin: String,
    pub environments: Option<Vec<String>>,
    pub severity: Severity,
    pub settings: Value,
    pub limits: Limits,
    pub file: String,
    pub line: u64,
}

impl Binding {
    pub fn applies_to(&self, environment: &str) -> bool {
        self.environments.as_ref().is_none_or(|envs| envs.iter().any(|e| e == environment))
    }
}

/// Every binding of the configuration, includes followed, names unique.
pub fn bindings(snapshot: &Snapshot, config: &Config) -> Result<Vec<Binding>> {
    let mut out = Vec::new();
    let mut stack = vec![CONFIG_FILE.to_string()];
    expand(snapshot, config, &config.policies, &mut stack, &mut out)?;
    let mut seen: HashMap<&str, &Binding> = HashMap::new();
    for b in &out {
        if let Some(first) = seen.insert(b.name.as_str(), b) {
            return Err(Error::Config {
                message: format!(
                    "{}:{}: policy `{}` is already bound at {}:{}; give each binding its own name",
                    b.file, b.line, b.name, first.file, first.line
                ),
            });
        }
    }
    Ok(out)
}

fn expand(
    snapshot: &Snapshot,
    config: &Config,
    entries: &[PolicyEntry],
    stack: &mut Vec<String>,
    out: &mut Vec<Binding>,
) -> Result<()> {
    for entry in entries {
        match entry {
            PolicyEntry::Binding {
                name,
                plugin,
                environments,
                severity,
                settings,
                timeout_ms,
                fuel,
                memory_mib,
                file,
                line,
            } => {
                let defaults = Limits::default();
                out.push(Binding {
                    name: name.clone(),
                    plugin: plugin.clone(),
                    environments: environments.clone(),
                    severity: *severity,
                    settings: settings.clone(),
                    limits: Limits {
                        fuel: fuel.unwrap_or(defaults.fuel),
                        timeout: timeout_ms.map_or(defaults.timeout, Duration::from_millis),
                        memory: memory_mib.map_or(defaults.memory, |m| (m as usize) << 20),
                        ..defaults
                    },
                    file: file.clone(),
                    line: *line,
                });
            }
            PolicyEntry::Include { path, line } => {
                let from = stack.last().cloned().unwrap_or_default();
                if stack.contains(path) || stack.len() > MAX_INCLUDE_DEPTH {
                    return Err(Error::Config {
                        message: format!(
                            "{from}:{line}: including `{path}` again makes a cycle ({})",
                            stack.join(" → ")
                        ),
                    });
                }
                let bytes = snapshot.read(path)?.ok_or_else(|| Error::Config {
                    message: format!("{from}:{line}: included policy file `{path}` does not exist"),
                })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::Config { message: format!("{path}: not valid UTF-8") })?;
                let nested = crate::config::parse_policy_file(path, &text, &config.environments)?;
                stack.push(path.clone());
                expand(snapshot, config, &nested, stack, out)?;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// What is known about the change besides the rendered objects.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Repository paths changed from base to head; `None` without `--base`.
    pub changed_paths: Option<Vec<String>>,
    /// The commit checked (the head).
    pub commit: Option<CommitInfo>,
    pub approvals: Vec<Approval>,
    /// Per environment: each object's change.
    pub changes: BTreeMap<String, Vec<ObjectChange>>,
}

/// What a change does to one object, as plugins see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectChange {
    pub object: ObjectRefOut,
    /// `create`, `update`, `delete` or `unchanged`.
    pub action: &'static str,
    /// JSON pointers of the changed fields (updates).
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRefOut {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRefOut {
    /// The reference of an object, its `apiVersion` read from a body when one is at hand.
    pub fn of(id: &ObjectId, body: Option<&Value>) -> ObjectRefOut {
        let api_version = body
            .and_then(|b| b.get("apiVersion"))
            .and_then(Value::as_str)
            .map_or_else(|| id.group.clone(), str::to_string);
        ObjectRefOut { api_version, kind: id.kind.clone(), namespace: id.namespace.clone(), name: id.name.clone() }
    }
}

/// The bound plugins, compiled and ready.
pub struct Policies {
    host: Host,
    loaded: Vec<(Binding, Arc<Plugin>)>,
    output_schema: jsonschema::Validator,
}

impl Policies {
    /// Loads every bound plugin; `None` when nothing is bound (no engine is started).
    pub fn load(snapshot: &Snapshot, config: &Config) -> Result<Option<Policies>> {
        let bindings = bindings(snapshot, config)?;
        if bindings.is_empty() {
            return Ok(None);
        }
        let host = Host::new().map_err(|e| Error::Policy {
            policy: bindings[0].name.clone(),
            plugin: bindings[0].plugin.clone(),
            message: e.to_string(),
        })?;
        let mut compiled: HashMap<String, Arc<Plugin>> = HashMap::new();
        let mut loaded = Vec::new();
        for binding in bindings {
            let plugin = match compiled.get(&binding.plugin) {
                Some(p) => p.clone(),
                None => {
                    let started = Instant::now();
                    let bytes = plugin_bytes(snapshot, &binding)?;
                    let plugin = Arc::new(host.load(&bytes).map_err(|e| fail(&binding, e))?);
                    tracing::debug!(plugin = %binding.plugin, elapsed = ?started.elapsed(), "plugin loaded");
                    compiled.insert(binding.plugin.clone(), plugin.clone());
                    plugin
                }
            };
            loaded.push((binding, plugin));
        }
        Ok(Some(Policies { host, loaded, output_schema: output_validator()? }))
    }

    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.loaded.iter().map(|(b, _)| b)
    }

    /// Runs every binding that applies to each rendered environment; violations become findings.
    pub fn evaluate(
        &self,
        snapshot: &Snapshot,
        config: &Config,
        rendered: &[Rendered],
        context: &Context,
    ) -> Result<Vec<Finding>> {
        let each: Vec<(&Rendered, &Context)> = rendered.iter().map(|r| (r, context)).collect();
        self.evaluate_each(snapshot, config, &each)
    }

    /// Like `evaluate`, each environment with its own change context (a direct apply knows a
    /// different change for each). The plugins run side by side — on a large environment they
    /// are most of the time a gate takes — while inputs are built and findings placed in order.
    pub fn evaluate_each(
        &self,
        snapshot: &Snapshot,
        config: &Config,
        environments: &[(&Rendered, &Context)],
    ) -> Result<Vec<Finding>> {
        let owners = CodeOwners::load(snapshot)?;
        let masker = Masker::new();
        let mut locator = Locator::new(snapshot);
        let owners_json = json!({
            "file": owners.file(),
            "rules": owners.rules().iter().map(|(p, o)| json!({"pattern": p, "owners": o})).collect::<Vec<_>>(),
        });
        // Inputs, in order: one per environment and binding that applies to it.
        let mut jobs: Vec<Job> = Vec::new();
        for (env, context) in environments {
            let bound: Vec<&(Binding, Arc<Plugin>)> =
                self.loaded.iter().filter(|(b, _)| b.applies_to(&env.environment)).collect();
            if bound.is_empty() {
                continue;
            }
            let commit = context.commit.as_ref().map(commit_json);
            let approvals: Vec<Value> = context
                .approvals
                .iter()
                .map(|a| {
                    json!({
                        "by": a.by, "commit_id": a.commit_id, "submitted_at": a.at,
                        "source": a.source.as_deref().unwrap_or("review"),
                    })
                })
                .collect();
            // Only objects holding secrets need a masked copy; the others are encoded where they are.
            let objects: Vec<Cow<'_, Value>> = env
                .objects
                .iter()
                .map(|o| {
                    if crate::secrets::holds_secrets(&o.id.kind, &o.secrets) {
                        Cow::Owned(masker.mask_object(&o.body, &o.secrets))
                    } else {
                        Cow::Borrowed(&o.body)
                    }
                })
                .collect();
            let changed_paths = context.changed_paths.as_ref().map(|paths| {
                paths
                    .iter()
                    .filter(|p| touches(config.environments.iter().find(|e| e.name == env.environment), p))
                    .map(|p| json!({"path": p, "owners": owners.owners_of(p)}))
                    .collect::<Vec<_>>()
            });
            for loaded in bound {
                let binding = &loaded.0;
                let input = InputDocument {
                    settings: &binding.settings,
                    policy: json!({"name": binding.name, "severity": severity_name(binding.severity)}),
                    environment: &env.environment,
                    objects: &objects,
                    changes: context.changes.get(&env.environment).map(Vec::as_slice).unwrap_or_default(),
                    changed_paths: changed_paths.as_deref(),
                    commit: commit.as_ref(),
                    approvals: &approvals,
                    owners: &owners_json,
                };
                let bytes = serde_json::to_vec(&input).map_err(|e| Error::Policy {
                    policy: binding.name.clone(),
                    plugin: binding.plugin.clone(),
                    message: format!("cannot encode the input: {e}"),
                })?;
                jobs.push((env, loaded, bytes));
            }
        }
        // The plugins run side by side: each evaluation has its own store, fuel and limits.
        let outputs: Vec<Result<Vec<u8>>> = jobs
            .par_iter_mut()
            .map(|(env, (binding, plugin), bytes)| {
                let started = Instant::now();
                let output = self.host.evaluate(plugin, std::mem::take(bytes), binding.limits).map_err(|e| {
                    let mut err = fail(binding, e);
                    if let Error::Policy { message, .. } = &mut err {
                        message.push_str(&format!(" (environment {})", env.environment));
                    }
                    err
                });
                tracing::info!(policy = %binding.name, environment = %env.environment, elapsed = ?started.elapsed(), "policy evaluated");
                output
            })
            .collect();
        let mut findings = Vec::new();
        let mut indexes: HashMap<&str, HashMap<ObjectKey, usize>> = HashMap::new();
        for ((env, (binding, _), _), output) in jobs.iter().zip(outputs) {
            let decision = self.decode(binding, &output?)?;
            let index = indexes.entry(env.environment.as_str()).or_insert_with(|| {
                env.objects
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        ((o.id.group.as_str(), o.id.kind.as_str(), o.id.namespace.as_deref(), o.id.name.as_str()), i)
                    })
                    .collect()
            });
            for (v, level) in decision.into_findings(binding) {
                let (object, file, line, column, excerpt) = match &v.object {
                    Some(r) => {
                        let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                        let id = ObjectId {
                            group: group.to_string(),
                            kind: r.kind.clone(),
                            namespace: r.namespace.clone(),
                            name: r.name.clone(),
                        };
                        match index.get(&(group, r.kind.as_str(), r.namespace.as_deref(), r.name.as_str())) {
                            Some(&i) => {
                                let pointer = if v.path.starts_with('/') { v.path.as_str() } else { "" };
                                let place = locator.locate(&env.objects[i].sources, pointer)?;
                                (Some(id), place.file, place.line, place.column, place.excerpt)
                            }
                            None => (Some(id), binding.file.clone(), binding.line, 1, None),
                        }
                    }
                    None if !v.path.is_empty() => (None, v.path.clone(), 0, 0, None),
                    None => (None, binding.file.clone(), binding.line, 1, None),
                };
                findings.push(Finding {
                    code: policy_code(&binding.name, &v.rule),
                    severity: level,
                    environment: env.environment.clone(),
                    object,
                    file,
                    line,
                    column,
                    pointer: if v.object.is_some() { v.path.clone() } else { String::new() },
                    schema_path: String::new(),
                    message: v.message.clone(),
                    excerpt,
                });
            }
        }
        crate::validate::sort(&mut findings);
        Ok(findings)
    }

    /// Parses and checks a plugin's output against the published contract.
    fn decode(&self, binding: &Binding, output: &[u8]) -> Result<Decision> {
        let bad =
            |message: String| Error::Policy { policy: binding.name.clone(), plugin: binding.plugin.clone(), message };
        let value: Value = serde_json::from_slice(output).map_err(|e| {
            let start: String = String::from_utf8_lossy(output).chars().take(80).collect();
            bad(format!("returned output that is not JSON ({e}); it began with {start:?}"))
        })?;
        if let Some(error) = self.output_schema.iter_errors(&value).next() {
            return Err(bad(format!(
                "returned output that breaks the plugin contract (schemas/policy-output.schema.json) at `{}`: {error}",
                error.instance_path()
            )));
        }
        serde_json::from_value(value).map_err(|e| bad(format!("returned an unreadable decision: {e}")))
    }
}

/// One evaluation to run: the environment, the binding with its compiled plugin, the input.
type Job<'a> = (&'a Rendered, &'a (Binding, Arc<Plugin>), Vec<u8>);

/// An object's identity as borrowed strings (group, kind, namespace, name), for lookups.
type ObjectKey<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);

/// The input of one evaluation, borrowed so the environment's objects are encoded straight
/// from where they are, once per binding, without a copy.
#[derive(serde::Serialize)]
struct InputDocument<'a> {
    settings: &'a Value,
    policy: Value,
    environment: &'a str,
    objects: &'a [Cow<'a, Value>],
    changes: &'a [ObjectChange],
    changed_paths: Option<&'a [Value]>,
    commit: Option<&'a Value>,
    approvals: &'a [Value],
    owners: &'a Value,
}

/// A plugin's decision, as the output schema describes it.
#[derive(Debug, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    #[serde(default)]
    pub violations: Vec<Violation>,
    #[serde(default)]
    pub warnings: Vec<Violation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    pub rule: String,
    pub message: String,
    #[serde(default)]
    pub object: Option<ObjectRef>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub severity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
}

impl Decision {
    /// Violations at the binding's severity (or the plugin's own `warning`), then warnings. A
    /// denial without a violation still blocks, with a rule of its own.
    pub fn into_findings(self, binding: &Binding) -> Vec<(Violation, Level)> {
        let blocking = if binding.severity == Severity::Warning { Level::Warning } else { Level::Error };
        let mut out: Vec<(Violation, Level)> = Vec::new();
        if !self.allowed && self.violations.is_empty() {
            out.push((
                Violation {
                    rule: PolicyRule::Denied.as_str().into(),
                    message: "the plugin denied the change without naming a violation".into(),
                    object: None,
                    path: String::new(),
                    severity: None,
                },
                blocking,
            ));
        }
        for v in self.violations {
            let level = if v.severity.as_deref() == Some("warning") { Level::Warning } else { blocking };
            out.push((v, level));
        }
        out.extend(self.warnings.into_iter().map(|v| (v, Level::Warning)));
        out
    }
}

fn output_validator() -> Result<jsonschema::Validator> {
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA)
        .map_err(|e| Error::Config { message: format!("schemas/policy-output.schema.json is not JSON: {e}") })?;
    jsonschema::validator_for(&schema).map_err(|e| Error::Config {
        message: format!("schemas/policy-output.schema.json is not a usable schema: {e}"),
    })
}

fn fail(binding: &Binding, failure: Failure) -> Error {
    Error::Policy { policy: binding.name.clone(), plugin: binding.plugin.clone(), message: failure.to_string() }
}

/// The module of a binding: a plugin shipped with cairn, or a `.wasm` file in the repository at
/// the revision checked (so a plugin change is reviewed like any other).
pub fn plugin_bytes(snapshot: &Snapshot, binding: &Binding) -> Result<Vec<u8>> {
    if let Some((_, bytes)) = BUILTIN.iter().find(|(name, _)| *name == binding.plugin) {
        return Ok(bytes.to_vec());
    }
    let at = format!("{}:{}", binding.file, binding.line);
    if !binding.plugin.contains('/') && !binding.plugin.ends_with(".wasm") {
        let shipped: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        return Err(Error::Config {
            message: format!(
                "{at}: unknown plugin `{}`: cairn ships {}; or give the path of a .wasm file in the repository",
                binding.plugin,
                shipped.join(", ")
            ),
        });
    }
    let path = normalize_relative(&binding.plugin).ok_or_else(|| Error::Config {
        message: format!("{at}: plugin `{}` must be a path inside the repository", binding.plugin),
    })?;
    snapshot.read(&path)?.ok_or_else(|| Error::Config {
        message: format!("{at}: plugin file `{path}` does not exist in the repository"),
    })
}

/// Whether a changed path concerns an environment: one of its layers, or a file every
/// environment depends on.
pub fn touches(env: Option<&Environment>, path: &str) -> bool {
    let global = path == CONFIG_FILE
        || path.starts_with("schemas/")
        || path.starts_with("policies/")
        || owners::LOCATIONS.contains(&path);
    global
        || env.is_some_and(|env| {
            env.layers.iter().flat_map(|layer| layer.paths()).any(|p| path == p || path.starts_with(&format!("{p}/")))
        })
}

fn commit_json(c: &CommitInfo) -> Value {
    json!({
        "sha": c.sha,
        "author": {"name": c.author.name, "email": c.author.email},
        "message": if c.body.is_empty() { c.subject.clone() } else { format!("{}\n\n{}", c.subject, c.body) },
        "trailers": c.trailers.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>(),
    })
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}
