//! Rollouts beyond the apply that runs them: the checks of their `verify` steps (the
//! environment's checks, run by `delivery`), and `cairn rollout status|abort|resume`.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use std::collections::BTreeMap;

use super::{Gated, open_config, releases, resolve_actor};
use crate::config::Environment;
use crate::delivery::{self, Subject};
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::gate::{self, Decision};
use crate::policy::{Approval, Context};
use crate::release::rollout::{Rollout, RolloutState};
use crate::release::verification::Verification;
use crate::release::{self, Outcome, Release};
use crate::repo::{Repo, Snapshot};
use crate::target::Holder;
use crate::validate;

/// The checks a rollout's `verify` steps run: the environment's, from the snapshot applied.
pub(super) struct EnvChecks<'a> {
    root: &'a Path,
    snapshot: &'a Snapshot,
    environment: &'a Environment,
    actor: &'a str,
    events: &'a Events,
}

impl<'a> EnvChecks<'a> {
    pub(super) fn new(
        repo: &'a Repo,
        snapshot: &'a Snapshot,
        environment: &'a Environment,
        actor: &'a str,
        events: &'a Events,
    ) -> EnvChecks<'a> {
        EnvChecks { root: repo.root(), snapshot, environment, actor, events }
    }
}

impl crate::apply::Checks for EnvChecks<'_> {
    fn verify(&self, release: u64, names: &[String], cancelled: &AtomicBool) -> Result<Verification> {
        let env = self.environment.name.as_str();
        let commit = self.snapshot.source.commit().map(|c| c.sha.clone());
        let mut verifier = delivery::prepare(
            self.root,
            self.snapshot,
            self.environment,
            &Subject { environment: env, release, commit: commit.as_deref() },
        )?;
        // A template's metrics are `check/metric`: naming the check runs all of them.
        verifier.checks.retain(|r| {
            names.iter().any(|n| {
                r.check.name == *n || r.check.name.strip_prefix(n.as_str()).is_some_and(|rest| rest.starts_with('/'))
            })
        });
        self.events.emit(&Event::VerificationStarted { environment: env, release, checks: verifier.checks.len() });
        let observe = |check: &str, m: &crate::release::verification::Measurement| {
            tracing::info!(environment = env, check, phase = m.phase.as_str(), "measurement");
            self.events.emit(&Event::Measurement {
                environment: env,
                check,
                phase: m.phase.as_str(),
                value: m.value.as_deref(),
            });
        };
        let verification = verifier.run_until(self.actor, &observe, Some(cancelled))?;
        self.events.emit(&Event::VerificationFinished {
            environment: env,
            release,
            verdict: verification.verdict.as_str(),
        });
        Ok(verification)
    }
}

/// `cairn rollout status --env ENV`: the newest release of the environment that has rollouts.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutStatus {
    pub environment: String,
    /// The release the rollouts belong to; `None` when the environment never had one.
    pub release: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    pub rollouts: Vec<Rollout>,
}

pub fn rollout_status(repo_dir: &Path, env: &str) -> Result<RolloutStatus> {
    let (repo, config) = open_config(repo_dir)?;
    let (_, history) = releases(&repo, &config, env)?;
    let latest = history.iter().rev().find(|r| !r.rollouts.is_empty());
    Ok(RolloutStatus {
        environment: env.to_string(),
        release: latest.map(|r| r.id),
        outcome: latest.map(|r| r.outcome),
        rollouts: latest.map(|r| r.rollouts.clone()).unwrap_or_default(),
    })
}

/// What `rollout abort` did.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutAction {
    pub environment: String,
    /// The release whose rollouts were aborted; `None`: none was in progress.
    pub release: Option<u64>,
    pub rollouts: Vec<Rollout>,
}

/// The release holding a rollout whose job died, when there is one.
fn stranded(history: &[Release]) -> Option<&Release> {
    history.iter().rev().find(|r| {
        matches!(r.outcome, Outcome::InProgress | Outcome::Interrupted)
            && r.rollouts.iter().any(|o| o.state == RolloutState::Running)
    })
}

