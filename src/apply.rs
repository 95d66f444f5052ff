//! Applying a plan to the local target: under the environment's lock, in dependency order,
//! idempotently, pruning only what cairn manages, and recording a release.

use std::collections::BTreeSet;

use indicatif::ProgressBar;

use crate::error::Result;
use crate::plan::{self, Action, Plan};
use crate::release::{self, Outcome, Release, ReleaseObject};
use crate::render::{ObjectId, Rendered};
use crate::repo::SourceInfo;
use crate::target::local::Inventory;
use crate::target::{Holder, LocalTarget};

pub struct ApplyOptions {
    pub prune: bool,
    pub actor: String,
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
    let lock = target.lock(&Holder::current(&options.actor))?;
    let mut history = release::list(target)?;
    release::mark_interrupted(target, &lock, &mut history)?;
    let plan = plan::plan(rendered, target, source, options.prune)?;

    let commit = source.commit().cloned();
    let approvals = commit
        .as_ref()
        .map(|c| c.trailer_values("Approved-by").map(str::to_string).collect())
        .unwrap_or_default();
    let mut record = Release {
        id: history.last().map_or(1, |r| r.id + 1),
        environment: rendered.environment.clone(),
        commit,
        source: source.label(),
        previous: history
            .iter()
            .rev()
            .find(|r| r.outcome == Outcome::Succeeded)
            .map(|r| r.id),
        started_at: release::now(),
        finished_at: None,
        actor: options.actor.clone(),
        approvals,
        target: plan.target.clone(),
        prune: options.prune,
        summary: plan.summary,
        objects: Vec::new(),
        outcome: Outcome::InProgress,
    };
    release::write(target, &lock, &record)?;

    // Record everything that may exist after this apply before touching objects, so an apply
    // killed half-way still leaves every object it wrote in the inventory for the next prune.
    let old = target.inventory()?;
    let mut inventory = Inventory {
        environment: rendered.environment.clone(),
        objects: old.objects.clone(),
    };
    inventory.objects.extend(rendered.objects.iter().map(|o| o.id.clone()));
    if inventory != old {
        target.write_inventory(&lock, &inventory)?;
    }

    let work = plan.changes.iter().filter(|c| c.action != Action::Unchanged).count();
    progress.set_length(work as u64);
    let mut failed = false;
    let mut deleted: BTreeSet<ObjectId> = BTreeSet::new();
    for change in &plan.changes {
        let result = match change.action {
            Action::Create | Action::Update => match &change.desired {
                Some(body) => target.put(&lock, &change.object, body),
                None => Ok(()),
            },
            Action::Delete => target.delete(&lock, &change.object).map(|()| {
                deleted.insert(change.object.clone());
            }),
            Action::Unchanged => Ok(()),
        };
        if change.action != Action::Unchanged {
            progress.inc(1);
        }
        let error = result.err().map(|e| {
            failed = true;
            e.to_string()
        });
        record.objects.push(ReleaseObject {
            object: change.object.clone(),
            action: change.action,
            digest: change.digest.clone(),
            error,
        });
    }

    let desired: BTreeSet<ObjectId> = rendered.objects.iter().map(|o| o.id.clone()).collect();
    let final_objects: BTreeSet<ObjectId> = if options.prune && !failed {
        desired
    } else {
        inventory.objects.difference(&deleted).cloned().collect()
    };
    let final_inventory = Inventory {
        environment: rendered.environment.clone(),
        objects: final_objects,
    };
    if final_inventory != inventory {
        target.write_inventory(&lock, &final_inventory)?;
    }

    record.finished_at = Some(release::now());
    record.outcome = if failed { Outcome::Failed } else { Outcome::Succeeded };
    release::write(target, &lock, &record)?;
    progress.finish_and_clear();
    Ok(ApplyReport { plan, release: record })
}
