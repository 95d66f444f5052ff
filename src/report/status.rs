//! `status` and `metrics` for people (terminal, Markdown, HTML with SVG charts) and machines (JSON).

use std::fmt::Write as _;
use std::io::{self, Write};

use super::html::{esc, page};
use super::{Format, Style, colors, write_json};
use crate::release::metrics::{Band, Metrics};
use crate::release::status::EnvironmentStatus;

fn images_text(w: &crate::release::status::Workload) -> String {
    w.images.iter().map(|(c, i)| format!("{c}={i}")).collect::<Vec<_>>().join(", ")
}

pub fn write_status(w: &mut dyn Write, all: &[EnvironmentStatus], format: Format, style: Style) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, all),
        Format::Human => {
            for (i, s) in all.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                writeln!(w, "{} ({})", style.paint(colors::BOLD, &s.environment), s.target)?;
                match &s.release {
                    Some(r) => writeln!(
                        w,
                        "  release {} from {}{} applied {} by {}",
                        r.id,
                        r.source,
                        r.subject.as_ref().map(|s| format!(" \"{s}\"")).unwrap_or_default(),
                        r.applied_at.as_deref().unwrap_or("-"),
                        r.actor
                    )?,
                    None => writeln!(w, "  no release yet")?,
                }
                if let Some(note) = s
                    .release
                    .as_ref()
                    .and_then(|r| crate::release::verification::note(r.verified, r.automatic_rollback_of))
                {
                    writeln!(w, "  {note}")?;
                }
                if let Some(o) = s.release.as_ref().and_then(|r| r.overridden.as_ref()) {
                    writeln!(
                        w,
                        "  {} {} overrode {} error finding(s) ({}): {}",
                        style.paint(colors::RED, "forced:"),
                        o.actor,
                        o.findings.len(),
                        super::notes::forced_codes(o),
                        o.reason
                    )?;
                }
                if let Some(a) = &s.latest_attempt {
                    writeln!(
                        w,
                        "  {} release {} {} ({})",
                        style.paint(colors::RED, "latest attempt:"),
                        a.id,
                        a.outcome.as_str(),
                        a.actor
                    )?;
                }
                let drift = if s.drift {
                    style.paint(colors::RED, &format!("yes ({} object(s))", s.drifted.len()))
                } else {
                    style.paint(colors::GREEN, "no")
                };
                writeln!(w, "  drift: {drift}")?;
                for d in &s.drifted {
                    writeln!(w, "    {} {}", d.state, d.object)?;
                }
                for wl in &s.workloads {
                    let owners = if wl.owners.is_empty() { "no owner".to_string() } else { wl.owners.join(" ") };
                    writeln!(w, "  {}  {}  ({owners})", wl.object, images_text(wl))?;
                }
            }
            Ok(())
        }
        Format::Markdown => {
            for s in all {
                writeln!(w, "## {}\n", s.environment)?;
                match &s.release {
                    Some(r) => writeln!(
                        w,
                        "Release **{}** from `{}` applied {} by {}.",
                        r.id,
                        r.source,
                        r.applied_at.as_deref().unwrap_or("-"),
                        r.actor
                    )?,
                    None => writeln!(w, "No release yet.")?,
                }
                if let Some(note) = s
                    .release
                    .as_ref()
                    .and_then(|r| crate::release::verification::note(r.verified, r.automatic_rollback_of))
                {
                    writeln!(w, "\n_{note}_")?;
                }
                if let Some(o) = s.release.as_ref().and_then(|r| r.overridden.as_ref()) {
                    writeln!(
                        w,
                        "\n**Forced:** {} overrode {} error finding(s) ({}): {}\n",
                        o.actor,
                        o.findings.len(),
                        super::notes::forced_codes(o),
                        super::markdown_cell(&o.reason)
                    )?;
                }
                writeln!(w, "Drift: **{}**\n", if s.drift { "yes" } else { "no" })?;
                if !s.workloads.is_empty() {
                    writeln!(w, "| workload | images | owners |\n|---|---|---|")?;
                    for wl in &s.workloads {
                        writeln!(w, "| `{}` | {} | {} |", wl.object, images_text(wl), wl.owners.join(" "))?;
                    }
                    writeln!(w)?;
                }
            }
            Ok(())
        }
        Format::Html => {
            let mut b = String::from("<h1>Environments</h1>\n");
            for s in all {
                let _ = writeln!(b, "<h2>{}</h2>", esc(&s.environment));
                match &s.release {
                    Some(r) => {
                        let _ = writeln!(
                            b,
                            "<p>Release <b>{}</b> from <code>{}</code> applied {} by {}.</p>",
                            r.id,
                            esc(&r.source),
                            esc(r.applied_at.as_deref().unwrap_or("-")),
                            esc(&r.actor)
                        );
                    }
                    None => b.push_str("<p>No release yet.</p>\n"),
                }
                if let Some(r) = &s.release
                    && let Some(note) = crate::release::verification::note(r.verified, r.automatic_rollback_of)
                {
                    let class =
                        if r.verified == Some(crate::release::verification::Verdict::Passed) { "muted" } else { "bad" };
                    let _ = writeln!(b, "<p class=\"{class}\">{}</p>", esc(&note));
                }
                if let Some(o) = s.release.as_ref().and_then(|r| r.overridden.as_ref()) {
                    let _ = writeln!(
                        b,
                        "<p class=\"bad\"><b>Forced:</b> {} overrode {} error finding(s) ({}): {}</p>",
                        esc(&o.actor),
                        o.findings.len(),
                        esc(&super::notes::forced_codes(o)),
                        esc(&o.reason)
                    );
                }
                let _ = writeln!(
                    b,
                    "<p>Drift: <span class=\"{}\">{}</span></p>",
                    if s.drift { "bad" } else { "on" },
                    if s.drift { "yes" } else { "no" }
                );
                if !s.workloads.is_empty() {
                    b.push_str("<table><tr><th>Workload</th><th>Images</th><th>Owners</th></tr>\n");
                    for wl in &s.workloads {
                        let _ = writeln!(
                            b,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                            esc(&wl.object.to_string()),
                            esc(&images_text(wl)),
                            esc(&wl.owners.join(" "))
                        );
                    }
                    b.push_str("</table>\n");
                }
            }
            w.write_all(page("cairn status", &b).as_bytes())
        }
        other => Err(other.unsupported("environment status")),
    }
}

