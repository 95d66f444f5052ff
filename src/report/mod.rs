//! Every output format. Reporters take a writer; nothing here decides where output goes.
//!
//! A reporter that shows plans, rendered objects, apply reports or saved plans takes them
//! [`Masked`]: only `secrets` builds one, and always masks, so a reporter cannot forget to.

mod check;
mod comment;
mod findings;
mod format;
mod html;
mod notes;
mod notify;
mod plan;
mod policy;
mod promote;
mod repo;
mod rollout;
mod secrets;
mod site;
mod status;
mod verify;

use std::io::{self, Write};

use serde::Serialize;

pub use check::{save_check, write_applied, write_blocked, write_check};
pub use comment::{COMMENT_LIMIT, check_markdown};
pub use findings::write_findings;
pub use format::{Format, UnknownFormat};
pub use notes::{write_no_releases, write_notes};
pub use notify::write_notified;
pub use plan::{write_apply, write_plans, write_plans_with_findings};
pub use policy::write_policy_tests;
pub use promote::write_promotion;
pub use repo::{Matrix, write_changes, write_matrix, write_scaffolded};
pub use rollout::{planned_lines, write_rollout_action, write_rollout_status};
pub use secrets::{write_decrypted, write_secret_done};
pub use site::{SitePage, site_pages, write_site_written};
pub use status::{write_metrics, write_status};
pub use verify::{measurement_line, write_verification};

use crate::release::Release;
use crate::render::Rendered;
use crate::secrets::Masked;
use crate::yaml;

/// How human output is styled.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub(crate) fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_string() }
    }
}

pub(crate) mod colors {
    use anstyle::{AnsiColor, Style};
    pub const GREEN: Style = AnsiColor::Green.on_default();
    pub const RED: Style = AnsiColor::Red.on_default();
    pub const YELLOW: Style = AnsiColor::Yellow.on_default();
    pub const CYAN: Style = AnsiColor::Cyan.on_default();
    pub const BOLD: Style = Style::new().bold();
    pub const DIM: Style = Style::new().dimmed();
}

pub(crate) fn write_json<T: Serialize + ?Sized>(w: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, value)?;
    writeln!(w)
}

/// `render`: a multi-document YAML stream (each document headed by a comment naming the
/// environment and the files it came from), or JSON.
pub fn write_rendered(w: &mut dyn Write, rendered: &Masked<Vec<Rendered>>, format: Format) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, rendered),
        Format::Human => {
            use rayon::prelude::*;
            for env in rendered.iter() {
                // Formatting YAML is most of the cost of a large render: objects are formatted in
                // parallel, a chunk at a time, and written in order.
                for chunk in env.objects.chunks(512) {
                    let texts: Vec<String> = chunk
                        .par_iter()
                        .map(|object| {
                            let sources: Vec<String> = object.sources.iter().map(ToString::to_string).collect();
                            format!(
                                "---\n# environment: {}; from: {}\n{}",
                                env.environment,
                                sources.join(", "),
                                yaml::to_yaml(&object.body)
                            )
                        })
                        .collect();
                    for text in texts {
                        w.write_all(text.as_bytes())?;
                    }
                }
            }
            Ok(())
        }
        other => Err(other.unsupported("rendered objects")),
    }
}

fn verification_note(r: &Release) -> Option<String> {
    crate::release::verification::note(r.verification.as_ref().map(|v| v.verdict), r.cause.as_ref().map(|c| c.release))
}

/// `history`: one line per release, newest first, or JSON.
pub fn write_history(
    w: &mut dyn Write,
    environment: &str,
    releases: &[Release],
    format: Format,
    style: Style,
) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, releases),
        Format::Human => {
            if releases.is_empty() {
                return writeln!(w, "No releases in {environment} yet.");
            }
            writeln!(
                w,
                "{}",
                style.paint(
                    colors::BOLD,
                    &format!(
                        "{:<6} {:<12} {:<20} {:>8} {:<18} {:<20} {}",
                        "ID", "OUTCOME", "STARTED", "DURATION", "COMMIT", "ACTOR", "CHANGES"
                    )
                )
            )?;
            for r in releases.iter().rev() {
                let outcome = match r.outcome.as_str() {
                    "succeeded" => style.paint(colors::GREEN, &format!("{:<12}", "succeeded")),
                    other => style.paint(colors::RED, &format!("{other:<12}")),
                };
                let rollback = r.rollback_to.map(|to| format!("  rollback to {to}")).unwrap_or_default();
                let forced = r
                    .overridden
                    .as_ref()
                    .map(|o| style.paint(colors::RED, &format!("  FORCED by {}: {}", o.actor, o.reason)))
                    .unwrap_or_default();
                let duration = r.duration_seconds().map_or_else(|| "-".to_string(), |s| format!("{s:.1}s"));
                let verified = verification_note(r)
                    .map(|note| {
                        let paint = if note.starts_with("verified") { colors::GREEN } else { colors::RED };
                        style.paint(paint, &format!("  {note}"))
                    })
                    .unwrap_or_default();
                writeln!(
                    w,
                    "{:<6} {outcome} {:<20} {:>8} {:<18} {:<20} +{} ~{} -{}{rollback}{forced}{verified}",
                    r.id,
                    r.started_at.get(..19).unwrap_or(&r.started_at).replace('T', " "),
                    duration,
                    r.source,
                    truncate(&r.actor, 20),
                    r.summary.create,
                    r.summary.update,
                    r.summary.delete
                )?;
            }
            Ok(())
        }
        Format::Markdown => {
            writeln!(w, "| id | outcome | verification | started | commit | actor | create | update | delete |")?;
            writeln!(w, "|---|---|---|---|---|---|---|---|---|")?;
            for r in releases.iter().rev() {
                writeln!(
                    w,
                    "| {} | {}{} | {} | {} | `{}` | {} | {} | {} | {} |",
                    r.id,
                    r.outcome.as_str(),
                    r.overridden
                        .as_ref()
                        .map(|o| format!(" (forced: {})", markdown_cell(&o.reason)))
                        .unwrap_or_default(),
                    verification_note(r).map(|n| markdown_cell(&n)).unwrap_or_default(),
                    r.started_at,
                    r.source,
                    markdown_cell(&r.actor),
                    r.summary.create,
                    r.summary.update,
                    r.summary.delete
                )?;
            }
            Ok(())
        }
        other => Err(other.unsupported("release history")),
    }
}

/// A date and time for people: to the minute, in UTC (`2026-12-02 14:09 UTC`); text that is not
/// a timestamp is shown as it is.
pub(crate) fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

/// Makes text safe inside a Markdown table cell.
pub(crate) fn markdown_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
