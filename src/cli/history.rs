//! `cairn history --env ENV`.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};

pub fn run(cli: &Cli, env: &str, limit: Option<usize>, format: Format, out: &mut dyn Write) -> Result<Status> {
    let (repo, config) = pipeline::open_config(&cli.repo)?;
    let (_, mut releases) = pipeline::releases(&repo, &config, env)?;
    if let Some(n) = limit {
        let skip = releases.len().saturating_sub(n);
        releases.drain(..skip);
    }
    report_io(report::write_history(out, env, &releases, format, cli.style()))?;
    Ok(Status::Success)
}
