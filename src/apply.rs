//! Applying a plan to a target: under the environment's lock, in dependency order (and by wave),
//! idempotently, pruning only what cairn manages, optionally waiting for health, and recording
//! a release that is rewritten as groups of objects finish, so an interrupted apply says what
//! it did not get to and the next one says what it finished.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use indicatif::ProgressBar;
use serde::{Serialize, Serializer};

use crate::config::DriftPolicy;
use crate::error::Result;
use crate::events::{Event, Events};
use crate::gate::Cleared;
use crate::plan::{self, Action, Plan};
use crate::release::{self, Outcome, Release, ReleaseKind, ReleaseObject};
use crate::render::{ObjectId, Rendered};
use crate::repo::SourceInfo;
use crate::secrets::{Maskable, Masker, Part, Seal};
use crate::target::{Holder, Inventory, Lock, Target, WriteMode};

pub mod rollout;
pub use rollout::{Cancel, Checks};

/// What an apply reports to as it goes, and what runs a rollout's `verify` steps.
pub struct Watching<'a> {
    pub bar: &'a ProgressBar,
    pub events: &'a Events,
    /// The environment's checks, for the rollouts of this apply (none: a rollback, which writes
    /// at once).
    pub checks: Option<&'a dyn Checks>,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub prune: bool,
    pub actor: String,
    pub kind: ReleaseKind,
    /// For a rollback: the release whose state is restored.
    pub rollback_to: Option<u64>,
    /// Take over fields another field manager owns (Kubernetes server-side apply).
    pub force_conflicts: bool,
    /// Wait this long for applied workloads to become healthy (`--wait`).
    pub wait: Option<Duration>,
    /// Who approved what is applied, as the gate saw it; recorded on the release.
    pub approvals: Vec<String>,
    /// The environment's `drift:` setting.
    pub drift: crate::config::DriftPolicy,
    /// For a rollback cairn makes on its own: the failed verification behind it.
    pub cause: Option<crate::release::verification::RollbackCause>,
}

/// Runs the rollouts of a release in turn, once every other object is written; a rollout whose
/// release already failed elsewhere does not start (its Deployment keeps the old version).
fn run_rollouts(
    target: &Target,
    lock: &Lock,
    record: &mut Release,
    plan: &Plan,
    bodies: &HashMap<&ObjectId, &serde_json::Value>,
    watching: &Watching<'_>,
    cleared: &Cleared<'_>,
) -> Result<()> {
    let Watching { bar, events, checks } = *watching;
    let cancel = Cancel::watch();
    let engine = rollout::Engine {
        target,
        lock,
        bar,
        events,
        checks,
        cancel: &cancel,
        environment: &plan.environment,
        bodies,
        cleared,
    };
    for k in 0..record.rollouts.len() {
        let workload = record.rollouts[k].planned.workload.clone();
        let Some(i) = plan.changes.iter().position(|c| c.object == workload) else { continue };
        let failed_elsewhere = record.objects.iter().any(|o| o.error.is_some());
        let outcome = if failed_elsewhere {
            let why =
                "not rolled out: other objects of this release failed, so the Deployment keeps its running version"
                    .to_string();
            let rollout = &mut record.rollouts[k];
            rollout.state = release::rollout::RolloutState::Aborted;
            rollout.reason = Some(why.clone());
            rollout.finished_at = Some(release::now());
            Err(why)
        } else {
            match engine.run(record, k, &plan.changes[i])? {
                rollout::End::Released(stored) => Ok(stored),
                rollout::End::Aborted(why) => Err(format!("rollout aborted: {why}")),
                rollout::End::Failed(why) => Err(format!("rollout failed: {why}")),
            }
        };
        let change = &plan.changes[i];
        let object = &mut record.objects[i];
        object.pending = false;
        match outcome {
            Ok(stored) => {
                if let Some(body) = &stored.body {
                    let secret = crate::secrets::holds_secrets(&change.object.kind, &change.secrets);
                    object.digest = target.digester(secret)?.digest(body, secret);
                }
                events.emit(&Event::ObjectApplied {
                    environment: &plan.environment,
                    object: &change.object,
                    action: change.action,
                });
            }
            Err(why) => {
                events.emit(&Event::ObjectFailed {
                    environment: &plan.environment,
                    object: &change.object,
                    action: change.action,
                    error: &why,
                });
                object.error = Some(why);
            }
        }
        release::write(target, lock, record)?;
    }
    Ok(())
}

