//! `cairn rollout status|abort|resume --env ENV`.

use std::io::Write;

use super::apply::Around;
use super::{Cli, RolloutCommand, Status, report_io};
use crate::error::Result;
use crate::pipeline;

pub fn run(cli: &Cli, command: &RolloutCommand, out: &mut dyn Write) -> Result<Status> {
    match command {
        RolloutCommand::Status { env, format } => {
            let status = pipeline::rollout_status(&cli.repo, env)?;
            report_io(crate::report::write_rollout_status(out, &status, *format, cli.style()))?;
            Ok(Status::Success)
        }
        RolloutCommand::Abort { env, actor, format } => {
            match pipeline::rollout_abort(&cli.repo, env, actor.as_deref())? {
                pipeline::Gated::Blocked { rendered, findings } => {
                    super::blocked(cli, &rendered, &findings, *format, out)
                }
                pipeline::Gated::Written { result, .. } => {
                    report_io(crate::report::write_rollout_action(out, &result, *format, cli.style()))?;
                    Ok(Status::Success)
                }
            }
        }
        RolloutCommand::Resume { env, actor, write, format } => {
            let sha = pipeline::rollout_resume(&cli.repo, env)?;
            tracing::info!(environment = %env, commit = %sha, "resuming the rollout: applying its commit again");
            let events = super::open_events(write.events.as_deref())?;
            let verify = super::apply::Verify { flag: false, wait: write.timeout };
            let around = Around { events: &events, notify: write.notify, verify };
            let spec = write.spec(true, actor.clone());
            super::apply::run(cli, std::slice::from_ref(env), Some(&sha), &spec, &around, *format, out)
        }
    }
}
