//! The pull-request step: which environments a change touches, their rendering at the head,
//! validation, and a plan against live state — saved so the merge applies exactly what the pull
//! request showed.

use serde::{Deserialize, Serialize};

use crate::config::{CONFIG_FILE, Config};
use crate::error::{Error, Result};
use crate::plan::{self, Plan};
use crate::release::owners;
use crate::render::{Rendered, Renderer};
use crate::repo::{CommitInfo, Repo};
use crate::target;
use crate::validate::{self, Finding};

/// The saved-plan format this build writes and reads.
pub const PLAN_FORMAT: &str = "cairn-plan/1";

/// What `check` found, and what `apply --plan` applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// One approval of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// Reads an approvals file: the JSON that GitHub's "list reviews for a pull request" API returns
/// (`[{"user": {"login": …}, "state": "APPROVED", "submitted_at": …}, …]`; a reviewer's latest
/// approving or change-requesting review counts), or `[{"by": …, "at": …}]`, or `["login", …]`.
pub fn read_approvals(path: &std::path::Path) -> Result<Vec<Approval>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read the approvals file", e))?;
    let shape = |found: &str| Error::Usage {
        message: format!(
            "{}: approvals must be a JSON list of GitHub reviews ({{\"user\": {{\"login\": …}}, \"state\": …}}), of {{\"by\": …}} objects, or of logins; found {found}",
            path.display()
        ),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| shape(&format!("invalid JSON ({e})")))?;
    let items = value.as_array().ok_or_else(|| shape("something that is not a list"))?;
    let mut latest: Vec<(String, bool, Option<String>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (by, approved, at) = match item {
            serde_json::Value::String(login) => (login.clone(), true, None),
            serde_json::Value::Object(map) => {
                let at = map.get("submitted_at").or_else(|| map.get("at")).and_then(|v| v.as_str()).map(str::to_string);
                if let Some(login) = map.get("user").and_then(|u| u.get("login")).and_then(|l| l.as_str()) {
                    let state = map
                        .get("state")
                        .and_then(|s| s.as_str())
                        .ok_or_else(|| shape(&format!("review {i} without `state`")))?;
                    match state {
                        "APPROVED" => (login.to_string(), true, at),
                        "CHANGES_REQUESTED" | "DISMISSED" => (login.to_string(), false, at),
                        _ => continue, // comments neither grant nor revoke
                    }
                } else if let Some(by) = map.get("by").and_then(|b| b.as_str()) {
                    (by.to_string(), true, at)
                } else {
                    return Err(shape(&format!("item {i} with neither `user.login` nor `by`")));
                }
            }
            _ => return Err(shape(&format!("item {i} that is neither an object nor a login"))),
        };
        latest.retain(|(who, _, _)| *who != by);
        latest.push((by, approved, at));
    }
    Ok(latest.into_iter().filter(|(_, approved, _)| *approved).map(|(by, _, at)| Approval { by, at }).collect())
}

impl SavedPlan {
    pub fn blocked(&self) -> bool {
        validate::has_errors(&self.findings)
    }

    /// Reads a saved plan, refusing one that is truncated, from a newer cairn, or not a plan.
    pub fn read(path: &std::path::Path) -> Result<SavedPlan> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read the plan", e))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Usage {
            message: format!(
                "{}: not a readable cairn plan ({e}); was it truncated? run `cairn check --out` again",
                path.display()
            ),
        })?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(PLAN_FORMAT) => {}
            Some(other) => {
                return Err(Error::Usage {
                    message: format!(
                        "{}: plan format `{other}` is not `{PLAN_FORMAT}` (made by cairn {}); use the same cairn for check and apply",
                        path.display(),
                        value.get("cairn_version").and_then(serde_json::Value::as_str).unwrap_or("of another version")
                    ),
                });
            }
            None => {
                return Err(Error::Usage { message: format!("{}: not a cairn plan (no `format`)", path.display()) });
            }
        }
        serde_json::from_value(value).map_err(|e| Error::Usage {
            message: format!("{}: damaged cairn plan ({e}); run `cairn check --out` again", path.display()),
        })
    }
}

