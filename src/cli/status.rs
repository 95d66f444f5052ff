//! `cairn status [--env ENV …]`.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};

pub fn run(cli: &Cli, envs: &[String], format: Format, out: &mut dyn Write) -> Result<Status> {
    let (repo, config) = pipeline::open_config(&cli.repo)?;
    let mut all = Vec::new();
    for env in config.select(envs)? {
        let (target, releases) = pipeline::releases(&repo, &config, &env.name)?;
        all.push(crate::release::status::environment_status(&repo, &env.name, &target, &releases)?);
    }
    report_io(report::write_status(out, &all, format, cli.style()))?;
    Ok(Status::Success)
}