fn band(b: Option<Band>) -> &'static str {
    match b {
        Some(Band::Elite) => "elite",
        Some(Band::High) => "high",
        Some(Band::Medium) => "medium",
        Some(Band::Low) => "low",
        None => "n/a",
    }
}

fn duration(hours: Option<f64>) -> String {
    match hours {
        None => "n/a".to_string(),
        Some(h) if h < 1.0 => format!("{:.0} min", h * 60.0),
        Some(h) if h < 48.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.1} days", h / 24.0),
    }
}

pub fn write_metrics(w: &mut dyn Write, all: &[Metrics], format: Format) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, all),
        Format::Html => {
            let body: String = all.iter().map(metrics_html).collect();
            w.write_all(page("cairn metrics", &body).as_bytes())
        }
        Format::Human | Format::Markdown => {
            for (i, m) in all.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                write_metrics_text(w, m, format == Format::Markdown)?;
            }
            Ok(())
        }
        other => Err(other.unsupported("delivery metrics")),
    }
}

fn metrics_rows(m: &Metrics) -> [(&'static str, String, &'static str); 4] {
    let rate = m.change_failure_rate.rate.map_or_else(|| "n/a".to_string(), |r| format!("{:.1}%", r * 100.0));
    [
        (
            "Deployment frequency",
            format!(
                "{} deployments, {:.2} per week",
                m.deployment_frequency.deployments, m.deployment_frequency.per_week
            ),
            band(m.deployment_frequency.band),
        ),
        (
            "Lead time for changes",
            format!(
                "median {}, p90 {} over {} commits",
                duration(m.lead_time.median_hours),
                duration(m.lead_time.p90_hours),
                m.lead_time.commits
            ),
            band(m.lead_time.band),
        ),
        (
            "Change failure rate",
            format!("{rate} ({} of {} releases)", m.change_failure_rate.failures, m.change_failure_rate.releases),
            band(m.change_failure_rate.band),
        ),
        (
            "Time to restore",
            format!(
                "median {} over {} restored of {} failures",
                duration(m.time_to_restore.median_hours),
                m.time_to_restore.restored,
                m.time_to_restore.incidents
            ),
            band(m.time_to_restore.band),
        ),
    ]
}