/// Environments whose layers contain a changed path. A change to `cairn.yaml`, `schemas/`,
/// `policies/` or a CODEOWNERS file touches them all.
pub fn touched_environments<'a>(config: &'a Config, paths: &[String]) -> Vec<&'a str> {
    let global = paths.iter().any(|p| {
        p == CONFIG_FILE
            || p.starts_with("schemas/")
            || p.starts_with("policies/")
            || owners::LOCATIONS.contains(&p.as_str())
    });
    config
        .environments
        .iter()
        .filter(|env| {
            global
                || env
                    .layers
                    .iter()
                    .any(|layer| paths.iter().any(|p| p == &layer.path || p.starts_with(&format!("{}/", layer.path))))
        })
        .map(|env| env.name.as_str())
        .collect()
}

/// Checks a change from `base` to `head`; returns the saved plan and the rendered environments.
pub fn check(
    repo: &Repo,
    base: &str,
    head: &str,
    options: validate::Options,
    prune: bool,
    approvals: Vec<Approval>,
) -> Result<(SavedPlan, Vec<Rendered>)> {
    // Refuses a base that is not in the head's history.
    repo.ensure_ancestor(base, head)?;
    let changes = repo.changed_paths(base, head)?;
    let snapshot = repo.snapshot(Some(head))?;
    let config = Config::load(&snapshot)?;
    let touched: Vec<String> = touched_environments(&config, &changes.paths).into_iter().map(str::to_string).collect();
    let environments = config.select(&touched)?;
    let environments = if touched.is_empty() { Vec::new() } else { environments };
    let mut renderer = Renderer::new(&snapshot, &environments);
    let mut rendered = Vec::new();
    for env in &environments {
        rendered.push(renderer.render(env)?);
    }
    drop(renderer);
    let findings = validate::validate(&snapshot, &config, &rendered, options)?;
    let mut plans = Vec::new();
    for (env, r) in environments.iter().zip(&rendered) {
        let target = target::open(repo.root(), env)?;
        plans.push(plan::plan(r, &target, &snapshot.source, prune)?);
    }
    let saved = SavedPlan {
        format: PLAN_FORMAT.to_string(),
        cairn_version: env!("CARGO_PKG_VERSION").to_string(),
        repository: repo.root_commit(head)?,
        base: repo.commit_info(base)?,
        head: repo.commit_info(head)?,
        changed_paths: changes.paths,
        plans,
        findings,
        approvals,
    };
    Ok((saved, rendered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Approval>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("approvals.json");
        std::fs::write(&path, text).expect("write");
        read_approvals(&path)
    }

    #[test]
    fn github_reviews_latest_state_wins() {
        let list = read(
            r#"[{"user": {"login": "ann"}, "state": "APPROVED", "submitted_at": "2026-01-01T00:00:00Z"},
                {"user": {"login": "bob"}, "state": "APPROVED"},
                {"user": {"login": "bob"}, "state": "CHANGES_REQUESTED"},
                {"user": {"login": "cy"}, "state": "COMMENTED"}]"#,
        )
        .expect("reads");
        assert_eq!(list, vec![Approval { by: "ann".into(), at: Some("2026-01-01T00:00:00Z".into()) }]);
        assert_eq!(read(r#"["ann", {"by": "bob"}]"#).expect("reads").len(), 2);
    }

    #[test]
    fn wrong_shapes_are_explained() {
        for (text, needle) in [
            ("{}", "not a list"),
            ("[1]", "item 0"),
            ("[{\"x\": 1}]", "neither `user.login` nor `by`"),
            ("[", "invalid JSON"),
        ] {
            let err = read(text).expect_err("refused").to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
