//! Failure-tolerant delivery: verification of a release by its environment's checks (with Argo
//! Rollouts' counting rules), and what the pipeline does when one fails.
//!
//! A verification runs every check at once, each on its own interval. The first check that
//! fails (or cannot tell) stops the others, so a bad release is known after one failing
//! measurement when `failure_limit` is 0, and the rollback starts at once. Values read from
//! environment variables (tokens in headers, template arguments) are secrets: every message,
//! value and command output recorded goes through a [`Redactor`] that knows them.

pub mod analysis;
mod probe;
pub mod promote;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Check, Environment, Probe, Text};
use crate::error::{Error, Result};
use crate::release::verification::{CheckResult, Measurement, Phase, Verdict, Verification};
use crate::repo::Snapshot;
use crate::secrets::Redactor;

/// Fills a check's placeholders: `{{ environment }}`, `{{ release }}`, `{{ commit }}` and a
/// template's `{{ args.NAME }}`, and reads `{ env: VARIABLE }` values (read once, before the
/// first measurement, so an unset variable stops the verification before it starts).
#[derive(Clone)]
pub struct Fill {
    names: BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
}

impl Fill {
    pub fn text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else { break };
            let name = rest[start + 2..start + len].trim();
            out.push_str(&rest[..start]);
            match self.names.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[start..start + len + 2]),
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        out
    }

    pub fn value(&self, text: &Text) -> String {
        match text {
            Text::Literal(s) => self.text(s),
            Text::Env(name) => self.vars.get(name).cloned().unwrap_or_default(),
        }
    }
}

/// A check ready to run: its probe (a template's metric turned into one), what it is called in
/// the record, and its placeholders.
pub struct Runnable {
    pub check: Check,
    pub kind: String,
    fill: Fill,
}

/// What a verification needs: the environment's checks, ready, and where commands run.
pub struct Verifier {
    pub checks: Vec<Runnable>,
    redactor: Redactor,
    root: PathBuf,
    /// CAIRN_ENVIRONMENT, CAIRN_RELEASE, CAIRN_COMMIT for commands.
    vars: Vec<(String, String)>,
}

/// The release a verification is about.
pub struct Subject<'a> {
    pub environment: &'a str,
    pub release: u64,
    pub commit: Option<&'a str>,
}

/// Reads the environment's checks (expanding AnalysisTemplates from the snapshot) and the
/// variables they name. Commands run in `root`, the repository's work tree.
pub fn prepare(root: &Path, snapshot: &Snapshot, env: &Environment, subject: &Subject) -> Result<Verifier> {
    if env.verify.checks.is_empty() {
        return Err(Error::Usage {
            message: format!(
                "environment `{}` has no checks to verify with; add `verify:` to it in cairn.yaml (docs/delivery.md)",
                env.name
            ),
        });
    }
    let names = BTreeMap::from([
        ("environment".to_string(), subject.environment.to_string()),
        ("release".to_string(), subject.release.to_string()),
        ("commit".to_string(), subject.commit.unwrap_or_default().to_string()),
    ]);
    let mut redactor = Redactor::default();
    let mut checks = Vec::new();
    for check in &env.verify.checks {
        let (kind, expanded) = match &check.probe {
            Probe::Analysis(reference) => ("analysis", analysis::expand(snapshot, check, reference)?),
            Probe::Http(_) => ("http", vec![(check.clone(), BTreeMap::new())]),
            Probe::Prometheus(_) => ("prometheus", vec![(check.clone(), BTreeMap::new())]),
            Probe::Command(_) => ("command", vec![(check.clone(), BTreeMap::new())]),
        };
        for (check, args) in expanded {
            let mut vars = BTreeMap::new();
            for text in texts_of(&check).into_iter().chain(args.values()) {
                if let Text::Env(name) = text {
                    let value = std::env::var(name).map_err(|_| Error::Verify {
                        check: check.name.clone(),
                        message: format!(
                            "the environment variable `{name}` is not set; set it in the CI job's secrets"
                        ),
                    })?;
                    redactor.add(&value);
                    vars.insert(name.clone(), value);
                }
            }
            let mut names = names.clone();
            let partial = Fill { names: names.clone(), vars: vars.clone() };
            for (arg, value) in &args {
                names.insert(format!("args.{arg}"), partial.value(value));
            }
            checks.push(Runnable { check, kind: kind.to_string(), fill: Fill { names, vars } });
        }
    }
    let vars = vec![
        ("CAIRN_ENVIRONMENT".to_string(), subject.environment.to_string()),
        ("CAIRN_RELEASE".to_string(), subject.release.to_string()),
        ("CAIRN_COMMIT".to_string(), subject.commit.unwrap_or_default().to_string()),
    ];
    Ok(Verifier { checks, redactor, root: root.to_path_buf(), vars })
}