/// Metrics as a terminal table, or (`md`) a Markdown one.
fn write_metrics_text(w: &mut dyn Write, m: &Metrics, md: bool) -> io::Result<()> {
    let window = format!("{} to {} ({} releases)", super::when(&m.since), super::when(&m.until), m.releases);
    if md {
        writeln!(w, "## Delivery metrics: {}\n\n{window}\n", m.environment)?;
        writeln!(w, "| measure | value | band |\n|---|---|---|")?;
    } else {
        writeln!(w, "{}: {window}", m.environment)?;
    }
    for (name, value, b) in metrics_rows(m) {
        if md {
            writeln!(w, "| {name} | {value} | {b} |")?;
        } else {
            writeln!(w, "  {name:<22} {value:<58} {b}")?;
        }
    }
    Ok(())
}

pub(crate) fn metrics_html(m: &Metrics) -> String {
    let rows = metrics_rows(m);
    {
        {
            let mut b = format!(
                "<h1>Delivery metrics: {}</h1>\n<p class=\"muted\">{} to {}, {} releases.</p>\n<table><tr><th>Measure</th><th>Value</th><th>Band</th></tr>\n",
                esc(&m.environment),
                esc(&super::when(&m.since)),
                esc(&super::when(&m.until)),
                m.releases
            );
            for (name, value, bd) in rows {
                let _ = writeln!(
                    b,
                    "<tr><td>{name}</td><td>{}</td><td><span class=\"band {bd}\">{bd}</span></td></tr>",
                    esc(&value)
                );
            }
            b.push_str("</table>\n<h2>Deployments per week</h2>\n");
            b.push_str(&weekly_chart(m));
            b.push_str("<h2>Lead time per release (median, hours)</h2>\n");
            b.push_str(&lead_chart(m));
            b
        }
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const PAD: f64 = 36.0;

fn weekly_chart(m: &Metrics) -> String {
    let max = m.weekly.iter().map(|w| w.deployments).max().unwrap_or(0).max(1) as f64;
    let n = m.weekly.len().max(1) as f64;
    let slot = (WIDTH - 2.0 * PAD) / n;
    let mut s = format!("<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"Deployments per week\">\n");
    axes(&mut s, max, "");
    for (i, w) in m.weekly.iter().enumerate() {
        let h = (HEIGHT - 2.0 * PAD) * w.deployments as f64 / max;
        let x = PAD + i as f64 * slot + slot * 0.15;
        let _ = writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#2b6cb0\"><title>week of {}: {}</title></rect>",
            HEIGHT - PAD - h,
            slot * 0.7,
            esc(&w.week),
            w.deployments
        );
    }
    if let (Some(first), Some(last)) = (m.weekly.first(), m.weekly.last()) {
        let _ = writeln!(
            s,
            "<text x=\"{PAD}\" y=\"{}\" font-size=\"11\" fill=\"#5b6472\">{}</text>",
            HEIGHT - 12.0,
            esc(&first.week)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#5b6472\" text-anchor=\"end\">{}</text>",
            WIDTH - PAD,
            HEIGHT - 12.0,
            esc(&last.week)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn lead_chart(m: &Metrics) -> String {
    if m.lead_times.is_empty() {
        return "<p class=\"muted\">No commits reached this environment in the window.</p>\n".to_string();
    }
    let max = m.lead_times.iter().map(|l| l.median_hours).fold(1.0_f64, f64::max);
    let n = m.lead_times.len();
    let step = if n > 1 { (WIDTH - 2.0 * PAD) / (n - 1) as f64 } else { 0.0 };
    let mut s = format!("<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"Lead time per release\">\n");
    axes(&mut s, max, " h");
    let points: Vec<(f64, f64)> = m
        .lead_times
        .iter()
        .enumerate()
        .map(|(i, l)| (PAD + i as f64 * step, HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * l.median_hours / max))
        .collect();
    let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ =
        writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"2\"/>", path.join(" "));
    for ((x, y), l) in points.iter().zip(&m.lead_times) {
        let _ = writeln!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"#2b6cb0\"><title>release {}: {:.1} h over {} commits</title></circle>",
            l.id, l.median_hours, l.commits
        );
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, max: f64, unit: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{PAD}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#d8dde4\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{0}\" stroke=\"#d8dde4\"/>",
        HEIGHT - PAD,
        WIDTH - PAD
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#5b6472\" text-anchor=\"end\">{max:.0}{unit}</text>",
        PAD - 4.0,
        PAD + 4.0
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#5b6472\" text-anchor=\"end\">0</text>",
        PAD - 4.0,
        HEIGHT - PAD
    );
}
