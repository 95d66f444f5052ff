//! A rollout's state, kept in its release record and rewritten after every step, so a job
//! killed half-way leaves a record that says where the rollout stood — which step, how many
//! pods of each version, which Services it had moved — and the next apply or `cairn rollout
//! resume|abort` finishes or undoes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::verification::Verification;
use crate::plan::PlannedRollout;
use crate::render::ObjectId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    /// Steps are being run (or the job running them died: its release is then interrupted).
    Running,
    /// Every step passed and the new version is the Deployment's.
    Succeeded,
    /// A check failed, a step timed out or the job was cancelled: the old version is back.
    Aborted,
    /// The Deployment took the new version at the end and did not become ready in time.
    Failed,
    /// Its job was killed, and a later release (named in `reason`) continued it.
    Resumed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Succeeded => "succeeded",
            RolloutState::Aborted => "aborted",
            RolloutState::Failed => "failed",
            RolloutState::Resumed => "resumed",
        }
    }
}

/// One Deployment's rollout in a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// What was planned: strategy, steps, replica counts, the temporary Deployment.
    pub planned: PlannedRollout,
    pub state: RolloutState,
    /// The index in `planned.phases` of the phase running now (or next, for a resume).
    pub phase: usize,
    /// Every phase run so far, in order (a resumed phase appears again).
    pub steps: Vec<StepRecord>,
    /// Services whose selector the rollout changed, with the selector each had before: an
    /// abort puts these back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selectors: BTreeMap<String, BTreeMap<String, String>>,
    /// The label value of the old version's pods the active Service was pinned to (blue/green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it was aborted, or which release resumed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On the local target: nothing runs there, so every step is simulated (weights recorded,
    /// checks run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

impl Rollout {
    pub fn workload(&self) -> &ObjectId {
        &self.planned.workload
    }

    /// The replicas of each version now: (new, old).
    pub fn replicas(&self) -> (u32, u32) {
        match self.steps.iter().rev().find(|s| s.finished_at.is_some()) {
            Some(s) => (s.new, s.old),
            None => (0, self.planned.stable_replicas),
        }
    }
}

/// One phase as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub phase: usize,
    pub what: String,
    pub new: u32,
    pub old: u32,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// A verify step's checks and their measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Time spent by cairn itself in this phase (writes, reads, bookkeeping), without the
    /// pause, the checks and the wait for pods to become ready.
    #[serde(default)]
    pub overhead_ms: u64,
}
