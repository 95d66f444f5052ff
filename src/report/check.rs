//! The pull-request report of `check`, kept under GitHub's comment limit, and the outcome of
//! `apply --plan`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::plan::{unified_diff, write_masked_applies, write_masked_plans};
use super::{Format, Style, colors, markdown_cell, write_json};
use crate::apply::Applied;
use crate::check::SavedPlan;
use crate::plan::Action;
use crate::secrets::Masked;
use crate::validate::Level;

/// GitHub caps comments at 65,535 characters; stay well under it.
pub const COMMENT_LIMIT: usize = 60_000;

/// The Markdown report. `limit_note`: `None` for the full report; `Some(full_report_path)` to
/// keep it under `COMMENT_LIMIT` by leaving out the largest diffs first, saying so and where the
/// full report is.
pub fn check_markdown(saved: &Masked<SavedPlan>, limit_note: Option<Option<&str>>) -> String {
    let saved: &SavedPlan = saved;
    let diffs: Vec<Vec<String>> = saved
        .plans
        .iter()
        .map(|p| p.changes.iter().filter(|c| c.action != Action::Unchanged).map(unified_diff).collect())
        .collect();
    let mut omitted: Vec<Vec<bool>> = diffs.iter().map(|d| vec![false; d.len()]).collect();
    let mut text = render(saved, &diffs, &omitted, None);
    if let Some(full) = limit_note {
        // Largest diffs go first: they buy the most room for the fewest omissions.
        let mut order: Vec<(usize, usize, usize)> = diffs
            .iter()
            .enumerate()
            .flat_map(|(e, d)| d.iter().enumerate().map(move |(i, t)| (t.len(), e, i)))
            .collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        let mut count = 0;
        let mut next = order.into_iter();
        while text.len() > COMMENT_LIMIT {
            let Some((_, e, i)) = next.next() else { break };
            omitted[e][i] = true;
            count += 1;
            text = render(saved, &diffs, &omitted, Some((count, full)));
        }
    }
    text
}

fn render(
    saved: &SavedPlan,
    diffs: &[Vec<String>],
    omitted: &[Vec<bool>],
    note: Option<(usize, Option<&str>)>,
) -> String {
    let mut s = String::new();
    let status = if saved.blocked() { "blocked by findings" } else { "ready to merge" };
    let _ = writeln!(s, "## cairn check: {status}\n");
    let _ = writeln!(
        s,
        "`{}` → `{}` ({}), {} changed path(s).\n",
        saved.base.short_sha(),
        saved.head.short_sha(),
        markdown_cell(&saved.head.subject),
        saved.changed_paths.len()
    );
    if !saved.approvals.is_empty() {
        let who: Vec<&str> = saved.approvals.iter().map(|a| a.by.as_str()).collect();
        let _ = writeln!(s, "Approved by {}.\n", who.join(", "));
    }
    if let Some((count, full)) = note {
        let place = full.map(|f| format!(" The full report is in `{f}`.")).unwrap_or_default();
        let _ = writeln!(
            s,
            "> {count} diff(s) were left out, largest first, to keep this comment under {COMMENT_LIMIT} characters.{place}\n"
        );
    }
    if saved.plans.is_empty() {
        let _ = writeln!(s, "No environment is touched by this change.");
        return s;
    }
    let _ = writeln!(
        s,
        "| environment | create | update | delete | unchanged | errors | warnings |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for p in &saved.plans {
        let count = |level: Level| {
            saved.findings.iter().filter(|f| f.environment == p.environment && f.severity == level).count()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.environment,
            p.summary.create,
            p.summary.update,
            p.summary.delete,
            p.summary.unchanged,
            count(Level::Error),
            count(Level::Warning)
        );
    }
    for (e, p) in saved.plans.iter().enumerate() {
        let _ = writeln!(s, "\n### {}\n", p.environment);
        let findings: Vec<_> = saved.findings.iter().filter(|f| f.environment == p.environment).collect();
        if !findings.is_empty() {
            let _ = writeln!(s, "| severity | code | object | location | message |\n|---|---|---|---|---|");
            for f in findings {
                let level = if f.severity == Level::Error { "error" } else { "warning" };
                let _ = writeln!(
                    s,
                    "| {level} | `{}` | `{}` | `{}:{}:{}` | {} |",
                    f.code,
                    f.subject(),
                    f.file,
                    f.line,
                    f.column,
                    markdown_cell(&f.message)
                );
            }
            s.push('\n');
        }
        if !p.has_changes() {
            let _ = writeln!(s, "No changes.");
        }
        for (i, c) in p.changes.iter().filter(|c| c.action != Action::Unchanged).enumerate() {
            let _ = writeln!(s, "<details><summary><b>{}</b> <code>{}</code></summary>\n", c.action.as_str(), c.object);
            if omitted[e][i] {
                let lines = diffs[e][i].lines().count();
                let _ = writeln!(s, "_Diff of {lines} lines left out here; see the full report._\n");
            } else {
                let _ = writeln!(s, "```diff\n{}```\n", diffs[e][i]);
            }
            let _ = writeln!(s, "</details>");
        }
    }
    s
}

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
