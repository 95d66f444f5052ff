//! `--wait`: whether applied objects became healthy — Deployments, StatefulSets and DaemonSets
//! rolled out, Jobs complete, CustomResourceDefinitions Established — read from the status
//! their controllers write. Other kinds are healthy once the server stored them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::KubernetesTarget;
use crate::render::ObjectId;

/// Why an object is not healthy yet (`Err`), or that it is (`Ok`). `Failed` means it never will
/// be (a failed Job), so waiting stops.
#[derive(Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Progressing(String),
    Failed(String),
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn is_true(condition: Option<&Value>) -> bool {
    condition.and_then(|c| c.get("status")).and_then(Value::as_str) == Some("True")
}

/// Whether a CustomResourceDefinition is Established (`Err` says why not).
pub fn crd_established(object: &Value) -> Result<(), String> {
    let established = condition(object, "Established");
    if is_true(established) {
        return Ok(());
    }
    let names = condition(object, "NamesAccepted");
    let why = [names, established]
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("message").and_then(Value::as_str))
        .find(|m| !m.is_empty())
        .unwrap_or("the API server has not Established it yet");
    Err(why.to_string())
}

/// The health of one object from its kind and status.
pub fn health(kind: &str, object: &Value) -> Health {
    let generation = int(object, "/metadata/generation").unwrap_or(0);
    let observed = int(object, "/status/observedGeneration").unwrap_or(0);
    let stale = || {
        Health::Progressing(format!(
            "the controller has not seen the change yet (generation {generation}, observed {observed})"
        ))
    };
    match kind {
        "Deployment" => {
            if observed < generation {
                return stale();
            }
            let want = int(object, "/spec/replicas").unwrap_or(1);
            let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
            let available = int(object, "/status/availableReplicas").unwrap_or(0);
            let total = int(object, "/status/replicas").unwrap_or(0);
            if let Some(c) = condition(object, "Progressing")
                && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
            {
                let message = c.get("message").and_then(Value::as_str).unwrap_or("progress deadline exceeded");
                return Health::Failed(message.to_string());
            }
            if updated < want {
                Health::Progressing(format!("{updated} of {want} replicas updated"))
            } else if total > updated {
                Health::Progressing(format!("{} old replicas still running", total - updated))
            } else if available < want {
                Health::Progressing(format!("{available} of {want} updated replicas available"))
            } else {
                Health::Healthy
            }
        }
        "StatefulSet" => {
            if observed < generation {
                return stale();
            }
            let want = int(object, "/spec/replicas").unwrap_or(1);
            let ready = int(object, "/status/readyReplicas").unwrap_or(0);
            let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
            let current = object.pointer("/status/currentRevision").and_then(Value::as_str);
            let update = object.pointer("/status/updateRevision").and_then(Value::as_str);
            if updated < want {
                Health::Progressing(format!("{updated} of {want} replicas updated"))
            } else if ready < want {
                Health::Progressing(format!("{ready} of {want} replicas ready"))
            } else if current != update {
                Health::Progressing("the rollout to the new revision is not finished".into())
            } else {
                Health::Healthy
            }
        }
        "DaemonSet" => {
            if observed < generation {
                return stale();
            }
            let want = int(object, "/status/desiredNumberScheduled").unwrap_or(0);
            let updated = int(object, "/status/updatedNumberScheduled").unwrap_or(0);
            let available = int(object, "/status/numberAvailable").unwrap_or(0);
            if updated < want {
                Health::Progressing(format!("{updated} of {want} nodes updated"))
            } else if available < want {
                Health::Progressing(format!("{available} of {want} nodes available"))
            } else {
                Health::Healthy
            }
        }
        "Job" => {
            if is_true(condition(object, "Complete")) {
                Health::Healthy
            } else if is_true(condition(object, "Failed")) {
                let c = condition(object, "Failed");
                let message = c.and_then(|c| c.get("message")).and_then(Value::as_str).unwrap_or("the Job failed");
                Health::Failed(message.to_string())
            } else {
                let succeeded = int(object, "/status/succeeded").unwrap_or(0);
                let want = int(object, "/spec/completions").unwrap_or(1);
                Health::Progressing(format!("{succeeded} of {want} completions"))
            }
        }
        "CustomResourceDefinition" => match crd_established(object) {
            Ok(()) => Health::Healthy,
            Err(why) => Health::Progressing(why),
        },
        _ => Health::Healthy,
    }
}

