//! `cairn site --out DIR`: the status site, written whole.

use std::io::Write;
use std::path::Path;

use super::{Cli, Status, report_io};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::release::metrics;
use crate::report::{self, Format};

/// The file that marks a directory as a site cairn wrote (and so one it may replace).
pub const MARKER: &str = ".cairn-site";

/// What the site covers.
pub struct Scope<'a> {
    pub envs: &'a [String],
    /// The delivery metrics' window: `90d`, `12w`, or a date.
    pub since: &'a str,
    pub repo_url: Option<&'a str>,
}

pub fn run(cli: &Cli, dir: &Path, scope: &Scope, format: Format, out: &mut dyn Write) -> Result<Status> {
    let (repo, config) = pipeline::open_config(&cli.repo)?;
    let until = jiff::Timestamp::now();
    let since = metrics::parse_since(scope.since, until).ok_or_else(|| Error::Usage {
        message: format!(
            "--since `{}`: use a duration such as `90d`, `12w`, `48h`, or a date such as 2026-01-01",
            scope.since
        ),
    })?;
    let mut environments = Vec::new();
    for env in config.select(scope.envs)? {
        let (target, releases) = pipeline::releases(&repo, &config, &env.name)?;
        environments.push((env.name.clone(), target, releases));
    }
    let site = crate::release::site::build(&repo, environments, since, until, scope.repo_url)?;
    let files: Vec<(String, Vec<u8>)> =
        report::site_pages(&site).into_iter().map(|p| (p.path, p.html.into_bytes())).collect();
    crate::fs::replace_dir(dir, &files, MARKER)?;
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    report_io(report::write_site_written(out, dir, &paths, format))?;
    Ok(Status::Success)
}
