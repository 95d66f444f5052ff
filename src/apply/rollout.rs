//! Canary and blue/green rollouts of plain Deployments, run by the apply that releases them,
//! under the environment's lock (renewed in the background for as long as the rollout takes).
//!
//! A canary runs the new pod template in `<name>-canary`, whose pods carry the stable pods'
//! labels plus `cairn/track: canary`, so the Service that selects the stable pods reaches both
//! and the replica counts split the traffic (Argo Rollouts' basic canary). Blue/green brings the
//! new version up in `<name>-preview`, pins the active Service to the old version's pods by
//! their `pod-template-hash`, points the preview Service at the new pods, verifies, switches the
//! active Service, and after `scale_down_delay` gives the Deployment the new template.
//!
//! The rollout's own writes (replica counts, selectors, the temporary Deployment) are made as
//! field manager `cairn-rollout`; the final write of the Deployment and the Services is cairn's
//! usual apply of what git says, taking those fields back. After every phase the release
//! record is rewritten, so a job killed at any point leaves a record that says where it stood.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::{How, Step};
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::gate::Cleared;
use crate::plan::{Change, PlannedRollout, TRACK_LABEL, canary_replicas};
use crate::release::rollout::{Rollout, RolloutState, StepRecord};
use crate::release::verification::{Verdict, Verification};
use crate::release::{self, Release};
use crate::render::ObjectId;
use crate::target::{Action, Lock, Operation, Stored, Target, WriteMode};

/// The label on pods of the old version a blue/green rollout pins the active Service to.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Runs the environment's checks by name: what a `verify` step asks for. The pipeline provides
/// it (checks live in `delivery`, beside this module).
pub trait Checks {
    /// The verification of `release` by the checks named; stops early once `cancelled` is set.
    fn verify(&self, release: u64, names: &[String], cancelled: &AtomicBool) -> Result<Verification>;
}

