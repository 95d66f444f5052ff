//! Writing to the cluster: server-side apply as field manager `cairn` (conflicts named, taken
//! over only with `--force-conflicts`), deletions of inventoried objects that still carry
//! cairn's labels, and the wait for CustomResourceDefinitions to be Established before the
//! objects of their kinds are applied.

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::Value;

use super::{FIELD_MANAGER, Kind, KubernetesTarget, LeaseGuard, crd_kind, describe_error, normalize, to_value};
use crate::render::ObjectId;
use crate::target::{Action, Operation, Written};

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
        force_conflicts: bool,
    ) -> Vec<Written> {
        if lock.lost() {
            let why =
                "the environment's lock expired and another apply took it; stopped before this object".to_string();
            return changes.iter().map(|_| Err(why.clone())).collect();
        }
        let params = PatchParams { force: force_conflicts, ..PatchParams::apply(FIELD_MANAGER) };
        let work: Vec<(usize, Operation<'_>)> = changes.iter().copied().enumerate().collect();
        let mut results: Vec<(usize, Written)> = self.runtime.block_on(
            stream::iter(work)
                .map(|(i, change)| {
                    let params = params.clone();
                    let body = bodies.get(change.object).copied();
                    async move { (i, self.write_one(change, body, &params).await) }
                })
                .buffer_unordered(super::concurrency())
                .collect(),
        );
        results.sort_by_key(|(i, _)| *i);
        let mut results: Vec<Written> = results.into_iter().map(|(_, r)| r).collect();
        for (change, result) in changes.iter().zip(results.iter_mut()) {
            if change.object.kind == "CustomResourceDefinition"
                && change.action != Action::Delete
                && let Ok(Some(_)) = result
                && let Some(body) = bodies.get(change.object)
                && let Err(why) = self.wait_established(&change.object.name, body)
            {
                *result = Err(why);
            }
        }
        results
    }

    async fn write_one(&self, change: Operation<'_>, body: Option<&Value>, params: &PatchParams) -> Written {
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
                match api.patch(&change.object.name, params, &Patch::Apply(&body)).await {
                    Ok(stored) => {
                        let mut value = to_value(stored).map_err(|e| e.to_string())?;
                        normalize(&mut value);
                        Ok(Some(value))
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Err(format!(
                        "{} (another field manager owns these fields: change them there, or pass --force-conflicts to take them over)",
                        s.message
                    )),
                    Err(e) => Err(describe_error(&e)),
                }
            }
            Action::Delete => {
                // Only what still says it is cairn's, for this environment, is deleted.
                let labels = change.live.and_then(|l| l.pointer("/metadata/labels"));
                let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
                if label("app.kubernetes.io/managed-by") != Some("cairn")
                    || label("cairn/environment") != Some(super::state::label_value(&self.environment).as_str())
                {
                    return Err(format!(
                        "not deleted: the live object no longer carries the labels app.kubernetes.io/managed-by=cairn and cairn/environment={} (someone else may own it now); delete it yourself or remove it from the inventory by applying it again",
                        self.environment
                    ));
                }
                match api.delete(&change.object.name, &DeleteParams::background()).await {
                    Ok(_) => Ok(None),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err(describe_error(&e)),
                }
            }
            Action::Unchanged => Ok(None),
        }
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
            let live = self.read_raw(&[&id]).map_err(|e| e.to_string())?;
            if let Some(object) = live.get(&id) {
                match super::health::crd_established(object) {
                    Ok(()) => {
                        if let Some(crd) = crd_kind(body) {
                            let mut kinds = self.kinds.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                            kinds.insert(
                                (crd.group, crd.kind),
                                Kind { version: crd.version, plural: crd.plural, namespaced: crd.namespaced },
                            );
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
