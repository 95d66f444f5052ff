//! The status site's pages: self-contained HTML (no external assets, no scripts), linked with
//! relative paths so the site works from `file://` and from any web server's subdirectory
//! (GitHub Pages).
//!
//! ```text
//! index.html                      workloads × environments, who is ahead of whom, links
//! metrics.html                    delivery metrics of every environment, with charts
//! env/<environment>.html          its current release, drift, workloads, release history
//! env/<environment>/<id>.html     the notes of one release
//! ```

use std::fmt::Write as _;

use super::html::{esc, page};
use super::notes::{html_body as notes_body, title as notes_title};
use super::status::metrics_html;
use super::when;
use crate::release::site::{Site, SiteEnvironment};
use crate::release::{Outcome, Release, ReleaseKind};

/// One file of the site: its path relative to the site's root, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePage {
    pub path: String,
    pub html: String,
}

/// Every page of the site.
pub fn site_pages(site: &Site) -> Vec<SitePage> {
    let mut pages = vec![
        SitePage { path: "index.html".into(), html: index(site) },
        SitePage { path: "metrics.html".into(), html: metrics(site) },
    ];
    for env in &site.environments {
        let name = &env.status.environment;
        pages.push(SitePage { path: format!("env/{name}.html"), html: environment(env) });
        for notes in &env.notes {
            let Some(release) = &notes.release else { continue };
            let body =
                format!("{}\n{}", nav("../../", &[(format!("../{name}.html"), name.clone())]), notes_body(notes));
            pages.push(SitePage {
                path: format!("env/{name}/{}.html", release.id),
                html: page(&notes_title(notes), &body),
            });
        }
    }
    pages
}

/// The links at the top of every page: home, metrics, then `extra` (href, text).
fn nav(root: &str, extra: &[(String, String)]) -> String {
    let mut s = format!(
        "<nav class=\"muted\"><a href=\"{root}index.html\">Environments</a> · <a href=\"{root}metrics.html\">Delivery metrics</a>"
    );
    for (href, text) in extra {
        let _ = write!(s, " · <a href=\"{}\">{}</a>", esc(href), esc(text));
    }
    s.push_str("</nav>");
    s
}

const SITE_STYLE: &str = "<style>td.diff { background: #fff4d6; font-weight: 600; } tr.differs td:first-child { border-left: 3px solid #b7791f; } td.absent { color: #5b6472; } nav { margin-bottom: 1rem; }</style>";