/// SIGINT and SIGTERM while a rollout runs: a CI job being cancelled. The rollout aborts at
/// once (restoring the old version) instead of dying between two writes.
pub struct Cancel {
    flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Cancel {
    pub fn watch() -> Cancel {
        let flag = Arc::new(AtomicBool::new(false));
        let ids = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
            .into_iter()
            .filter_map(|s| signal_hook::flag::register(s, Arc::clone(&flag)).ok())
            .collect();
        Cancel { flag, ids }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// One thing the engine does; `planned.phases` describes the same list in words.
#[derive(Debug, Clone)]
enum Act {
    Weight(u32),
    Pause(Duration),
    Verify(Vec<String>),
    /// The canary's end: the Deployment takes the new version, the canary goes.
    Promote,
    StartPreview,
    PointPreview(String),
    Switch(String),
    /// Blue/green's end, after the delay.
    Finish(Duration),
}

fn acts(how: &How) -> Vec<Act> {
    match how {
        How::Canary { steps } => steps
            .iter()
            .map(|s| match s {
                Step::Weight(w) => Act::Weight(*w),
                Step::Pause(d) => Act::Pause(*d),
                Step::Verify(names) => Act::Verify(names.clone()),
            })
            .chain([Act::Promote])
            .collect(),
        How::BlueGreen(bg) => {
            let mut out = vec![Act::StartPreview];
            out.extend(bg.preview_service.clone().map(Act::PointPreview));
            if !bg.verify.is_empty() {
                out.push(Act::Verify(bg.verify.clone()));
            }
            out.push(Act::Switch(bg.active_service.clone()));
            out.push(Act::Finish(bg.scale_down_delay));
            out
        }
    }
}

/// How a rollout ended for the apply that ran it.
pub enum End {
    /// The Deployment holds the new version: what the target stored.
    Released(Stored),
    /// The old version is back; why.
    Aborted(String),
    /// The Deployment has the new version and it is not ready; why.
    Failed(String),
}

/// What a rollout runs with.
pub struct Engine<'a> {
    pub target: &'a Target,
    /// The apply's progress bar (hidden off a terminal): its message follows the phases.
    pub bar: &'a indicatif::ProgressBar,
    pub lock: &'a Lock,
    pub events: &'a Events,
    pub checks: Option<&'a dyn Checks>,
    pub cancel: &'a Cancel,
    pub environment: &'a str,
    /// The rendered bodies of the environment (the Deployment's, the Services').
    pub bodies: &'a HashMap<&'a ObjectId, &'a Value>,
    /// What the gate cleared: a rollout writes only with it.
    pub cleared: &'a Cleared<'a>,
}

/// What one phase came to.
enum Done {
    Next {
        verification: Option<Verification>,
        waited: Duration,
    },
    Abort {
        reason: String,
        verification: Option<Verification>,
    },
    Released {
        stored: Stored,
        waited: Duration,
    },
    /// The Deployment took the new version and did not become ready: there is no old template
    /// left to restore, so the release fails and says why.
    Failed(String),
}

/// A new rollout's record entry.
pub fn start(planned: &PlannedRollout, simulated: bool) -> Rollout {
    Rollout {
        planned: planned.clone(),
        state: RolloutState::Running,
        phase: 0,
        steps: Vec::new(),
        selectors: BTreeMap::new(),
        pinned: None,
        started_at: release::now(),
        finished_at: None,
        reason: None,
        simulated,
    }
}

impl Engine<'_> {
    /// Runs rollout `k` of `record` from its recorded phase to the end, or to an abort (which
    /// restores the old version before it returns). The record is rewritten after each phase.
    pub fn run(&self, record: &mut Release, k: usize, change: &Change) -> Result<End> {
        let planned = record.rollouts[k].planned.clone();
        let acts = acts(&planned.how);
        self.events.emit(&Event::RolloutStarted {
            environment: self.environment,
            workload: &planned.workload,
            strategy: &planned.strategy,
            kind: planned.how.kind(),
            phase: record.rollouts[k].phase,
        });
        tracing::info!(environment = self.environment, workload = %planned.workload, strategy = %planned.strategy, "rollout");
        loop {
            let index = record.rollouts[k].phase;
            let Some(act) = acts.get(index) else {
                return Err(Error::Usage {
                    message: format!("internal: the rollout of {} has no phase {index}", planned.workload),
                });
            };
            if self.cancel.is_set() {
                return self.abort(record, k, "the job was cancelled (SIGINT or SIGTERM)".into());
            }
            let began = Instant::now();
            let what = planned.phases.get(index).map_or_else(|| format!("{act:?}"), |p| p.what.clone());
            self.bar.set_message(format!("{}: rolling out {}: {what}", self.environment, planned.workload.name));
            tracing::info!(environment = self.environment, workload = %planned.workload, phase = index, "{what}");
            let (new, old) = planned.phases.get(index).map_or((0, 0), |p| (p.new, p.old));
            record.rollouts[k].steps.push(StepRecord {
                phase: index,
                what: what.clone(),
                new,
                old,
                started_at: release::now(),
                finished_at: None,
                verification: None,
                overhead_ms: 0,
            });
            release::write(self.target, self.lock, record)?;
            let done = match self.phase(act, record, k, change) {
                Ok(done) => done,
                // A write the cluster refused mid-rollout: the old version is put back.
                Err(e) => Done::Abort { reason: format!("{what}: {}", e.chain()), verification: None },
            };
            let stepped = || {
                self.events.emit(&Event::RolloutStep {
                    environment: self.environment,
                    workload: &planned.workload,
                    phase: index,
                    what: &what,
                    new,
                    old,
                });
            };
            let rollout = &mut record.rollouts[k];
            let step = rollout.steps.last_mut().expect("a step was pushed above");
            match done {
                Done::Next { verification, waited } => {
                    step.finished_at = Some(release::now());
                    step.overhead_ms = millis(began.elapsed().saturating_sub(waited));
                    step.verification = verification;
                    rollout.phase = index + 1;
                    release::write(self.target, self.lock, record)?;
                    stepped();
                }
                Done::Abort { reason, verification } => {
                    step.verification = verification;
                    return self.abort(record, k, reason);
                }
                Done::Failed(reason) => {
                    step.finished_at = Some(release::now());
                    rollout.state = RolloutState::Failed;
                    rollout.finished_at = Some(release::now());
                    rollout.reason = Some(reason.clone());
                    release::write(self.target, self.lock, record)?;
                    self.events.emit(&Event::RolloutFinished {
                        environment: self.environment,
                        workload: &planned.workload,
                        state: "failed",
                        reason: Some(&reason),
                    });
                    return Ok(End::Failed(reason));
                }
                Done::Released { stored, waited } => {
                    step.finished_at = Some(release::now());
                    step.overhead_ms = millis(began.elapsed().saturating_sub(waited));
                    rollout.phase = index + 1;
                    rollout.state = RolloutState::Succeeded;
                    rollout.finished_at = Some(release::now());
                    release::write(self.target, self.lock, record)?;
                    stepped();
                    self.events.emit(&Event::RolloutFinished {
                        environment: self.environment,
                        workload: &planned.workload,
                        state: "succeeded",
                        reason: None,
                    });
                    return Ok(End::Released(stored));
                }
            }
        }
    }

    fn phase(&self, act: &Act, record: &mut Release, k: usize, change: &Change) -> Result<Done> {
        let planned = record.rollouts[k].planned.clone();
        let workload = &planned.workload;
        let simulated = self.target.simulated();
        let body = self.body(workload)?;
        match act {
            Act::Weight(w) => {
                let new = canary_replicas(planned.replicas, *w);
                let old = planned.replicas - new;
                // New pods first, then fewer old ones: capacity never drops below the total.
                self.target.rollout_write(self.lock, &planned.temporary, &temporary(body, &planned, "canary", new))?;
                self.target.rollout_write(self.lock, workload, &replicas(workload, old))?;
                let started = Instant::now();
                if let Some(why) = self.ready(&[&planned.temporary, workload], planned.timeout) {
                    return Ok(Done::Abort { reason: format!("weight {w}%: {why}"), verification: None });
                }
                Ok(Done::Next { verification: None, waited: started.elapsed() })
            }
            Act::Pause(d) => {
                if simulated {
                    // Nothing runs in a directory: a pause would wait for nothing.
                    return Ok(Done::Next { verification: None, waited: Duration::ZERO });
                }
                let started = Instant::now();
                while started.elapsed() < *d {
                    if self.cancel.is_set() {
                        return Ok(Done::Abort {
                            reason: "the job was cancelled during a pause".into(),
                            verification: None,
                        });
                    }
                    std::thread::sleep((*d - started.elapsed()).min(Duration::from_millis(100)));
                }
                Ok(Done::Next { verification: None, waited: started.elapsed() })
            }
            Act::Verify(names) => {
                let Some(checks) = self.checks else {
                    return Ok(Done::Abort {
                        reason: "internal: no checks were given to the rollout".into(),
                        verification: None,
                    });
                };
                let started = Instant::now();
                let verification = checks.verify(record.id, names, self.cancel.flag())?;
                let waited = started.elapsed();
                if self.cancel.is_set() {
                    return Ok(Done::Abort {
                        reason: "the job was cancelled during a verification".into(),
                        verification: Some(verification),
                    });
                }
                if verification.verdict != Verdict::Passed {
                    let failing: Vec<String> = verification
                        .checks
                        .iter()
                        .filter(|c| c.verdict.is_some_and(|v| v != Verdict::Passed))
                        .map(|c| format!("{} ({})", c.name, c.reason))
                        .collect();
                    return Ok(Done::Abort {
                        reason: format!(
                            "verify {}: {}: {}",
                            names.join(", "),
                            verification.verdict.as_str(),
                            failing.join("; ")
                        ),
                        verification: Some(verification),
                    });
                }
                Ok(Done::Next { verification: Some(verification), waited })
            }
            Act::Promote => {
                let stored = self.write_desired(change)?;
                let started = Instant::now();
                let unready = self.ready(&[workload], planned.timeout);
                let waited = started.elapsed();
                self.target.rollout_delete(self.lock, &planned.temporary)?;
                match unready {
                    Some(why) => Ok(Done::Failed(format!("release: {why}"))),
                    None => Ok(Done::Released { stored, waited }),
                }
            }
            Act::StartPreview => {
                let hash = self.target.pod_template_hash(workload)?.ok_or_else(|| Error::Usage {
                    message: format!(
                        "cannot tell the pods of {workload}'s running version from the new ones: no ReplicaSet of it carries a `pod-template-hash` label (is the cluster's Deployment controller running?)"
                    ),
                })?;
                let bg = match &planned.how {
                    How::BlueGreen(bg) => bg.clone(),
                    How::Canary { .. } => {
                        return Err(Error::Usage { message: "internal: a canary has no preview".into() });
                    }
                };
                for name in std::iter::once(&bg.active_service).chain(bg.preview_service.as_ref()) {
                    let id = service(workload, name);
                    let selector = self.live_selector(&id)?;
                    record.rollouts[k].selectors.entry(name.clone()).or_insert(selector);
                }
                record.rollouts[k].pinned = Some(hash.clone());
                // Recorded before the first selector moves, so an abort knows what to put back.
                release::write(self.target, self.lock, record)?;
                let rollout = &record.rollouts[k];
                let mut pinned = rollout.selectors.get(&bg.active_service).cloned().unwrap_or_default();
                pinned.insert(POD_TEMPLATE_HASH.into(), hash);
                self.target.rollout_write(
                    self.lock,
                    &service(workload, &bg.active_service),
                    &selector_patch(&pinned),
                )?;
                self.target.rollout_write(
                    self.lock,
                    &planned.temporary,
                    &temporary(body, &planned, "preview", planned.replicas),
                )?;
                let started = Instant::now();
                if let Some(why) = self.ready(&[&planned.temporary], planned.timeout) {
                    return Ok(Done::Abort { reason: format!("preview: {why}"), verification: None });
                }
                Ok(Done::Next { verification: None, waited: started.elapsed() })
            }
            Act::PointPreview(name) | Act::Switch(name) => {
                let mut selector = record.rollouts[k].selectors.get(name).cloned().unwrap_or_default();
                selector.insert(TRACK_LABEL.into(), "preview".into());
                self.target.rollout_write(self.lock, &service(workload, name), &selector_patch(&selector))?;
                Ok(Done::Next { verification: None, waited: Duration::ZERO })
            }
            Act::Finish(delay) => {
                let started = Instant::now();
                if !simulated {
                    while started.elapsed() < *delay {
                        if self.cancel.is_set() {
                            return Ok(Done::Abort {
                                reason: "the job was cancelled before the old version was scaled down".into(),
                                verification: None,
                            });
                        }
                        std::thread::sleep((*delay - started.elapsed()).min(Duration::from_millis(100)));
                    }
                }
                let waited = started.elapsed();
                let stored = self.write_desired(change)?;
                let ready_from = Instant::now();
                let unready = self.ready(&[workload], planned.timeout);
                let waited = waited + ready_from.elapsed();
                // The Services as git has them, then the preview goes. Their selectors are put
                // back first as the rollout's own write: a selector is a granular map in a
                // cluster, and only the manager that added a key can drop it.
                let selectors = record.rollouts[k].selectors.clone();
                for (name, selector) in &selectors {
                    self.target.rollout_write(self.lock, &service(workload, name), &selector_patch(selector))?;
                }
                for name in selectors.keys() {
                    let id = service(workload, name);
                    if let Some(body) = self.bodies.get(&id) {
                        let op = Operation { object: &id, action: Action::Update, desired: Some(body), live: None };
                        let one = HashMap::from([(&id, *body)]);
                        let mode = WriteMode { force_conflicts: true, reclaim_drift: false };
                        if let Some(Err(why)) = self.target.apply_group(self.lock, &[op], &one, mode).pop() {
                            return Err(Error::Usage { message: format!("{id}: {why}") });
                        }
                    }
                }
                self.target.rollout_delete(self.lock, &planned.temporary)?;
                match unready {
                    Some(why) => Ok(Done::Failed(format!("release: {why}"))),
                    None => Ok(Done::Released { stored, waited }),
                }
            }
        }
    }

    fn body(&self, id: &ObjectId) -> Result<&Value> {
        self.bodies
            .get(id)
            .copied()
            .ok_or_else(|| Error::Usage { message: format!("internal: {id} was not rendered for its rollout") })
    }

    /// The Deployment as git has it, written as cairn's usual apply; fields the rollout moved
    /// are taken back.
    fn write_desired(&self, change: &Change) -> Result<Stored> {
        let body = self.body(&change.object)?;
        let bodies = HashMap::from([(&change.object, body)]);
        let mode = WriteMode { force_conflicts: true, reclaim_drift: false };
        match self.target.apply_group(self.lock, &[change.operation()], &bodies, mode).pop() {
            Some(Ok(stored)) => Ok(stored),
            Some(Err(why)) => Err(Error::Usage { message: format!("{}: {why}", change.object) }),
            None => Err(Error::Usage { message: format!("internal: {} was not written", change.object) }),
        }
    }

    /// Waits for the Deployments to become ready; why not, when they did not in time (or the
    /// job was cancelled meanwhile: a CI system kills a job seconds after asking it to stop, so
    /// the wait is taken in short slices that look at the signal).
    fn ready(&self, ids: &[&ObjectId], timeout: Duration) -> Option<String> {
        let started = Instant::now();
        loop {
            let slice = timeout.saturating_sub(started.elapsed()).min(Duration::from_secs(1));
            let unhealthy = self.target.wait_healthy(ids, slice);
            if unhealthy.is_empty() {
                return None;
            }
            let failed = unhealthy.values().any(|why| why.starts_with("failed"));
            if failed || started.elapsed() >= timeout {
                let mut why: Vec<String> = unhealthy
                    .iter()
                    .map(|(id, why)| {
                        // Each slice says how long it waited; the step waited for all of them.
                        let why = why.strip_prefix(&format!("not healthy after {}s: ", slice.as_secs())).unwrap_or(why);
                        if failed {
                            format!("{} {why}", id.name)
                        } else {
                            format!("{} not healthy after {}s: {why}", id.name, timeout.as_secs())
                        }
                    })
                    .collect();
                why.sort();
                return Some(why.join("; "));
            }
            if self.cancel.is_set() {
                return Some("the job was cancelled while waiting for the pods".to_string());
            }
        }
    }

    fn live_selector(&self, id: &ObjectId) -> Result<BTreeMap<String, String>> {
        let live = self.target.read_status(&[id])?;
        let Some(service) = live.get(id) else {
            return Err(Error::Usage { message: format!("{id} does not exist on the target; blue/green needs it") });
        };
        Ok(service
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
            .unwrap_or_default())
    }

    /// Aborts rollout `k`: the old version back, and the record says why.
    fn abort(&self, record: &mut Release, k: usize, reason: String) -> Result<End> {
        tracing::warn!(environment = self.environment, workload = %record.rollouts[k].planned.workload, "rollout aborted: {reason}");
        restore(self.target, self.lock, &record.rollouts[k], self.cleared)?;
        let rollout = &mut record.rollouts[k];
        rollout.state = RolloutState::Aborted;
        rollout.finished_at = Some(release::now());
        rollout.reason = Some(reason.clone());
        release::write(self.target, self.lock, record)?;
        self.events.emit(&Event::RolloutFinished {
            environment: self.environment,
            workload: &record.rollouts[k].planned.workload,
            state: "aborted",
            reason: Some(&reason),
        });
        Ok(End::Aborted(reason))
    }
}

/// Puts the old version back as a rollout found it: the Services' selectors as they were, the
/// Deployment's replica count as it was, the temporary Deployment deleted. Needs nothing but
/// the record, so it also undoes the rollout of a job that was killed; like every write, only
/// through the gate (`cleared`).
pub fn restore(target: &Target, lock: &Lock, rollout: &Rollout, _cleared: &Cleared<'_>) -> Result<()> {
    let planned = &rollout.planned;
    let workload = &planned.workload;
    // Traffic first: the Services back on the old pods before anything is scaled or deleted.
    for (name, selector) in &rollout.selectors {
        target.rollout_write(lock, &service(workload, name), &selector_patch(selector))?;
    }
    target.rollout_write(lock, workload, &replicas(workload, planned.stable_replicas))?;
    target.rollout_delete(lock, &planned.temporary)
}

/// How a rollout whose job was killed was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The old version is back (`restore`).
    Restored,
    /// The job was killed in the last phase, after the Deployment took the new version: only the
    /// rollout's temporary changes were taken back.
    Promoted,
}

