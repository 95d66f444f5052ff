//! Release records: what an apply put where, when, by whom, with whose approval, and how it
//! ended. Stored with the target; `history`, `notes`, `status`, `metrics` and `rollback` read them
//! back together with git history.

pub mod commits;
pub mod delivery;
pub mod metrics;
pub mod notes;
pub mod rollout;
pub mod site;
pub mod status;
pub mod verification;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gate::Override;
use crate::plan::{Action, Summary};
use crate::render::ObjectId;
use crate::repo::CommitInfo;
use crate::target::{Lock, Target};
use verification::{RollbackCause, Verification};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Written when an apply starts; an apply that dies leaves this behind.
    InProgress,
    Succeeded,
    /// At least one object could not be applied; the others were.
    Failed,
    /// The apply stopped before finishing (process killed); found and marked by the next apply.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in-progress",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What happened to one object in a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseObject {
    pub object: ObjectId,
    pub action: Action,
    pub digest: String,
    /// Planned but not applied yet: an interrupted release lists what it did not get to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// Why applying this object failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Field managers whose fields this apply took back (drift repaired in a cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reclaimed_from: Vec<String>,
}

/// Why a release happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseKind {
    /// An apply of a revision (the usual case).
    #[default]
    Apply,
    /// `cairn rollback`: the desired state of an earlier release, applied again.
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: u64,
    #[serde(default)]
    pub kind: ReleaseKind,
    /// For a rollback: the release whose state was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
    pub environment: String,
    /// The commit applied; absent when applying the working tree of a repository without commits.
    pub commit: Option<CommitInfo>,
    /// `abc123def456`, `abc123def456+dirty` (working tree with uncommitted edits), …
    pub source: String,
    pub previous: Option<u64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub actor: String,
    /// Who approved what was applied: the approvals the gate saw (an approvals file, and the
    /// `Approved-by:` trailers of the commits the release brings in).
    pub approvals: Vec<String>,
    pub target: String,
    pub prune: bool,
    pub summary: Summary,
    pub objects: Vec<ReleaseObject>,
    /// Objects whose live state differed, before this apply, from what the previous release
    /// applied (changed or removed outside cairn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<ObjectId>,
    /// Set when the release went through the gate on `--override-findings`: who forced it, why,
    /// and the error findings that would have stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<Override>,
    pub outcome: Outcome,
    /// The last verification of this release (`cairn verify`, `apply --verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// For a rollback cairn made on its own: the failed verification that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<RollbackCause>,
    /// Container images the release changed (old → new), for messages that must not render.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<notes::VersionChange>,
    /// What `cairn notify` told whom about this release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<delivery::Delivery>,
    /// Deployments released by a strategy (canary, blue/green), each with its steps as they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<rollout::Rollout>,
    /// The charts the release's chart layers were rendered from (chart, version, digest, helm).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<crate::render::helm::ChartRender>,
}

impl Release {
    /// Seconds from start to finish, when finished.
    pub fn duration_seconds(&self) -> Option<f64> {
        let start: jiff::Timestamp = self.started_at.parse().ok()?;
        let end: jiff::Timestamp = self.finished_at.as_ref()?.parse().ok()?;
        Some((end - start).total(jiff::Unit::Second).ok()?.max(0.0))
    }
}

impl Release {
    /// Whether error findings were overridden to make this release.
    pub fn forced(&self) -> bool {
        self.overridden.is_some()
    }

    /// The commit id, when the release was made from a commit.
    pub fn sha(&self) -> Option<&str> {
        self.commit.as_ref().map(|c| c.sha.as_str())
    }

    pub fn finished(&self) -> Option<jiff::Timestamp> {
        self.finished_at.as_ref()?.parse().ok()
    }

    pub fn started(&self) -> Option<jiff::Timestamp> {
        self.started_at.parse().ok()
    }
}

/// Finds a release by id, or says which ids exist.
pub fn find(releases: &[Release], environment: &str, id: u64) -> Result<Release> {
    releases.iter().find(|r| r.id == id).cloned().ok_or_else(|| Error::Usage {
        message: match (releases.first(), releases.last()) {
            (Some(first), Some(last)) => {
                format!(
                    "environment `{environment}` has no release {id} (its releases are {} to {})",
                    first.id, last.id
                )
            }
            _ => format!("environment `{environment}` has no releases yet"),
        },
    })
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Every release of the target's environment, oldest first.
pub fn list(target: &Target) -> Result<Vec<Release>> {
    let mut releases = Vec::new();
    for (place, bytes) in target.records()? {
        let release: Release = serde_json::from_slice(&bytes)
            .map_err(|e| Error::CorruptState { path: place.into(), message: e.to_string() })?;
        releases.push(release);
    }
    releases.sort_by_key(|r| r.id);
    Ok(releases)
}

/// One release of the target's environment by id, read alone (not the whole history).
pub fn read(target: &Target, id: u64) -> Result<Option<Release>> {
    let Some((place, bytes)) = target.record(id)? else { return Ok(None) };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::CorruptState { path: place.into(), message: e.to_string() })
}

/// Writes (or rewrites) a release record. Call only while holding the lock.
pub fn write(target: &Target, lock: &Lock, release: &Release) -> Result<()> {
    // Compact in a cluster: a ConfigMap holds at most 1 MiB.
    let json = match target {
        Target::Local(_) => serde_json::to_string_pretty(release),
        Target::Kubernetes(_) => serde_json::to_string(release),
    }
    .map_err(|e| Error::Usage { message: e.to_string() })?;
    target.write_record(lock, release.id, &json)
}

/// Marks releases left in progress by a killed apply as interrupted, and returns them. Call only
/// while holding the lock: then nobody else can be running them.
pub fn mark_interrupted(target: &Target, lock: &Lock, releases: &mut [Release]) -> Result<Vec<Release>> {
    let mut found = Vec::new();
    for release in releases.iter_mut().filter(|r| r.outcome == Outcome::InProgress) {
        release.outcome = Outcome::Interrupted;
        write(target, lock, release)?;
        found.push(release.clone());
    }
    Ok(found)
}
