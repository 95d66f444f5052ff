//! `cairn plan`.

use std::io::Write;

use super::{ChangeArgs, Cli, SchemaArgs, Select, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};
use crate::secrets::Masked;

/// `--detailed-exitcode`, `--no-prune`, `--no-diff`.
pub struct Flags {
    pub detailed_exitcode: bool,
    pub prune: bool,
    pub diff: bool,
}

pub fn run(
    cli: &Cli,
    select: &Select,
    schema: SchemaArgs,
    change: &ChangeArgs,
    format: Format,
    flags: Flags,
    out: &mut dyn Write,
) -> Result<Status> {
    let mut run = pipeline::load(&cli.repo, &select.envs, select.rev.as_deref())?;
    let planned = pipeline::plan(&mut run, schema.into(), &change.into(), flags.prune)?;
    let changed = planned.plans.iter().any(crate::plan::Plan::has_changes);
    let blocked = crate::validate::has_errors(&planned.findings);
    // The plans are masked in place: nothing else reads them.
    let plans = Masked::owned(planned.plans);
    report_io(report::write_plans_with_findings(
        out,
        &plans,
        &planned.scope,
        &planned.findings,
        format,
        cli.style(),
        flags.diff,
    ))?;
    run.leave_to_exit();
    // Masked already: the operating system takes them back at exit (see `leave_to_exit`).
    std::mem::forget(plans);
    Ok(if blocked {
        Status::Findings
    } else if flags.detailed_exitcode && changed {
        Status::Changes
    } else {
        Status::Success
    })
}