/// An earlier apply that was interrupted, and what of it this apply finished.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resumed {
    pub release: u64,
    /// How many objects it had not written when it stopped.
    pub pending: usize,
    /// Those of them that are now as configured (written by this apply, or already in place).
    pub finished: Vec<ObjectId>,
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
///
/// It and `ApplyReport` hold a plan, which may hold decrypted values, so they have no
/// `Serialize`: outputs take a [`crate::secrets::Masked`] copy.
#[derive(Debug, Clone)]
pub enum Applied {
    Applied(Box<ApplyReport>),
    Refused { environment: String, moved: Vec<Moved> },
}

/// The plan that was applied and the release it produced.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub plan: Plan,
    pub release: Release,
    /// Interrupted applies found under the lock, and what of them this one finished.
    pub resumed: Vec<Resumed>,
}

impl Maskable for ApplyReport {
    fn mask(&self, masker: &Masker) -> ApplyReport {
        ApplyReport { plan: self.plan.mask(masker), release: self.release.clone(), resumed: self.resumed.clone() }
    }

    fn serialize_masked<S: Serializer>(&self, serializer: S, seal: Seal) -> std::result::Result<S::Ok, S::Error> {
        /// What `derive(Serialize)` wrote; destructured without `..`, so a new field does not
        /// compile until it is added here.
        #[derive(Serialize)]
        struct Out<'a> {
            plan: Part<'a, Plan>,
            release: &'a Release,
            #[serde(skip_serializing_if = "<[Resumed]>::is_empty")]
            resumed: &'a [Resumed],
        }
        let ApplyReport { plan, release, resumed } = self;
        Out { plan: seal.part(plan), release, resumed }.serialize(serializer)
    }
}

impl Maskable for Applied {
    fn mask(&self, masker: &Masker) -> Applied {
        match self {
            Applied::Applied(report) => Applied::Applied(Box::new(report.mask(masker))),
            refused @ Applied::Refused { .. } => refused.clone(),
        }
    }

    fn serialize_masked<S: Serializer>(&self, serializer: S, seal: Seal) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "result", rename_all = "kebab-case")]
        enum Out<'a> {
            Applied(Part<'a, ApplyReport>),
            Refused { environment: &'a str, moved: &'a [Moved] },
        }
        match self {
            Applied::Applied(report) => Out::Applied(seal.part(&**report)),
            Applied::Refused { environment, moved } => Out::Refused { environment, moved },
        }
        .serialize(serializer)
    }
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.release.outcome == Outcome::Succeeded
    }
}

/// An environment locked and planned, waiting for the gate's answer. Dropping it releases the
/// lock without writing anything.
pub struct Prepared {
    lock: Lock,
    environment: String,
    history: Vec<Release>,
    plan: Plan,
}

impl Prepared {
    /// What the apply will do: planned under the lock, so it is what is really applied.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The environment's releases, read under the lock.
    pub fn history(&self) -> &[Release] {
        &self.history
    }

    /// The rollouts the plan's Deployments go through (worked out from the plan and the
    /// environment's strategies by the pipeline, before the gate).
    pub fn set_rollouts(&mut self, rollouts: Vec<plan::PlannedRollout>) {
        self.plan.rollouts = rollouts;
    }
}

/// Takes the environment's lock and plans afresh under it. When `expected` (a saved plan) is
/// given, the plan must match it object by object — same action, same desired digest, same live
/// digest — or the differences are returned and nothing is written.
pub fn prepare(
    target: &Target,
    rendered: &Rendered,
    source: &SourceInfo,
    options: &ApplyOptions,
    expected: Option<&Plan>,
) -> Result<std::result::Result<Prepared, Applied>> {
    let lock = target.lock(&Holder::current(&options.actor))?;
    let history = release::list(target)?;
    // Compared with a saved plan, every create must be projected exactly as the saved one was.
    let plan =
        plan::plan_with(std::borrow::Cow::Borrowed(rendered), target, source, options.prune, expected.is_some())?;
    if let Some(saved) = expected {
        let moved = moved(saved, &plan);
        if !moved.is_empty() {
            return Ok(Err(Applied::Refused { environment: plan.environment.clone(), moved }));
        }
    }
    Ok(Ok(Prepared { lock, environment: rendered.environment.clone(), history, plan }))
}