/// Whether `--wait` watches objects of this kind.
pub fn watched(id: &ObjectId) -> bool {
    matches!(
        (id.group.as_str(), id.kind.as_str()),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

impl KubernetesTarget {
    /// Polls the objects until each is healthy, has failed, or `timeout` passes; returns why
    /// each one that is not healthy is not.
    pub fn wait_healthy(&self, ids: &[&ObjectId], timeout: Duration) -> HashMap<ObjectId, String> {
        let start = Instant::now();
        let mut pending: Vec<&ObjectId> = ids.iter().copied().filter(|id| watched(id)).collect();
        let mut unhealthy: HashMap<ObjectId, String> = HashMap::new();
        let mut poll = Duration::from_millis(25);
        loop {
            let live = match self.read_raw(&pending) {
                Ok(live) => live,
                Err(e) => {
                    // A failed read is retried until the deadline; it then names the error.
                    for id in &pending {
                        unhealthy.insert((*id).clone(), e.chain());
                    }
                    HashMap::new()
                }
            };
            pending.retain(|id| {
                let Some(object) = live.get(*id) else {
                    unhealthy.entry((*id).clone()).or_insert_with(|| "the object is gone".into());
                    return true;
                };
                match health(&id.kind, object) {
                    Health::Healthy => {
                        unhealthy.remove(*id);
                        false
                    }
                    Health::Failed(why) => {
                        unhealthy.insert((*id).clone(), format!("failed: {why}"));
                        false
                    }
                    Health::Progressing(why) => {
                        unhealthy.insert((*id).clone(), why);
                        true
                    }
                }
            });
            if pending.is_empty() || start.elapsed() >= timeout {
                break;
            }
            // Soon at first (a controller usually reacts within tens of milliseconds, and each
            // step of a rollout waits here), then every half second.
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(500));
        }
        for id in pending {
            if let Some(why) = unhealthy.get_mut(id) {
                *why = format!("not healthy after {}s: {why}", timeout.as_secs());
            }
        }
        unhealthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_are_healthy_once_rolled_out() {
        let d = |observed: i64, updated: i64, available: i64, total: i64| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
                "status": {"observedGeneration": observed, "updatedReplicas": updated,
                    "availableReplicas": available, "replicas": total}})
        };
        assert!(matches!(health("Deployment", &d(1, 3, 3, 3)), Health::Progressing(w) if w.contains("generation 2")));
        assert_eq!(health("Deployment", &d(2, 1, 3, 3)), Health::Progressing("1 of 3 replicas updated".into()));
        assert_eq!(health("Deployment", &d(2, 3, 3, 4)), Health::Progressing("1 old replicas still running".into()));
        assert_eq!(
            health("Deployment", &d(2, 3, 2, 3)),
            Health::Progressing("2 of 3 updated replicas available".into())
        );
        assert_eq!(health("Deployment", &d(2, 3, 3, 3)), Health::Healthy);
    }

    #[test]
    fn jobs_complete_or_fail_and_crds_are_established() {
        let job = |kind: &str| json!({"status": {"conditions": [{"type": kind, "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(health("Job", &job("Complete")), Health::Healthy);
        assert_eq!(health("Job", &job("Failed")), Health::Failed("BackoffLimitExceeded".into()));
        assert_eq!(
            health("Job", &json!({"spec": {"completions": 2}})),
            Health::Progressing("0 of 2 completions".into())
        );
        assert_eq!(health("CustomResourceDefinition", &job("Established")), Health::Healthy);
        let conflict = json!({"status": {"conditions": [{"type": "NamesAccepted", "status": "False", "message": "\"widgets\" is already in use"}]}});
        assert_eq!(crd_established(&conflict), Err("\"widgets\" is already in use".into()));
    }
}
