//! DORA's four keys from cairn's own release records and git: deployment frequency, lead time
//! for changes, change failure rate and time to restore, each with its performance band.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use super::{Outcome, Release, ReleaseKind};
use crate::error::Result;
use crate::repo::Repo;

/// A release is a failed change when it is rolled back, or its commits reverted, within this
/// long after it finished.
pub const FAILURE_WINDOW_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub environment: String,
    pub since: String,
    pub until: String,
    pub days: f64,
    pub releases: usize,
    pub deployment_frequency: Frequency,
    pub lead_time: LeadTime,
    pub change_failure_rate: FailureRate,
    pub time_to_restore: Restore,
    /// Deployments per week (week starting Monday, UTC), oldest first.
    pub weekly: Vec<WeekCount>,
    /// Per release: when it finished and the median lead time of its commits.
    pub lead_times: Vec<ReleaseLeadTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Frequency {
    pub deployments: usize,
    pub per_week: f64,
    pub band: Option<Band>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeadTime {
    pub commits: usize,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    pub band: Option<Band>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureRate {
    pub failures: usize,
    pub releases: usize,
    pub rate: Option<f64>,
    /// Release ids counted as failures, and why.
    pub failed: Vec<FailedRelease>,
    pub band: Option<Band>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedRelease {
    pub id: u64,
    /// `failed`, `rolled-back-automatically` (its verification failed and cairn rolled it
    /// back), `verification-failed`, `rolled-back` or `reverted`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restore {
    pub incidents: usize,
    pub restored: usize,
    pub median_hours: Option<f64>,
    pub band: Option<Band>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeekCount {
    pub week: String,
    pub deployments: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseLeadTime {
    pub id: u64,
    pub finished_at: String,
    pub commits: usize,
    pub median_hours: f64,
}

fn hours(span_seconds: i64) -> f64 {
    span_seconds as f64 / 3600.0
}

/// The value at quantile `q` (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Computes the measures over releases that finished in `[since, until]`.
pub fn compute(
    repo: &Repo,
    environment: &str,
    releases: &[Release],
    since: Timestamp,
    until: Timestamp,
) -> Result<Metrics> {
    let finished: Vec<&Release> =
        releases.iter().filter(|r| r.outcome != Outcome::InProgress && r.finished().is_some()).collect();
    let in_window = |r: &&Release| r.finished().is_some_and(|t| t >= since && t <= until);
    let window: Vec<&Release> = finished.iter().copied().filter(in_window).collect();
    let deployments: Vec<&Release> = window.iter().copied().filter(|r| r.outcome == Outcome::Succeeded).collect();

    // Commits each succeeded release brought, from the previous succeeded release's commit.
    let by_id: HashMap<u64, &Release> = releases.iter().map(|r| (r.id, r)).collect();
    let mut release_commits: HashMap<u64, Vec<(String, i64)>> = HashMap::new();
    // Commit ids (full or abbreviated) named by `This reverts commit <sha>` lines.
    let mut revert_mentions: Vec<String> = Vec::new();
    for r in &finished {
        let Some(sha) = r.sha() else { continue };
        if r.outcome != Outcome::Succeeded || r.kind == ReleaseKind::Rollback || !repo.has_commit(sha) {
            continue;
        }
        let from = r.previous.and_then(|p| by_id.get(&p)).and_then(|p| p.sha()).filter(|s| repo.has_commit(s));
        if from == Some(sha) {
            release_commits.insert(r.id, Vec::new());
            continue;
        }
        let commits = repo.commits_reachable(from, sha)?;
        for c in &commits {
            for line in c.body.lines().chain(std::iter::once(c.subject.as_str())) {
                if let Some(rest) = line.trim().strip_prefix("This reverts commit ") {
                    let target: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
                    if target.len() >= 7 {
                        revert_mentions.push(target);
                    }
                }
            }
        }
        let list = commits
            .iter()
            .filter_map(|c| c.committer.time.parse::<Timestamp>().ok().map(|t| (c.sha.clone(), t.as_second())))
            .collect();
        release_commits.insert(r.id, list);
    }

    // Lead time: commit time → end of the release that first carried it.
    let mut all_lead: Vec<f64> = Vec::new();
    let mut lead_times = Vec::new();
    for r in &deployments {
        let (Some(end), Some(commits)) = (r.finished(), release_commits.get(&r.id)) else { continue };
        let mut own: Vec<f64> = commits.iter().map(|(_, t)| hours(end.as_second() - t).max(0.0)).collect();
        if own.is_empty() {
            continue;
        }
        own.sort_by(f64::total_cmp);
        all_lead.extend(&own);
        lead_times.push(ReleaseLeadTime {
            id: r.id,
            finished_at: r.finished_at.clone().unwrap_or_default(),
            commits: own.len(),
            median_hours: median(&own).unwrap_or(0.0),
        });
    }
    all_lead.sort_by(f64::total_cmp);

    // Failures: failed outright, rolled back, or reverted within the window after finishing.
    let reverted: HashSet<&str> = release_commits
        .values()
        .flatten()
        .map(|(sha, _)| sha.as_str())
        .filter(|sha| revert_mentions.iter().any(|m| sha.starts_with(m.as_str())))
        .collect();
    let mut failed = Vec::new();
    for r in &window {
        let end = r.finished().unwrap_or(since);
        let limit = end.checked_add((FAILURE_WINDOW_DAYS * 24).hours()).unwrap_or(end);
        let verification_failed =
            r.verification.as_ref().is_some_and(|v| v.verdict == super::verification::Verdict::Failed);
        let reason = if matches!(r.outcome, Outcome::Failed | Outcome::Interrupted) {
            Some("failed")
        } else if verification_failed
            && finished.iter().any(|later| later.cause.as_ref().is_some_and(|c| c.release == r.id))
        {
            Some("rolled-back-automatically")
        } else if verification_failed {
            Some("verification-failed")
        } else if finished.iter().any(|later| {
            later.kind == ReleaseKind::Rollback
                && later.id > r.id
                && later.rollback_to.is_some_and(|to| to < r.id)
                && later.finished().is_some_and(|t| t <= limit)
        }) {
            Some("rolled-back")
        } else if release_commits.get(&r.id).is_some_and(|cs| cs.iter().any(|(sha, _)| reverted.contains(sha.as_str())))
        {
            Some("reverted")
        } else {
            None
        };
        if let Some(reason) = reason {
            failed.push(FailedRelease { id: r.id, reason });
        }
    }

    // Time to restore: a failure → the next succeeded release that is not itself a failure.
    let failed_ids: HashSet<u64> = failed.iter().map(|f| f.id).collect();
    let mut restores: Vec<f64> = Vec::new();
    for f in &failed {
        let Some(start) = by_id.get(&f.id).and_then(|r| r.finished()) else { continue };
        let fix = finished
            .iter()
            .filter(|r| r.id > f.id && r.outcome == Outcome::Succeeded && !failed_ids.contains(&r.id))
            .find_map(|r| r.finished());
        if let Some(end) = fix {
            restores.push(hours(end.as_second() - start.as_second()).max(0.0));
        }
    }
    restores.sort_by(f64::total_cmp);

    let days = ((until.as_second() - since.as_second()) as f64 / 86_400.0).max(1.0 / 24.0);
    let per_day = deployments.len() as f64 / days;
    let median_lead = median(&all_lead);
    let rate = (!window.is_empty()).then(|| failed.len() as f64 / window.len() as f64);
    let median_restore = median(&restores);
    Ok(Metrics {
        environment: environment.to_string(),
        since: since.to_string(),
        until: until.to_string(),
        days,
        releases: window.len(),
        deployment_frequency: Frequency {
            deployments: deployments.len(),
            per_week: per_day * 7.0,
            band: (!deployments.is_empty()).then(|| frequency_band(per_day)),
        },
        lead_time: LeadTime {
            commits: all_lead.len(),
            median_hours: median_lead,
            p90_hours: quantile(&all_lead, 0.9),
            band: median_lead.map(lead_band),
        },
        change_failure_rate: FailureRate {
            failures: failed.len(),
            releases: window.len(),
            rate,
            band: rate.map(failure_band),
            failed,
        },
        time_to_restore: Restore {
            incidents: failed_ids.len(),
            restored: restores.len(),
            median_hours: median_restore,
            band: median_restore.map(restore_band),
        },
        weekly: weekly(&deployments, since, until),
        lead_times,
    })
}

fn weekly(deployments: &[&Release], since: Timestamp, until: Timestamp) -> Vec<WeekCount> {
    let week_of = |t: Timestamp| -> String {
        let date = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        let monday = date.checked_sub((date.weekday().to_monday_zero_offset() as i64).days()).unwrap_or(date);
        monday.to_string()
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    // Every week of the window appears, with zero deployments where there were none.
    let mut t = since;
    while t <= until {
        counts.entry(week_of(t)).or_default();
        t = match t.checked_add(24.hours()) {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    for r in deployments {
        if let Some(end) = r.finished() {
            *counts.entry(week_of(end)).or_default() += 1;
        }
    }
    counts.into_iter().map(|(week, deployments)| WeekCount { week, deployments }).collect()
}

/// On demand (≥ 1 a day), daily to weekly, weekly to monthly, less often.
pub fn frequency_band(per_day: f64) -> Band {
    if per_day >= 1.0 {
        Band::Elite
    } else if per_day >= 1.0 / 7.0 {
        Band::High
    } else if per_day >= 1.0 / 30.0 {
        Band::Medium
    } else {
        Band::Low
    }
}

/// Under a day, under a week, under a month, longer.
pub fn lead_band(median_hours: f64) -> Band {
    if median_hours < 24.0 {
        Band::Elite
    } else if median_hours < 24.0 * 7.0 {
        Band::High
    } else if median_hours < 24.0 * 30.0 {
        Band::Medium
    } else {
        Band::Low
    }
}

/// At most 5 %, 20 %, 30 %, more.
pub fn failure_band(rate: f64) -> Band {
    if rate <= 0.05 {
        Band::Elite
    } else if rate <= 0.20 {
        Band::High
    } else if rate <= 0.30 {
        Band::Medium
    } else {
        Band::Low
    }
}

/// Under an hour, under a day, under a week, longer.
pub fn restore_band(median_hours: f64) -> Band {
    if median_hours < 1.0 {
        Band::Elite
    } else if median_hours < 24.0 {
        Band::High
    } else if median_hours < 24.0 * 7.0 {
        Band::Medium
    } else {
        Band::Low
    }
}

/// An RFC 3339 time, or a date (midnight UTC): `--until`.
pub fn parse_time(text: &str) -> crate::error::Result<Timestamp> {
    text.parse::<Timestamp>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .ok_or_else(|| crate::error::Error::Usage {
            message: format!("`{text}` is not a time: use RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)"),
        })
}

/// The start of a window: a time, a date, or a duration back from `until` (`90d`, `12w`,
/// `48h`, `1d12h`: the grammar of [`crate::duration`], except that a bare number is refused —
/// `2026` is more likely a year than 2026 seconds).
pub fn parse_since(text: &str, until: Timestamp) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp());
    }
    if !text.contains(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let back = jiff::SignedDuration::try_from(crate::duration::parse(text).ok()?).ok()?;
    until.checked_sub(back).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_dora_thresholds() {
        assert_eq!(frequency_band(2.0), Band::Elite);
        assert_eq!(frequency_band(0.5), Band::High);
        assert_eq!(frequency_band(0.05), Band::Medium);
        assert_eq!(frequency_band(0.01), Band::Low);
        assert_eq!(lead_band(3.0), Band::Elite);
        assert_eq!(lead_band(48.0), Band::High);
        assert_eq!(failure_band(0.05), Band::Elite);
        assert_eq!(failure_band(0.25), Band::Medium);
        assert_eq!(restore_band(0.5), Band::Elite);
        assert_eq!(restore_band(200.0), Band::Low);
    }

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(median(&v), Some(2.5));
        assert_eq!(quantile(&v, 0.9), Some(4.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn since_accepts_durations_and_dates() {
        let until: Timestamp = "2026-03-31T00:00:00Z".parse().expect("ts");
        assert_eq!(parse_since("90d", until).map(|t| t.to_string()), Some("2025-12-31T00:00:00Z".to_string()));
        assert_eq!(parse_since("2026-01-01", until).map(|t| t.to_string()), Some("2026-01-01T00:00:00Z".to_string()));
        assert_eq!(parse_since("soon", until), None);
        assert_eq!(parse_since("48h", until).map(|t| t.to_string()), Some("2026-03-29T00:00:00Z".to_string()));
        assert_eq!(parse_since("1w12h", until).map(|t| t.to_string()), Some("2026-03-23T12:00:00Z".to_string()));
        assert_eq!(parse_since("2026", until), None);
    }
}
