//! Release notes as Markdown, HTML or JSON.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::html::{esc, page};
use super::{Format, write_json};
use crate::release::notes::{Notes, tag};

pub fn write_notes(w: &mut dyn Write, notes: &Notes, format: Format) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, notes),
        Format::Markdown => w.write_all(markdown(notes).as_bytes()),
        Format::Html => w.write_all(html(notes).as_bytes()),
        other => Err(other.unsupported("release notes")),
    }
}

/// Notes for an environment that has no release yet.
pub fn write_no_releases(w: &mut dyn Write, environment: &str, format: Format) -> io::Result<()> {
    let message = format!("No releases in {environment} yet; apply it to make the first one.");
    match format {
        Format::Json => {
            write_json(w, &serde_json::json!({"environment": environment, "release": null, "message": message}))
        }
        Format::Markdown => writeln!(w, "# {environment}\n\n{message}"),
        Format::Html => w.write_all(
            page(environment, &format!("<h1>{}</h1>\n<p>{}</p>", esc(environment), esc(&message))).as_bytes(),
        ),
        other => Err(other.unsupported("release notes")),
    }
}

pub(crate) fn title(notes: &Notes) -> String {
    match &notes.release {
        Some(r) => format!("{} — release {}", notes.environment, r.id),
        None => format!(
            "{} — {} to {}",
            notes.environment,
            short(notes.from.as_deref().unwrap_or("start")),
            short(&notes.to)
        ),
    }
}

fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()) { &rev[..12] } else { rev }
}

fn version_text(old: Option<&String>, new: Option<&String>) -> String {
    match (old, new) {
        (Some(o), Some(n)) => format!("{} → {}", tag(o), tag(n)),
        (None, Some(n)) => format!("new: {}", tag(n)),
        (Some(o), None) => format!("removed (was {})", tag(o)),
        (None, None) => String::new(),
    }
}

fn config_text(c: &crate::release::notes::ConfigChange) -> String {
    if c.secret {
        return format!("secret, {}", c.change);
    }
    match (&c.old, &c.new) {
        (Some(o), Some(n)) => format!("`{o}` → `{n}`"),
        (None, Some(n)) => format!("added: `{n}`"),
        (Some(o), None) => format!("removed (was `{o}`)"),
        (None, None) => c.change.to_string(),
    }
}

fn field_text(f: &crate::release::notes::FieldUpdate) -> String {
    let show = |v: &serde_json::Value| {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        if text.chars().count() > 60 { format!("{}…", text.chars().take(59).collect::<String>()) } else { text }
    };
    match (&f.old, &f.new) {
        (Some(o), Some(n)) => format!("`{}` → `{}`", show(o), show(n)),
        (None, Some(n)) => format!("added: `{}`", show(n)),
        (Some(o), None) => format!("removed (was `{}`)", show(o)),
        (None, None) => String::new(),
    }
}

/// The distinct codes an override passed, in order: `policy/baseline/privileged, schema/type`.
pub(crate) fn forced_codes(o: &crate::gate::Override) -> String {
    let mut codes: Vec<&str> = o.findings.iter().map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes.join(", ")
}

