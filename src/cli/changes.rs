//! `cairn changes --base REV [--head REV]`: what a change touches, or the CI matrix to check it.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::report::{self, Format};

pub fn run(
    cli: &Cli,
    base: &str,
    head: &str,
    max_jobs: usize,
    job_template: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let max_jobs = crate::shard::check_max_jobs(max_jobs)?;
    let repo = crate::repo::Repo::open(&cli.repo)?;
    let changes = repo.changed_paths(base, head)?;
    let snapshot = repo.snapshot(Some(head))?;
    let config = crate::config::Config::load(&snapshot)?;
    let touched = crate::check::touched_environments(&config, &changes.paths);
    match format {
        Format::GithubMatrix | Format::GitlabPipeline => {
            let estimates = crate::shard::estimate(&snapshot, &config, &touched)?;
            let shards = crate::shard::split(&estimates, max_jobs);
            let matrix = report::Matrix { base: &changes.base, head: &changes.head, shards: &shards, job_template };
            report_io(report::write_matrix(out, &matrix, format))?;
        }
        _ => report_io(report::write_changes(out, &changes, &touched, format))?,
    }
    Ok(Status::Success)
}
