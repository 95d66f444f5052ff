//! `cairn promote --to ENV`: the source environment's newest release that passed verification
//! and soaked there, its values rendered from its own commit, written into the destination's
//! own layer files as a commit on a new branch (or only shown, with `--dry-run`).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{load_from, resolve_actor};
use crate::config::{Config, Evidence};
use crate::delivery::promote::{self, Change, OwnFile};
use crate::error::{Error, Result};
use crate::release::verification::Verdict;
use crate::release::{self, Outcome, Release};
use crate::repo::{Edit, Repo};
use crate::target;

/// What `promote` was asked.
#[derive(Debug, Clone)]
pub struct PromoteSpec {
    pub to: String,
    pub dry_run: bool,
    /// Default: `cairn/promote-TO-from-FROM-RELEASE`.
    pub branch: Option<String>,
    pub actor: Option<String>,
}

/// The evidence a promotion rests on.
#[derive(Debug, Clone, Serialize)]
pub struct SourceEvidence {
    pub environment: String,
    pub release: u64,
    pub commit: Option<String>,
    pub verdict: Option<Verdict>,
    pub verified_at: Option<String>,
    pub verified_by: Option<String>,
    /// Since when the release was current in the source environment, and for how long (until
    /// now, or until the next release replaced it).
    pub current_since: String,
    pub current_for: String,
    pub soak: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub to: String,
    pub from: String,
    pub source: SourceEvidence,
    pub changes: Vec<Change>,
    /// Unified diff of the edited files.
    pub diff: String,
    pub dry_run: bool,
    pub branch: Option<String>,
    pub commit: Option<String>,
}

/// A promotion done (or shown), or refused with why (exit 1).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Promotion {
    Promoted(Box<Promoted>),
    Refused { to: String, from: String, reason: String },
}

