//! What a rollout asks of the cluster beyond applying configuration: writing only the fields it
//! moves (replica counts, a Service's selector) as its own field manager, so cairn's own
//! ownership of everything else is untouched; deleting the temporary Deployment it made; and
//! finding the pod-template hash the Deployment controller gave the pods of the current version.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::{KubernetesTarget, LeaseGuard, to_value};
use crate::error::{Error, Result};
use crate::render::ObjectId;

/// The field manager of a rollout's own writes.
pub const ROLLOUT_MANAGER: &str = "cairn-rollout";

fn lost() -> Error {
    Error::Usage {
        message: "the environment's lock expired and another apply took it; the rollout stopped before its next write"
            .into(),
    }
}

impl KubernetesTarget {
    /// Server-side applies `body` (only the fields a rollout moves, or a whole temporary object)
    /// as `cairn-rollout`, taking those fields over: they are the rollout's until it ends.
    pub fn rollout_write(&self, lock: &LeaseGuard, id: &ObjectId, body: &Value) -> Result<()> {
        if lock.lost() {
            return Err(lost());
        }
        self.discovered()?;
        let api_version = body.get("apiVersion").and_then(Value::as_str);
        let Some((api, namespaced)) = self.api_for(id, api_version) else {
            return Err(Error::Usage { message: format!("{id}: the API server has no kind `{}`", id.kind) });
        };
        let body = self.placed(id, body, namespaced);
        let params = PatchParams { force: true, ..PatchParams::apply(ROLLOUT_MANAGER) };
        self.runtime
            .block_on(api.patch(&id.name, &params, &Patch::Apply(&body)))
            .map(|_| ())
            .map_err(|e| self.api_error(id.to_string(), e))
    }

    /// Deletes an object a rollout made (absent is fine).
    pub fn rollout_delete(&self, lock: &LeaseGuard, id: &ObjectId) -> Result<()> {
        if lock.lost() {
            return Err(lost());
        }
        self.discovered()?;
        let Some((api, _)) = self.api_for(id, None) else { return Ok(()) };
        match self.runtime.block_on(api.delete(&id.name, &DeleteParams::background())) {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.api_error(id.to_string(), e)),
        }
    }

    /// The `pod-template-hash` label of the pods of a Deployment's current version: the label
    /// the Deployment controller puts on its newest ReplicaSet (the one whose revision is the
    /// Deployment's) and on that ReplicaSet's pods. `None` when there is no such ReplicaSet yet.
    pub fn pod_template_hash(&self, deployment: &ObjectId) -> Result<Option<String>> {
        let live = self.read_raw(&[deployment])?;
        let Some(d) = live.get(deployment) else { return Ok(None) };
        let uid = d.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
        let revision = d.pointer("/metadata/annotations/deployment.kubernetes.io~1revision").and_then(Value::as_str);
        let selector: Vec<String> = d
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect())
            .unwrap_or_default();
        let id = ObjectId {
            group: "apps".into(),
            kind: "ReplicaSet".into(),
            namespace: deployment.namespace.clone(),
            name: String::new(),
        };
        let Some((api, _)) = self.api_for(&id, None) else { return Ok(None) };
        let sets = self
            .runtime
            .block_on(api.list(&ListParams::default().labels(&selector.join(","))))
            .map_err(|e| self.api_error(format!("the ReplicaSets of {deployment}"), e))?;
        let mut best: Option<(bool, String)> = None;
        for set in sets.items {
            let set = to_value(set)?;
            let owned = set
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|owners| owners.iter().any(|o| o.get("uid").and_then(Value::as_str) == Some(uid)));
            let Some(hash) = set.pointer("/metadata/labels/pod-template-hash").and_then(Value::as_str) else {
                continue;
            };
            if !owned {
                continue;
            }
            let current = revision.is_some()
                && set.pointer("/metadata/annotations/deployment.kubernetes.io~1revision").and_then(Value::as_str)
                    == revision;
            if best.as_ref().is_none_or(|(was_current, _)| current && !was_current) {
                best = Some((current, hash.to_string()));
            }
        }
        Ok(best.map(|(_, hash)| hash))
    }
}
