//! `cairn apply --env …` and `cairn apply --plan FILE`, optionally verified (`--verify`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{Cli, Status, blocked, progress_bar, report_io};
use crate::apply::{Applied, ApplyReport};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::pipeline::{self, Gated, WriteSpec};
use crate::report::{self, Format};
use crate::secrets::Masked;

/// `--verify`, and how long it waits for health when `--wait` is not given.
#[derive(Debug, Clone, Copy)]
pub struct Verify {
    pub flag: bool,
    pub wait: Duration,
}

/// What goes around the write: the event stream and notifications.
pub struct Around<'a> {
    pub events: &'a Events,
    pub notify: bool,
    pub verify: Verify,
}

impl Around<'_> {
    fn watch(&self) -> pipeline::Watch<'_> {
        pipeline::Watch { progress: &progress_bar, events: self.events }
    }
}

/// Ends the event stream and sends the notifications of the releases written.
pub(crate) fn finish(
    cli: &Cli,
    around: &Around,
    command: &str,
    spec: &WriteSpec,
    reports: &[&ApplyReport],
    status: Status,
) {
    let releases: Vec<(String, u64)> = reports.iter().map(|r| (r.release.environment.clone(), r.release.id)).collect();
    super::notify::after(cli, around.notify, &releases, spec.actor.as_deref(), around.events);
    around.events.emit(&Event::Finished { command, outcome: outcome(status) });
}

/// The `finished` event's word for a status.
pub(crate) fn outcome(status: Status) -> &'static str {
    match status {
        Status::Success | Status::Changes => "succeeded",
        Status::Findings => "blocked",
        Status::Failed => "failed",
        Status::Unverified => "unverified",
    }
}

/// With verification, health comes first: checks against pods still starting fail for nothing.
fn with_wait(spec: &WriteSpec, verify: Verify, verifies: bool) -> WriteSpec {
    let mut spec = spec.clone();
    if verifies && spec.wait.is_none() {
        spec.wait = Some(verify.wait);
    }
    spec
}

pub fn run(
    cli: &Cli,
    envs: &[String],
    rev: Option<&str>,
    spec: &WriteSpec,
    around: &Around,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let verify = around.verify;
    around.events.emit(&Event::Started { format: crate::events::EVENTS_FORMAT, command: "apply", environments: envs });
    let verifies = pipeline::verifies(&cli.repo, rev, envs, verify.flag)?;
    let spec = with_wait(spec, verify, verifies);
    match pipeline::apply(&cli.repo, envs, rev, &spec, &around.watch())? {
        Gated::Blocked { rendered, findings } => {
            let status = blocked(cli, &rendered, &findings, format, out)?;
            around.events.emit(&Event::Finished { command: "apply", outcome: outcome(status) });
            Ok(status)
        }
        Gated::Written { result: mut reports, .. } => {
            let applied = reports.iter().all(ApplyReport::succeeded);
            let unverified = verifies && after(cli, rev, verify.flag, &spec, &mut reports, around)?;
            let status = if !applied {
                Status::Failed
            } else if unverified {
                Status::Unverified
            } else {
                Status::Success
            };
            finish(cli, around, "apply", &spec, &reports.iter().collect::<Vec<_>>(), status);
            report_io(report::write_apply(out, &Masked::new(&reports), format, cli.style()))?;
            Ok(status)
        }
    }
}

/// Verifies what was applied; true when some verification did not pass.
fn after(
    cli: &Cli,
    rev: Option<&str>,
    flag: bool,
    spec: &WriteSpec,
    reports: &mut Vec<ApplyReport>,
    around: &Around,
) -> Result<bool> {
    let observe = super::verify::observer("verifying");
    let aftermath = pipeline::after_apply(&cli.repo, rev, flag, spec, reports, &around.watch(), &*observe)?;
    for problem in &aftermath.problems {
        tracing::error!("{problem}");
    }
    Ok(aftermath.unverified)
}

/// A saved plan to apply: which of its environments, at which revision, replanned or not.
pub struct Saved<'a> {
    pub path: &'a Path,
    /// Empty: every environment of the plan.
    pub envs: &'a [String],
    pub rev: Option<&'a str>,
    pub replan: bool,
}

pub fn run_saved(
    cli: &Cli,
    saved: &Saved,
    spec: &WriteSpec,
    around: &Around,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let verify = around.verify;
    let Saved { path, envs, rev, replan } = *saved;
    let named = pipeline::plan_environments(path, envs)?;
    around.events.emit(&Event::Started {
        format: crate::events::EVENTS_FORMAT,
        command: "apply --plan",
        environments: &named,
    });
    let verifies = pipeline::verifies(&cli.repo, Some(rev.unwrap_or("HEAD")), &named, verify.flag)?;
    let spec = with_wait(spec, verify, verifies);
    match pipeline::apply_saved(&cli.repo, path, envs, rev, replan, &spec, &around.watch())? {
        Gated::Blocked { rendered, findings } => {
            let status = blocked(cli, &rendered, &findings, format, out)?;
            around.events.emit(&Event::Finished { command: "apply --plan", outcome: outcome(status) });
            Ok(status)
        }
        Gated::Written { mut result, .. } => {
            let refused = result.iter().any(|r| matches!(r, Applied::Refused { .. }));
            let failed = result.iter().any(|r| matches!(r, Applied::Applied(a) if !a.succeeded()));
            let mut unverified = false;
            if verifies && !refused {
                let mut reports: Vec<ApplyReport> = result
                    .drain(..)
                    .filter_map(|r| match r {
                        Applied::Applied(report) => Some(*report),
                        Applied::Refused { .. } => None,
                    })
                    .collect();
                unverified = after(cli, Some(rev.unwrap_or("HEAD")), verify.flag, &spec, &mut reports, around)?;
                result = reports.into_iter().map(|r| Applied::Applied(Box::new(r))).collect();
            }
            let status = if refused {
                Status::Findings
            } else if failed {
                Status::Failed
            } else if unverified {
                Status::Unverified
            } else {
                Status::Success
            };
            let written: Vec<&ApplyReport> = result
                .iter()
                .filter_map(|r| match r {
                    Applied::Applied(report) => Some(&**report),
                    Applied::Refused { .. } => None,
                })
                .collect();
            if refused {
                around.events.emit(&Event::Finished { command: "apply --plan", outcome: "refused" });
            } else {
                finish(cli, around, "apply --plan", &spec, &written, status);
            }
            report_io(report::write_applied(out, &Masked::new(&result), path, format, cli.style()))?;
            Ok(status)
        }
    }
}
