//! A promotion, for people (what moves, on what evidence, where it was committed) and as JSON
//! for a CI job that opens the pull request.

use std::io::{self, Write};

use super::{Format, Style, colors, write_json};
use crate::pipeline::Promotion;

pub fn write_promotion(w: &mut dyn Write, promotion: &Promotion, format: Format, style: Style) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, promotion),
        Format::Human => match promotion {
            Promotion::Refused { to, from, reason } => {
                writeln!(w, "{}", style.paint(colors::RED, &format!("{to}: not promoted from {from}: {reason}.")))
            }
            Promotion::Promoted(p) => {
                let s = &p.source;
                let verb = if p.dry_run { "would promote" } else { "promoted" };
                writeln!(
                    w,
                    "{}",
                    style.paint(
                        colors::GREEN,
                        &format!("{}: {verb} {} value(s) from {} release {}", p.to, p.changes.len(), p.from, s.release)
                    )
                )?;
                let verified = match (&s.verdict, &s.verified_at) {
                    (Some(v), Some(at)) => format!("verification {} at {at}", v.as_str()),
                    _ => "applied (not verified)".to_string(),
                };
                writeln!(w, "  evidence: {verified}; current for {} (soak {})", s.current_for, s.soak)?;
                for c in &p.changes {
                    writeln!(w, "  {} {}: {} -> {}  ({}:{})", c.object, c.field, c.old, c.new, c.file, c.line)?;
                }
                if let (Some(branch), Some(commit)) = (&p.branch, &p.commit) {
                    writeln!(w, "  committed {} on branch {branch}", &commit[..commit.len().min(12)])?;
                }
                if p.dry_run {
                    writeln!(w)?;
                    write!(w, "{}", p.diff)?;
                }
                Ok(())
            }
        },
        other => Err(other.unsupported("a promotion")),
    }
}