fn versions(images: &std::collections::BTreeMap<String, String>) -> String {
    images
        .iter()
        .map(|(container, image)| {
            let tag = crate::release::notes::tag(image);
            format!("<span title=\"{}\">{}: <code>{}</code></span>", esc(image), esc(container), esc(tag))
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn index(site: &Site) -> String {
    let mut b = String::from(SITE_STYLE);
    b.push_str(&nav("", &[]));
    b.push_str("<h1>Environments</h1>\n");
    let _ = writeln!(b, "<p class=\"muted\">As of {}.</p>", esc(&when(&site.generated_at)));
    b.push_str("<table id=\"environments\"><tr><th>Environment</th><th>Current release</th><th>Applied</th><th>By</th><th>Drift</th></tr>\n");
    for env in &site.environments {
        let s = &env.status;
        let name = esc(&s.environment);
        let (release, applied, actor) = match &s.release {
            Some(r) => (
                format!("<a href=\"env/{name}/{}.html\">{}</a> <code>{}</code>", r.id, r.id, esc(&r.source)),
                esc(&when(r.applied_at.as_deref().unwrap_or("-"))),
                esc(&r.actor),
            ),
            None => ("none yet".to_string(), "-".to_string(), "-".to_string()),
        };
        let drift = if s.drift { "<span class=\"bad\">yes</span>" } else { "<span class=\"on\">no</span>" };
        let _ = writeln!(
            b,
            "<tr data-environment=\"{name}\"><td><a href=\"env/{name}.html\">{name}</a></td><td>{release}</td><td>{applied}</td><td>{actor}</td><td>{drift}</td></tr>"
        );
    }
    b.push_str("</table>\n");
    if !site.ahead.is_empty() {
        b.push_str("<h2>Ahead and behind</h2>\n<ul id=\"ahead\">\n");
        for a in &site.ahead {
            let _ = writeln!(
                b,
                "<li><b>{}</b> is {} commit(s) ahead of <b>{}</b> (it holds everything {} runs, and more).</li>",
                esc(&a.environment),
                a.commits,
                esc(&a.behind),
                esc(&a.behind)
            );
        }
        b.push_str("</ul>\n");
    }
    b.push_str("<h2>Versions</h2>\n");
    if site.matrix.is_empty() {
        b.push_str("<p>No workload with container images is live in any environment.</p>\n");
    } else {
        b.push_str(
            "<p class=\"muted\">Each cell is the image tag per container; a highlighted cell differs from the environment to its left.</p>\n",
        );
        b.push_str("<table id=\"matrix\"><tr><th>Workload</th><th>Owners</th>");
        for env in &site.environments {
            let _ = write!(b, "<th>{}</th>", esc(&env.status.environment));
        }
        b.push_str("</tr>\n");
        for row in &site.matrix {
            let workload = esc(&row.workload.to_string());
            let class = if row.differs { " class=\"differs\"" } else { "" };
            let _ = write!(
                b,
                "<tr{class} data-workload=\"{workload}\"><td><code>{workload}</code></td><td>{}</td>",
                esc(&row.owners.join(" "))
            );
            for (e, cell) in row.cells.iter().enumerate() {
                let env = esc(&site.environments[e].status.environment);
                let differs = e > 0 && row.cells[e - 1] != *cell;
                let class = match (cell, differs) {
                    (None, _) => " class=\"absent\"",
                    (Some(_), true) => " class=\"diff\"",
                    (Some(_), false) => "",
                };
                let text = cell.as_ref().map_or_else(|| "—".to_string(), versions);
                let _ = write!(b, "<td{class} data-environment=\"{env}\">{text}</td>");
            }
            b.push_str("</tr>\n");
        }
        b.push_str("</table>\n");
    }
    page("cairn: environments", &b)
}

fn outcome(r: &Release) -> String {
    let mut text = match r.outcome {
        Outcome::Succeeded => "<span class=\"on\">succeeded</span>".to_string(),
        other => format!("<span class=\"bad\">{}</span>", other.as_str()),
    };
    if r.kind == ReleaseKind::Rollback {
        let _ = write!(text, " (rollback to {})", r.rollback_to.map_or_else(|| "?".to_string(), |id| id.to_string()));
    }
    if let Some(o) = &r.overridden {
        let _ = write!(text, " <span class=\"bad\">forced by {}: {}</span>", esc(&o.actor), esc(&o.reason));
    }
    text
}

fn environment(env: &SiteEnvironment) -> String {
    let s = &env.status;
    let name = esc(&s.environment);
    let mut b = String::from(SITE_STYLE);
    b.push_str(&nav("../", &[]));
    let _ = writeln!(b, "<h1>{name}</h1>\n<p class=\"muted\">Target {}.</p>", esc(&s.target));
    match &s.release {
        Some(r) => {
            let _ = writeln!(
                b,
                "<p class=\"summary\">Release <a href=\"{name}/{}.html\">{}</a> from <code>{}</code>{}, applied {} by {}.</p>",
                r.id,
                r.id,
                esc(&r.source),
                r.subject.as_deref().map(|s| format!(" ({})", esc(s))).unwrap_or_default(),
                esc(&when(r.applied_at.as_deref().unwrap_or("-"))),
                esc(&r.actor)
            );
        }
        None => b.push_str("<p class=\"summary\">No release yet.</p>\n"),
    }
    let _ = writeln!(
        b,
        "<p>Drift: <span class=\"{}\">{}</span></p>",
        if s.drift { "bad" } else { "on" },
        if s.drift { format!("yes ({} object(s))", s.drifted.len()) } else { "no".to_string() }
    );
    if !s.drifted.is_empty() {
        b.push_str("<ul>\n");
        for d in &s.drifted {
            let _ = writeln!(b, "<li><code>{}</code>: {}</li>", esc(&d.object.to_string()), d.state);
        }
        b.push_str("</ul>\n");
    }
    b.push_str("<h2>Workloads</h2>\n");
    if s.workloads.is_empty() {
        b.push_str("<p>None with container images.</p>\n");
    } else {
        b.push_str("<table><tr><th>Workload</th><th>Versions</th><th>Owners</th></tr>\n");
        for w in &s.workloads {
            let _ = writeln!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&w.object.to_string()),
                versions(&w.images),
                esc(&w.owners.join(" "))
            );
        }
        b.push_str("</table>\n");
    }
    b.push_str("<h2>Releases</h2>\n");
    if env.releases.is_empty() {
        b.push_str("<p>None yet.</p>\n");
    } else {
        b.push_str("<table id=\"releases\"><tr><th>Release</th><th>Outcome</th><th>Started</th><th>Commit</th><th>By</th><th>Approved by</th><th>Changes</th></tr>\n");
        for r in env.releases.iter().rev() {
            let has_notes = env.notes.iter().any(|n| n.release.as_ref().is_some_and(|x| x.id == r.id));
            let id =
                if has_notes { format!("<a href=\"{name}/{}.html\">{}</a>", r.id, r.id) } else { r.id.to_string() };
            let _ = writeln!(
                b,
                "<tr><td>{id}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>+{} ~{} -{}</td></tr>",
                outcome(r),
                esc(&when(&r.started_at)),
                esc(&r.source),
                esc(&r.actor),
                esc(&r.approvals.join(", ")),
                r.summary.create,
                r.summary.update,
                r.summary.delete
            );
        }
        b.push_str("</table>\n");
    }
    page(&format!("cairn: {}", s.environment), &b)
}

fn metrics(site: &Site) -> String {
    let mut b = nav("", &[]);
    let body: String = site.metrics.iter().map(metrics_html).collect();
    b.push_str(&body);
    page("cairn: delivery metrics", &b)
}

/// What `cairn site` wrote: where, and its pages.
pub fn write_site_written(
    w: &mut dyn std::io::Write,
    dir: &std::path::Path,
    pages: &[&str],
    format: super::Format,
) -> std::io::Result<()> {
    match format {
        super::Format::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                out: String,
                index: String,
                pages: &'a [&'a str],
            }
            let out = dir.display().to_string();
            let index = dir.join("index.html").display().to_string();
            super::write_json(w, &Out { out, index, pages })
        }
        super::Format::Human => writeln!(
            w,
            "Wrote the site ({} pages) to {}; open {}",
            pages.len(),
            dir.display(),
            dir.join("index.html").display()
        ),
        other => Err(other.unsupported("what `site` wrote")),
    }
}