/// Settles a rollout whose job was killed: restored as `restore` does, unless the Deployment
/// already holds the new pod template (the job died while waiting for it in the last phase) —
/// then scaling it to the old count would be wrong, and only the Services' selectors go back
/// and the temporary Deployment goes.
pub fn settle(target: &Target, lock: &Lock, rollout: &Rollout, cleared: &Cleared<'_>) -> Result<Settled> {
    let planned = &rollout.planned;
    let live = target.read_objects(&[&planned.workload])?;
    let secret = planned.template.starts_with("hmac-");
    let digester = target.digester(false)?;
    let promoted = live
        .get(&planned.workload)
        .and_then(|d| d.pointer("/spec/template"))
        .is_some_and(|t| digester.digest(t, secret) == planned.template);
    if !promoted {
        restore(target, lock, rollout, cleared)?;
        return Ok(Settled::Restored);
    }
    for (name, selector) in &rollout.selectors {
        target.rollout_write(lock, &service(&planned.workload, name), &selector_patch(selector))?;
    }
    target.rollout_delete(lock, &planned.temporary)?;
    Ok(Settled::Promoted)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn service(workload: &ObjectId, name: &str) -> ObjectId {
    ObjectId { group: String::new(), kind: "Service".into(), namespace: workload.namespace.clone(), name: name.into() }
}

fn meta(id: &ObjectId) -> Value {
    match &id.namespace {
        Some(ns) => json!({"name": id.name, "namespace": ns}),
        None => json!({"name": id.name}),
    }
}

/// Only the replica count of a Deployment.
fn replicas(id: &ObjectId, n: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(id), "spec": {"replicas": n}})
}

