//! What `check` writes (its pull-request comment is `comment.rs`), and the outcome of
//! `apply --plan`.

use std::io::{self, Write};
use std::path::Path;

use super::comment::check_markdown;
use super::plan::{write_masked_applies, write_masked_plans};
use super::{Format, Style, colors, write_json};
use crate::apply::Applied;
use crate::check::SavedPlan;
use crate::secrets::Masked;

/// The outcome of `apply --plan`: releases made, or why the plan was refused.
pub fn write_applied(
    w: &mut dyn Write,
    results: &Masked<Vec<Applied>>,
    plan: &Path,
    format: Format,
    style: Style,
) -> io::Result<()> {
    if !matches!(format, Format::Human | Format::Json) {
        return Err(format.unsupported("the outcome of `apply --plan`"));
    }
    if format == Format::Json {
        return write_json(w, results);
    }
    if results.is_empty() {
        return writeln!(w, "The plan touches no environment; nothing to apply.");
    }
    for result in results.iter() {
        match result {
            Applied::Applied(report) => write_masked_applies(w, std::slice::from_ref(&**report), style)?,
            Applied::Refused { environment, moved } => {
                writeln!(
                    w,
                    "{}",
                    style.paint(
                        colors::RED,
                        &format!(
                            "{environment}: refused: {} object(s) moved since the plan was made; nothing was applied. Check again, or run `cairn apply --plan {} --replan` to plan afresh and apply.",
                            moved.len(),
                            plan.display()
                        )
                    )
                )?;
                for m in moved {
                    writeln!(w, "  {}: planned {}; now {}", m.object, m.planned, m.now)?;
                }
            }
        }
    }
    Ok(())
}

/// Saves a (masked) plan for `apply --plan`, and the full Markdown report beside it
/// (`plan.json` → `plan.md`), each written atomically.
pub fn save_check(path: &Path, saved: &Masked<SavedPlan>) -> crate::error::Result<()> {
    crate::fs::write_json_atomically(path, saved)?;
    crate::fs::write_atomically(&path.with_extension("md"), check_markdown(saved, None).as_bytes())
}

/// `check`'s result: the pull-request report (Markdown), the saved plan (JSON), findings and
/// plans for people (human), or the findings in a code-scanning or CI format (SARIF, JUnit,
/// GitHub). `full_report` names the saved Markdown report the comment-sized one points to.
pub fn write_check(
    w: &mut dyn Write,
    saved: &Masked<SavedPlan>,
    rendered: &[crate::render::Rendered],
    format: Format,
    full_report: Option<&str>,
    style: Style,
) -> io::Result<()> {
    match format {
        Format::Markdown => w.write_all(check_markdown(saved, Some(full_report)).as_bytes()),
        Format::Json => write_json(w, saved),
        Format::Human => {
            super::write_findings(w, rendered, &saved.findings, Format::Human, style)?;
            write_masked_plans(w, &saved.plans, Format::Human, style, true)
        }
        Format::Sarif | Format::Junit | Format::Github => {
            super::write_findings(w, rendered, &saved.findings, format, style)
        }
        other => Err(other.unsupported("a check")),
    }
}

/// A write the gate stopped: the findings that stopped it, and that nothing was written. Human or
/// JSON, as the rest of what `apply` and `rollback` print.
pub fn write_blocked(
    w: &mut dyn Write,
    rendered: &[crate::render::Rendered],
    findings: &[crate::validate::Finding],
    format: Format,
    style: Style,
) -> io::Result<()> {
    match format {
        Format::Json => {
            #[derive(serde::Serialize)]
            struct Blocked<'a> {
                result: &'static str,
                environments: Vec<&'a str>,
                findings: &'a [crate::validate::Finding],
            }
            let environments = rendered.iter().map(|r| r.environment.as_str()).collect();
            write_json(w, &Blocked { result: "blocked", environments, findings })
        }
        Format::Human => {
            super::write_findings(w, rendered, findings, Format::Human, style)?;
            writeln!(
                w,
                "{}",
                style.paint(
                    colors::RED,
                    "Nothing was written: error findings block the write. Fix them, or break glass with --override-findings \"REASON\" (recorded on the release)."
                )
            )
        }
        other => Err(other.unsupported("a blocked write")),
    }
}
