//! After the write: verify a release with its environment's checks, record what they found on
//! the release, and — when the environment says `on_failure: rollback` — put the previous
//! verified release back through the same gate as any rollback.

use std::path::Path;

use super::{Gated, Watch, WriteSpec, releases, resolve_actor};
use crate::apply::ApplyReport;
use crate::config::{Environment, OnFailure};
use crate::delivery::{self, Observer, Subject};
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::release::verification::{RollbackCause, Verdict};
use crate::release::{self, Outcome, Release};
use crate::repo::{Repo, Snapshot};
use crate::target::{self, Holder, Target};

/// `cairn verify --env ENV [--release ID]`: the environment's checks against its current
/// release (or the one given), recorded on that release. Checks come from the work tree's
/// `cairn.yaml`, the CI job's checkout.
pub fn verify(
    repo_dir: &Path,
    env: &str,
    id: Option<u64>,
    actor: Option<&str>,
    observe: &Observer,
    events: &Events,
) -> Result<Release> {
    // One read of the work tree serves the configuration and the checks' files.
    let repo = Repo::open(repo_dir)?;
    let snapshot = repo.snapshot(None)?;
    let config = crate::config::Config::load(&snapshot)?;
    let environment = config.environment(env)?;
    let (target, history) = releases(&repo, &config, env)?;
    let subject = match id {
        Some(id) => release::find(&history, env, id)?,
        None => history.iter().rev().find(|r| r.outcome == Outcome::Succeeded).cloned().ok_or_else(|| {
            Error::Usage { message: format!("environment `{env}` has no succeeded release to verify; apply it first") }
        })?,
    };
    if subject.outcome != Outcome::Succeeded {
        return Err(Error::Usage {
            message: format!(
                "release {} of `{env}` is {}; only a succeeded release can be verified",
                subject.id,
                subject.outcome.as_str()
            ),
        });
    }
    let actor = actor.map_or_else(|| resolve_actor(&repo), str::to_string);
    verify_release(&repo, &snapshot, environment, &target, &subject, &Verifying { actor: &actor, observe, events })
}

/// Who verifies, and who hears about each measurement.
struct Verifying<'a> {
    actor: &'a str,
    observe: &'a Observer<'a>,
    events: &'a Events,
}

fn verify_release(
    repo: &Repo,
    snapshot: &Snapshot,
    environment: &Environment,
    target: &Target,
    subject: &Release,
    how: &Verifying,
) -> Result<Release> {
    let Verifying { actor, observe, events } = *how;
    let verifier = delivery::prepare(
        repo.root(),
        snapshot,
        environment,
        &Subject { environment: &environment.name, release: subject.id, commit: subject.sha() },
    )?;
    tracing::info!(environment = %environment.name, release = subject.id, checks = verifier.checks.len(), "verifying");
    let env = environment.name.as_str();
    events.emit(&Event::VerificationStarted { environment: env, release: subject.id, checks: verifier.checks.len() });
    let streamed = |check: &str, m: &crate::release::verification::Measurement| {
        events.emit(&Event::Measurement {
            environment: env,
            check,
            phase: m.phase.as_str(),
            value: m.value.as_deref(),
        });
        observe(check, m);
    };
    let verification = verifier.run(actor, &streamed)?;
    events.emit(&Event::VerificationFinished {
        environment: env,
        release: subject.id,
        verdict: verification.verdict.as_str(),
    });
    // Locked only to write the record: a verification may take minutes, and holding the lock
    // that long would stop an urgent fix from being applied.
    let lock = target.lock(&Holder::current(actor))?;
    let mut record = release::read(target, subject.id)?.ok_or_else(|| Error::Usage {
        message: format!("release {} of `{}` disappeared while it was verified", subject.id, environment.name),
    })?;
    record.verification = Some(verification);
    release::write(target, &lock, &record)?;
    Ok(record)
}

/// What verification after an apply found that is not in the reports themselves.
#[derive(Debug, Default)]
pub struct Aftermath {
    /// Some verification did not pass (exit 4).
    pub unverified: bool,
    /// What could not be done about a failed verification, in sentences for the log.
    pub problems: Vec<String>,
}

/// Whether an apply of these environments verifies: `--verify`, or `verify.on_apply`. Checked
/// before anything is written, so `--verify` on an environment without checks writes nothing.
pub fn verifies(repo_dir: &Path, rev: Option<&str>, envs: &[String], flag: bool) -> Result<bool> {
    let repo = Repo::open(repo_dir)?;
    let config = crate::config::Config::load(&repo.snapshot(rev)?)?;
    let mut any = false;
    for name in envs {
        let env = config.environment(name)?;
        if flag && env.verify.checks.is_empty() {
            return Err(Error::Usage {
                message: format!(
                    "--verify: environment `{name}` has no checks; add `verify:` to it in cairn.yaml (docs/delivery.md), or apply without --verify"
                ),
            });
        }
        any |= flag || env.verify.on_apply;
    }
    Ok(any)
}