/// Only the selector of a Service (replaced whole: a Service's selector is an atomic map).
fn selector_patch(selector: &BTreeMap<String, String>) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "spec": {"selector": selector}})
}

/// The temporary Deployment: the new version's rendered Deployment under its own name, with
/// `cairn/track` on its labels, its selector and its pods.
fn temporary(body: &Value, planned: &PlannedRollout, track: &str, n: u32) -> Value {
    let mut b = body.clone();
    if let Some(meta) = b.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("name".into(), Value::String(planned.temporary.name.clone()));
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(crate::plan::STRATEGY_ANNOTATION);
        }
    }
    for pointer in ["/metadata/labels", "/spec/selector/matchLabels", "/spec/template/metadata/labels"] {
        if let Some(labels) = ensure_map(&mut b, pointer) {
            labels.insert(TRACK_LABEL.into(), Value::String(track.into()));
        }
    }
    if let Some(labels) = ensure_map(&mut b, "/metadata/labels") {
        labels.insert("cairn/rollout-of".into(), Value::String(planned.workload.name.clone()));
    }
    if let Some(spec) = b.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("replicas".into(), json!(n));
    }
    b
}

/// The map at `pointer`, made (with its parents) when absent.
fn ensure_map<'v>(value: &'v mut Value, pointer: &str) -> Option<&'v mut serde_json::Map<String, Value>> {
    let mut at = value;
    for part in pointer.split('/').skip(1) {
        let map = at.as_object_mut()?;
        at = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
    at.as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_deployment_carries_the_track_everywhere_it_selects() {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}, "annotations": {"cairn/strategy": "canary"}},
            "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
        let id = ObjectId {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("apps".into()),
            name: "web".into(),
        };
        let planned = PlannedRollout {
            workload: id.clone(),
            strategy: "s".into(),
            how: How::Canary { steps: vec![Step::Weight(10)] },
            replicas: 10,
            stable_replicas: 10,
            temporary: ObjectId { name: "web-canary".into(), ..id },
            template: "sha256:x".into(),
            timeout: Duration::from_secs(1),
            phases: Vec::new(),
        };
        let t = temporary(&body, &planned, "canary", 1);
        assert_eq!(t["metadata"]["name"], "web-canary");
        assert_eq!(t["spec"]["replicas"], 1);
        assert_eq!(t["spec"]["selector"]["matchLabels"], json!({"app": "web", "cairn/track": "canary"}));
        assert_eq!(t["spec"]["template"]["metadata"]["labels"], json!({"app": "web", "cairn/track": "canary"}));
        assert!(t["metadata"]["annotations"].get("cairn/strategy").is_none());
        assert_eq!(t["spec"]["template"]["spec"], body["spec"]["template"]["spec"]);
    }
}
