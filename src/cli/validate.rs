//! `cairn validate`.

use std::io::Write;

use super::{ChangeArgs, Cli, SchemaArgs, Select, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};

pub fn run(
    cli: &Cli,
    select: &Select,
    schema: SchemaArgs,
    change: &ChangeArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let run = pipeline::load(&cli.repo, &select.envs, select.rev.as_deref())?;
    let findings = pipeline::validate(&run, schema.into(), &change.into())?;
    report_io(report::write_findings(out, &run.rendered, &findings, format, cli.style()))?;
    run.leave_to_exit();
    Ok(if crate::validate::has_errors(&findings) { Status::Findings } else { Status::Success })
}
