//! `cairn render`.

use std::io::Write;

use super::{Cli, Select, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};
use crate::secrets::Masked;

pub fn run(cli: &Cli, select: &Select, format: Format, out: &mut dyn Write) -> Result<Status> {
    let run = pipeline::load(&cli.repo, &select.envs, select.rev.as_deref())?;
    report_io(report::write_rendered(out, &Masked::new(&run.rendered), format))?;
    run.leave_to_exit();
    Ok(Status::Success)
}
