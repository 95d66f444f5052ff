//! `cairn metrics [--env ENV …] [--since WHEN] [--until WHEN]`.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::release::metrics;
use crate::report::{self, Format};

pub fn run(
    cli: &Cli,
    envs: &[String],
    since: &str,
    until: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let (repo, config) = pipeline::open_config(&cli.repo)?;
    let until = match until {
        Some(text) => metrics::parse_time(text)?,
        None => jiff::Timestamp::now(),
    };
    let since = metrics::parse_since(since, until).ok_or_else(|| Error::Usage {
        message: format!("--since `{since}`: use a duration such as `90d`, `12w`, `48h`, or a date such as 2026-01-01"),
    })?;
    let mut all = Vec::new();
    for env in config.select(envs)? {
        let (_, releases) = pipeline::releases(&repo, &config, &env.name)?;
        all.push(metrics::compute(&repo, &env.name, &releases, since, until)?);
    }
    report_io(report::write_metrics(out, &all, format))?;
    Ok(Status::Success)
}
