//! The Rust side of cairn's policy plugin ABI.
//!
//! A plugin is a WASI preview-1 command module: cairn writes one JSON [`Input`] to its stdin and
//! reads one JSON [`Output`] from its stdout; exit code 0 means the output is a decision. A
//! plugin that rejects its settings exits non-zero with the reason on stderr, and cairn reports
//! it as an error naming the policy. `schemas/policy-input.schema.json` and
//! `schemas/policy-output.schema.json` in the cairn repository are the contract; these types
//! follow them.
//!
//! ```no_run
//! use cairn_policy_sdk::{Input, Output, Violation};
//!
//! fn evaluate(input: Input) -> Result<Output, String> {
//!     let mut out = Output::default();
//!     for object in &input.objects {
//!         if object.kind() == "Pod" {
//!             out.violations.push(Violation::on(object, "no-bare-pods", "use a Deployment"));
//!         }
//!     }
//!     Ok(out)
//! }
//!
//! fn main() {
//!     cairn_policy_sdk::run(evaluate)
//! }
//! ```

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What cairn hands a plugin: one call per policy binding and environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Input {
    /// The binding's `settings` from `cairn.yaml` (null when absent).
    #[serde(default)]
    pub settings: Value,
    /// The binding: its name and severity.
    #[serde(default)]
    pub policy: Policy,
    pub environment: String,
    /// Every rendered object of the environment, secret values masked.
    #[serde(default)]
    pub objects: Vec<Object>,
    /// What the change does to each object, when known (a plan, or base → head).
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The repository files the change touches in this environment, each with its owners from
    /// CODEOWNERS; `None` when no change set is known (no `--base`).
    #[serde(default)]
    pub changed_paths: Option<Vec<ChangedPath>>,
    /// The commit being checked.
    #[serde(default)]
    pub commit: Option<Commit>,
    /// Approvals of the change: GitHub reviews (`--approvals FILE`) and `Approved-by:` trailers.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// The CODEOWNERS rules in file order (the last matching rule wins).
    #[serde(default)]
    pub owners: Owners,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub severity: String,
}

/// A rendered Kubernetes-style object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Object(pub Value);

impl Object {
    pub fn kind(&self) -> &str {
        self.0.get("kind").and_then(Value::as_str).unwrap_or_default()
    }
    pub fn api_version(&self) -> &str {
        self.0.get("apiVersion").and_then(Value::as_str).unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.0.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
    }
    pub fn namespace(&self) -> Option<&str> {
        self.0.pointer("/metadata/namespace").and_then(Value::as_str)
    }
    /// A label or annotation value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.0.get("metadata")?.get("annotations")?.get(key)?.as_str()
    }
    pub fn label(&self, key: &str) -> Option<&str> {
        self.0.get("metadata")?.get("labels")?.get(key)?.as_str()
    }
    /// The reference a violation carries.
    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }
}

/// Which object a violation is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// One object's change: `create`, `update`, `delete` or `unchanged`, with the changed fields as
/// JSON pointers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Change {
    pub object: ObjectRef,
    pub action: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangedPath {
    pub path: String,
    /// Owners from CODEOWNERS (`@user`, `@org/team` or an email), empty when none.
    #[serde(default)]
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub author: Person,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub trailers: Vec<Trailer>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

/// An approval: who, of which commit, when, and where cairn learned of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    /// The commit the approval was given for, when known.
    #[serde(default)]
    pub commit_id: Option<String>,
    #[serde(default)]
    pub submitted_at: Option<String>,
    /// `review` (the approvals file) or `trailer` (an `Approved-by:` trailer).
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Owners {
    /// The CODEOWNERS file read, when there is one.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub rules: Vec<OwnerRule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OwnerRule {
    pub pattern: String,
    pub owners: Vec<String>,
}

/// A plugin's decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// False when any violation blocks; cairn also derives it from `violations`.
    pub allowed: bool,
    #[serde(default)]
    pub violations: Vec<Violation>,
    #[serde(default)]
    pub warnings: Vec<Violation>,
}

impl Default for Output {
    fn default() -> Output {
        Output { allowed: true, violations: Vec::new(), warnings: Vec::new() }
    }
}

/// A rule that does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// A stable rule id (`privileged`); cairn reports it as `policy/<binding>/<rule>`.
    pub rule: String,
    pub message: String,
    /// The object, or none for a violation about the change as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// A JSON pointer into the object, or a repository path when there is no object.
    #[serde(default)]
    pub path: String,
    /// `error` or `warning`; empty means the binding's severity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
}

impl Violation {
    pub fn on(object: &Object, rule: &str, message: impl Into<String>) -> Violation {
        Violation {
            rule: rule.to_string(),
            message: message.into(),
            object: Some(object.reference()),
            ..Violation::default()
        }
    }

    pub fn at(mut self, pointer: impl Into<String>) -> Violation {
        self.path = pointer.into();
        self
    }
}

/// Reads the input from stdin, calls `evaluate`, writes the output to stdout. An `Err` (settings
/// the plugin rejects, an input it cannot read) goes to stderr with exit code 1.
pub fn run(evaluate: impl FnOnce(Input) -> Result<Output, String>) {
    let code = match run_inner(evaluate) {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            1
        }
    };
    std::process::exit(code)
}

fn run_inner(evaluate: impl FnOnce(Input) -> Result<Output, String>) -> Result<(), String> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).map_err(|e| format!("cannot read the input: {e}"))?;
    let input: Input = serde_json::from_slice(&bytes).map_err(|e| format!("cannot parse the input: {e}"))?;
    let mut output = evaluate(input)?;
    output.allowed = output.allowed && output.violations.iter().all(|v| v.severity == "warning");
    let text = serde_json::to_vec(&output).map_err(|e| format!("cannot write the output: {e}"))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&text).and_then(|()| stdout.flush()).map_err(|e| format!("cannot write the output: {e}"))
}

/// A key as one RFC 6901 reference token for [`Violation::at`]: `~` → `~0`, `/` → `~1`, so
/// the annotation `cairn/ignore-probes` is at `/metadata/annotations/cairn~1ignore-probes`.
/// (The same escaping as cairn's `pointer::escape`; a plugin cannot link cairn itself.)
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reads a typed settings value, naming the setting when it has the wrong shape.
pub fn setting<T: serde::de::DeserializeOwned>(settings: &Value, pointer: &str) -> Result<Option<T>, String> {
    match settings.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| format!("settings{}: {e}", pointer.replace('/', "."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_escape_tilde_then_slash() {
        assert_eq!(pointer_token("cairn/ignore-probes"), "cairn~1ignore-probes");
        assert_eq!(pointer_token("a~b/c"), "a~0b~1c");
        assert_eq!(pointer_token("~1"), "~01");
    }
}
