//! The saved plan of the pull-request step (`pipeline::check` makes it), so the merge applies
//! exactly what the pull request showed; which environments a change touches.

use serde::{Deserialize, Serialize, Serializer};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::policy;
use crate::repo::CommitInfo;
use crate::secrets::{Maskable, Masker, Seal};
use crate::validate::{self, Finding};

pub use crate::policy::{Approval, read_approvals};

/// The saved-plan format this build writes and reads.
pub const PLAN_FORMAT: &str = "cairn-plan/1";

/// What `check` found, and what `apply --plan` applies.
///
/// Its plans may hold decrypted values until it is masked, so it has no `Serialize`: it is
/// written and shown as a [`crate::secrets::Masked`] saved plan. One read back from a file holds
/// masked values only; `apply --plan` re-renders the desired objects from git and compares
/// digests, which masking leaves as they are.
#[derive(Debug, Clone, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub cairn_version: String,
    /// The repository's first commit: a plan is only applied to the repository it came from.
    pub repository: String,
    pub base: CommitInfo,
    pub head: CommitInfo,
    pub changed_paths: Vec<String>,
    /// One plan per touched environment, each change with the live digest it was computed
    /// against.
    pub plans: Vec<Plan>,
    pub findings: Vec<Finding>,
    /// Who approved the change (from `--approvals`), for the report and for policies.
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

impl SavedPlan {
    pub fn blocked(&self) -> bool {
        validate::has_errors(&self.findings)
    }

    /// Reads a saved plan, refusing one that is truncated, from a newer cairn, or not a plan.
    pub fn read(path: &std::path::Path) -> Result<SavedPlan> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read the plan", e))?;
        let bad = |problem: String, source: Option<serde_json::Error>| Error::SavedPlan {
            path: path.to_path_buf(),
            problem,
            source,
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            bad("not a readable cairn plan (was it truncated? run `cairn check --out` again)".into(), Some(e))
        })?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(PLAN_FORMAT) => {}
            Some(other) => {
                return Err(bad(
                    format!(
                        "plan format `{other}` is not `{PLAN_FORMAT}` (made by cairn {}); use the same cairn for check and apply",
                        value.get("cairn_version").and_then(serde_json::Value::as_str).unwrap_or("of another version")
                    ),
                    None,
                ));
            }
            None => return Err(bad("not a cairn plan (no `format`)".into(), None)),
        }
        serde_json::from_value(value)
            .map_err(|e| bad("damaged cairn plan (run `cairn check --out` again)".into(), Some(e)))
    }
}

impl Maskable for SavedPlan {
    fn mask(&self, masker: &Masker) -> SavedPlan {
        SavedPlan { plans: self.plans.mask(masker), ..self.clone() }
    }

    fn serialize_masked<S: Serializer>(&self, serializer: S, seal: Seal) -> std::result::Result<S::Ok, S::Error> {
        /// What `derive(Serialize)` wrote; destructured without `..`, so a new field does not
        /// compile until it is added here.
        #[derive(Serialize)]
        struct Out<'a> {
            format: &'a str,
            cairn_version: &'a str,
            repository: &'a str,
            base: &'a CommitInfo,
            head: &'a CommitInfo,
            changed_paths: &'a [String],
            plans: crate::secrets::Part<'a, Vec<Plan>>,
            findings: &'a [Finding],
            approvals: &'a [Approval],
        }
        let SavedPlan { format, cairn_version, repository, base, head, changed_paths, plans, findings, approvals } =
            self;
        let plans = seal.part(plans);
        Out { format, cairn_version, repository, base, head, changed_paths, plans, findings, approvals }
            .serialize(serializer)
    }
}

/// Environments whose layers contain a changed path. A change to `cairn.yaml`, `schemas/`,
/// `policies/` or a CODEOWNERS file touches them all.
pub fn touched_environments<'a>(config: &'a Config, paths: &[String]) -> Vec<&'a str> {
    config
        .environments
        .iter()
        .filter(|env| paths.iter().any(|p| policy::touches(Some(env), p)))
        .map(|env| env.name.as_str())
        .collect()
}

/// Per environment, what each plan does to each object, as policies see it.
pub fn policy_changes(plans: &[Plan]) -> std::collections::BTreeMap<String, Vec<policy::ObjectChange>> {
    plans
        .iter()
        .map(|p| {
            let changes = p
                .changes
                .iter()
                .map(|c| policy::ObjectChange {
                    object: policy::ObjectRefOut::of(&c.object, c.desired.as_ref().or(c.live.as_ref())),
                    action: c.action.as_str(),
                    fields: c.fields.iter().map(|f| f.pointer.clone()).collect(),
                })
                .collect();
            (p.environment.clone(), changes)
        })
        .collect()
}
