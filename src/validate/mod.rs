//! Validation of rendered objects: built-in checks that hold for every kind, and JSON Schema
//! validation against the repository's own schemas, CRDs arriving in the same environment, and
//! the bundled schemas of the built-in Kubernetes kinds. Findings are diagnostics (data with a
//! stable code), not errors; a schema that cannot be used is an error.

mod builtin;
pub mod codes;
pub(crate) mod locate;
pub mod schema;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::Result;
use crate::render::{ObjectId, Rendered};
use crate::repo::Snapshot;

pub use codes::{Code, Family, PolicyRule};
pub use schema::{Options, Schemas};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code from the registry in [`codes`], documented in docs/findings.md.
    pub code: String,
    pub severity: Level,
    pub environment: String,
    /// The object, or none for a finding about the change as a whole (a missing approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectId>,
    /// The layer document that produced the offending value (relative to the repository root).
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// JSON pointer of the offending value in the rendered object.
    pub pointer: String,
    /// JSON pointer of the schema keyword that failed (empty for built-in checks).
    #[serde(default)]
    pub schema_path: String,
    pub message: String,
    /// The source line, for people (not serialized).
    #[serde(skip)]
    pub excerpt: Option<String>,
}

impl Finding {
    /// What the finding is about, for people: the object, or "the change".
    pub fn subject(&self) -> String {
        self.object.as_ref().map_or_else(|| "the change".to_string(), ObjectId::to_string)
    }
}

/// A finding before it is placed in a file: where in the object, not yet where in the source.
pub(crate) struct Unplaced {
    pub code: Code,
    pub severity: Level,
    pub pointer: String,
    pub schema_path: String,
    pub message: String,
}

/// Validates every object of every rendered environment. Findings are sorted by file, line,
/// column and code.
pub fn validate(snapshot: &Snapshot, config: &Config, rendered: &[Rendered], options: Options) -> Result<Vec<Finding>> {
    let schemas = Schemas::load(snapshot, config, options)?;
    tracing::debug!("schemas loaded");
    let mut locator = locate::Locator::new(snapshot);
    let mut findings = Vec::new();
    for env in rendered {
        let validators = schemas.for_environment(env)?;
        tracing::debug!(environment = %env.environment, "schemas compiled");
        let raw: Vec<(usize, Vec<Unplaced>)> = env
            .objects
            .par_iter()
            .enumerate()
            .map(|(i, object)| {
                let mut out = builtin::check(object);
                out.extend(validators.check(object));
                (i, out)
            })
            .filter(|(_, out)| !out.is_empty())
            .collect();
        for (i, unplaced) in raw {
            let object = &env.objects[i];
            for u in unplaced {
                let place = locator.locate(&object.sources, &u.pointer)?;
                findings.push(Finding {
                    code: u.code.as_str().to_string(),
                    severity: u.severity,
                    environment: env.environment.clone(),
                    object: Some(object.id.clone()),
                    file: place.file,
                    line: place.line,
                    column: place.column,
                    pointer: u.pointer,
                    schema_path: u.schema_path,
                    message: u.message,
                    excerpt: place.excerpt,
                });
            }
        }
    }
    tracing::debug!(findings = findings.len(), "validated");
    sort(&mut findings);
    Ok(findings)
}

/// What a validation looked at, for the reports that count it: the environments and the number
/// of objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub environments: Vec<String>,
    pub objects: usize,
}

impl Scope {
    pub fn of(rendered: &[Rendered]) -> Scope {
        Scope {
            environments: rendered.iter().map(|r| r.environment.clone()).collect(),
            objects: rendered.iter().map(|r| r.objects.len()).sum(),
        }
    }
}

/// Sorts findings for reports: by file, line, column, code and environment.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.code, &a.environment).cmp(&(&b.file, b.line, b.column, &b.code, &b.environment))
    });
}

/// Whether any finding blocks (exit 1, no apply).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Level::Error)
}
