//! Applying a plan to the local target: under the environment's lock, in dependency order,
//! idempotently, pruning only what cairn manages, and recording a release.

use std::collections::BTreeSet;

use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::error::Result;
use crate::plan::{self, Action, Plan};
use crate::release::{self, Outcome, Release, ReleaseKind, ReleaseObject};
use crate::render::{ObjectId, Rendered};
use crate::repo::SourceInfo;
use crate::target::local::Inventory;
use crate::target::{Holder, LocalTarget};

pub struct ApplyOptions {
    pub prune: bool,
    pub actor: String,
    pub kind: ReleaseKind,
    /// For a rollback: the release whose state is restored.
    pub rollback_to: Option<u64>,
}

/// One object whose plan at apply time differs from the saved plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Moved {
    pub object: ObjectId,
    /// What the saved plan said, e.g. `update sha256:ab12… (live sha256:cd34…)`.
    pub planned: String,
    /// What applying now would do.
    pub now: String,
}

/// What an apply did: applied (with a release), or refused because the state moved since the
/// saved plan was made (nothing written, no release).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Applied {
    Applied(Box<ApplyReport>),
    Refused { environment: String, moved: Vec<Moved> },
}

/// The plan that was applied and the release it produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyReport {
    pub plan: Plan,
    pub release: Release,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.release.outcome == Outcome::Succeeded
    }
}

/// Plans afresh under the lock (so the plan is what is really applied), applies it, and records
/// the release. One failing object does not stop the others; the release says which failed.
pub fn apply(
    target: &LocalTarget,
    rendered: &Rendered,
    source: &SourceInfo,
    options: &ApplyOptions,
    progress: &ProgressBar,
) -> Result<ApplyReport> {
    match apply_checked(target, rendered, source, options, progress, None)? {
        Applied::Applied(report) => Ok(*report),
        // Without a saved plan there is nothing to compare with, so this cannot happen.
        Applied::Refused { environment, .. } => Err(crate::Error::Usage {
            message: format!("apply of `{environment}` was refused without a saved plan to compare with"),
        }),
    }
}

