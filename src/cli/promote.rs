//! `cairn promote --to ENV [--dry-run] [--branch NAME]`.

use std::io::Write;

use super::{Cli, Status, report_io};
use crate::error::Result;
use crate::pipeline::{self, PromoteSpec, Promotion};
use crate::report::{self, Format};

pub fn run(cli: &Cli, spec: &PromoteSpec, format: Format, out: &mut dyn Write) -> Result<Status> {
    let promotion = pipeline::promote(&cli.repo, spec)?;
    report_io(report::write_promotion(out, &promotion, format, cli.style()))?;
    Ok(match promotion {
        Promotion::Promoted(_) => Status::Success,
        Promotion::Refused { .. } => Status::Findings,
    })
}
