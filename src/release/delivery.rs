//! What a release has told whom: one entry per (channel, event), kept on the release record so
//! a later `cairn notify` — another run, a retried CI job — sends only what was not delivered.

use serde::{Deserialize, Serialize};

use super::verification::Verdict;
use super::{Outcome, Release, ReleaseKind};
use crate::config::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryOutcome {
    Delivered,
    /// Every attempt failed, or the receiver refused it (a 4xx); the next `notify` tries again.
    Failed,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub channel: String,
    pub event: EventKind,
    /// The same for every attempt and every run: sent as `X-Cairn-Delivery`, so a receiver can
    /// drop the copy a run killed between sending and recording would send again.
    pub id: String,
    /// When the last attempt ended.
    pub at: String,
    pub outcome: DeliveryOutcome,
    /// The receiver's last HTTP status (or SMTP reply code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Attempts over all runs.
    pub attempts: u32,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who ran the `notify` that made the last attempt.
    pub actor: String,
    /// GitHub: the Deployment created for the release, so a retry only posts its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<u64>,
}

impl Delivery {
    pub fn delivered(&self) -> bool {
        self.outcome == DeliveryOutcome::Delivered
    }
}

/// The stable id of one delivery: environment, release, event and channel.
pub fn delivery_id(release: &Release, event: EventKind, channel: &str) -> String {
    format!("{}-{}-{}-{channel}", release.environment, release.id, event.as_str())
}

/// What a finished release has to tell: its outcome, drift it found, a verification that did not
/// pass. A release still in progress tells nothing yet.
pub fn events_of(release: &Release) -> Vec<EventKind> {
    let mut out = Vec::new();
    match (release.outcome, release.kind) {
        (Outcome::InProgress, _) => return out,
        (Outcome::Succeeded, ReleaseKind::Apply) => out.push(EventKind::ReleaseSucceeded),
        (Outcome::Succeeded, ReleaseKind::Rollback) => out.push(EventKind::ReleaseRolledBack),
        (Outcome::Failed | Outcome::Interrupted, _) => out.push(EventKind::ReleaseFailed),
    }
    if !release.drift.is_empty() {
        out.push(EventKind::DriftDetected);
    }
    if release.verification.as_ref().is_some_and(|v| v.verdict != Verdict::Passed) {
        out.push(EventKind::VerificationFailed);
    }
    out
}

/// The recorded delivery of `event` to `channel`, if any attempt was made.
pub fn recorded<'a>(release: &'a Release, event: EventKind, channel: &str) -> Option<&'a Delivery> {
    release.notifications.iter().find(|d| d.event == event && d.channel == channel)
}

/// Records an attempt, replacing the earlier entry of the same (channel, event).
pub fn record(release: &mut Release, delivery: Delivery) {
    match release.notifications.iter_mut().find(|d| d.event == delivery.event && d.channel == delivery.channel) {
        Some(entry) => *entry = delivery,
        None => release.notifications.push(delivery),
    }
}
