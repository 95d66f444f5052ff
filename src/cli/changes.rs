//! `cairn changes --base REV [--head REV]`.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::report::{self, Format};

pub fn run(cli: &Cli, base: &str, head: &str, format: Format, out: &mut dyn Write) -> Result<Status> {
    let repo = crate::repo::Repo::open(&cli.repo)?;
    let changes = repo.changed_paths(base, head)?;
    let config = crate::config::Config::load(&repo.snapshot(Some(head))?)?;
    let touched = crate::check::touched_environments(&config, &changes.paths);
    report_io(report::write_changes(out, &changes, &touched, format))?;
    Ok(Status::Success)
}
