//! `cairn check --base REV [--head REV]`: the pull-request step.

use std::io::Write;
use std::path::Path;

use super::{Cli, SchemaArgs, Status, report_io};
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};
use crate::secrets::Masked;

/// The change checked, and where its plan is saved.
pub struct What<'a> {
    pub base: &'a str,
    pub head: &'a str,
    pub plan_out: Option<&'a Path>,
    pub approvals: Option<&'a Path>,
}

pub fn run(
    cli: &Cli,
    what: &What,
    schema: SchemaArgs,
    prune: bool,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let (saved, rendered) = pipeline::check(&cli.repo, what.base, what.head, schema.into(), prune, what.approvals)?;
    // What is written and shown never holds a secret value; `apply --plan` re-renders the desired
    // objects from git and compares digests, which masking leaves as they are.
    let saved = Masked::new(&saved);
    if let Some(path) = what.plan_out {
        report::save_check(path, &saved)?;
    }
    let full = what.plan_out.map(|p| p.with_extension("md").display().to_string());
    report_io(report::write_check(out, &saved, &rendered, format, full.as_deref(), cli.style()))?;
    let blocked = saved.blocked();
    pipeline::leave_to_exit(rendered, Vec::new());
    Ok(if blocked { Status::Findings } else { Status::Success })
}
