//! Plans and apply results for people (terminal, Markdown) and machines (JSON).

use std::io::{self, Write};

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{Format, Style, colors, markdown_cell, truncate, write_json};
use crate::apply::ApplyReport;
use crate::plan::{Action, Change, Plan, Summary};
use crate::secrets::Masked;
use crate::validate::{Finding, Scope};
use crate::yaml;

/// Writes plans for one or more environments.
pub fn write_plans(
    w: &mut dyn Write,
    plans: &Masked<Vec<Plan>>,
    format: Format,
    style: Style,
    show_diff: bool,
) -> io::Result<()> {
    write_plans_with_findings(w, plans, &Scope::default(), &[], format, style, show_diff)
}

/// Writes the findings of validation and policies, then the plans: in JSON one document with a
/// `findings` list (present only when there are findings).
pub fn write_plans_with_findings(
    w: &mut dyn Write,
    plans: &Masked<Vec<Plan>>,
    scope: &Scope,
    findings: &[Finding],
    format: Format,
    style: Style,
    show_diff: bool,
) -> io::Result<()> {
    if !matches!(format, Format::Human | Format::Json | Format::Markdown) {
        return Err(format.unsupported("a plan"));
    }
    // JSON carries the findings inside the one document written below.
    if !findings.is_empty() && format != Format::Json {
        super::findings::write_findings_in(w, scope, findings, format, style)?;
        writeln!(w)?;
    }
    match format {
        Format::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                summary: Summary,
                plans: &'a Masked<Vec<Plan>>,
                #[serde(skip_serializing_if = "<[Finding]>::is_empty")]
                findings: &'a [Finding],
            }
            write_json(w, &Out { summary: total(plans), plans, findings })
        }
        _ => write_masked_plans(w, plans, format, style, show_diff),
    }
}

/// Plans for people, from plans that are masked already (the plans of a masked saved plan, or of
/// a `Masked<Vec<Plan>>`): private, so only a masked caller reaches it.
pub(super) fn write_masked_plans(
    w: &mut dyn Write,
    plans: &[Plan],
    format: Format,
    style: Style,
    show_diff: bool,
) -> io::Result<()> {
    match format {
        Format::Human => {
            for (i, plan) in plans.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                write_plan_human(w, plan, style, show_diff)?;
            }
            if plans.len() > 1 {
                writeln!(w)?;
                let t = total(plans);
                writeln!(
                    w,
                    "{}",
                    style.paint(
                        colors::BOLD,
                        &format!("Plan: {} across {} environments.", summary_text(&t), plans.len())
                    )
                )?;
            }
            Ok(())
        }
        Format::Markdown => write_plans_markdown(w, plans, show_diff),
        other => Err(other.unsupported("a plan")),
    }
}

fn total(plans: &[Plan]) -> Summary {
    plans.iter().fold(Summary::default(), |mut t, p| {
        t.create += p.summary.create;
        t.update += p.summary.update;
        t.delete += p.summary.delete;
        t.unchanged += p.summary.unchanged;
        t
    })
}

fn summary_text(s: &Summary) -> String {
    format!("{} to create, {} to update, {} to delete, {} unchanged", s.create, s.update, s.delete, s.unchanged)
}

fn write_plan_human(w: &mut dyn Write, plan: &Plan, style: Style, show_diff: bool) -> io::Result<()> {
    writeln!(
        w,
        "{} {} ({}) from {}",
        style.paint(colors::BOLD, "Environment"),
        style.paint(colors::BOLD, &plan.environment),
        plan.target,
        plan.source.label()
    )?;
    for change in plan.changes.iter().filter(|c| c.action != Action::Unchanged) {
        let (mark, paint) = match change.action {
            Action::Create => ("+ create", colors::GREEN),
            Action::Update => ("~ update", colors::YELLOW),
            Action::Delete => ("- delete", colors::RED),
            Action::Unchanged => continue,
        };
        let origin = change.sources.last().map(|s| format!("  ({s})")).unwrap_or_default();
        let drift = if change.drift { format!("  {}", style.paint(colors::RED, DRIFT)) } else { String::new() };
        writeln!(w, "  {} {}{}{drift}", style.paint(paint, mark), change.object, style.paint(colors::DIM, &origin))?;
        for field in &change.fields {
            writeln!(
                w,
                "      {}: {} → {}",
                field.pointer,
                show_value(field.old.as_ref()),
                show_value(field.new.as_ref())
            )?;
        }
        if show_diff {
            for line in unified_diff(change).lines() {
                let painted = match line.as_bytes().first() {
                    Some(b'+') => style.paint(colors::GREEN, line),
                    Some(b'-') => style.paint(colors::RED, line),
                    Some(b'@') => style.paint(colors::CYAN, line),
                    _ => line.to_string(),
                };
                writeln!(w, "      {painted}")?;
            }
        }
    }
    for rollout in &plan.rollouts {
        let lines = super::rollout::planned_lines(rollout);
        writeln!(w, "  {}", style.paint(colors::BOLD, &lines[0]))?;
        for line in &lines[1..] {
            writeln!(w, "    {line}")?;
        }
    }
    for chart in &plan.charts {
        writeln!(w, "  {}", chart_line(chart))?;
    }
    if !plan.orphans.is_empty() {
        writeln!(
            w,
            "  kept because pruning is off (--no-prune): {} object(s) cairn applied earlier and no longer renders:",
            plan.orphans.len()
        )?;
        for id in &plan.orphans {
            writeln!(w, "    {id}")?;
        }
    }
    let line = format!("{}: {}.", plan.environment, summary_text(&plan.summary));
    let line = if plan.has_changes() { line } else { format!("{} No changes.", line) };
    writeln!(w, "{}", style.paint(colors::BOLD, &line))
}

