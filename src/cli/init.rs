//! `cairn init DIR`.

use std::io::Write;
use std::path::Path;

use super::{Status, report_io};
use crate::error::Result;
use crate::report::{self, Format};

pub fn run(dir: &Path, layout: crate::scaffold::Layout, format: Format, out: &mut dyn Write) -> Result<Status> {
    let author = std::env::var("CAIRN_ACTOR").unwrap_or_else(|_| "cairn init".to_string());
    let made = crate::scaffold::init(dir, layout, (&author, "cairn@localhost"))?;
    report_io(report::write_scaffolded(out, &made, format))?;
    Ok(Status::Success)
}
