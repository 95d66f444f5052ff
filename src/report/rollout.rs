//! Rollouts for people (human) and programs (JSON): `cairn rollout status|abort`, and the steps
//! a plan shows for a Deployment with a strategy. Nothing here holds an object's body.

use std::io::{self, Write};

use super::{Format, Style, colors, write_json};
use crate::pipeline::{RolloutAction, RolloutStatus};
use crate::plan::PlannedRollout;
use crate::release::rollout::{Rollout, RolloutState};

pub fn write_rollout_status(w: &mut dyn Write, status: &RolloutStatus, format: Format, style: Style) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, status),
        Format::Human => {
            let Some(id) = status.release else {
                return writeln!(w, "{}: no release has had a rollout", status.environment);
            };
            writeln!(
                w,
                "{}: release {id} ({})",
                status.environment,
                status.outcome.map_or("unknown", crate::release::Outcome::as_str)
            )?;
            for rollout in &status.rollouts {
                write_rollout(w, rollout, style)?;
            }
            Ok(())
        }
        other => Err(other.unsupported("a rollout status")),
    }
}

pub fn write_rollout_action(w: &mut dyn Write, action: &RolloutAction, format: Format, style: Style) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, action),
        Format::Human => {
            let Some(id) = action.release else {
                return writeln!(w, "{}: no rollout in progress; nothing to abort", action.environment);
            };
            writeln!(w, "{}: release {id}: its killed rollouts are settled", action.environment)?;
            for rollout in &action.rollouts {
                write_rollout(w, rollout, style)?;
            }
            Ok(())
        }
        other => Err(other.unsupported("a rollout abort")),
    }
}

fn paint(state: RolloutState) -> anstyle::Style {
    match state {
        RolloutState::Succeeded => colors::GREEN,
        RolloutState::Aborted | RolloutState::Failed => colors::RED,
        RolloutState::Running | RolloutState::Resumed => colors::YELLOW,
    }
}

fn write_rollout(w: &mut dyn Write, rollout: &Rollout, style: Style) -> io::Result<()> {
    let planned = &rollout.planned;
    let state = style.paint(paint(rollout.state), rollout.state.as_str());
    let (new, old) = rollout.replicas();
    writeln!(
        w,
        "  {} ({} `{}`): {state}, phase {} of {}; new version {new}, old version {old}{}",
        planned.workload,
        planned.how.kind(),
        planned.strategy,
        rollout.phase.min(planned.phases.len()),
        planned.phases.len(),
        if rollout.simulated { " (simulated: the local target runs nothing)" } else { "" }
    )?;
    if let Some(reason) = &rollout.reason {
        writeln!(w, "    {reason}")?;
    }
    for step in &rollout.steps {
        let done = if step.finished_at.is_some() { "done" } else { "stopped" };
        writeln!(w, "    {}. {} [{done}, {} ms of cairn's own]", step.phase + 1, step.what, step.overhead_ms)?;
        if let Some(v) = &step.verification {
            for check in &v.checks {
                writeln!(
                    w,
                    "       {}: {} ({} measurements): {}",
                    check.name,
                    check.verdict.map_or("stopped", crate::release::verification::Verdict::as_str),
                    check.measurements.len(),
                    check.reason
                )?;
            }
        }
    }
    Ok(())
}

/// The steps of a planned rollout, one line each, for plans and pull-request reports.
pub fn planned_lines(rollout: &PlannedRollout) -> Vec<String> {
    let mut lines = vec![format!(
        "{} is released as a {} (`{}`): {} is created for the new version and deleted at the end",
        rollout.workload,
        rollout.how.kind(),
        rollout.strategy,
        rollout.temporary.name
    )];
    for (i, phase) in rollout.phases.iter().enumerate() {
        lines.push(format!("{}. {}", i + 1, phase.what));
    }
    lines
}
