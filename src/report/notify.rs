//! What `notify` sent about a release: one line per (channel, event), and JSON for programs.

use std::io::{self, Write};

use super::{Format, Style, colors, write_json};
use crate::notify::SentResult;
use crate::pipeline::Notified;

pub fn write_notified(w: &mut dyn Write, notified: &Notified, format: Format, style: Style) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, notified),
        Format::Human => {
            let (env, id) = (&notified.environment, notified.release);
            if notified.sent.is_empty() {
                let events: Vec<&str> = notified.events.iter().map(|e| e.as_str()).collect();
                return writeln!(
                    w,
                    "{env}: release {id}: no route asks for its events ({}); nothing to send",
                    if events.is_empty() { "none".to_string() } else { events.join(", ") }
                );
            }
            for s in &notified.sent {
                let color = match s.result {
                    SentResult::Delivered => colors::GREEN,
                    SentResult::AlreadyDelivered => colors::DIM,
                    SentResult::Failed => colors::RED,
                };
                let mut line = format!(
                    "{env}: release {id}: {} → {} ({}): {}",
                    s.event,
                    s.channel,
                    s.channel_type,
                    s.result.as_str()
                );
                if let Some(status) = s.status {
                    line.push_str(&format!(", status {status}"));
                }
                if s.result != SentResult::AlreadyDelivered {
                    line.push_str(&format!(", {} attempt{}", s.attempts, if s.attempts == 1 { "" } else { "s" }));
                }
                if let Some(error) = &s.error {
                    line.push_str(&format!(": {error}"));
                }
                writeln!(w, "{}", style.paint(color, &line))?;
            }
            Ok(())
        }
        other => Err(other.unsupported("notifications")),
    }
}