fn texts_of(check: &Check) -> Vec<&Text> {
    match &check.probe {
        Probe::Http(p) => p.headers.iter().map(|(_, v)| v).collect(),
        Probe::Prometheus(p) => p.headers.iter().map(|(_, v)| v).collect(),
        Probe::Command(p) => p.env.iter().map(|(_, v)| v).collect(),
        Probe::Analysis(a) => a.args.values().collect(),
    }
}

/// Wakes every check's wait when one of them ends the verification.
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn stop(&self) {
        if let Ok(mut s) = self.stopped.lock() {
            *s = true;
        }
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.lock().map(|s| *s).unwrap_or(true)
    }

    /// Waits `d`; false when the verification was stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let Ok(mut stopped) = self.stopped.lock() else { return false };
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            match self.wake.wait_timeout(stopped, deadline - now) {
                Ok((guard, _)) => stopped = guard,
                Err(_) => return false,
            }
        }
        false
    }
}

/// Counts a check as finished when its thread ends, however it ends.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What watches the measurements as they are taken: a progress bar, or one line each.
pub type Observer<'a> = dyn Fn(&str, &Measurement) + Sync + 'a;

impl Verifier {
    /// Runs every check to its end (or until one fails), and returns the verification to record.
    /// `Err` only for a check that cannot work at all (a query the server rejects).
    pub fn run(&self, actor: &str, observe: &Observer) -> Result<Verification> {
        self.run_until(actor, observe, None)
    }

