//! Command-line interface: the clap types (`args`) and one short file per command, each parsing
//! nothing more, calling the library (`pipeline`, `release`, `secrets`, …) and handing the result
//! to a reporter. Results go to the writer given (stdout); logs and progress go to stderr.

mod apply;
mod args;
mod changes;
mod check;
mod history;
mod init;
mod metrics;
mod notes;
mod notify;
mod plan;
mod policy;
mod promote;
mod render;
mod rollback;
mod rollout;
mod secrets;
mod site;
mod status;
mod validate;
mod verify;

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use args::*;

use crate::error::{Error, Result};

/// What a command concluded, mapped to the exit code contract by the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// Findings, or an apply refused: exit 1.
    Findings,
    /// A failed apply of some objects: exit 2 after the report is printed.
    Failed,
    /// `plan --detailed-exitcode` with changes: exit 3.
    Changes,
    /// A verification that did not pass (failed, rolled back, or inconclusive): exit 4.
    Unverified,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Findings => 1,
            Status::Failed => 2,
            Status::Changes => 3,
            Status::Unverified => 4,
        }
    }
}

/// Runs the parsed command, writing results to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Status> {
    match &cli.command {
        Command::Init { dir, layout, format } => init::run(dir, *layout, *format, out),
        Command::Render { select, format } => render::run(cli, select, *format, out),
        Command::Validate { select, schema, change, format } => {
            validate::run(cli, select, *schema, change, *format, out)
        }
        Command::Plan { select, schema, change, format, detailed_exitcode, no_prune, no_diff } => {
            let flags = plan::Flags { detailed_exitcode: *detailed_exitcode, prune: !no_prune, diff: !no_diff };
            plan::run(cli, select, *schema, change, *format, flags, out)
        }
        Command::Apply { envs, rev, plan, replan, verify, no_prune, actor, write, format } => {
            let spec = write.spec(!no_prune, actor.clone());
            let verify = apply::Verify { flag: *verify, wait: write.timeout };
            let events = open_events(write.events.as_deref())?;
            let around = apply::Around { events: &events, notify: write.notify, verify };
            match plan {
                Some(path) => {
                    let saved = apply::Saved { path, envs, rev: rev.as_deref(), replan: *replan };
                    apply::run_saved(cli, &saved, &spec, &around, *format, out)
                }
                None => apply::run(cli, envs, rev.as_deref(), &spec, &around, *format, out),
            }
        }
        Command::Promote { to, dry_run, branch, actor, format } => {
            let spec = crate::pipeline::PromoteSpec {
                to: to.clone(),
                dry_run: *dry_run,
                branch: branch.clone(),
                actor: actor.clone(),
            };
            promote::run(cli, &spec, *format, out)
        }
        Command::Verify { env, release, actor, events, format } => {
            let events = open_events(events.as_deref())?;
            verify::run(cli, env, *release, actor.as_deref(), &events, *format, out)
        }
        Command::Notify { env, release, actor, format } => {
            notify::run(cli, env, *release, actor.as_deref(), *format, out)
        }
        Command::Check {
            base,
            head,
            out: plan_out,
            approvals,
            schema,
            no_prune,
            envs,
            reports,
            events,
            notify,
            format,
        } => {
            let events = open_events(events.as_deref())?;
            let what = check::What {
                base,
                head,
                plan_out: plan_out.as_deref(),
                approvals: approvals.as_deref(),
                envs,
                events: &events,
                notify: *notify,
            };
            let reports =
                if reports.is_empty() { vec![ReportTarget { format: *format, file: None }] } else { reports.clone() };
            check::run(cli, &what, *schema, !no_prune, &reports, out)
        }
        Command::History { env, limit, format } => history::run(cli, env, *limit, *format, out),
        Command::Notes { env, release, from, to, repo_url, format } => {
            let range = from.as_deref().zip(to.as_deref());
            notes::run(cli, env, *release, range, repo_url.as_deref(), *format, out)
        }
        Command::Status { envs, format } => status::run(cli, envs, *format, out),
        Command::Rollback { env, to, actor, write, format } => {
            let events = open_events(write.events.as_deref())?;
            let verify = apply::Verify { flag: false, wait: write.timeout };
            let around = apply::Around { events: &events, notify: write.notify, verify };
            rollback::run(cli, env, *to, &write.spec(true, actor.clone()), &around, *format, out)
        }
        Command::Rollout(command) => rollout::run(cli, command, out),
        Command::Metrics { envs, since, until, format } => {
            metrics::run(cli, envs, since, until.as_deref(), *format, out)
        }
        Command::Policy(PolicyCommand::Test { dir, format }) => policy::test(cli, dir, *format, out),
        Command::Secrets(command) => secrets::run(command, out),
        Command::Site { out: dir, envs, since, repo_url, format } => {
            let scope = site::Scope { envs, since, repo_url: repo_url.as_deref() };
            site::run(cli, dir, &scope, *format, out)
        }
        Command::Changes { base, head, max_jobs, job_template, format } => {
            changes::run(cli, base, head, *max_jobs, job_template, *format, out)
        }
    }
}

/// A write the gate stopped: its findings, in the command's format, and exit 1.
pub(crate) fn blocked(
    cli: &Cli,
    rendered: &[crate::render::Rendered],
    findings: &[crate::validate::Finding],
    format: crate::report::Format,
    out: &mut dyn Write,
) -> Result<Status> {
    report_io(crate::report::write_blocked(out, rendered, findings, format, cli.style()))?;
    Ok(Status::Findings)
}

/// `--events FILE`: the stream, or off.
fn open_events(path: Option<&std::path::Path>) -> Result<crate::events::Events> {
    match path {
        Some(p) => crate::events::Events::open(p),
        None => Ok(crate::events::Events::off()),
    }
}

/// A bar on stderr when it is a terminal; hidden otherwise so CI logs stay clean.
pub(crate) fn progress_bar(message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

/// Writing results failed: a closed pipe is not an error worth a message (the binary exits
/// quietly), anything else is reported.
pub(crate) fn report_io(result: std::io::Result<()>) -> Result<()> {
    result.map_err(|e| Error::io("<stdout>", "cannot write results", e))
}
