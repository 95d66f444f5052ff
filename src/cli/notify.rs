//! `cairn notify --env ENV [--release ID]`, and the notifications `apply --notify` and
//! `rollback --notify` send after writing.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::config::Config;
use crate::error::Result;
use crate::events::Events;
use crate::notify::MailBody;
use crate::pipeline::{self, NotifySpec};
use crate::release::Release;
use crate::release::notes::Selection;
use crate::repo::Repo;
use crate::report::{self, Format};

pub fn run(
    cli: &Cli,
    env: &str,
    release: Option<u64>,
    actor: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let var = variable;
    let spec = NotifySpec { actor: actor.map(str::to_string), var: &var, mail: &mail };
    let notified = pipeline::notify(&cli.repo, env, release, &spec, &Events::off())?;
    report_io(report::write_notified(out, &notified, format, cli.style()))?;
    Ok(if notified.failed() { Status::Failed } else { Status::Success })
}

/// After a write: notify about each release made, when asked (`--notify`) or configured
/// (`notifications.notify_on_apply`). Never changes the write's outcome.
pub(crate) fn after(cli: &Cli, flag: bool, releases: &[(String, u64)], actor: Option<&str>, events: &Events) {
    let configured = match pipeline::notifies_on_apply(&cli.repo) {
        Ok(on) => on,
        Err(e) => {
            tracing::error!("notifications were not sent: {e}");
            return;
        }
    };
    if !(flag || configured) || releases.is_empty() {
        return;
    }
    let var = variable;
    let spec = NotifySpec { actor: actor.map(str::to_string), var: &var, mail: &mail };
    for notified in pipeline::notify_after_apply(&cli.repo, releases, &spec, events) {
        for sent in notified.sent.iter().filter(|s| s.result == crate::notify::SentResult::Delivered) {
            tracing::info!(environment = %notified.environment, release = notified.release, channel = %sent.channel, event = %sent.event, "notified");
        }
    }
}

/// After a blocked check (`check --notify`): `check.blocked` to the routes' channels, each result
/// logged. Never changes the check's outcome.
pub(crate) fn after_check(cli: &Cli, saved: &crate::secrets::Masked<crate::check::SavedPlan>, events: &Events) {
    let var = variable;
    let spec = NotifySpec { actor: None, var: &var, mail: &mail };
    match pipeline::notify_check(&cli.repo, saved, &spec, events) {
        Ok(sent) => {
            for (env, s) in sent {
                match &s.error {
                    None => tracing::info!(environment = %env, channel = %s.channel, "check.blocked sent"),
                    Some(e) => {
                        tracing::error!("notification `check.blocked` of `{env}` to `{}` failed: {e}", s.channel)
                    }
                }
            }
        }
        Err(e) => tracing::error!("check.blocked was not sent: {e}"),
    }
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The release notes of `release`, as the mail channel sends them.
fn mail(repo: &Repo, config: &Config, release: &Release) -> Result<MailBody> {
    let (_, releases) = pipeline::releases(repo, config, &release.environment)?;
    let notes = crate::release::notes::build(
        repo,
        &release.environment,
        &releases,
        &Selection::Release(Some(release.id)),
        None,
    )?;
    let render = |format: Format| -> Result<String> {
        let mut bytes = Vec::new();
        report::write_notes(&mut bytes, &notes, format)
            .map_err(|e| crate::Error::Usage { message: format!("the release notes could not be written: {e}") })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(MailBody { markdown: render(Format::Markdown)?, html: render(Format::Html)? })
}
