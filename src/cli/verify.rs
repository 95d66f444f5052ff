//! `cairn verify --env ENV [--release ID]`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Cli, Status, report_io};
use crate::delivery::Observer;
use crate::error::Result;
use crate::pipeline;
use crate::report::{self, Format};

pub fn run(
    cli: &Cli,
    env: &str,
    release: Option<u64>,
    actor: Option<&str>,
    events: &crate::events::Events,
    format: Format,
    out: &mut dyn Write,
) -> Result<Status> {
    let observe = observer(&format!("verifying {env}"));
    let verified = pipeline::verify(&cli.repo, env, release, actor, &*observe, events)?;
    report_io(report::write_verification(out, &verified, format, cli.style()))?;
    Ok(if verified.verification.as_ref().is_some_and(|v| v.passed()) { Status::Success } else { Status::Unverified })
}

/// Shows measurements as they are taken, on stderr: above a spinner on a terminal, one line
/// each otherwise (a CI log reads them as they come).
pub(crate) fn observer(label: &str) -> Box<Observer<'static>> {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let label = label.to_string();
        Box::new(move |check, m| {
            bar.println(format!("{check}: {}", report::measurement_line(m)));
            bar.set_message(format!("{label} ({check}: {})", m.phase.as_str()));
        })
    } else {
        Box::new(|check, m| {
            let _ = writeln!(std::io::stderr().lock(), "{} {check}: {}", m.at, report::measurement_line(m));
        })
    }
}
