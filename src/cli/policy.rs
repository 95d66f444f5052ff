//! `cairn policy test DIR`.

use std::io::Write;
use std::path::Path;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::report::{self, Format};

pub fn test(cli: &Cli, dir: &Path, format: Format, out: &mut dyn Write) -> Result<Status> {
    let results = crate::policy::test::run(dir)?;
    report_io(report::write_policy_tests(out, &results, format, cli.style()))?;
    Ok(if results.iter().all(|r| r.passed) { Status::Success } else { Status::Findings })
}