pub fn promote(repo_dir: &Path, spec: &PromoteSpec) -> Result<Promotion> {
    let repo = Repo::open(repo_dir)?;
    let head = repo.snapshot(Some("HEAD"))?;
    let config = Config::load(&head)?;
    let dest = config.environment(&spec.to)?;
    let rule = dest.promotion.as_ref().ok_or_else(|| Error::Usage {
        message: format!(
            "environment `{}` has no `promotion` rule; add `promotion: {{ from: ENV, require: verified, soak: 1h }}` to it in cairn.yaml (docs/delivery.md)",
            spec.to
        ),
    })?;
    let source = config.environment(&rule.from)?;
    let refuse = |reason: String| Ok(Promotion::Refused { to: spec.to.clone(), from: rule.from.clone(), reason });

    let history = release::list(&target::open(repo.root(), source)?)?;
    let succeeded: Vec<&Release> = history.iter().filter(|r| r.outcome == Outcome::Succeeded).collect();
    let qualifies = |r: &Release| match rule.require {
        Evidence::Verified => r.verification.as_ref().is_some_and(|v| v.passed()),
        Evidence::Applied => true,
    };
    let Some(candidate) = succeeded.iter().rev().copied().find(|r| qualifies(r)) else {
        let newest = succeeded.last().map(|r| match &r.verification {
            Some(v) => format!(" (its newest release, {}, was verified {})", r.id, v.verdict.as_str()),
            None => {
                format!(" (its newest release, {}, was never verified; run `cairn verify --env {}`)", r.id, rule.from)
            }
        });
        return refuse(format!(
            "{} has no {} release to promote{}",
            rule.from,
            if rule.require == Evidence::Verified { "verified" } else { "succeeded" },
            newest.unwrap_or_default()
        ));
    };
    let since = candidate.finished().ok_or_else(|| Error::Usage {
        message: format!("release {} of `{}` has no end time", candidate.id, rule.from),
    })?;
    let replaced = succeeded.iter().find(|r| r.id > candidate.id).and_then(|r| r.finished());
    let until = replaced.unwrap_or_else(jiff::Timestamp::now);
    let current = Duration::from_secs(u64::try_from((until - since).get_seconds().max(0)).unwrap_or(0));
    if current < rule.soak {
        let when = since.checked_add(jiff::SignedDuration::try_from(rule.soak).unwrap_or_default()).unwrap_or(since);
        return refuse(format!(
            "release {} of {} has been current there for {}; the soak time is {}{}",
            candidate.id,
            rule.from,
            crate::duration::format(current),
            crate::duration::format(rule.soak),
            if replaced.is_some() {
                " and a newer release replaced it before it soaked".to_string()
            } else {
                format!(" (promote again after {})", when.strftime("%Y-%m-%d %H:%M UTC"))
            }
        ));
    }
    let sha = candidate.sha().filter(|s| repo.has_commit(s)).ok_or_else(|| Error::Usage {
        message: format!(
            "release {} of `{}` was not applied from a commit in this repository; it cannot be promoted",
            candidate.id, rule.from
        ),
    })?;
    let evidence = SourceEvidence {
        environment: rule.from.clone(),
        release: candidate.id,
        commit: Some(sha.to_string()),
        verdict: candidate.verification.as_ref().map(|v| v.verdict),
        verified_at: candidate.verification.as_ref().map(|v| v.finished_at.clone()),
        verified_by: candidate.verification.as_ref().map(|v| v.actor.clone()),
        current_since: since.to_string(),
        current_for: crate::duration::format(current),
        soak: crate::duration::format(rule.soak),
    };

    // The source as its release's commit renders it; the destination as the branch's base does.
    let from_run = load_from(Repo::open(repo_dir)?, std::slice::from_ref(&rule.from), Some(sha))?;
    let to_run = load_from(Repo::open(repo_dir)?, std::slice::from_ref(&spec.to), Some("HEAD"))?;
    let (Some(from_rendered), Some(to_rendered)) = (from_run.rendered.first(), to_run.rendered.first()) else {
        return Err(Error::Usage { message: "promotion: an environment rendered nothing".to_string() });
    };
    let wanted = promote::wanted(rule, from_rendered, to_rendered)?;
    if wanted.is_empty() {
        return refuse(format!(
            "{} already has what release {} of {} has: nothing to promote",
            spec.to, candidate.id, rule.from
        ));
    }

    // The destination's own layers: those the source does not share. A chart's templates are
    // not edited (a promoted value is set in a values file or a later layer's patch).
    let own: Vec<&str> = dest
        .layers
        .iter()
        .filter(|l| l.helm.is_none())
        .map(|l| l.path.as_str())
        .filter(|p| !source.layers.iter().any(|s| s.path == *p))
        .collect();
    let inside = |file: &str| own.iter().any(|l| file == *l || file.starts_with(&format!("{l}/")));
    let mut files: Vec<OwnFile> = Vec::new();
    let add = |path: &str, files: &mut Vec<OwnFile>| -> Result<Option<usize>> {
        if let Some(i) = files.iter().position(|f| f.path == path) {
            return Ok(Some(i));
        }
        let Some(bytes) = head.read(path)? else { return Ok(None) };
        let text =
            String::from_utf8(bytes).map_err(|_| Error::Usage { message: format!("{path}: not valid UTF-8") })?;
        files.push(OwnFile { path: path.to_string(), text });
        Ok(Some(files.len() - 1))
    };
    for w in &wanted {
        if let Some(object) = to_rendered.objects.iter().find(|o| o.id == w.object) {
            for s in object.sources.iter().filter(|s| inside(&s.file)) {
                add(&s.file, &mut files)?;
            }
        }
    }
    let mut kustomizations = Vec::new();
    for layer in &own {
        for name in ["kustomization.yaml", "kustomization.yml", "Kustomization"] {
            if let Some(i) = add(&format!("{layer}/{name}"), &mut files)? {
                kustomizations.push(i);
                break;
            }
        }
    }
    let original: Vec<String> = files.iter().map(|f| f.text.clone()).collect();
    let sources = |id: &crate::render::ObjectId| -> Vec<(String, u64)> {
        to_rendered
            .objects
            .iter()
            .find(|o| &o.id == id)
            .map(|o| o.sources.iter().map(|s| (s.file.clone(), s.line)).collect())
            .unwrap_or_default()
    };
    let changes = promote::edit(&wanted, &sources, &mut files, &kustomizations, &spec.to)?;
    let mut diff = String::new();
    let mut edits = Vec::new();
    for (file, before) in files.iter().zip(&original) {
        if file.text == *before {
            continue;
        }
        diff.push_str(
            &similar::TextDiff::from_lines(before.as_str(), file.text.as_str())
                .unified_diff()
                .header(&format!("a/{}", file.path), &format!("b/{}", file.path))
                .to_string(),
        );
        edits.push(Edit { path: file.path.clone(), content: file.text.clone().into_bytes() });
    }
    let mut promoted = Promoted {
        to: spec.to.clone(),
        from: rule.from.clone(),
        source: evidence,
        changes,
        diff,
        dry_run: spec.dry_run,
        branch: None,
        commit: None,
    };
    if !spec.dry_run {
        let branch = spec
            .branch
            .clone()
            .unwrap_or_else(|| format!("cairn/promote-{}-from-{}-{}", spec.to, rule.from, candidate.id));
        let actor = spec.actor.clone().unwrap_or_else(|| resolve_actor(&repo));
        let commit = repo.commit_on_branch("HEAD", &branch, &edits, &message(&promoted), &actor)?;
        promoted.branch = Some(branch);
        promoted.commit = Some(commit);
    }
    Ok(Promotion::Promoted(Box::new(promoted)))
}

/// The promotion commit's message: each value old → new, and the evidence.
fn message(p: &Promoted) -> String {
    let s = &p.source;
    let mut text = format!("promote {}: {} value(s) from {} release {}\n\n", p.to, p.changes.len(), p.from, s.release);
    for c in &p.changes {
        text.push_str(&format!("- {} {}: {} -> {} ({}:{})\n", c.object, c.field, c.old, c.new, c.file, c.line));
    }
    let verified = match (&s.verdict, &s.verified_at, &s.verified_by) {
        (Some(v), Some(at), Some(by)) => format!("verification {} at {at} by {by}", v.as_str()),
        _ => "not verified (promotion requires only a successful apply)".to_string(),
    };
    text.push_str(&format!(
        "\nEvidence: {} release {} (commit {}), {verified}; current there for {} since {} (soak {}).\n\nPromoted-from: {}/{}\n",
        s.environment,
        s.release,
        s.commit.as_deref().map(|c| &c[..c.len().min(12)]).unwrap_or("-"),
        s.current_for,
        s.current_since,
        s.soak,
        s.environment,
        s.release
    ));
    text
}