/// `chart web 1.2.0 (release web, charts/web, sha256:3f2a…, helm v3.16.2)`.
pub(super) fn chart_line(chart: &crate::render::helm::ChartRender) -> String {
    let digest = chart.digest.get(..19).unwrap_or(&chart.digest);
    format!(
        "chart {} {} (release {}, {}, {digest}…, helm {}, Kubernetes {}{})",
        chart.chart,
        chart.version,
        chart.release,
        chart.layer,
        chart.helm,
        chart.kube_version,
        if chart.cached { ", from the cache" } else { "" }
    )
}

/// The charts and rollouts of a plan in Markdown (each Deployment's strategy and steps), for plans and the
/// pull-request report.
pub(super) fn rollouts_markdown(plan: &Plan) -> String {
    let mut s = String::new();
    for chart in &plan.charts {
        s.push_str(&format!("\n{}\n", chart_line(chart).replacen("chart ", "**Chart:** ", 1)));
    }
    for rollout in &plan.rollouts {
        let lines = super::rollout::planned_lines(rollout);
        s.push_str(&format!(
            "\n**Rollout:** {}\n\n",
            lines[0].replace(&rollout.workload.to_string(), &format!("`{}`", rollout.workload))
        ));
        for line in &lines[1..] {
            s.push_str(&format!("{line}\n"));
        }
    }
    s
}

/// A value on one line, shortened for people: `3`, `"text"`, `{…}` when long.
/// The mark of a change whose live object was changed outside git since cairn applied it.
const DRIFT: &str = "[drift: changed outside git since the last apply]";

fn show_value(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".to_string(),
        Some(v) => truncate(&v.to_string(), 80),
    }
}

/// The unified YAML diff of one change: live above, desired below.
pub fn unified_diff(change: &Change) -> String {
    let old = change.live.as_ref().map(yaml::to_yaml).unwrap_or_default();
    let new = change.desired.as_ref().map(yaml::to_yaml).unwrap_or_default();
    let diff = TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    let (old_label, new_label) = match change.action {
        Action::Create => ("/dev/null".to_string(), format!("desired/{}", change.object)),
        Action::Delete => (format!("live/{}", change.object), "/dev/null".to_string()),
        _ => (format!("live/{}", change.object), format!("desired/{}", change.object)),
    };
    out.push_str(&format!("--- {old_label}\n+++ {new_label}\n"));
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&format!("{}\n", hunk.header()));
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
                ChangeTag::Equal => ' ',
            };
            out.push(sign);
            out.push_str(change.value());
            if change.missing_newline() {
                out.push('\n');
            }
        }
    }
    out
}

