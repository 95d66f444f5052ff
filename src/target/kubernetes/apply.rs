//! Writing to the cluster: server-side apply as field manager `cairn` (conflicts named, taken
//! over only with `--force-conflicts`), deletions of inventoried objects that still carry
//! cairn's labels, and the wait for CustomResourceDefinitions to be Established before the
//! objects of their kinds are applied.

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::{FIELD_MANAGER, Kind, KubernetesTarget, LeaseGuard, crd_kind, describe_error, normalize, to_value};
use crate::render::ObjectId;
use crate::target::{Action, Operation, Stored, WriteMode, Written};

/// How long a CustomResourceDefinition may take to be Established before its objects are tried.
const ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);

impl KubernetesTarget {
    /// Applies one group of changes concurrently (they have no order among them), each to its
    /// own outcome. `bodies` gives the rendered object of each create and update: that, not the
    /// server's projection shown in the plan, is what cairn applies, so it owns only the fields
    /// configuration sets.
    pub fn apply_group(
        &self,
        lock: &LeaseGuard,
        changes: &[Operation<'_>],
        bodies: &std::collections::HashMap<&ObjectId, &Value>,
        mode: WriteMode,
    ) -> Vec<Written> {
        if lock.lost() {
            let why =
                "the environment's lock expired and another apply took it; stopped before this object".to_string();
            return changes.iter().map(|_| Err(why.clone())).collect();
        }
        let params = PatchParams { force: mode.force_conflicts, ..PatchParams::apply(FIELD_MANAGER) };
        let work: Vec<(usize, Operation<'_>)> = changes.iter().copied().enumerate().collect();
        let mut results: Vec<(usize, Written)> = self.runtime.block_on(
            stream::iter(work)
                .map(|(i, change)| {
                    let params = params.clone();
                    let body = bodies.get(change.object).copied();
                    async move { (i, self.write_one(change, body, &params, mode.reclaim_drift).await) }
                })
                .buffer_unordered(super::concurrency())
                .collect(),
        );
        results.sort_by_key(|(i, _)| *i);
        let mut results: Vec<Written> = results.into_iter().map(|(_, r)| r).collect();
        for (change, result) in changes.iter().zip(results.iter_mut()) {
            if change.object.kind == "CustomResourceDefinition"
                && change.action != Action::Delete
                && let Ok(Stored { body: Some(_), .. }) = result
                && let Some(body) = bodies.get(change.object)
                && let Err(why) = self.wait_established(&change.object.name, body)
            {
                *result = Err(why);
            }
        }
        results
    }

    async fn write_one(
        &self,
        change: Operation<'_>,
        body: Option<&Value>,
        params: &PatchParams,
        reclaim: bool,
    ) -> Written {
        let api_version = body.and_then(|b| b.get("apiVersion")).and_then(Value::as_str);
        let Some((api, namespaced)) = self.api_for(change.object, api_version) else {
            return Err(format!(
                "the API server has no kind `{}` (its CustomResourceDefinition is not Established)",
                change.object.kind
            ));
        };
        match change.action {
            Action::Create | Action::Update => {
                let Some(body) = body else { return Err("nothing rendered for this object".into()) };
                let body = self.placed(change.object, body, namespaced);
                let stored = |stored: DynamicObject, reclaimed_from: Vec<String>| -> Written {
                    let mut value = to_value(stored).map_err(|e| e.chain())?;
                    normalize(&mut value);
                    Ok(Stored { body: Some(value), reclaimed_from })
                };
                match api.patch(&change.object.name, params, &Patch::Apply(&body)).await {
                    Ok(object) => stored(object, Vec::new()),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let managers = conflicting_managers(&s.message);
                        // A rollout's own field manager holds fields cairn gave it for the
                        // rollout (an aborted one may keep them): they are cairn's to take back.
                        if !managers.is_empty() && managers.iter().all(|m| m == super::rollout::ROLLOUT_MANAGER) {
                            let forced = PatchParams { force: true, ..params.clone() };
                            return match api.patch(&change.object.name, &forced, &Patch::Apply(&body)).await {
                                Ok(object) => stored(object, Vec::new()),
                                Err(e) => Err(describe_error(&e)),
                            };
                        }
                        // Git is the source of truth: on an object cairn manages, fields another
                        // manager took by an imperative edit are drift, and are taken back. Another
                        // manager's apply (a controller, another GitOps tool) is a real conflict.
                        if reclaim && self.manages(change.live) && !managers.is_empty() {
                            let live = match api.get(&change.object.name).await {
                                Ok(live) => live,
                                Err(e) => return Err(describe_error(&e)),
                            };
                            let applying: Vec<&String> =
                                managers.iter().filter(|m| !only_imperative_edits(&live, m)).collect();
                            if applying.is_empty() {
                                let forced = PatchParams { force: true, ..params.clone() };
                                return match api.patch(&change.object.name, &forced, &Patch::Apply(&body)).await {
                                    Ok(object) => stored(object, managers),
                                    Err(e) => Err(describe_error(&e)),
                                };
                            }
                            return Err(format!(
                                "{} (another field manager owns these fields: {} applies them too (server-side apply), so this is not drift to repair; change them there, or pass --force-conflicts to take them over)",
                                s.message,
                                applying.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                            ));
                        }
                        Err(format!(
                            "{} (another field manager owns these fields: change them there, or pass --force-conflicts to take them over)",
                            s.message
                        ))
                    }
                    Err(e) => Err(describe_error(&e)),
                }
            }
            Action::Delete => {
                // Only what still says it is cairn's, for this environment, is deleted.
                if !self.manages(change.live) {
                    return Err(format!(
                        "not deleted: the live object no longer carries the labels app.kubernetes.io/managed-by=cairn and cairn/environment={} (someone else may own it now); delete it yourself or remove it from the inventory by applying it again",
                        self.environment
                    ));
                }
                match api.delete(&change.object.name, &DeleteParams::background()).await {
                    Ok(_) => Ok(Stored::default()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Stored::default()),
                    Err(e) => Err(describe_error(&e)),
                }
            }
            Action::Unchanged => Ok(Stored::default()),
        }
    }

    /// Whether a live object says it is cairn's, for this environment (its labels).
    fn manages(&self, live: Option<&Value>) -> bool {
        let labels = live.and_then(|l| l.pointer("/metadata/labels"));
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        label("app.kubernetes.io/managed-by") == Some("cairn")
            && label("cairn/environment") == Some(super::state::label_value(&self.environment).as_str())
    }

    /// Waits until a CustomResourceDefinition is Established, then serves its kind.
    fn wait_established(&self, name: &str, body: &Value) -> std::result::Result<(), String> {
        let id = ObjectId {
            group: "apiextensions.k8s.io".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: name.to_string(),
        };
        let start = Instant::now();
        let mut last = String::from("no status yet");
        while start.elapsed() < ESTABLISHED_WITHIN {
            let live = self.read_raw(&[&id]).map_err(|e| e.chain())?;
            if let Some(object) = live.get(&id) {
                match super::health::crd_established(object) {
                    Ok(()) => {
                        if let Some(crd) = crd_kind(body) {
                            let mut kinds = self.kinds.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                            // Discovered already: reading the CRD above discovered.
                            if let Some(kinds) = kinds.as_mut() {
                                kinds.insert(
                                    (crd.group, crd.kind),
                                    Kind { version: crd.version, plural: crd.plural, namespaced: crd.namespaced },
                                );
                            }
                        }
                        return Ok(());
                    }
                    Err(why) => last = why,
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("not Established within {}s: {last}", ESTABLISHED_WITHIN.as_secs()))
    }
}

/// The field managers an API server's conflict message names: `Apply failed with 1 conflict:
/// conflict with "kubectl-patch" using v1: .data.LOG_LEVEL` (several: `conflicts with "a" …`).
fn conflicting_managers(message: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in message.split("with \"").skip(1) {
        if let Some((name, _)) = part.split_once('"')
            && !out.iter().any(|m| m == name)
        {
            out.push(name.to_string());
        }
    }
    out
}

/// Whether every field set of `manager` on the live object came from an imperative edit
/// (`operation: Update`: kubectl edit, patch, scale, a client's update), none from an apply.
fn only_imperative_edits(live: &DynamicObject, manager: &str) -> bool {
    let entries: Vec<_> =
        live.metadata.managed_fields.iter().flatten().filter(|e| e.manager.as_deref() == Some(manager)).collect();
    !entries.is_empty() && entries.iter().all(|e| e.operation.as_deref() == Some("Update"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_name_their_managers() {
        let one = r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.LOG_LEVEL"#;
        assert_eq!(conflicting_managers(one), ["kubectl-patch"]);
        let two = "Apply failed with 2 conflicts: conflicts with \"ops-team\":\n- .data.A\nconflicts with \"kubectl-edit\" using v1:\n- .data.B";
        assert_eq!(conflicting_managers(two), ["ops-team", "kubectl-edit"]);
        assert!(conflicting_managers("no managers here").is_empty());
    }
}
