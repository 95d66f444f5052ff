//! What a verification found, as the release record keeps it: the outcome, every measurement,
//! who ran it — and, on a rollback made because of it, why. `delivery` produces these;
//! `history`, `notes`, `status` and `metrics` read them back.

use serde::{Deserialize, Serialize};

/// How a verification (or one check of it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    /// Could not tell: empty results, or the server could not be reached often enough. Not a
    /// failure (nothing is rolled back), but not a pass either (nothing is promoted).
    Inconclusive,
    Failed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Failed => "failed",
        }
    }
}

/// How one measurement came out. `Error`: it could not be taken (unreachable, timed out, an
/// answer that could not be read); errors do not count towards a check's `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Passed,
    Failed,
    Inconclusive,
    Error,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Passed => "passed",
            Phase::Failed => "failed",
            Phase::Inconclusive => "inconclusive",
            Phase::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// When it was taken (RFC 3339).
    pub at: String,
    pub phase: Phase,
    /// What was measured: a status and latency, a query's result, an exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why it did not pass, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long taking it took.
    pub elapsed_ms: u64,
    /// A command's output (stdout then stderr), its end kept when long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    /// `http`, `prometheus`, `command`, or `analysis` (a template's metric, named
    /// `template/metric`).
    pub kind: String,
    /// `None`: stopped before it finished, because another check failed first.
    pub verdict: Option<Verdict>,
    /// Why the check ended as it did (`2 failed measurements, more than failure_limit 1`).
    pub reason: String,
    pub measurements: Vec<Measurement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub verdict: Verdict,
    pub started_at: String,
    pub finished_at: String,
    pub actor: String,
    pub checks: Vec<CheckResult>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }

    /// The first measurement that failed, with its check's name: what a rollback cites.
    pub fn first_failure(&self) -> Option<(&str, &Measurement)> {
        self.checks
            .iter()
            .flat_map(|c| c.measurements.iter().map(move |m| (c.name.as_str(), m)))
            .filter(|(_, m)| m.phase == Phase::Failed)
            .min_by(|a, b| a.1.at.cmp(&b.1.at))
    }
}

/// Why a rollback happened, when cairn made it on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackCause {
    /// The release whose verification failed.
    pub release: u64,
    pub reason: String,
    /// The failing measurements, by check.
    pub failed: Vec<FailedCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedCheck {
    pub check: String,
    pub measurements: Vec<Measurement>,
}

impl RollbackCause {
    pub fn of(release: u64, verification: &Verification) -> RollbackCause {
        let failed: Vec<FailedCheck> = verification
            .checks
            .iter()
            .filter(|c| c.verdict == Some(Verdict::Failed))
            .map(|c| FailedCheck {
                check: c.name.clone(),
                measurements: c.measurements.iter().filter(|m| m.phase == Phase::Failed).cloned().collect(),
            })
            .collect();
        let names: Vec<&str> = failed.iter().map(|f| f.check.as_str()).collect();
        RollbackCause {
            release,
            reason: format!("verification of release {release} failed: {}", names.join(", ")),
            failed,
        }
    }
}

/// A release's verification and rollback cause in a few words, for history, status and notes:
/// `verified`, `verification failed`, `automatic rollback of 4, verified`.
pub fn note(verdict: Option<Verdict>, rollback_of: Option<u64>) -> Option<String> {
    let verdict = verdict.map(|v| match v {
        Verdict::Passed => "verified".to_string(),
        other => format!("verification {}", other.as_str()),
    });
    let cause = rollback_of.map(|id| format!("automatic rollback of {id}"));
    match (verdict, cause) {
        (Some(v), Some(c)) => Some(format!("{c}, {v}")),
        (v, c) => v.or(c),
    }
}
