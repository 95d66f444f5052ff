//! `cairn notes --env ENV [--release ID | --from REV --to REV]`.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::release::notes::Selection;
use crate::report::{self, Format};

pub fn run(
    cli: &Cli,
    env: &str,
    release: Option<u64>,
    range: Option<(&str, &str)>,
    repo_url: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let (repo, config) = pipeline::open_config(&cli.repo)?;
    let (_, releases) = pipeline::releases(&repo, &config, env)?;
    let selection = match range {
        Some((from, to)) => Selection::Range { from: from.to_string(), to: to.to_string() },
        None => Selection::Release(release),
    };
    if releases.is_empty() && release.is_none() && range.is_none() {
        // Nothing has been released yet: say so; that is not an error.
        report_io(report::write_no_releases(out, env, format))?;
        return Ok(Status::Success);
    }
    let notes = crate::release::notes::build(&repo, env, &releases, &selection, repo_url)?;
    report_io(report::write_notes(out, &notes, format))?;
    Ok(Status::Success)
}
