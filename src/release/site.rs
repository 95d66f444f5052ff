//! The status site (`cairn site`): everything people ask about the environments, side by side,
//! read back from release records, live state and git — the data; `report::site` writes the
//! pages.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics::{self, Metrics};
use super::notes::{self, Notes, Selection};
use super::status::{EnvironmentStatus, environment_status};
use super::{Outcome, Release};
use crate::error::Result;
use crate::render::ObjectId;
use crate::repo::Repo;
use crate::target::Target;

/// Release notes pages are written for this many of an environment's latest releases; older
/// ones stay in the history table (their notes are one `cairn notes --release ID` away).
pub const NOTES_PER_ENVIRONMENT: usize = 20;

/// One environment: where it stands, every release, and the notes of the latest ones.
#[derive(Debug, Clone, Serialize)]
pub struct SiteEnvironment {
    pub status: EnvironmentStatus,
    /// Oldest first, as recorded.
    pub releases: Vec<Release>,
    /// Notes of the latest succeeded releases (at most `NOTES_PER_ENVIRONMENT`), newest first.
    pub notes: Vec<Notes>,
}

/// A workload across the environments: the versions (images) each runs.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixRow {
    pub workload: ObjectId,
    pub owners: Vec<String>,
    /// Per environment (in `cairn.yaml` order): container → image, or `None` where the
    /// environment does not run the workload.
    pub cells: Vec<Option<BTreeMap<String, String>>>,
    /// Whether any two environments differ for this workload.
    pub differs: bool,
}

/// Environment `environment` holds every commit `behind` holds, and `commits` more.
#[derive(Debug, Clone, Serialize)]
pub struct Ahead {
    pub environment: String,
    pub behind: String,
    pub commits: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Site {
    /// When the site was made (RFC 3339).
    pub generated_at: String,
    pub environments: Vec<SiteEnvironment>,
    pub matrix: Vec<MatrixRow>,
    pub ahead: Vec<Ahead>,
    pub metrics: Vec<Metrics>,
}

/// What the site shows, from the environments given (in order) with their targets and releases.
pub fn build(
    repo: &Repo,
    environments: Vec<(String, Target, Vec<Release>)>,
    since: jiff::Timestamp,
    until: jiff::Timestamp,
    repo_url: Option<&str>,
) -> Result<Site> {
    let built: Vec<Result<(SiteEnvironment, Metrics)>> = environments
        .into_iter()
        .map(|(name, target, releases)| {
            let status = environment_status(repo, &name, &target, &releases)?;
            let mut notes_of = Vec::new();
            for release in releases.iter().rev().filter(|r| r.outcome == Outcome::Succeeded).take(NOTES_PER_ENVIRONMENT)
            {
                // A release whose commit is gone from this clone (a shallow one) has no notes.
                if release.sha().is_some_and(|sha| !repo.has_commit(sha)) {
                    continue;
                }
                notes_of.push(notes::build(repo, &name, &releases, &Selection::Release(Some(release.id)), repo_url)?);
            }
            let metrics = metrics::compute(repo, &name, &releases, since, until)?;
            Ok((SiteEnvironment { status, releases, notes: notes_of }, metrics))
        })
        .collect();
    let mut environments = Vec::new();
    let mut all_metrics = Vec::new();
    for result in built {
        let (env, m) = result?;
        environments.push(env);
        all_metrics.push(m);
    }
    let matrix = matrix(&environments);
    let ahead = ahead(repo, &environments)?;
    Ok(Site { generated_at: super::now(), environments, matrix, ahead, metrics: all_metrics })
}

fn matrix(environments: &[SiteEnvironment]) -> Vec<MatrixRow> {
    let mut rows: BTreeMap<ObjectId, MatrixRow> = BTreeMap::new();
    for (e, env) in environments.iter().enumerate() {
        for w in &env.status.workloads {
            let row = rows.entry(w.object.clone()).or_insert_with(|| MatrixRow {
                workload: w.object.clone(),
                owners: Vec::new(),
                cells: vec![None; environments.len()],
                differs: false,
            });
            row.cells[e] = Some(w.images.clone());
            for owner in &w.owners {
                if !row.owners.contains(owner) {
                    row.owners.push(owner.clone());
                }
            }
        }
    }
    rows.into_values()
        .map(|mut row| {
            row.differs = row.cells.windows(2).any(|pair| pair[0] != pair[1]);
            row
        })
        .collect()
}

/// For each pair of environments whose current releases are different commits of one line of
/// history: which is ahead, by how many commits.
fn ahead(repo: &Repo, environments: &[SiteEnvironment]) -> Result<Vec<Ahead>> {
    let commits: Vec<(&str, &str)> = environments
        .iter()
        .filter_map(|e| {
            let sha = e.status.release.as_ref()?.commit.as_deref()?;
            repo.has_commit(sha).then_some((e.status.environment.as_str(), sha))
        })
        .collect();
    let mut out = Vec::new();
    for &(a, a_sha) in &commits {
        for &(b, b_sha) in &commits {
            if a == b || a_sha == b_sha || repo.ensure_ancestor(b_sha, a_sha).is_err() {
                continue;
            }
            let count = repo.commits_between(Some(b_sha), a_sha)?.len();
            out.push(Ahead { environment: a.to_string(), behind: b.to_string(), commits: count });
        }
    }
    Ok(out)
}