/// `cairn rollout abort --env ENV`: undoes a rollout whose job was killed — Services back on the
/// old pods, the Deployment's replicas as they were, the temporary Deployment deleted — from
/// what its record says, under the environment's lock (so never under a running rollout, whose
/// job holds it). It writes nothing from git, only takes back cairn's own temporary changes; like
/// every write it passes the gate first: the environment as the killed release's commit renders
/// it (what was cleared when it was applied), with the approvals recorded on that release.
pub fn rollout_abort(repo_dir: &Path, env: &str, actor: Option<&str>) -> Result<Gated<RolloutAction>> {
    let (repo, config) = open_config(repo_dir)?;
    let actor = actor.map_or_else(|| resolve_actor(&repo), str::to_string);
    let target = crate::target::open(repo.root(), config.environment(env)?)?;
    let nothing = || Gated::Written {
        result: RolloutAction { environment: env.to_string(), release: None, rollouts: Vec::new() },
        findings: Vec::new(),
    };
    // Read once without the lock to learn what to gate, and again under it.
    let history = release::list(&target)?;
    let Some(found) = stranded(&history) else { return Ok(nothing()) };
    let id = found.id;
    let rev = found.sha().filter(|sha| repo.has_commit(sha)).map(str::to_string);
    let approvals: Vec<Approval> = found
        .approvals
        .iter()
        .map(|by| Approval {
            by: by.clone(),
            at: found.finished_at.clone(),
            commit_id: None,
            source: Some(format!("release {id}")),
        })
        .collect();
    let run = super::load_from(repo, &[env.to_string()], rev.as_deref())?;
    let context = Context {
        changed_paths: Some(Vec::new()),
        commit: run.snapshot.source.commit().cloned(),
        approvals,
        changes: BTreeMap::new(),
    };
    let super::Run { snapshot, config: at, rendered, .. } = run;
    let decision =
        gate::evaluate(&snapshot, &at, rendered, validate::Options::default(), &mut |_| Ok(context.clone()), None)?;
    let gated = match decision {
        Decision::Blocked { rendered, findings } => return Ok(Gated::Blocked { rendered, findings }),
        Decision::Cleared(g) => g,
    };
    let Some(cleared) = gated.environments().next() else {
        return Err(Error::Usage { message: format!("environment `{env}` rendered nothing at release {id}'s commit") });
    };
    let lock = target.lock(&Holder::current(&actor))?;
    let history = release::list(&target)?;
    let Some(found) = stranded(&history).filter(|r| r.id == id) else { return Ok(nothing()) };
    let mut record = found.clone();
    for k in 0..record.rollouts.len() {
        if record.rollouts[k].state != RolloutState::Running {
            continue;
        }
        let settled = crate::apply::rollout::settle(&target, &lock, &record.rollouts[k], &cleared)?;
        let rollout = &mut record.rollouts[k];
        rollout.finished_at = Some(release::now());
        let workload = rollout.planned.workload.clone();
        let error = match settled {
            crate::apply::rollout::Settled::Restored => {
                let why = format!("aborted by `cairn rollout abort` ({actor})");
                rollout.state = RolloutState::Aborted;
                rollout.reason = Some(why.clone());
                Some(format!("rollout {why}"))
            }
            // Killed in its last phase: the Deployment already runs the new version.
            crate::apply::rollout::Settled::Promoted => {
                rollout.state = RolloutState::Succeeded;
                rollout.reason = Some(format!(
                    "interrupted after the Deployment took the new version; `cairn rollout abort` ({actor}) removed the temporary objects"
                ));
                None
            }
        };
        for object in record.objects.iter_mut().filter(|o| o.object == workload) {
            object.pending = false;
            object.error.clone_from(&error);
        }
    }
    // The job that ran it is gone (the lock is ours): its release was interrupted.
    record.outcome = Outcome::Interrupted;
    record.finished_at.get_or_insert_with(release::now);
    release::write(&target, &lock, &record)?;
    let result = RolloutAction { environment: env.to_string(), release: Some(record.id), rollouts: record.rollouts };
    Ok(Gated::Written { result, findings: gated.findings().to_vec() })
}

/// `cairn rollout resume --env ENV`: the commit a killed rollout was releasing, to apply again —
/// through the gate like any apply; the apply continues the rollout from the phase it stood at.
pub fn rollout_resume(repo_dir: &Path, env: &str) -> Result<String> {
    let (repo, config) = open_config(repo_dir)?;
    let (_, history) = releases(&repo, &config, env)?;
    let found = stranded(&history).ok_or_else(|| Error::Usage {
        message: format!(
            "environment `{env}` has no rollout in progress to resume (`cairn rollout status --env {env}`)"
        ),
    })?;
    found.sha().filter(|sha| repo.has_commit(sha)).map(str::to_string).ok_or_else(|| Error::Usage {
        message: format!(
            "release {} was applied from a work tree with uncommitted changes, so its version cannot be read again; abort it with `cairn rollout abort --env {env}`, then apply",
            found.id
        ),
    })
}
