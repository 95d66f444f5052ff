//! `cairn check --base REV [--head REV]`: the pull-request step.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Cli, ReportTarget, SchemaArgs, Status, report_io};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::pipeline;
use crate::report;
use crate::secrets::Masked;

/// The change checked, which of its environments, and where its plan is saved.
pub struct What<'a> {
    pub base: &'a str,
    pub head: &'a str,
    pub plan_out: Option<&'a Path>,
    pub approvals: Option<&'a Path>,
    /// Empty: every environment the change touches.
    pub envs: &'a [String],
    pub events: &'a crate::events::Events,
    /// `--notify`: tell the routes' channels when the check blocks.
    pub notify: bool,
}

pub fn run(
    cli: &Cli,
    what: &What,
    schema: SchemaArgs,
    prune: bool,
    reports: &[ReportTarget],
    out: &mut dyn Write,
) -> Result<Status> {
    // A report that cannot be written is found before the work, not after it.
    check_targets(reports, what.plan_out)?;
    what.events.emit(&Event::Started {
        format: crate::events::EVENTS_FORMAT,
        command: "check",
        environments: what.envs,
    });
    let change = pipeline::CheckSpec { base: what.base, head: what.head, only: what.envs, approvals: what.approvals };
    let checked = pipeline::check(&cli.repo, &change, schema.into(), prune, what.events);
    let (saved, rendered) = match checked {
        Ok(done) => done,
        Err(e) => {
            what.events.emit(&Event::Finished { command: "check", outcome: "failed" });
            return Err(e);
        }
    };
    // What is written and shown never holds a secret value; `apply --plan` re-renders the desired
    // objects from git and compares digests, which masking leaves as they are.
    let saved = Masked::new(&saved);
    let full = what.plan_out.map(|p| p.with_extension("md").display().to_string());
    // Every report is made before any is written, so a failing one leaves no other behind.
    let mut made = Vec::new();
    for target in reports {
        let mut bytes = Vec::new();
        report_io(report::write_check(&mut bytes, &saved, &rendered, target.format, full.as_deref(), cli.style()))?;
        made.push((target, bytes));
    }
    if let Some(path) = what.plan_out {
        report::save_check(path, &saved)?;
    }
    for (target, bytes) in made {
        match &target.file {
            Some(path) => crate::fs::write_atomically(path, &bytes)?,
            None => report_io(out.write_all(&bytes))?,
        }
    }
    let blocked = saved.blocked();
    if blocked && what.notify {
        super::notify::after_check(cli, &saved, what.events);
    }
    what.events.emit(&Event::Finished { command: "check", outcome: if blocked { "blocked" } else { "succeeded" } });
    pipeline::leave_to_exit(rendered);
    Ok(if blocked { Status::Findings } else { Status::Success })
}

/// At most one report on stdout, no file named twice (nor the saved plan or its report), and
/// every file where one can be written.
fn check_targets(reports: &[ReportTarget], plan_out: Option<&Path>) -> Result<()> {
    let usage = |message: String| Error::Usage { message };
    let on_stdout: Vec<&str> = reports.iter().filter(|r| r.file.is_none()).map(|r| r.format.as_str()).collect();
    if on_stdout.len() > 1 {
        return Err(usage(format!(
            "--report {} would all go to stdout; give all but one a file (`FORMAT=FILE`)",
            on_stdout.join(", --report ")
        )));
    }
    let mut taken: Vec<PathBuf> = plan_out.map(|p| vec![p.to_path_buf(), p.with_extension("md")]).unwrap_or_default();
    for report in reports {
        let Some(path) = &report.file else { continue };
        if taken.contains(path) {
            return Err(usage(format!(
                "--report {}={}: that file is already written by another report or by --out; give each its own file",
                report.format,
                path.display()
            )));
        }
        taken.push(path.clone());
        writable(path)
            .map_err(|why| usage(format!("--report {}={}: cannot be written: {why}", report.format, path.display())))?;
    }
    Ok(())
}

/// Whether a file can be made at `path`: not a directory, and the nearest existing directory
/// above it takes a new file (tried with an empty one, removed at once).
fn writable(path: &Path) -> std::result::Result<(), String> {
    if path.is_dir() {
        return Err("it is a directory".to_string());
    }
    let mut dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    while !dir.exists() {
        dir = dir.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let probe = dir.join(format!(".cairn-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}