fn markdown(n: &Notes) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", title(n));
    let _ = writeln!(s, "{}\n", n.summary);
    if let Some(r) = &n.release {
        let _ = writeln!(
            s,
            "Applied by {} from `{}`, {} ({}).\n",
            r.actor,
            r.source,
            r.finished_at.as_deref().unwrap_or(&r.started_at),
            r.outcome
        );
        if let Some(note) = crate::release::verification::note(r.verified, r.automatic_rollback_of) {
            let _ = writeln!(s, "Verification: {note}.\n");
        }
        if let Some(o) = &r.overridden {
            let _ = writeln!(
                s,
                "> **Forced release.** {} overrode {} error finding(s): {}\n> Reason: {}\n",
                o.actor,
                o.findings.len(),
                forced_codes(o),
                o.reason.replace('\n', " ")
            );
        }
    }
    if !n.versions.is_empty() {
        let _ = writeln!(s, "## Versions\n\n| workload | container | version |\n|---|---|---|");
        for v in &n.versions {
            let _ =
                writeln!(s, "| `{}` | {} | {} |", v.object, v.container, version_text(v.old.as_ref(), v.new.as_ref()));
        }
        s.push('\n');
    }
    if !n.configuration.is_empty() {
        let _ = writeln!(s, "## Configuration\n\n| object | key | change |\n|---|---|---|");
        for c in &n.configuration {
            let _ = writeln!(s, "| `{}` | `{}` | {} |", c.object, c.key, config_text(c).replace('|', "\\|"));
        }
        s.push('\n');
    }
    if !n.features.is_empty() {
        let _ = writeln!(s, "## Feature flags\n");
        for f in &n.features {
            let state = if f.now { "switched **on**" } else { "switched **off**" };
            let new = if f.was.is_none() { " (new)" } else { "" };
            let _ = writeln!(s, "- `{}` {state}{new} (`{}`)", f.flag, f.object);
        }
        s.push('\n');
    }
    if !n.created.is_empty() || !n.removed.is_empty() {
        let _ = writeln!(s, "## Objects\n");
        for id in &n.created {
            let _ = writeln!(s, "- added `{id}`");
        }
        for id in &n.removed {
            let _ = writeln!(s, "- removed `{id}`");
        }
        s.push('\n');
    }
    if !n.updated.is_empty() {
        let _ = writeln!(s, "## Other changes\n\n| object | field | change |\n|---|---|---|");
        for u in &n.updated {
            for f in &u.fields {
                let _ = writeln!(s, "| `{}` | `{}` | {} |", u.object, f.pointer, field_text(f).replace('|', "\\|"));
            }
        }
        s.push('\n');
    }
    let heading = if n.undone { "Commits undone" } else { "Commits" };
    let _ = writeln!(s, "## {heading} ({})\n", n.commit_count);
    for g in &n.commits {
        let _ = writeln!(s, "### {}\n", g.title);
        for c in &g.commits {
            let sha = match &c.url {
                Some(url) => format!("[`{}`]({url})", c.short),
                None => format!("`{}`", c.short),
            };
            let scope = c.scope.as_ref().map(|s| format!("**{s}:** ")).unwrap_or_default();
            let breaking = if c.breaking { " **BREAKING**" } else { "" };
            let _ = writeln!(s, "- {scope}{}{breaking} ({sha}, {})", c.description, c.author);
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## People\n");
    let list = |v: &[String]| if v.is_empty() { "none recorded".to_string() } else { v.join(", ") };
    let _ = writeln!(s, "- Authors: {}", list(&n.authors));
    let _ = writeln!(s, "- Approved by: {}", list(&n.approvers));
    let _ = writeln!(s, "- Owners of what changed: {}\n", list(&n.owners));
    if !n.drift.is_empty() {
        let _ = writeln!(s, "## Drift found before the apply\n");
        for id in &n.drift {
            let _ = writeln!(s, "- `{id}` had been changed or removed outside cairn");
        }
        s.push('\n');
    }
    match (&n.previous_release, &n.rollback_command) {
        (Some(p), Some(cmd)) => {
            let _ = writeln!(s, "## Rollback\n\nThe previous release is {p}. To return to it:\n\n```sh\n{cmd}\n```");
        }
        _ if n.release.is_some() => {
            let _ = writeln!(
                s,
                "## Rollback\n\nThis is the first release of {}; there is nothing earlier to return to.",
                n.environment
            );
        }
        _ => {}
    }
    s
}

fn html(n: &Notes) -> String {
    page(&title(n), &html_body(n))
}

/// The notes as the body of a page (the status site frames it with its own navigation).
pub(crate) fn html_body(n: &Notes) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "<h1>{}</h1>", esc(&title(n)));
    if let Some(r) = &n.release {
        let _ = writeln!(
            b,
            "<p class=\"muted\">Applied by {} from <code>{}</code>, {} ({}).</p>",
            esc(&r.actor),
            esc(&r.source),
            esc(r.finished_at.as_deref().unwrap_or(&r.started_at)),
            esc(&r.outcome)
        );
        if let Some(note) = crate::release::verification::note(r.verified, r.automatic_rollback_of) {
            let class = if r.verified == Some(crate::release::verification::Verdict::Passed) { "muted" } else { "bad" };
            let _ = writeln!(b, "<p class=\"{class}\">Verification: {}.</p>", esc(&note));
        }
        if let Some(o) = &r.overridden {
            let _ = writeln!(
                b,
                "<p class=\"bad\"><b>Forced release.</b> {} overrode {} error finding(s): {}. Reason: {}</p>",
                esc(&o.actor),
                o.findings.len(),
                esc(&forced_codes(o)),
                esc(&o.reason)
            );
        }
    }
    let _ = writeln!(b, "<p class=\"summary\">{}</p>", esc(&n.summary));
    if !n.versions.is_empty() {
        let _ = writeln!(b, "<h2>Versions</h2>\n<table><tr><th>Workload</th><th>Container</th><th>Version</th></tr>");
        for v in &n.versions {
            let _ = writeln!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&v.object.to_string()),
                esc(&v.container),
                esc(&version_text(v.old.as_ref(), v.new.as_ref()))
            );
        }
        b.push_str("</table>\n");
    }
    if !n.configuration.is_empty() {
        let _ = writeln!(b, "<h2>Configuration</h2>\n<table><tr><th>Object</th><th>Key</th><th>Change</th></tr>");
        for c in &n.configuration {
            let _ = writeln!(
                b,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&c.object.to_string()),
                esc(&c.key),
                esc(&config_text(c).replace('`', ""))
            );
        }
        b.push_str("</table>\n");
    }
    if !n.features.is_empty() {
        b.push_str("<h2>Feature flags</h2>\n<ul>\n");
        for f in &n.features {
            let (class, state) = if f.now { ("on", "on") } else { ("off", "off") };
            let new = if f.was.is_none() { " (new)" } else { "" };
            let _ = writeln!(
                b,
                "<li><code>{}</code> switched <span class=\"{class}\">{state}</span>{new} <span class=\"muted\">({})</span></li>",
                esc(&f.flag),
                esc(&f.object.to_string())
            );
        }
        b.push_str("</ul>\n");
    }
    if !n.created.is_empty() || !n.removed.is_empty() {
        b.push_str("<h2>Objects</h2>\n<ul>\n");
        for id in &n.created {
            let _ = writeln!(b, "<li>added <code>{}</code></li>", esc(&id.to_string()));
        }
        for id in &n.removed {
            let _ = writeln!(b, "<li>removed <code>{}</code></li>", esc(&id.to_string()));
        }
        b.push_str("</ul>\n");
    }
    if !n.updated.is_empty() {
        b.push_str("<h2>Other changes</h2>\n<table><tr><th>Object</th><th>Field</th><th>Change</th></tr>\n");
        for u in &n.updated {
            for f in &u.fields {
                let _ = writeln!(
                    b,
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(&u.object.to_string()),
                    esc(&f.pointer),
                    esc(&field_text(f).replace('`', ""))
                );
            }
        }
        b.push_str("</table>\n");
    }
    let _ = writeln!(b, "<h2>{} ({})</h2>", if n.undone { "Commits undone" } else { "Commits" }, n.commit_count);
    for g in &n.commits {
        let _ = writeln!(b, "<h3>{}</h3>\n<ul>", esc(&g.title));
        for c in &g.commits {
            let sha = match &c.url {
                Some(url) => format!("<a href=\"{}\"><code>{}</code></a>", esc(url), esc(&c.short)),
                None => format!("<code>{}</code>", esc(&c.short)),
            };
            let scope = c.scope.as_ref().map(|s| format!("<b>{}:</b> ", esc(s))).unwrap_or_default();
            let breaking = if c.breaking { " <span class=\"bad\">BREAKING</span>" } else { "" };
            let _ = writeln!(
                b,
                "<li>{scope}{}{breaking} <span class=\"muted\">{sha}, {}</span></li>",
                esc(&c.description),
                esc(&c.author)
            );
        }
        b.push_str("</ul>\n");
    }
    let list = |v: &[String]| if v.is_empty() { "none recorded".to_string() } else { esc(&v.join(", ")) };
    let _ = writeln!(
        b,
        "<h2>People</h2>\n<table><tr><th>Authors</th><td>{}</td></tr><tr><th>Approved by</th><td>{}</td></tr><tr><th>Owners of what changed</th><td>{}</td></tr></table>",
        list(&n.authors),
        list(&n.approvers),
        list(&n.owners)
    );
    if !n.drift.is_empty() {
        b.push_str("<h2>Drift found before the apply</h2>\n<ul>\n");
        for id in &n.drift {
            let _ =
                writeln!(b, "<li><code>{}</code> had been changed or removed outside cairn</li>", esc(&id.to_string()));
        }
        b.push_str("</ul>\n");
    }
    if let (Some(p), Some(cmd)) = (&n.previous_release, &n.rollback_command) {
        let _ = writeln!(
            b,
            "<h2>Rollback</h2>\n<p>The previous release is {p}. To return to it: <code>{}</code></p>",
            esc(cmd)
        );
    }
    b
}
