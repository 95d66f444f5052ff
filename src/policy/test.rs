//! `cairn policy test DIR`: runs plugins against fixture inputs with expected decisions, so a
//! plugin's author can test it in CI.
//!
//! Every `*.yaml` file in DIR with a top-level `cases:` list is a suite (other YAML files are
//! fixtures the suites refer to):
//!
//! ```yaml
//! plugin: compliance            # shipped with cairn, or a .wasm path relative to this file
//! settings: { rules: { replicas: { min: 3 } } }
//! cases:
//!   - name: a privileged container is refused
//!     environment: production   # default `test`
//!     objects: [ { apiVersion: v1, kind: Pod, … } ]   # or objects_file: pods.yaml
//!     input: { approvals: [ … ] }                      # more input fields, optional
//!     expect:
//!       allowed: false
//!       violations: [privileged]  # rule ids, in any order
//!       warnings: []              # checked only when given
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::host::{Host, Limits};
use super::{BUILTIN, Decision};
use crate::error::{Error, Result};
use crate::yaml::Node;

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub suite: String,
    pub name: String,
    pub passed: bool,
    /// What differed from the expectation (empty when it passed).
    pub problems: Vec<String>,
    pub violations: Vec<String>,
    pub warnings: Vec<String>,
}

/// Runs every suite in `dir`.
pub fn run(dir: &Path) -> Result<Vec<CaseResult>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot read the policy test directory", e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Usage { message: format!("{}: no *.yaml files found", dir.display()) });
    }
    let host = Host::new().map_err(|e| Error::Usage { message: format!("cannot start the plugin host: {e}") })?;
    let mut results = Vec::new();
    let mut suites = 0;
    for file in files {
        let suite = match read_yaml(&file) {
            Ok(v) if v.get("cases").is_some() => v,
            // A fixture of objects (possibly several documents), not a suite.
            _ => continue,
        };
        suites += 1;
        results.extend(run_suite(&host, &file, &suite)?);
    }
    if suites == 0 {
        return Err(Error::Usage {
            message: format!("{}: no test suite (a YAML file with `cases:`) found", dir.display()),
        });
    }
    Ok(results)
}

fn read_yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
    Ok(Node::parse(&path.display().to_string(), &text)?.to_json())
}

fn run_suite(host: &Host, file: &Path, suite: &Value) -> Result<Vec<CaseResult>> {
    let name = file.display().to_string();
    let bad = |message: String| Error::Usage { message: format!("{name}: {message}") };
    let base = file.parent().unwrap_or(Path::new("."));
    let plugin_name = suite.get("plugin").and_then(Value::as_str).ok_or_else(|| bad("needs `plugin:`".into()))?;
    let bytes = match BUILTIN.iter().find(|(n, _)| *n == plugin_name) {
        Some((_, bytes)) => bytes.to_vec(),
        None => {
            let path = base.join(plugin_name);
            std::fs::read(&path).map_err(|e| Error::io(&path, "cannot read the plugin", e))?
        }
    };
    let plugin = host.load(&bytes).map_err(|e| bad(format!("plugin `{plugin_name}` {e}")))?;
    let cases = suite.get("cases").and_then(Value::as_array).ok_or_else(|| bad("needs a `cases:` list".into()))?;
    let mut out = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let case_name =
            case.get("name").and_then(Value::as_str).map_or_else(|| format!("case {}", i + 1), str::to_string);
        let objects = match (case.get("objects"), case.get("objects_file").and_then(Value::as_str)) {
            (Some(list), _) => list.clone(),
            (None, Some(path)) => {
                let path = base.join(path);
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
                let docs = Node::parse_documents(&path.display().to_string(), &text)?;
                Value::Array(docs.iter().map(Node::to_json).filter(|v| !v.is_null()).collect())
            }
            (None, None) => Value::Array(Vec::new()),
        };
        let mut input = json!({
            "settings": case.get("settings").or_else(|| suite.get("settings")).cloned().unwrap_or(Value::Null),
            "policy": {"name": "test", "severity": "error"},
            "environment": case.get("environment").and_then(Value::as_str).unwrap_or("test"),
            "objects": objects,
            "changes": [],
            "changed_paths": null,
            "commit": null,
            "approvals": [],
            "owners": {"file": null, "rules": []},
        });
        if let (Some(Value::Object(extra)), Some(map)) = (case.get("input"), input.as_object_mut()) {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        let expect = case.get("expect").ok_or_else(|| bad(format!("{case_name}: needs `expect:`")))?;
        let bytes = serde_json::to_vec(&input).map_err(|e| bad(e.to_string()))?;
        let mut problems = Vec::new();
        let (violations, warnings, allowed) = match host.evaluate(&plugin, bytes.clone(), Limits::default()) {
            Ok(output) => match serde_json::from_slice::<Decision>(&output) {
                Ok(d) => (
                    d.violations.iter().map(|v| v.rule.clone()).collect::<Vec<_>>(),
                    d.warnings.iter().map(|v| v.rule.clone()).collect::<Vec<_>>(),
                    Some(d.allowed),
                ),
                Err(e) => {
                    problems.push(format!("the output is not a decision: {e}"));
                    (Vec::new(), Vec::new(), None)
                }
            },
            Err(e) => {
                if expect.get("error").and_then(Value::as_str).is_none_or(|needle| !e.to_string().contains(needle)) {
                    problems.push(format!("the plugin {e}"));
                }
                (Vec::new(), Vec::new(), None)
            }
        };
        if allowed.is_some() {
            if let Some(needle) = expect.get("error").and_then(Value::as_str) {
                problems.push(format!("expected an error containing {needle:?}, got a decision"));
            }
            if let Some(want) = expect.get("allowed").and_then(Value::as_bool)
                && Some(want) != allowed
            {
                problems.push(format!("allowed: expected {want}, got {}", !want));
            }
            for (key, got) in [("violations", &violations), ("warnings", &warnings)] {
                if let Some(want) = expect.get(key).and_then(Value::as_array) {
                    let mut want: Vec<String> = want.iter().filter_map(Value::as_str).map(str::to_string).collect();
                    let mut got = got.clone();
                    want.sort();
                    got.sort();
                    if want != got {
                        problems.push(format!("{key}: expected [{}], got [{}]", want.join(", "), got.join(", ")));
                    }
                }
            }
        }
        out.push(CaseResult {
            suite: name.clone(),
            name: case_name,
            passed: problems.is_empty(),
            problems,
            violations,
            warnings,
        });
    }
    Ok(out)
}
