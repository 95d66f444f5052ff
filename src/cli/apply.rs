//! `cairn apply --env …` and `cairn apply --plan FILE`.

use std::io::Write;
use std::path::Path;

use super::{Cli, Status, blocked, progress_bar, report_io};
use crate::apply::Applied;
use crate::error::Result;
use crate::pipeline::{self, Gated, WriteSpec};
use crate::report::{self, Format};
use crate::secrets::Masked;

pub fn run(
    cli: &Cli,
    envs: &[String],
    rev: Option<&str>,
    spec: &WriteSpec,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    match pipeline::apply(&cli.repo, envs, rev, spec, &progress_bar)? {
        Gated::Blocked { rendered, findings } => blocked(cli, &rendered, &findings, format, out),
        Gated::Written { result: reports, .. } => {
            report_io(report::write_apply(out, &Masked::new(&reports), format, cli.style()))?;
            Ok(if reports.iter().all(crate::apply::ApplyReport::succeeded) { Status::Success } else { Status::Failed })
        }
    }
}

/// A saved plan to apply: which of its environments, at which revision, replanned or not.
pub struct Saved<'a> {
    pub path: &'a Path,
    /// Empty: every environment of the plan.
    pub envs: &'a [String],
    pub rev: Option<&'a str>,
    pub replan: bool,
}

pub fn run_saved(cli: &Cli, saved: &Saved, spec: &WriteSpec, format: Format, out: &mut dyn Write) -> Result<Status> {
    let Saved { path, envs, rev, replan } = *saved;
    match pipeline::apply_saved(&cli.repo, path, envs, rev, replan, spec, &progress_bar)? {
        Gated::Blocked { rendered, findings } => blocked(cli, &rendered, &findings, format, out),
        Gated::Written { result, .. } => {
            report_io(report::write_applied(out, &Masked::new(&result), path, format, cli.style()))?;
            let refused = result.iter().any(|r| matches!(r, Applied::Refused { .. }));
            let failed = result.iter().any(|r| matches!(r, Applied::Applied(a) if !a.succeeded()));
            Ok(if refused {
                Status::Findings
            } else if failed {
                Status::Failed
            } else {
                Status::Success
            })
        }
    }
}