/// Applies a prepared plan and records the release. Only objects that passed the gate can be
/// written: `cleared` comes from `gate::evaluate`. One failing object does not stop the others;
/// the release says which failed.
pub fn execute(
    target: &Target,
    prepared: Prepared,
    cleared: Cleared<'_>,
    source: &SourceInfo,
    options: &ApplyOptions,
    watching: &Watching<'_>,
) -> Result<ApplyReport> {
    let Watching { bar: progress, events, .. } = *watching;
    let rendered = cleared.rendered();
    if rendered.environment != prepared.environment {
        return Err(crate::Error::Usage {
            message: format!(
                "internal: the plan of `{}` was given the objects of `{}`",
                prepared.environment, rendered.environment
            ),
        });
    }
    let Prepared { lock, mut history, plan, .. } = prepared;
    // A rollout whose job was killed: found before its record is marked interrupted.
    let stranded: Vec<(u64, usize)> = history
        .iter()
        .filter(|r| r.outcome == Outcome::InProgress)
        .flat_map(|r| {
            r.rollouts
                .iter()
                .enumerate()
                .filter(|(_, o)| o.state == release::rollout::RolloutState::Running)
                .map(move |(k, _)| (r.id, k))
        })
        .collect();
    // Finishing the record of an earlier, killed apply is a write: it waits for the gate too.
    let interrupted = release::mark_interrupted(target, &lock, &mut history)?;
    let previous = history.iter().rev().find(|r| r.outcome == Outcome::Succeeded);
    let drift = match previous {
        Some(p) => drifted(target, p, &plan)?,
        None => Vec::new(),
    };

    let commit = source.commit().cloned();
    let mut approvals: Vec<String> = options.approvals.clone();
    for trailer in commit.iter().flat_map(|c| c.trailer_values("Approved-by")) {
        if !approvals.iter().any(|a| a == trailer) {
            approvals.push(trailer.to_string());
        }
    }
    // Every object is in the record from the start, pending until written, so an apply killed
    // at any point leaves a record that says what it did not get to.
    let objects = plan
        .changes
        .iter()
        .map(|c| ReleaseObject {
            object: c.object.clone(),
            action: c.action,
            digest: c.digest.clone(),
            pending: c.action != Action::Unchanged,
            error: None,
            reclaimed_from: Vec::new(),
        })
        .collect();
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
        objects,
        drift,
        overridden: cleared.overridden().cloned(),
        outcome: Outcome::InProgress,
        verification: None,
        cause: options.cause.clone(),
        versions: versions(&plan),
        notifications: Vec::new(),
        rollouts: plan.rollouts.iter().map(|p| rollout::start(p, target.simulated())).collect(),
        charts: plan.charts.clone(),
    };
    // Never two versions at unknown weights: a killed rollout is continued by this apply when
    // it releases the same pod template, and undone first otherwise.
    for (id, k) in stranded {
        let Some(old) = history.iter_mut().find(|r| r.id == id) else { continue };
        let stale = old.rollouts[k].clone();
        let same = record
            .rollouts
            .iter_mut()
            .find(|n| n.planned.workload == stale.planned.workload && n.planned.template == stale.planned.template);
        let old_rollout = &mut old.rollouts[k];
        match same {
            Some(new) => {
                new.phase = stale.phase;
                new.selectors = stale.selectors.clone();
                new.pinned = stale.pinned.clone();
                // What ran before the killed rollout began is what an abort must restore.
                new.planned.stable_replicas = stale.planned.stable_replicas;
                old_rollout.state = release::rollout::RolloutState::Resumed;
                old_rollout.reason = Some(format!("interrupted; resumed by release {}", record.id));
            }
            None => match rollout::settle(target, &lock, &stale, &cleared)? {
                rollout::Settled::Restored => {
                    old_rollout.state = release::rollout::RolloutState::Aborted;
                    old_rollout.reason =
                        Some(format!("interrupted; aborted by release {}, which applies another version", record.id));
                }
                rollout::Settled::Promoted => {
                    old_rollout.state = release::rollout::RolloutState::Succeeded;
                    old_rollout.reason = Some(format!(
                        "interrupted after the Deployment took the new version; release {} removed the temporary objects",
                        record.id
                    ));
                }
            },
        }
        old_rollout.finished_at = Some(release::now());
        release::write(target, &lock, old)?;
    }
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
    let environment = rendered.environment.as_str();
    events.emit(&Event::ApplyStarted { environment, release: record.id, objects: work });
    let mut group_number = 0;
    let bodies: HashMap<&ObjectId, &serde_json::Value> = rendered.objects.iter().map(|o| (&o.id, &o.body)).collect();
    // The digests of what is stored now are keyed like the plan's.
    let digester =
        target.digester(plan.changes.iter().any(|c| crate::secrets::holds_secrets(&c.object.kind, &c.secrets)))?;
    // Changes of one group have no order among them and are written together; groups run one
    // after another, so what others depend on exists first and deletions run in reverse order.
    let keys: Vec<_> = plan.changes.iter().map(|c| target.group_key(c.operation(), &rendered.objects)).collect();
    // Deployments a strategy releases are left to their rollout, after everything else.
    let held: HashSet<&ObjectId> = plan.rollouts.iter().map(|r| &r.workload).collect();
    let mut start = 0;
    while start < plan.changes.len() {
        let end = (start..plan.changes.len()).find(|&i| keys[i] != keys[start]).unwrap_or(plan.changes.len());
        let mut group: Vec<usize> = (start..end)
            .filter(|&i| plan.changes[i].action != Action::Unchanged && !held.contains(&plan.changes[i].object))
            .collect();
        start = end;
        if options.drift == DriftPolicy::Refuse {
            // A team that chose `drift: refuse` looks at a change made outside git before
            // anything overwrites it: the drifted object fails, the others are written.
            group.retain(|&i| {
                if !plan.changes[i].drift {
                    return true;
                }
                let object = &mut record.objects[i];
                object.pending = false;
                let why = "changed outside git since the last release, and this environment has `drift: refuse`: see what changed with `cairn plan`, then bring it into git or set `drift: repair`";
                events.emit(&Event::ObjectFailed {
                    environment,
                    object: &object.object,
                    action: object.action,
                    error: why,
                });
                object.error = Some(why.to_string());
                false
            });
        }
        if group.is_empty() {
            continue;
        }
        group_number += 1;
        events.emit(&Event::GroupStarted { environment, group: group_number, objects: group.len() });
        let ops: Vec<_> = group.iter().map(|&i| plan.changes[i].operation()).collect();
        let mode =
            WriteMode { force_conflicts: options.force_conflicts, reclaim_drift: options.drift == DriftPolicy::Repair };
        let results = target.apply_group(&lock, &ops, &bodies, mode);
        for (&i, result) in group.iter().zip(results) {
            let change = &plan.changes[i];
            let object = &mut record.objects[i];
            object.pending = false;
            match result {
                Ok(stored) => {
                    if let Some(body) = &stored.body {
                        object.digest =
                            digester.digest(body, crate::secrets::holds_secrets(&change.object.kind, &change.secrets));
                    }
                    object.reclaimed_from = stored.reclaimed_from;
                    events.emit(&Event::ObjectApplied { environment, object: &change.object, action: change.action });
                }
                Err(why) => {
                    events.emit(&Event::ObjectFailed {
                        environment,
                        object: &change.object,
                        action: change.action,
                        error: &why,
                    });
                    object.error = Some(why);
                }
            }
        }
        progress.inc(ops.len() as u64);
        release::write(target, &lock, &record)?;
    }

    if let Some(timeout) = options.wait {
        let applied: Vec<&ObjectId> = record
            .objects
            .iter()
            .filter(|o| matches!(o.action, Action::Create | Action::Update) && o.error.is_none())
            .map(|o| &o.object)
            .collect();
        progress.set_message(format!("waiting for {} to become healthy", rendered.environment));
        events.emit(&Event::WaitingForHealth { environment, objects: applied.len() });
        let unhealthy = target.wait_healthy(&applied, timeout);
        events.emit(&Event::HealthChecked { environment, unhealthy: unhealthy.len() });
        for object in &mut record.objects {
            if let Some(why) = unhealthy.get(&object.object) {
                object.error = Some(why.clone());
            }
        }
    }

    if !held.is_empty() {
        run_rollouts(target, &lock, &mut record, &plan, &bodies, watching, &cleared)?;
    }

    let failed = record.objects.iter().any(|o| o.error.is_some());
    let deleted: BTreeSet<ObjectId> = record
        .objects
        .iter()
        .filter(|o| o.action == Action::Delete && o.error.is_none())
        .map(|o| o.object.clone())
        .collect();
    let desired: BTreeSet<ObjectId> = rendered.objects.iter().map(|o| o.id.clone()).collect();
    let final_objects: BTreeSet<ObjectId> =
        if options.prune && !failed { desired } else { inventory.objects.difference(&deleted).cloned().collect() };
    let names: BTreeSet<String> = final_objects.iter().map(ObjectId::to_string).collect();
    let mut secrets = inventory.secrets.clone();
    secrets.retain(|id, _| names.contains(id));
    // What each object looks like as cairn left it, for the drift marks of later plans; an
    // object that failed keeps what was recorded before.
    let mut applied = inventory.applied.clone();
    applied.retain(|id, _| names.contains(id));
    let mut rendered_digests = inventory.rendered.clone();
    rendered_digests.retain(|id, _| names.contains(id));
    let sources: HashMap<&ObjectId, &crate::render::Object> = rendered.objects.iter().map(|o| (&o.id, o)).collect();
    for object in record.objects.iter().filter(|o| o.error.is_none() && o.action != Action::Delete) {
        let name = object.object.to_string();
        applied.insert(name.clone(), object.digest.clone());
        if let Some(source) = sources.get(&object.object) {
            let secret = crate::secrets::holds_secrets(&source.id.kind, &source.secrets);
            rendered_digests.insert(name, digester.digest(&source.body, secret));
        }
    }
    let final_inventory = Inventory {
        environment: rendered.environment.clone(),
        objects: final_objects,
        secrets,
        applied,
        rendered: rendered_digests,
    };
    if final_inventory != inventory {
        target.write_inventory(&lock, &final_inventory)?;
    }

    record.finished_at = Some(release::now());
    record.outcome = if failed { Outcome::Failed } else { Outcome::Succeeded };
    release::write(target, &lock, &record)?;
    events.emit(&Event::ApplyFinished { environment, release: record.id, outcome: record.outcome.as_str() });
    progress.finish_and_clear();
    let resumed = interrupted
        .iter()
        .map(|r| {
            let pending: Vec<&ReleaseObject> = r.objects.iter().filter(|o| o.pending).collect();
            let index: HashMap<&ObjectId, &ReleaseObject> = record.objects.iter().map(|o| (&o.object, o)).collect();
            let finished = pending
                .iter()
                .filter(|o| index.get(&o.object).is_none_or(|now| now.error.is_none()))
                .map(|o| o.object.clone())
                .collect();
            Resumed { release: r.id, pending: pending.len(), finished }
        })
        .collect();
    Ok(ApplyReport { plan, release: record, resumed })
}

