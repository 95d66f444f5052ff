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
    let run = pipeline::load(&cli.repo, &select.envs, select.rev.as_deref())?;
    let planned = pipeline::plan(&run, schema.into(), &change.into(), flags.prune)?;
    report_io(report::write_plans_with_findings(
        out,
        &Masked::new(&planned.plans),
        &run.rendered,
        &planned.findings,
        format,
        cli.style(),
        flags.diff,
    ))?;
    let changed = planned.plans.iter().any(crate::plan::Plan::has_changes);
    let blocked = crate::validate::has_errors(&planned.findings);
    pipeline::leave_to_exit(run.rendered, planned.plans);
    Ok(if blocked {
        Status::Findings
    } else if flags.detailed_exitcode && changed {
        Status::Changes
    } else {
        Status::Success
    })
}