/// Like `apply`, but when `expected` (a saved plan) is given, the plan computed under the lock must
/// match it object by object — same action, same desired digest, same live digest — or nothing is
/// written and the differences are returned.
pub fn apply_checked(
    target: &LocalTarget,
    rendered: &Rendered,
    source: &SourceInfo,
    options: &ApplyOptions,
    progress: &ProgressBar,
    expected: Option<&Plan>,
) -> Result<Applied> {
    let lock = target.lock(&Holder::current(&options.actor))?;
    let mut history = release::list(target)?;
    release::mark_interrupted(target, &lock, &mut history)?;
    let plan = plan::plan(rendered, target, source, options.prune)?;
    if let Some(saved) = expected {
        let moved = moved(saved, &plan);
        if !moved.is_empty() {
            return Ok(Applied::Refused { environment: plan.environment.clone(), moved });
        }
    }
    let previous = history.iter().rev().find(|r| r.outcome == Outcome::Succeeded);
    let drift = match previous {
        Some(p) => drifted(target, p)?,
        None => Vec::new(),
    };

    let commit = source.commit().cloned();
    let approvals =
        commit.as_ref().map(|c| c.trailer_values("Approved-by").map(str::to_string).collect()).unwrap_or_default();
    let mut record = Release {
        id: history.last().map_or(1, |r| r.id + 1),
        kind: options.kind,
        rollback_to: options.rollback_to,
        environment: rendered.environment.clone(),
        commit,
        source: source.label(),
        previous: previous.map(|r| r.id),
        started_at: release::now(),
        finished_at: None,
        actor: options.actor.clone(),
        approvals,
        target: plan.target.clone(),
        prune: options.prune,
        summary: plan.summary,
        objects: Vec::new(),
        drift,
        outcome: Outcome::InProgress,
    };
    release::write(target, &lock, &record)?;

    // Record everything that may exist after this apply before touching objects, so an apply
    // killed half-way still leaves every object it wrote in the inventory for the next prune.
    let old = target.inventory()?;
    let mut inventory = old.clone();
    inventory.environment = rendered.environment.clone();
    inventory.objects.extend(rendered.objects.iter().map(|o| o.id.clone()));
    for object in &rendered.objects {
        if object.secrets.is_empty() {
            inventory.secrets.remove(&object.id.to_string());
        } else {
            inventory.secrets.insert(object.id.to_string(), object.secrets.clone());
        }
    }
    if inventory != old {
        target.write_inventory(&lock, &inventory)?;
    }

    let work = plan.changes.iter().filter(|c| c.action != Action::Unchanged).count();
    progress.set_length(work as u64);
    // Objects of one apply rank (and one direction) have no ordering among them, so each group is
    // written in parallel; groups run one after another, so namespaces exist before what lives
    // in them and deletions run in reverse order.
    let mut outcomes: Vec<Option<String>> = Vec::with_capacity(plan.changes.len());
    for group in plan.changes.chunk_by(|a, b| {
        a.object.apply_rank() == b.object.apply_rank() && (a.action == Action::Delete) == (b.action == Action::Delete)
    }) {
        let results: Vec<Option<String>> = group
            .par_iter()
            .map(|change| {
                let result = match (change.action, &change.desired) {
                    (Action::Create | Action::Update, Some(body)) => target.put(&lock, &change.object, body),
                    (Action::Delete, _) => target.delete(&lock, &change.object),
                    _ => return None,
                };
                progress.inc(1);
                result.err().map(|e| e.to_string())
            })
            .collect();
        outcomes.extend(results);
    }
    let mut failed = false;
    let mut deleted: BTreeSet<ObjectId> = BTreeSet::new();
    for (change, error) in plan.changes.iter().zip(outcomes) {
        failed |= error.is_some();
        if change.action == Action::Delete && error.is_none() {
            deleted.insert(change.object.clone());
        }
        record.objects.push(ReleaseObject {
            object: change.object.clone(),
            action: change.action,
            digest: change.digest.clone(),
            error,
        });
    }

    let desired: BTreeSet<ObjectId> = rendered.objects.iter().map(|o| o.id.clone()).collect();
    let final_objects: BTreeSet<ObjectId> =
        if options.prune && !failed { desired } else { inventory.objects.difference(&deleted).cloned().collect() };
    let mut secrets = inventory.secrets.clone();
    if !secrets.is_empty() {
        let names: BTreeSet<String> = final_objects.iter().map(ObjectId::to_string).collect();
        secrets.retain(|id, _| names.contains(id));
    }
    let final_inventory = Inventory { environment: rendered.environment.clone(), objects: final_objects, secrets };
    if final_inventory != inventory {
        target.write_inventory(&lock, &final_inventory)?;
    }

    record.finished_at = Some(release::now());
    record.outcome = if failed { Outcome::Failed } else { Outcome::Succeeded };
    release::write(target, &lock, &record)?;
    progress.finish_and_clear();
    Ok(Applied::Applied(Box::new(ApplyReport { plan, release: record })))
}

/// Objects whose change differs between a saved plan and the plan of now.
pub fn moved(saved: &Plan, now: &Plan) -> Vec<Moved> {
    use std::collections::BTreeMap;
    let index = |p: &Plan| -> BTreeMap<ObjectId, String> {
        p.changes.iter().map(|c| (c.object.clone(), describe(c))).collect()
    };
    let (before, after) = (index(saved), index(now));
    let ids: BTreeSet<&ObjectId> = before.keys().chain(after.keys()).collect();
    ids.into_iter()
        .filter_map(|id| {
            let (p, n) = (before.get(id), after.get(id));
            (p != n).then(|| Moved {
                object: id.clone(),
                planned: p.cloned().unwrap_or_else(|| "nothing".to_string()),
                now: n.cloned().unwrap_or_else(|| "nothing".to_string()),
            })
        })
        .collect()
}

fn describe(change: &crate::plan::Change) -> String {
    let short =
        |d: &str| d.trim_start_matches("hmac-").trim_start_matches("sha256:").chars().take(12).collect::<String>();
    let live = change.live_digest.as_deref().map_or_else(|| "absent".to_string(), short);
    format!("{} {} (live {live})", change.action.as_str(), short(&change.digest))
}

/// Objects whose live state no longer matches what `previous` applied: changed or removed
/// outside cairn since.
fn drifted(target: &LocalTarget, previous: &Release) -> Result<Vec<ObjectId>> {
    let expected: Vec<&ReleaseObject> =
        previous.objects.iter().filter(|o| o.action != Action::Delete && o.error.is_none()).collect();
    let ids: Vec<&ObjectId> = expected.iter().map(|o| &o.object).collect();
    let live = target.read_objects(&ids)?;
    let digester = target.digester(false)?;
    Ok(expected
        .iter()
        .filter(|o| live.get(&o.object).is_none_or(|body| !digester.matches(body, &o.digest)))
        .map(|o| o.object.clone())
        .collect())
}
