//! "What is in each environment, who owns it, which version": the current release, each
//! workload's images and owners, and whether live state drifted from what the release applied.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::notes::{desired_at, images};
use super::{Outcome, Release, ReleaseKind};
use crate::error::Result;
use crate::owners::CodeOwners;
use crate::plan::Action;
use crate::render::ObjectId;
use crate::repo::Repo;
use crate::target::Target;

/// Labels that name an owner directly, checked in this order before CODEOWNERS.
pub const OWNER_LABELS: &[&str] = &["owner", "team", "app.kubernetes.io/owner"];

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    pub environment: String,
    pub target: String,
    /// The last succeeded release: what should be live.
    pub release: Option<CurrentRelease>,
    /// The latest release when it did not succeed (failed, interrupted, in progress).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_attempt: Option<Attempt>,
    pub workloads: Vec<Workload>,
    pub drift: bool,
    pub drifted: Vec<Drifted>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentRelease {
    pub id: u64,
    pub kind: ReleaseKind,
    pub commit: Option<String>,
    pub subject: Option<String>,
    pub source: String,
    pub applied_at: Option<String>,
    pub actor: String,
    pub approvals: Vec<String>,
    /// The release was forced past error findings (`--override-findings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<crate::gate::Override>,
    /// How its last verification ended, when it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::release::verification::Verdict>,
    /// For a rollback cairn made after a failed verification: the release it undid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_rollback_of: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub id: u64,
    pub outcome: Outcome,
    pub started_at: String,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub object: ObjectId,
    /// Container name → image.
    pub images: BTreeMap<String, String>,
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drifted {
    pub object: ObjectId,
    /// `changed` (differs from what the release applied) or `missing` (gone from the target).
    pub state: &'static str,
}

/// The status of one environment from its release records, live state and git.
pub fn environment_status(
    repo: &Repo,
    environment: &str,
    target: &Target,
    releases: &[Release],
) -> Result<EnvironmentStatus> {
    let current = releases.iter().rev().find(|r| r.outcome == Outcome::Succeeded);
    let latest_attempt = releases.last().filter(|r| r.outcome != Outcome::Succeeded).map(|r| Attempt {
        id: r.id,
        outcome: r.outcome,
        started_at: r.started_at.clone(),
        actor: r.actor.clone(),
    });

    // What the release left live: every object it created, updated or kept.
    let expected: Vec<(&ObjectId, &str)> = current
        .map(|r| {
            r.objects
                .iter()
                .filter(|o| o.action != Action::Delete && o.error.is_none())
                .map(|o| (&o.object, o.digest.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut ids: Vec<&ObjectId> = expected.iter().map(|(id, _)| *id).collect();
    let inventory = target.inventory()?;
    let extra: Vec<&ObjectId> = inventory.objects.iter().filter(|id| !ids.contains(id)).collect();
    ids.extend(extra);
    let live = target.read_objects(&ids)?;
    let digester = target.digester(false)?;
    let drifted: Vec<Drifted> = expected
        .iter()
        .filter_map(|(id, recorded)| match live.get(*id) {
            None => Some(Drifted { object: (*id).clone(), state: "missing" }),
            Some(body) if !digester.matches(body, recorded) => {
                Some(Drifted { object: (*id).clone(), state: "changed" })
            }
            Some(_) => None,
        })
        .collect();

    // Owners: a label on the object, else CODEOWNERS of the files that define it at the
    // release's commit.
    let mut sources: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    let mut codeowners = CodeOwners::default();
    if let Some(sha) = current.and_then(Release::sha)
        && repo.has_commit(sha)
    {
        for object in desired_at(repo, environment, sha)? {
            sources.insert(object.id.clone(), object.sources.iter().map(|s| s.file.clone()).collect());
        }
        codeowners = CodeOwners::load(&repo.snapshot(Some(sha))?)?;
    }
    let mut workloads: Vec<Workload> = live
        .iter()
        .filter_map(|(id, body)| {
            let images = images(body);
            if images.is_empty() {
                return None;
            }
            let owners = owner_label(body).map(|o| vec![o]).unwrap_or_else(|| {
                let set: BTreeSet<String> = sources
                    .get(id)
                    .into_iter()
                    .flatten()
                    .flat_map(|file| codeowners.owners_of(file).iter().cloned())
                    .collect();
                set.into_iter().collect()
            });
            Some(Workload { object: id.clone(), images, owners })
        })
        .collect();
    workloads.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(EnvironmentStatus {
        environment: environment.to_string(),
        target: target.describe(),
        release: current.map(|r| CurrentRelease {
            id: r.id,
            kind: r.kind,
            commit: r.sha().map(str::to_string),
            subject: r.commit.as_ref().map(|c| c.subject.clone()),
            source: r.source.clone(),
            applied_at: r.finished_at.clone(),
            actor: r.actor.clone(),
            approvals: r.approvals.clone(),
            overridden: r.overridden.clone(),
            verified: r.verification.as_ref().map(|v| v.verdict),
            automatic_rollback_of: r.cause.as_ref().map(|c| c.release),
        }),
        latest_attempt,
        workloads,
        drift: !drifted.is_empty(),
        drifted,
    })
}

fn owner_label(body: &Value) -> Option<String> {
    let labels = body.pointer("/metadata/labels")?.as_object()?;
    OWNER_LABELS.iter().find_map(|l| labels.get(*l)?.as_str().map(str::to_string))
}
