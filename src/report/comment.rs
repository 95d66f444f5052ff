//! The pull-request report of `check`, which must fit in one GitHub comment at any size.
//!
//! Three shapes, the first that fits: the whole report (every diff); the report with the largest
//! diffs left out (one collapsed line each in their place); and, when even one line per object
//! does not fit, a summary — per environment a table of kind × action, then its findings and its
//! riskiest changes by name until the room is spent, each list ending with how many it left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::markdown_cell;
use super::plan::unified_diff;
use crate::check::SavedPlan;
use crate::plan::{Action, Change, Plan};
use crate::secrets::Masked;
use crate::validate::{Finding, Level};

/// GitHub caps comments at 65,535 characters; stay well under it.
pub const COMMENT_LIMIT: usize = 60_000;

/// Room kept free while a summary's lists grow, so the line saying what a list left out (and
/// the rest of the report's frame) always fits.
const RESERVE: usize = 400;

/// The Markdown report. `cap`: `None` for the full report; `Some(full_report)` to keep it under
/// `COMMENT_LIMIT`, where `full_report` names the complete report when one was written.
pub fn check_markdown(saved: &Masked<SavedPlan>, cap: Option<Option<&str>>) -> String {
    let saved: &SavedPlan = saved;
    let diffs = diffs_of(saved);
    let full = write_report(saved, &diffs, &|_, _| false, None);
    let Some(full_report) = cap else { return full };
    if full.len() <= COMMENT_LIMIT {
        return full;
    }
    if let Some(text) = without_largest_diffs(saved, &diffs, full.len(), full_report) {
        return text;
    }
    summary(saved, &diffs, full_report)
}

/// The unified diff of every change that is not "unchanged", per plan, in plan order.
fn diffs_of(saved: &SavedPlan) -> Vec<Vec<(&Change, String)>> {
    use rayon::prelude::*;
    saved
        .plans
        .iter()
        .map(|p| {
            let changed: Vec<&Change> = p.changes.iter().filter(|c| c.action != Action::Unchanged).collect();
            // Formatting both sides as YAML is the cost of a large report; do it in parallel.
            changed.into_par_iter().map(|c| (c, unified_diff(c))).collect()
        })
        .collect()
}

/// The report with the fewest, largest diffs left out that brings it under the limit, or `None`
/// when even one line per object is too long.
fn without_largest_diffs(
    saved: &SavedPlan,
    diffs: &[Vec<(&Change, String)>],
    full_len: usize,
    full_report: Option<&str>,
) -> Option<String> {
    // What leaving each diff out saves, computed once: re-rendering the report per omission
    // would cost the square of the number of objects.
    let mut savings: Vec<(usize, usize, usize)> = Vec::new();
    for (e, entries) in diffs.iter().enumerate() {
        for (i, (change, diff)) in entries.iter().enumerate() {
            let shown = entry(change, diff, false).len();
            let stub = entry(change, diff, true).len();
            savings.push((shown.saturating_sub(stub), e, i));
        }
    }
    savings.sort_unstable_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut omitted = vec![Vec::new(); diffs.len()];
    for (e, entries) in diffs.iter().enumerate() {
        omitted[e] = vec![false; entries.len()];
    }
    let mut length = full_len + RESERVE;
    let mut count = 0;
    for (saving, e, i) in savings {
        if length <= COMMENT_LIMIT {
            break;
        }
        omitted[e][i] = true;
        length -= saving;
        count += 1;
    }
    if length > COMMENT_LIMIT {
        return None;
    }
    let text = write_report(saved, diffs, &|e, i| omitted[e][i], Some((count, full_report)));
    (text.len() <= COMMENT_LIMIT).then_some(text)
}

fn header(s: &mut String, saved: &SavedPlan) {
    let status = if saved.blocked() { "blocked by findings" } else { "ready to merge" };
    let _ = writeln!(s, "## cairn check: {status}\n");
    let _ = writeln!(
        s,
        "`{}` → `{}` ({}), {} changed path(s).\n",
        saved.base.short_sha(),
        saved.head.short_sha(),
        markdown_cell(&saved.head.subject),
        saved.changed_paths.len()
    );
    if !saved.approvals.is_empty() {
        let who: Vec<&str> = saved.approvals.iter().map(|a| a.by.as_str()).collect();
        let _ = writeln!(s, "Approved by {}.\n", who.join(", "));
    }
}

/// Where the complete report is, or how to get one, for a report that left something out.
fn elsewhere(full_report: Option<&str>) -> String {
    match full_report {
        Some(path) => format!("The full report is in `{path}`."),
        None => "`cairn check --out PLAN` also writes the full report (as `PLAN` with extension `.md`); `cairn plan --env ENV` shows one environment's diffs.".to_string(),
    }
}

const ENV_TABLE_HEAD: &str =
    "| environment | create | update | delete | unchanged | errors | warnings |\n|---|---:|---:|---:|---:|---:|---:|\n";