fn write_plans_markdown(w: &mut dyn Write, plans: &[Plan], show_diff: bool) -> io::Result<()> {
    writeln!(w, "## cairn plan\n")?;
    writeln!(w, "| environment | source | create | update | delete | unchanged |")?;
    writeln!(w, "|---|---|---:|---:|---:|---:|")?;
    for p in plans {
        writeln!(
            w,
            "| {} | `{}` | {} | {} | {} | {} |",
            p.environment,
            p.source.label(),
            p.summary.create,
            p.summary.update,
            p.summary.delete,
            p.summary.unchanged
        )?;
    }
    for p in plans {
        writeln!(w, "\n### {}\n", p.environment)?;
        if !p.has_changes() {
            writeln!(w, "No changes.")?;
        }
        for change in p.changes.iter().filter(|c| c.action != Action::Unchanged) {
            writeln!(
                w,
                "<details><summary><b>{}</b> <code>{}</code>{}</summary>\n",
                change.action.as_str(),
                change.object,
                if change.drift { format!(" ⚠ {DRIFT}") } else { String::new() }
            )?;
            if !change.fields.is_empty() {
                writeln!(w, "| field | live | desired |\n|---|---|---|")?;
                for f in &change.fields {
                    writeln!(
                        w,
                        "| `{}` | `{}` | `{}` |",
                        markdown_cell(&f.pointer),
                        markdown_cell(&show_value(f.old.as_ref())),
                        markdown_cell(&show_value(f.new.as_ref()))
                    )?;
                }
                writeln!(w)?;
            }
            if show_diff {
                writeln!(w, "```diff\n{}```\n", unified_diff(change))?;
            }
            writeln!(w, "</details>")?;
        }
        write!(w, "{}", rollouts_markdown(p))?;
        if !p.orphans.is_empty() {
            writeln!(
                w,
                "\nKept because pruning is off: {}",
                p.orphans.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
            )?;
        }
    }
    Ok(())
}

/// Writes the outcome of applies.
pub fn write_apply(
    w: &mut dyn Write,
    reports: &Masked<Vec<ApplyReport>>,
    format: Format,
    style: Style,
) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, reports),
        Format::Human => write_masked_applies(w, reports, style),
        other => Err(other.unsupported("the outcome of an apply")),
    }
}

/// The outcome of applies for people, from masked reports.
pub(super) fn write_masked_applies(w: &mut dyn Write, reports: &[ApplyReport], style: Style) -> io::Result<()> {
    for report in reports {
        let r = &report.release;
        let s = &r.summary;
        let duration = r.duration_seconds().map_or_else(String::new, |d| format!(" in {d:.2}s"));
        let headline = format!(
            "{}: release {} {} ({}): {} created, {} updated, {} deleted, {} unchanged{duration}.",
            r.environment,
            r.id,
            r.outcome.as_str(),
            r.source,
            s.create,
            s.update,
            s.delete,
            s.unchanged
        );
        let paint = if report.succeeded() { colors::GREEN } else { colors::RED };
        writeln!(w, "{}", style.paint(paint, &headline))?;
        super::verify::write_release_lines(w, r, style)?;
        for object in r.objects.iter().filter(|o| o.error.is_some()) {
            writeln!(
                w,
                "  {} {} {}: {}",
                style.paint(colors::RED, "failed"),
                object.action.as_str(),
                object.object,
                object.error.as_deref().unwrap_or_default()
            )?;
        }
        for rollout in &r.rollouts {
            let (new, old) = rollout.replicas();
            writeln!(
                w,
                "  rollout of {} ({}): {} after {} of {} phases (new version {new}, old version {old}){}",
                rollout.planned.workload,
                rollout.planned.how.kind(),
                rollout.state.as_str(),
                rollout.steps.iter().filter(|s| s.finished_at.is_some()).count(),
                rollout.planned.phases.len(),
                if rollout.simulated { ", simulated on the local target" } else { "" }
            )?;
        }
        if !report.plan.orphans.is_empty() {
            writeln!(w, "  kept {} object(s) no longer rendered (--no-prune)", report.plan.orphans.len())?;
        }
        // Say only what happened: a drifted object whose write failed was not reset.
        let failed = |id: &crate::render::ObjectId| r.objects.iter().any(|o| &o.object == id && o.error.is_some());
        let reset = r.drift.iter().filter(|id| !failed(id)).count();
        if reset > 0 {
            writeln!(w, "  {reset} object(s) had drifted from the previous release and were reset")?;
        }
        if reset < r.drift.len() {
            writeln!(
                w,
                "  {} object(s) had drifted from the previous release and were not reset (see above)",
                r.drift.len() - reset
            )?;
        }
        for object in r.objects.iter().filter(|o| !o.reclaimed_from.is_empty()) {
            writeln!(
                w,
                "  {}: took back fields {} had changed by hand",
                object.object,
                object.reclaimed_from.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            )?;
        }
        for resumed in &report.resumed {
            writeln!(
                w,
                "  release {} was interrupted with {} object(s) not yet written; this apply finished {} of them",
                resumed.release,
                resumed.pending,
                resumed.finished.len()
            )?;
        }
    }
    Ok(())
}
