//! `cairn render`.

use std::io::Write;

use super::{Cli, Select, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};
use crate::secrets::Masked;

pub fn run(cli: &Cli, select: &Select, format: Format, out: &mut dyn Write) -> Result<Status> {
    let mut run = pipeline::load(&cli.repo, &select.envs, select.rev.as_deref())?;
    // Nothing reads the plaintext after this: masked in place, without a copy of every object.
    let rendered = Masked::owned(std::mem::take(&mut run.rendered));
    report_io(report::write_rendered(out, &rendered, format))?;
    run.leave_to_exit();
    // As `leave_to_exit` does: the process is about to end, and freeing every object one by one
    // costs more than leaving it to the operating system. The masked copy holds no plaintext.
    std::mem::forget(rendered);
    Ok(Status::Success)
}