fn env_row(saved: &SavedPlan, p: &Plan) -> String {
    let count =
        |level: Level| saved.findings.iter().filter(|f| f.environment == p.environment && f.severity == level).count();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        p.environment,
        p.summary.create,
        p.summary.update,
        p.summary.delete,
        p.summary.unchanged,
        count(Level::Error),
        count(Level::Warning)
    )
}

const FINDINGS_HEAD: &str = "| severity | code | object | location | message |\n|---|---|---|---|---|\n";

fn finding_row(f: &Finding) -> String {
    let level = if f.severity == Level::Error { "error" } else { "warning" };
    format!(
        "| {level} | `{}` | `{}` | `{}:{}:{}` | {} |\n",
        f.code,
        f.subject(),
        f.file,
        f.line,
        f.column,
        markdown_cell(&f.message)
    )
}

/// One changed object: its diff, or (`stub`) a line saying it was left out. The stub is kept
/// short, as thousands may be needed: the note at the top says where the diffs are.
fn entry(change: &Change, diff: &str, stub: bool) -> String {
    let mut s =
        format!("<details><summary><b>{}</b> <code>{}</code></summary>\n\n", change.action.as_str(), change.object);
    if stub {
        let _ = writeln!(s, "_{}-line diff left out here._\n", diff.lines().count());
    } else {
        let _ = writeln!(s, "```diff\n{diff}```\n");
    }
    s.push_str("</details>\n");
    s
}

/// The report object by object; `omitted(env, i)` says which diffs are left out, `note` how many
/// and where the full report is.
fn write_report(
    saved: &SavedPlan,
    diffs: &[Vec<(&Change, String)>],
    omitted: &dyn Fn(usize, usize) -> bool,
    note: Option<(usize, Option<&str>)>,
) -> String {
    let mut s = String::new();
    header(&mut s, saved);
    if let Some((count, full_report)) = note {
        let _ = writeln!(
            s,
            "> {count} diff(s) were left out, largest first, to keep this comment under {COMMENT_LIMIT} characters. {}\n",
            elsewhere(full_report)
        );
    }
    if saved.plans.is_empty() {
        let _ = writeln!(s, "No environment is touched by this change.");
        return s;
    }
    s.push_str(ENV_TABLE_HEAD);
    for p in &saved.plans {
        s.push_str(&env_row(saved, p));
    }
    for (e, p) in saved.plans.iter().enumerate() {
        let _ = writeln!(s, "\n### {}\n", p.environment);
        let findings: Vec<_> = saved.findings.iter().filter(|f| f.environment == p.environment).collect();
        if !findings.is_empty() {
            s.push_str(FINDINGS_HEAD);
            for f in findings {
                s.push_str(&finding_row(f));
            }
            s.push('\n');
        }
        if !p.has_changes() {
            let _ = writeln!(s, "No changes.");
        }
        s.push_str(&super::plan::rollouts_markdown(p));
        for (i, (change, diff)) in diffs[e].iter().enumerate() {
            s.push_str(&entry(change, diff, note.is_some() && omitted(e, i)));
        }
    }
    s
}

/// Text that grows only while it stays `RESERVE` under its limit; `force` adds the closing line
/// of a list, which the reserve is kept for.
struct Budget {
    text: String,
    limit: usize,
}

impl Budget {
    fn fits(&self, piece: &str) -> bool {
        self.text.len() + piece.len() + RESERVE <= self.limit
    }

    fn push(&mut self, piece: &str) -> bool {
        let fits = self.fits(piece);
        if fits {
            self.text.push_str(piece);
        }
        fits
    }

    fn force(&mut self, piece: &str) {
        if self.text.len() + piece.len() <= self.limit {
            self.text.push_str(piece);
        }
    }

    fn left(&self) -> usize {
        self.limit.saturating_sub(self.text.len() + RESERVE)
    }
}

/// How risky a change is for a reviewer, most first: deletions, changed secret values, drift
/// being overwritten, updates, creations.
fn risk(change: &Change) -> u8 {
    if change.action == Action::Delete {
        0
    } else if secret_changed(change) {
        1
    } else if change.drift {
        2
    } else if change.action == Action::Update {
        3
    } else {
        4
    }
}

fn secret_changed(change: &Change) -> bool {
    // `a` lies under `b` (or is it): `/data/x` under `/data`.
    let under = |a: &str, b: &str| a.strip_prefix(b).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    match change.action {
        Action::Update => {
            change.fields.iter().any(|f| change.secrets.iter().any(|s| under(&f.pointer, s) || under(s, &f.pointer)))
        }
        Action::Create => !change.secrets.is_empty(),
        _ => false,
    }
}