/// The container images a plan changes, recorded so messages about the release need no render.
fn versions(plan: &Plan) -> Vec<release::notes::VersionChange> {
    let mut out = Vec::new();
    for change in plan.changes.iter().filter(|c| c.action != Action::Unchanged) {
        let null = serde_json::Value::Null;
        let old = if change.action == Action::Create { &null } else { change.live.as_ref().unwrap_or(&null) };
        let new = if change.action == Action::Delete { &null } else { change.desired.as_ref().unwrap_or(&null) };
        release::notes::diff_images(&change.object, old, new, &mut out);
    }
    out
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
/// outside cairn since. The plan just made has the live digest of nearly every object; only
/// those it does not cover are read again.
fn drifted(target: &Target, previous: &Release, plan: &Plan) -> Result<Vec<ObjectId>> {
    let seen: HashMap<&ObjectId, Option<&str>> =
        plan.changes.iter().map(|c| (&c.object, c.live_digest.as_deref())).collect();
    let mut drift = Vec::new();
    let mut unknown = Vec::new();
    for object in previous.objects.iter().filter(|o| o.action != Action::Delete && o.error.is_none()) {
        let keyed = |d: &str| d.starts_with("hmac-");
        match seen.get(&object.object) {
            // Absent now.
            Some(None) => drift.push(object.object.clone()),
            Some(Some(live)) if keyed(live) == keyed(&object.digest) => {
                if *live != object.digest {
                    drift.push(object.object.clone());
                }
            }
            _ => unknown.push(object),
        }
    }
    if !unknown.is_empty() {
        let ids: Vec<&ObjectId> = unknown.iter().map(|o| &o.object).collect();
        let live = target.read_objects(&ids)?;
        let digester = target.digester(false)?;
        drift.extend(
            unknown
                .iter()
                .filter(|o| live.get(&o.object).is_none_or(|body| !digester.matches(body, &o.digest)))
                .map(|o| o.object.clone()),
        );
    }
    drift.sort();
    Ok(drift)
}
