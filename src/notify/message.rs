//! What a person reads: a release's news in a title and one line — environment, release,
//! outcome, what changed (images old → new, counts), who applied it, a link to the run. Built
//! from the release record alone (no render, no plan), which holds no secret value.

use serde::Serialize;

use crate::config::EventKind;
use crate::release::Release;
use crate::release::notes::{self, VersionChange};
use crate::release::verification::Verdict;

/// At most this many images, objects or checks are named before "and N more".
const NAMED: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub event: EventKind,
    pub environment: String,
    /// Absent for news about a check, which makes no release.
    pub release: Option<u64>,
    /// `production: release 12 succeeded`
    pub title: String,
    /// What changed, in one line: `web 1.4.0 → 1.5.0 · 3 updated, 1 created`.
    pub summary: String,
    /// Why it is bad news, when it is: the failed objects, the drifted ones, the failing checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub actor: String,
    /// Short commit id and subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Good news (green) or bad (red): chat cards colour by it.
    pub good: bool,
}

/// The run that sent the news: `CAIRN_RUN_URL`, else the GitHub Actions run from GitHub's own
/// variables.
pub fn run_link(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(url) = var("CAIRN_RUN_URL").filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let (server, repository, run) = (var("GITHUB_SERVER_URL")?, var("GITHUB_REPOSITORY")?, var("GITHUB_RUN_ID")?);
    Some(format!("{}/{repository}/actions/runs/{run}", server.trim_end_matches('/')))
}

pub fn of_release(release: &Release, event: EventKind, link: Option<String>) -> Message {
    let env = &release.environment;
    let id = release.id;
    let (title, good) = match event {
        EventKind::ReleaseSucceeded => (format!("{env}: release {id} succeeded"), true),
        EventKind::ReleaseFailed => match release.outcome {
            crate::release::Outcome::Interrupted => (format!("{env}: release {id} was interrupted"), false),
            _ => (format!("{env}: release {id} failed"), false),
        },
        EventKind::ReleaseRolledBack => {
            let to = release.rollback_to.map_or_else(|| "an earlier release".to_string(), |r| format!("release {r}"));
            match &release.cause {
                Some(cause) => (
                    format!("{env}: rolled back to {to} automatically (release {} failed verification)", cause.release),
                    false,
                ),
                None => (format!("{env}: rolled back to {to} (release {id})"), true),
            }
        }
        EventKind::DriftDetected => {
            let n = release.drift.len();
            (format!("{env}: {n} object{} changed outside git (found by release {id})", plural(n)), false)
        }
        EventKind::VerificationFailed => {
            let verdict = release.verification.as_ref().map_or(Verdict::Failed, |v| v.verdict);
            let words = if verdict == Verdict::Inconclusive { "was inconclusive" } else { "failed" };
            (format!("{env}: verification of release {id} {words}"), false)
        }
        // Not a release's event: `of_check` tells it.
        EventKind::CheckBlocked => (format!("{env}: release {id}"), false),
    };
    let detail = match event {
        EventKind::ReleaseFailed => {
            let failed: Vec<String> =
                release.objects.iter().filter(|o| o.error.is_some()).map(|o| o.object.to_string()).collect();
            (!failed.is_empty()).then(|| format!("failed: {}", named(&failed)))
        }
        EventKind::DriftDetected => {
            let drift: Vec<String> = release.drift.iter().map(ToString::to_string).collect();
            Some(format!("changed outside git: {}", named(&drift)))
        }
        EventKind::VerificationFailed => release.verification.as_ref().map(|v| {
            let bad: Vec<String> = v
                .checks
                .iter()
                .filter(|c| c.verdict.is_some_and(|d| d != Verdict::Passed))
                .map(|c| format!("{} ({})", c.name, c.reason))
                .collect();
            format!("checks: {}", named(&bad))
        }),
        EventKind::ReleaseRolledBack => release.cause.as_ref().map(|c| c.reason.clone()),
        _ => None,
    };
    Message {
        event,
        environment: env.clone(),
        release: Some(id),
        title,
        summary: summary(release),
        detail,
        actor: release.actor.clone(),
        commit: release.commit.as_ref().map(|c| format!("{} {}", c.short_sha(), c.subject)),
        link,
        good,
    }
}

/// The news of a pull-request check that blocks a change in one environment: the findings'
/// codes with their counts and the objects they are about — never their messages, which may
/// quote a value.
pub fn of_check(
    environment: &str,
    head: &crate::repo::CommitInfo,
    findings: &[&crate::validate::Finding],
    actor: &str,
    link: Option<String>,
) -> Message {
    let mut codes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for f in findings {
        *codes.entry(f.code.as_str()).or_default() += 1;
    }
    let mut objects: Vec<String> = findings.iter().map(|f| f.subject()).collect();
    objects.dedup();
    let n = findings.len();
    let counted: Vec<String> = codes.iter().map(|(code, count)| format!("{code} ×{count}")).collect();
    Message {
        event: EventKind::CheckBlocked,
        environment: environment.to_string(),
        release: None,
        title: format!("{environment}: change {} blocked by {n} finding{}", head.short_sha(), plural(n)),
        summary: counted.join(", "),
        detail: Some(format!("about: {}", named(&objects))),
        actor: actor.to_string(),
        commit: Some(format!("{} {}", head.short_sha(), head.subject)),
        link,
        good: false,
    }
}

/// `web 1.4.0 → 1.5.0 · 3 updated, 1 created`, or `no changes`.
pub fn summary(release: &Release) -> String {
    let mut parts = Vec::new();
    if !release.versions.is_empty() {
        let shown: Vec<String> = release.versions.iter().map(version).collect();
        parts.push(named(&shown));
    }
    let s = &release.summary;
    let counts: Vec<String> = [(s.create, "created"), (s.update, "updated"), (s.delete, "deleted")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect();
    parts.push(if counts.is_empty() { "no changes".to_string() } else { counts.join(", ") });
    parts.join(" · ")
}

fn version(v: &VersionChange) -> String {
    let name =
        if v.container == v.object.name { v.container.clone() } else { format!("{}/{}", v.object.name, v.container) };
    match (&v.old, &v.new) {
        (Some(old), Some(new)) => format!("{name} {} → {}", notes::tag(old), notes::tag(new)),
        (None, Some(new)) => format!("{name} {} (new)", notes::tag(new)),
        (Some(old), None) => format!("{name} {} (removed)", notes::tag(old)),
        (None, None) => name,
    }
}

fn named(items: &[String]) -> String {
    let mut out = items.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > NAMED {
        out.push_str(&format!(" and {} more", items.len() - NAMED));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The plain text of a message: the title, then its lines.
pub fn plain(message: &Message) -> String {
    let mut out = format!("{}\n{}\n", message.title, message.summary);
    if let Some(detail) = &message.detail {
        out.push_str(&format!("{detail}\n"));
    }
    out.push_str(&format!("by {}", message.actor));
    if let Some(commit) = &message.commit {
        out.push_str(&format!(" · {commit}"));
    }
    out.push('\n');
    if let Some(link) = &message.link {
        out.push_str(&format!("{link}\n"));
    }
    out
}