/// The summary for a change too large to show object by object.
fn summary(saved: &SavedPlan, diffs: &[Vec<(&Change, String)>], full_report: Option<&str>) -> String {
    let mut b = Budget { text: String::new(), limit: COMMENT_LIMIT };
    header(&mut b.text, saved);
    let changes: usize = diffs.iter().map(Vec::len).sum();
    let _ = writeln!(
        b.text,
        "> This change is too large to show object by object in a comment ({changes} changed object(s) in {} environment(s)), so it is summarised: per environment the changes by kind and action, then its findings and its riskiest changes by name (deletions, changed secret values, drift, updates, creations). {}\n",
        saved.plans.len(),
        elsewhere(full_report)
    );
    // The environments' table gets at most a third of the room; the sections share the rest.
    let table_limit = b.text.len() + COMMENT_LIMIT / 3;
    b.text.push_str(ENV_TABLE_HEAD);
    for (k, p) in saved.plans.iter().enumerate() {
        let row = env_row(saved, p);
        if b.text.len() + row.len() > table_limit || !b.push(&row) {
            b.force(&format!("\n_…and {} more environment(s) in the full report._\n", saved.plans.len() - k));
            break;
        }
    }
    for (e, p) in saved.plans.iter().enumerate() {
        let envs_left = saved.plans.len() - e;
        let share = b.left() / envs_left;
        // An environment's section needs room for its heading and its kind table at least.
        let section = env_section(saved, p, &diffs[e], share);
        if !b.push(&section) {
            let names: Vec<&str> = saved.plans[e..].iter().map(|p| p.environment.as_str()).collect();
            let mut line = format!("\n_{} more environment(s) left out here: ", names.len());
            for (n, name) in names.iter().enumerate() {
                if line.len() + name.len() + 40 > RESERVE - 20 {
                    let _ = write!(line, "and {} more", names.len() - n);
                    break;
                }
                let _ = write!(line, "`{name}`{}", if n + 1 < names.len() { ", " } else { "" });
            }
            line.push_str("._\n");
            b.force(&line);
            break;
        }
    }
    b.text
}

/// One environment of the summary, within `room` characters where its lists can manage it.
fn env_section(saved: &SavedPlan, p: &Plan, diffs: &[(&Change, String)], room: usize) -> String {
    let mut s = format!("\n### {}\n\n", p.environment);
    if !p.has_changes() {
        s.push_str("No changes.\n");
    } else {
        let mut kinds: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        for (change, _) in diffs {
            let column = match change.action {
                Action::Create => 0,
                Action::Update => 1,
                _ => 2,
            };
            let kind = match change.object.group.as_str() {
                "" => change.object.kind.clone(),
                group => format!("{}.{group}", change.object.kind),
            };
            kinds.entry(kind).or_default()[column] += 1;
        }
        s.push_str("| kind | create | update | delete |\n|---|---:|---:|---:|\n");
        for (kind, [create, update, delete]) in &kinds {
            let _ = writeln!(s, "| {kind} | {create} | {update} | {delete} |");
        }
        s.push('\n');
    }
    // What a rollout will do is short and decides how a merge goes out: it is always shown.
    s.push_str(&super::plan::rollouts_markdown(p));
    let limit = s.len() + room.saturating_sub(s.len());
    let mut list = Budget { text: s, limit: limit.max(RESERVE) };
    let findings: Vec<&Finding> = saved.findings.iter().filter(|f| f.environment == p.environment).collect();
    if !findings.is_empty() {
        // Findings are what blocks a merge: they get the room first (errors are sorted first).
        let first = format!("{FINDINGS_HEAD}{}", finding_row(findings[0]));
        if list.push(&first) {
            for (k, f) in findings.iter().enumerate().skip(1) {
                if !list.push(&finding_row(f)) {
                    list.force(&format!("\n_…and {} more finding(s)._\n", findings.len() - k));
                    break;
                }
            }
            list.text.push('\n');
        } else {
            list.force(&format!("_{} finding(s) left out here._\n\n", findings.len()));
        }
    }
    let mut order: Vec<&(&Change, String)> = diffs.iter().collect();
    order.sort_by(|a, b| {
        (risk(a.0), std::cmp::Reverse(a.1.len()), a.0.object.to_string()).cmp(&(
            risk(b.0),
            std::cmp::Reverse(b.1.len()),
            b.0.object.to_string(),
        ))
    });
    for (k, (change, diff)) in order.iter().enumerate() {
        let mut marks = Vec::new();
        if secret_changed(change) {
            marks.push("secret value changed".to_string());
        }
        if change.drift {
            marks.push("drift: changed outside git".to_string());
        }
        marks.push(format!("{}-line diff", diff.lines().count()));
        let line = format!("- **{}** `{}` — {}\n", change.action.as_str(), change.object, marks.join(", "));
        if !list.push(&line) {
            list.force(&format!("\n_…and {} more changed object(s) in {}._\n", order.len() - k, p.environment));
            break;
        }
    }
    list.text
}
