//! `cairn apply --env …` and `cairn apply --plan FILE`, optionally verified (`--verify`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{Cli, Status, blocked, progress_bar, report_io};
use crate::apply::{Applied, ApplyReport};
use crate::error::Result;
use crate::pipeline::{self, Gated, WriteSpec};
use crate::report::{self, Format};
use crate::secrets::Masked;

/// `--verify`, and how long it waits for health when `--wait` is not given.
#[derive(Debug, Clone, Copy)]
pub struct Verify {
    pub flag: bool,
    pub wait: Duration,
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
    verify: Verify,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let verifies = pipeline::verifies(&cli.repo, rev, envs, verify.flag)?;
    let spec = with_wait(spec, verify, verifies);
    match pipeline::apply(&cli.repo, envs, rev, &spec, &progress_bar)? {
        Gated::Blocked { rendered, findings } => blocked(cli, &rendered, &findings, format, out),
        Gated::Written { result: mut reports, .. } => {
            let applied = reports.iter().all(ApplyReport::succeeded);
            let unverified = verifies && after(cli, rev, verify.flag, &spec, &mut reports)?;
            report_io(report::write_apply(out, &Masked::new(&reports), format, cli.style()))?;
            Ok(if !applied {
                Status::Failed
            } else if unverified {
                Status::Unverified
            } else {
                Status::Success
            })
        }
    }
}

/// Verifies what was applied; true when some verification did not pass.
fn after(cli: &Cli, rev: Option<&str>, flag: bool, spec: &WriteSpec, reports: &mut Vec<ApplyReport>) -> Result<bool> {
    let observe = super::verify::observer("verifying");
    let aftermath = pipeline::after_apply(&cli.repo, rev, flag, spec, reports, &progress_bar, &*observe)?;
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
    verify: Verify,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let Saved { path, envs, rev, replan } = *saved;
    let verifies = pipeline::verifies(
        &cli.repo,
        Some(rev.unwrap_or("HEAD")),
        &pipeline::plan_environments(path, envs)?,
        verify.flag,
    )?;
    let spec = with_wait(spec, verify, verifies);
    match pipeline::apply_saved(&cli.repo, path, envs, rev, replan, &spec, &progress_bar)? {
        Gated::Blocked { rendered, findings } => blocked(cli, &rendered, &findings, format, out),
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
                unverified = after(cli, Some(rev.unwrap_or("HEAD")), verify.flag, &spec, &mut reports)?;
                result = reports.into_iter().map(|r| Applied::Applied(Box::new(r))).collect();
            }
            report_io(report::write_applied(out, &Masked::new(&result), path, format, cli.style()))?;
            Ok(if refused {
                Status::Findings
            } else if failed {
                Status::Failed
            } else if unverified {
                Status::Unverified
            } else {
                Status::Success
            })
        }
    }
}