    /// Like `run`; once `cancelled` is set (a CI job being cancelled) every check stops at its
    /// next wait, and what was measured so far is returned.
    pub fn run_until(&self, actor: &str, observe: &Observer, cancelled: Option<&AtomicBool>) -> Result<Verification> {
        let started_at = crate::release::now();
        let stop = Stop { stopped: Mutex::new(false), wake: Condvar::new() };
        let broken: Mutex<Option<Error>> = Mutex::new(None);
        let running = AtomicUsize::new(self.checks.len());
        let results: Vec<CheckResult> = std::thread::scope(|scope| {
            if let Some(cancelled) = cancelled {
                let (stop, running) = (&stop, &running);
                scope.spawn(move || {
                    while running.load(Ordering::SeqCst) > 0 {
                        if cancelled.load(Ordering::SeqCst) {
                            stop.stop();
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                });
            }
            let handles: Vec<_> = self
                .checks
                .iter()
                .map(|r| {
                    let (stop, broken, running) = (&stop, &broken, &running);
                    scope.spawn(move || {
                        // Counted down even if the check panics, so the watcher above ends.
                        let _finished = Finished(running);
                        self.run_check(r, stop, broken, observe)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&self.checks)
                .map(|(h, r)| {
                    h.join().unwrap_or_else(|_| CheckResult {
                        name: r.check.name.clone(),
                        kind: r.kind.clone(),
                        verdict: Some(Verdict::Inconclusive),
                        reason: "the check stopped unexpectedly".to_string(),
                        measurements: Vec::new(),
                    })
                })
                .collect()
        });
        if let Some(e) = broken.into_inner().ok().flatten() {
            return Err(e);
        }
        let verdict = results.iter().filter_map(|c| c.verdict).max().unwrap_or(Verdict::Inconclusive);
        Ok(Verification {
            verdict,
            started_at,
            finished_at: crate::release::now(),
            actor: actor.to_string(),
            checks: results,
        })
    }

    fn run_check(&self, r: &Runnable, stop: &Stop, broken: &Mutex<Option<Error>>, observe: &Observer) -> CheckResult {
        let check = &r.check;
        let mut result = CheckResult {
            name: check.name.clone(),
            kind: r.kind.clone(),
            verdict: None,
            reason: "stopped: another check ended the verification first".to_string(),
            measurements: Vec::new(),
        };
        if !check.initial_delay.is_zero() && !stop.sleep(check.initial_delay) {
            return result;
        }
        let (mut taken, mut failed, mut inconclusive, mut errors) = (0u32, 0u32, 0u32, 0u32);
        loop {
            if stop.is_stopped() {
                return result;
            }
            let at = crate::release::now();
            let began = Instant::now();
            let seen = match self.measure(r, &|| stop.is_stopped()) {
                Ok(seen) => seen,
                Err(e) => {
                    if let Ok(mut slot) = broken.lock() {
                        slot.get_or_insert(e);
                    }
                    stop.stop();
                    return result;
                }
            };
            let measurement = Measurement {
                at,
                phase: seen.phase,
                value: seen.value,
                message: seen.message,
                elapsed_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
                output: seen.output,
            };
            observe(&check.name, &measurement);
            let phase = measurement.phase;
            result.measurements.push(measurement);
            match phase {
                Phase::Error => errors += 1,
                other => {
                    taken += 1;
                    errors = 0;
                    match other {
                        Phase::Failed => failed += 1,
                        Phase::Inconclusive => inconclusive += 1,
                        _ => {}
                    }
                }
            }
            // Argo Rollouts' order: failures, then inconclusive results, then errors.
            let end = if let Some(limit) = check.failure_limit.filter(|l| failed > *l) {
                Some((Verdict::Failed, format!("{failed} failed measurement(s), more than failure_limit {limit}")))
            } else if inconclusive > check.inconclusive_limit {
                Some((
                    Verdict::Inconclusive,
                    format!(
                        "{inconclusive} inconclusive measurement(s), more than inconclusive_limit {}",
                        check.inconclusive_limit
                    ),
                ))
            } else if errors > check.consecutive_error_limit {
                Some((
                    Verdict::Inconclusive,
                    format!(
                        "{errors} measurements in a row could not be taken, more than consecutive_error_limit {}",
                        check.consecutive_error_limit
                    ),
                ))
            } else if taken >= check.count {
                Some((
                    Verdict::Passed,
                    format!(
                        "{taken} measurement(s): {} passed, {failed} failed, {inconclusive} inconclusive",
                        taken - failed - inconclusive
                    ),
                ))
            } else {
                None
            };
            if let Some((verdict, reason)) = end {
                result.verdict = Some(verdict);
                result.reason = reason;
                if verdict != Verdict::Passed {
                    stop.stop();
                }
                return result;
            }
            if !stop.sleep(check.interval) {
                return result;
            }
        }
    }

    fn measure(&self, r: &Runnable, stopped: &dyn Fn() -> bool) -> Result<probe::Seen> {
        let timeout = r.check.timeout;
        Ok(match &r.check.probe {
            Probe::Http(p) => probe::http(p, &r.fill, timeout, &self.redactor),
            Probe::Prometheus(p) => probe::prometheus(p, &r.fill, timeout, &self.redactor, &r.check.name)?,
            Probe::Command(p) => probe::command(p, &r.fill, timeout, &self.redactor, &self.root, &self.vars, stopped),
            // Expanded into its metrics by `prepare`.
            Probe::Analysis(_) => {
                return Err(Error::Verify {
                    check: r.check.name.clone(),
                    message: "internal: an analysis reference was not expanded".to_string(),
                });
            }
        })
    }
}