/// The environments `apply --plan FILE [--env …]` writes.
pub fn plan_environments(path: &Path, only: &[String]) -> Result<Vec<String>> {
    // Only those the plan holds: naming one it does not is for `apply_saved` to say, clearly.
    let held = crate::check::SavedPlan::read(path)?.plans.into_iter().map(|p| p.environment);
    Ok(held.filter(|env| only.is_empty() || only.contains(env)).collect())
}

/// Verifies each succeeded release in `reports` whose environment asks for it (or all, with
/// `flag`), records the result on it, and rolls back those whose verification failed where the
/// environment says `on_failure: rollback`. A rollback's report is appended to `reports`.
pub fn after_apply(
    repo_dir: &Path,
    rev: Option<&str>,
    flag: bool,
    write: &WriteSpec,
    reports: &mut Vec<ApplyReport>,
    watch: &Watch,
    observe: &Observer,
) -> Result<Aftermath> {
    let events = watch.events;
    let repo = Repo::open(repo_dir)?;
    let snapshot = repo.snapshot(rev)?;
    let config = crate::config::Config::load(&snapshot)?;
    let actor = write.actor.clone().unwrap_or_else(|| resolve_actor(&repo));
    let mut aftermath = Aftermath::default();
    let mut rollbacks = Vec::new();
    for report in reports.iter_mut() {
        let environment = config.environment(&report.release.environment)?;
        if !(flag || environment.verify.on_apply) || !report.succeeded() || environment.verify.checks.is_empty() {
            continue;
        }
        let target = target::open(repo.root(), environment)?;
        let verified = verify_release(
            &repo,
            &snapshot,
            environment,
            &target,
            &report.release,
            &Verifying { actor: &actor, observe, events },
        )?;
        let verdict = verified.verification.as_ref().map_or(Verdict::Inconclusive, |v| v.verdict);
        report.release = verified;
        if verdict == Verdict::Passed {
            continue;
        }
        aftermath.unverified = true;
        let env = environment.name.clone();
        if verdict == Verdict::Inconclusive {
            aftermath.problems.push(format!(
                "{env}: the verification of release {} was inconclusive; the release stays (nothing is rolled back on an inconclusive result), and it will not be promoted",
                report.release.id
            ));
            continue;
        }
        if environment.on_failure == OnFailure::Stop {
            aftermath.problems.push(format!(
                "{env}: the verification of release {} failed; `on_failure: stop` leaves it in place",
                report.release.id
            ));
            continue;
        }
        let (_, history) = releases(&repo, &config, &env)?;
        let Some(goal) = restore_point(&history, &report.release) else {
            aftermath.problems.push(format!(
                "{env}: the verification of release {} failed, and there is no earlier release to roll back to",
                report.release.id
            ));
            continue;
        };
        let cause = report.release.verification.as_ref().map(|v| RollbackCause::of(report.release.id, v));
        tracing::warn!(environment = %env, release = report.release.id, to = goal, "verification failed; rolling back");
        events.emit(&Event::RollbackStarted {
            environment: &env,
            from_release: report.release.id,
            to_release: Some(goal),
        });
        match super::rollback(repo_dir, &env, Some(goal), write, watch, cause)? {
            Gated::Written { result, .. } => rollbacks.push(result),
            Gated::Blocked { findings, .. } => {
                let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
                aftermath.problems.push(format!(
                    "{env}: the verification of release {} failed, and the rollback to release {goal} was stopped by the gate ({}); roll back by hand with `cairn rollback --env {env} --to {goal}`",
                    report.release.id,
                    codes.join(", ")
                ));
            }
        }
    }
    reports.extend(rollbacks);
    Ok(aftermath)
}

/// The release a failed one is rolled back to: the newest earlier succeeded release whose last
/// verification passed; when none was ever verified, the release it replaced.
fn restore_point(history: &[Release], failed: &Release) -> Option<u64> {
    history
        .iter()
        .rev()
        .filter(|r| r.id < failed.id && r.outcome == Outcome::Succeeded)
        .find(|r| r.verification.as_ref().is_some_and(|v| v.passed()))
        .map(|r| r.id)
        .or(failed.previous)
}
