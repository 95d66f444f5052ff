//! A verification, for people (human, Markdown) and for programs (JSON). Everything shown was
//! redacted when it was measured; no secret reaches a verification record.

use std::io::{self, Write};

use serde::Serialize;

use super::{Format, Style, colors, write_json};
use crate::release::Release;
use crate::release::verification::{CheckResult, Measurement, Verdict, Verification};

#[derive(Serialize)]
struct Out<'a> {
    environment: &'a str,
    release: u64,
    commit: Option<&'a str>,
    #[serde(flatten)]
    verification: &'a Verification,
}

pub fn write_verification(w: &mut dyn Write, release: &Release, format: Format, style: Style) -> io::Result<()> {
    let Some(v) = &release.verification else {
        return writeln!(w, "{}: release {} has not been verified", release.environment, release.id);
    };
    match format {
        Format::Json => write_json(
            w,
            &Out { environment: &release.environment, release: release.id, commit: release.sha(), verification: v },
        ),
        Format::Markdown => write_markdown(w, release, v),
        Format::Human => write_human(w, release, v, style),
        other => Err(other.unsupported("a verification")),
    }
}

fn paint(verdict: Option<Verdict>) -> anstyle::Style {
    match verdict {
        Some(Verdict::Passed) => colors::GREEN,
        Some(Verdict::Failed) => colors::RED,
        _ => colors::YELLOW,
    }
}

fn verdict_text(verdict: Option<Verdict>) -> &'static str {
    verdict.map_or("stopped", Verdict::as_str)
}

/// One measurement in a line: `passed  status 200 in 3ms` or `failed  [0.41]: … is false`.
pub fn measurement_line(m: &Measurement) -> String {
    let mut line = m.phase.as_str().to_string();
    if let Some(value) = &m.value {
        line.push_str(&format!(" {value}"));
    }
    if let Some(message) = &m.message {
        line.push_str(&format!(": {message}"));
    }
    line
}

/// One line for a verification: `passed (2 checks, 6 measurements)`.
pub fn summary(v: &Verification) -> String {
    let measurements: usize = v.checks.iter().map(|c| c.measurements.len()).sum();
    let failing: Vec<&str> =
        v.checks.iter().filter(|c| c.verdict.is_some_and(|d| d != Verdict::Passed)).map(|c| c.name.as_str()).collect();
    let mut text = format!("{} ({} check(s), {measurements} measurement(s)", v.verdict.as_str(), v.checks.len());
    if !failing.is_empty() {
        text.push_str(&format!("; {}: {}", v.verdict.as_str(), failing.join(", ")));
    }
    text.push(')');
    text
}

fn write_human(w: &mut dyn Write, release: &Release, v: &Verification, style: Style) -> io::Result<()> {
    let headline = format!("{}: release {} verification {}", release.environment, release.id, summary(v));
    writeln!(w, "{}", style.paint(paint(Some(v.verdict)), &headline))?;
    for check in &v.checks {
        write_check_human(w, check, style)?;
    }
    Ok(())
}

fn write_check_human(w: &mut dyn Write, check: &CheckResult, style: Style) -> io::Result<()> {
    writeln!(
        w,
        "  {} {} ({}): {}",
        style.paint(paint(check.verdict), verdict_text(check.verdict)),
        check.name,
        check.kind,
        check.reason
    )?;
    for m in &check.measurements {
        writeln!(w, "    {} {}", m.at, measurement_line(m))?;
        if let Some(output) = &m.output
            && m.phase != crate::release::verification::Phase::Passed
        {
            for line in output.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev() {
                writeln!(w, "      | {line}")?;
            }
        }
    }
    Ok(())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn write_markdown(w: &mut dyn Write, release: &Release, v: &Verification) -> io::Result<()> {
    writeln!(w, "### Verification of {} release {}: {}\n", release.environment, release.id, v.verdict.as_str())?;
    writeln!(w, "Run by {} from {} to {}.\n", cell(&v.actor), v.started_at, v.finished_at)?;
    writeln!(w, "| check | kind | result | why |")?;
    writeln!(w, "|---|---|---|---|")?;
    for c in &v.checks {
        writeln!(w, "| {} | {} | {} | {} |", cell(&c.name), c.kind, verdict_text(c.verdict), cell(&c.reason))?;
    }
    for c in &v.checks {
        writeln!(w, "\n#### {}\n", cell(&c.name))?;
        writeln!(w, "| time | result | value | message |")?;
        writeln!(w, "|---|---|---|---|")?;
        for m in &c.measurements {
            writeln!(
                w,
                "| {} | {} | {} | {} |",
                m.at,
                m.phase.as_str(),
                cell(m.value.as_deref().unwrap_or("")),
                cell(m.message.as_deref().unwrap_or(""))
            )?;
        }
    }
    Ok(())
}

/// Lines about a release's verification and rollback cause, under an apply's headline.
pub fn write_release_lines(w: &mut dyn Write, release: &Release, style: Style) -> io::Result<()> {
    if let Some(cause) = &release.cause {
        writeln!(w, "  {} {}", style.paint(colors::YELLOW, "automatic rollback:"), cause.reason)?;
    }
    if let Some(v) = &release.verification {
        writeln!(w, "  verification {}", style.paint(paint(Some(v.verdict)), &summary(v)))?;
        for check in v.checks.iter().filter(|c| c.verdict != Some(Verdict::Passed)) {
            write_check_human(w, check, style)?;
        }
    }
    Ok(())
}
