//! `cairn rollback --env ENV [--to ID]`.

use std::io::Write;

use super::apply::{Around, finish, outcome};
use super::{Cli, Status, blocked, progress_bar, report_io};
use crate::error::Result;
use crate::events::Event;
use crate::pipeline::{self, Gated, WriteSpec};
use crate::report::{self, Format};
use crate::secrets::Masked;

pub fn run(
    cli: &Cli,
    env: &str,
    to: Option<u64>,
    spec: &WriteSpec,
    around: &Around,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let envs = [env.to_string()];
    around.events.emit(&Event::Started {
        format: crate::events::EVENTS_FORMAT,
        command: "rollback",
        environments: &envs,
    });
    match pipeline::rollback(
        &cli.repo,
        env,
        to,
        spec,
        &pipeline::Watch { progress: &progress_bar, events: around.events },
        None,
    )? {
        Gated::Blocked { rendered, findings } => {
            let status = blocked(cli, &rendered, &findings, format, out)?;
            around.events.emit(&Event::Finished { command: "rollback", outcome: outcome(status) });
            Ok(status)
        }
        Gated::Written { result: report, .. } => {
            let status = if report.succeeded() { Status::Success } else { Status::Failed };
            finish(cli, around, "rollback", spec, &[&report], status);
            report_io(report::write_apply(out, &Masked::each(std::slice::from_ref(&report)), format, cli.style()))?;
            Ok(status)
        }
    }
}
