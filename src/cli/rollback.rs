//! `cairn rollback --env ENV [--to ID]`.

use std::io::Write;

use super::{Cli, Status, blocked, progress_bar, report_io};
use crate::error::Result;
use crate::pipeline::{self, Gated, WriteSpec};
use crate::report::{self, Format};
use crate::secrets::Masked;

pub fn run(
    cli: &Cli,
    env: &str,
    to: Option<u64>,
    spec: &WriteSpec,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    match pipeline::rollback(&cli.repo, env, to, spec, &progress_bar, None)? {
        Gated::Blocked { rendered, findings } => blocked(cli, &rendered, &findings, format, out),
        Gated::Written { result: report, .. } => {
            let ok = report.succeeded();
            report_io(report::write_apply(out, &Masked::each(std::slice::from_ref(&report)), format, cli.style()))?;
            Ok(if ok { Status::Success } else { Status::Failed })
        }
    }
}
