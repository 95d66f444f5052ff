//! cairn's own records in the cluster, all in the environment's state namespace: a Lease that
//! locks the environment, a ConfigMap with the inventory, one ConfigMap per release record, and
//! a Secret with the digest key. They carry `cairn/record` and `cairn/environment` labels, not
//! the managed-by label, so they are never taken for configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::{FIELD_MANAGER, KubernetesTarget, describe_error};
use crate::error::{Error, Result};
use crate::target::{Digester, Holder, Inventory};

/// How long a lease holds without renewal: an apply that dies leaves a lock that expires this
/// long after its last renewal (at once when the holder was a process on this host that is gone).
pub const LEASE_SECONDS: u64 = 30;

/// An environment's lock: a Lease renewed in the background while held, removed when dropped.
pub struct LeaseGuard {
    runtime: Arc<tokio::runtime::Runtime>,
    api: Api<DynamicObject>,
    name: String,
    renewal: tokio::task::JoinHandle<()>,
    /// Set when a renewal found the lease taken by someone else: the apply must stop.
    lost: Arc<AtomicBool>,
    holder: String,
}

impl LeaseGuard {
    /// Whether the lease was lost (another apply took it after it expired).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewal.abort();
        let (api, name, holder) = (self.api.clone(), self.name.clone(), self.holder.clone());
        // Removed only while it is still ours (the resource version pins it).
        let _ = self.runtime.block_on(async move {
            let lease = api.get_opt(&name).await.ok()??;
            let value = serde_json::to_value(&lease).ok()?;
            if holder_of(&value).as_deref() != Some(holder.as_str()) {
                return None;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions { resource_version: lease.metadata.resource_version, uid: None }),
                ..DeleteParams::default()
            };
            api.delete(&name, &params).await.ok()
        });
    }
}

fn holder_of(lease: &Value) -> Option<String> {
    lease.pointer("/metadata/annotations/cairn~1holder").and_then(Value::as_str).map(str::to_string)
}

fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Why an existing lease does not stop us: released, expired, or held by a dead process here.
fn lease_is_free(lease: &Value, now: jiff::Timestamp) -> bool {
    let Some(holder) = holder_of(lease) else { return true };
    let renewed =
        lease.pointer("/spec/renewTime").and_then(Value::as_str).and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let seconds = lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64).unwrap_or(LEASE_SECONDS as i64);
    if renewed.is_none_or(|r| r + jiff::SignedDuration::from_secs(seconds) < now) {
        return true;
    }
    match serde_json::from_str::<Holder>(&holder) {
        Ok(h) => h.host == crate::target::hostname() && !std::path::Path::new(&format!("/proc/{}", h.pid)).exists(),
        Err(_) => false,
    }
}

fn describe_holder(lease: &Value) -> String {
    holder_of(lease)
        .and_then(|h| serde_json::from_str::<Holder>(&h).ok())
        .map(|h| h.to_string())
        .or_else(|| lease.pointer("/spec/holderIdentity").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "another apply".to_string())
}

/// A Kubernetes object name for one of cairn's records of an environment: environment names
/// may hold characters names may not, so those are replaced and a short hash keeps them apart.
fn record_name(prefix: &str, environment: &str) -> String {
    let clean: String = environment
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    if clean == environment && clean.len() <= 40 {
        format!("{prefix}-{clean}")
    } else {
        let hash = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(environment.as_bytes())[..4]);
        format!("{prefix}-{}-{hash}", clean.chars().take(40).collect::<String>())
    }
}

impl KubernetesTarget {
    fn state_api(&self, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
        };
        Api::namespaced_with(self.client.clone(), &self.state_namespace, &resource)
    }

    fn fail(&self, what: &str, e: kube::Error) -> Error {
        Error::Kubernetes {
            context: self.label.strip_prefix("kubernetes:").unwrap_or(&self.label).to_string(),
            subject: format!("{what} in namespace `{}`", self.state_namespace),
            source: crate::error::ApiAnswer(e),
        }
    }

    fn labels(&self, record: &str) -> Value {
        json!({"cairn/record": record, "cairn/environment": label_value(&self.environment)})
    }

    /// Creates the state namespace when it does not exist yet.
    fn ensure_state_namespace(&self) -> Result<()> {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&());
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let ns = self.state_namespace.clone();
        self.runtime.block_on(async {
            match api.get_opt(&ns).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => {
                    let body: DynamicObject = serde_json::from_value(
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    )
                    .map_err(|e| Error::Usage { message: e.to_string() })?;
                    match api.create(&PostParams::default(), &body).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                        Err(e) => Err(self.fail("cannot create the state namespace", e)),
                    }
                }
                Err(e) => Err(self.fail("cannot read the state namespace", e)),
            }
        })
    }

    /// Takes the environment's lease or fails at once naming the holder. A lease that expired,
    /// or whose holder was a process on this host that no longer exists, is taken over.
    pub fn lock(&self, holder: &Holder) -> Result<LeaseGuard> {
        let api = self.state_api("coordination.k8s.io/v1", "Lease", "leases");
        let name = record_name("cairn-lock", &self.environment);
        let holder_json = serde_json::to_string(holder).unwrap_or_default();
        let place = format!("lease {}/{name}", self.state_namespace);
        let body = |resource_version: Option<String>| -> Result<DynamicObject> {
            let now = micro_time(jiff::Timestamp::now());
            let mut metadata = json!({"name": name, "namespace": self.state_namespace,
                "labels": self.labels("lock"), "annotations": {"cairn/holder": holder_json}});
            if let Some(rv) = resource_version {
                metadata["resourceVersion"] = Value::String(rv);
            }
            serde_json::from_value(
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": {"holderIdentity": holder.to_string(), "leaseDurationSeconds": LEASE_SECONDS,
                    "acquireTime": now, "renewTime": now}}),
            )
            .map_err(|e| Error::Usage { message: e.to_string() })
        };
        let locked = |lease: &Value| Error::Locked {
            environment: self.environment.clone(),
            holder: describe_holder(lease),
            path: place.clone().into(),
        };
        // The lease is usually absent: create it at once, and read it only when that conflicts.
        let mut look = false;
        for _ in 0..4 {
            let existing = if look {
                self.runtime.block_on(api.get_opt(&name)).map_err(|e| self.fail("cannot read the lock", e))?
            } else {
                None
            };
            let attempt = match existing {
                None => match self.runtime.block_on(api.create(&PostParams::default(), &body(None)?)) {
                    // The first lock of an environment: its state namespace is made only then,
                    // so every later lock costs no request for it.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.ensure_state_namespace()?;
                        self.runtime.block_on(api.create(&PostParams::default(), &body(None)?))
                    }
                    other => other,
                },
                Some(lease) => {
                    let value = serde_json::to_value(&lease).unwrap_or_default();
                    if !lease_is_free(&value, jiff::Timestamp::now()) {
                        return Err(locked(&value));
                    }
                    tracing::info!(holder = %describe_holder(&value), "taking over a stale lock");
                    let rv = lease.metadata.resource_version.clone();
                    self.runtime.block_on(api.replace(&name, &PostParams::default(), &body(rv)?))
                }
            };
            match attempt {
                Ok(_) => {
                    let lost = Arc::new(AtomicBool::new(false));
                    let renewal =
                        self.runtime.spawn(renew(api.clone(), name.clone(), holder_json.clone(), lost.clone()));
                    return Ok(LeaseGuard {
                        runtime: self.runtime.clone(),
                        api,
                        name,
                        renewal,
                        lost,
                        holder: holder_json,
                    });
                }
                // It exists, or someone else created or updated it meanwhile: look (again).
                Err(kube::Error::Api(s)) if s.code == 409 => look = true,
                Err(e) => return Err(self.fail("cannot take the lock", e)),
            }
        }
        let lease = self.runtime.block_on(api.get_opt(&name)).ok().flatten();
        Err(locked(&lease.and_then(|l| serde_json::to_value(l).ok()).unwrap_or_default()))
    }

    fn get_config_map(&self, name: &str) -> Result<Option<Value>> {
        let api = self.state_api("v1", "ConfigMap", "configmaps");
        let found = self.runtime.block_on(api.get_opt(name)).map_err(|e| self.fail("cannot read", e))?;
        Ok(found.and_then(|f| serde_json::to_value(f).ok()))
    }

    fn put_config_map(&self, name: &str, record: &str, data: Value) -> Result<()> {
        let api = self.state_api("v1", "ConfigMap", "configmaps");
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": self.state_namespace, "labels": self.labels(record)},
            "data": data});
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.runtime
            .block_on(api.patch(name, &params, &Patch::Apply(&body)))
            .map_err(|e| self.fail(&format!("cannot write configmap `{name}`"), e))?;
        Ok(())
    }

    pub fn inventory(&self) -> Result<Inventory> {
        let name = record_name("cairn-inventory", &self.environment);
        let Some(map) = self.get_config_map(&name)? else {
            return Ok(Inventory { environment: self.environment.clone(), ..Inventory::default() });
        };
        let text = map.pointer("/data/inventory.json").and_then(Value::as_str).unwrap_or("{}");
        serde_json::from_str(text).map_err(|e| Error::CorruptState {
            path: format!("configmap {}/{name}", self.state_namespace).into(),
            message: e.to_string(),
        })
    }

    pub fn write_inventory(&self, _lock: &LeaseGuard, inventory: &Inventory) -> Result<()> {
        let name = record_name("cairn-inventory", &self.environment);
        let text = serde_json::to_string(inventory).unwrap_or_default();
        self.put_config_map(&name, "inventory", json!({"inventory.json": text}))
    }

    /// Every release record of the environment, as stored (JSON), with where it is stored.
    pub fn records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let api = self.state_api("v1", "ConfigMap", "configmaps");
        let selector = format!("cairn/record=release,cairn/environment={}", label_value(&self.environment));
        let list = self
            .runtime
            .block_on(api.list(&ListParams::default().labels(&selector)))
            .map_err(|e| self.fail("cannot list release records", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|item| {
                let place =
                    format!("configmap {}/{}", self.state_namespace, item.metadata.name.clone().unwrap_or_default());
                let text = item.data.pointer("/data/release.json")?.as_str()?.as_bytes().to_vec();
                Some((place, text))
            })
            .collect())
    }

    /// One release record, by id (absent: `None`) — one GET, where `records` lists them all.
    pub fn record(&self, id: u64) -> Result<Option<(String, Vec<u8>)>> {
        let api = self.state_api("v1", "ConfigMap", "configmaps");
        let name = format!("{}-{id:06}", record_name("cairn-release", &self.environment));
        let found =
            self.runtime.block_on(api.get_opt(&name)).map_err(|e| self.fail("cannot read a release record", e))?;
        let place = format!("configmap {}/{name}", self.state_namespace);
        Ok(found.and_then(|item| Some((place, item.data.pointer("/data/release.json")?.as_str()?.as_bytes().to_vec()))))
    }

    pub fn write_record(&self, _lock: &LeaseGuard, id: u64, json: &str) -> Result<()> {
        let name = format!("{}-{id:06}", record_name("cairn-release", &self.environment));
        self.put_config_map(&name, "release", json!({"release.json": json}))
    }

    /// The digester with the environment's key (a Secret in the state namespace). With `make`, a
    /// missing key is made; a plan whose credentials may not read or make it gets a key for this
    /// run only, so its digests of secret-holding objects match nothing later (a saved plan with
    /// such objects is then re-checked rather than trusted).
    pub fn digester(&self, make: bool) -> Result<Digester> {
        let api = self.state_api("v1", "Secret", "secrets");
        let name = record_name("cairn-digest-key", &self.environment);
        let read = |found: Option<DynamicObject>| -> Option<Vec<u8>> {
            let value = serde_json::to_value(found?).ok()?;
            let encoded = value.pointer("/data/key")?.as_str()?;
            base64::engine::general_purpose::STANDARD.decode(encoded).ok().filter(|k| k.len() == 32)
        };
        match self.runtime.block_on(api.get_opt(&name)) {
            Ok(found) => {
                if let Some(key) = read(found) {
                    return Ok(Digester::new(Some(&key)));
                }
            }
            Err(kube::Error::Api(s)) if s.code == 403 && !make => return Ok(Digester::ephemeral()),
            Err(e) => return Err(self.fail("cannot read the digest key", e)),
        }
        if !make {
            return Ok(Digester::new(None));
        }
        self.ensure_state_namespace()?;
        let key = crate::target::random_key();
        let body: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": self.state_namespace, "labels": self.labels("digest-key")},
            "type": "Opaque", "data": {"key": base64::engine::general_purpose::STANDARD.encode(&key[..])}}))
        .map_err(|e| Error::Usage { message: e.to_string() })?;
        match self.runtime.block_on(api.create(&PostParams::default(), &body)) {
            Ok(_) => Ok(Digester::new(Some(&key[..]))),
            // Another apply made one meanwhile: everyone uses that one.
            Err(kube::Error::Api(s)) if s.code == 409 => self.digester(false),
            Err(e) => Err(self.fail("cannot create the digest key", e)),
        }
    }
}

/// A label value for an environment name (63 characters of `[A-Za-z0-9._-]`).
pub fn label_value(environment: &str) -> String {
    let clean: String =
        environment.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    clean.chars().take(63).collect::<String>().trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// Renews the lease every third of its duration while it is ours.
async fn renew(api: Api<DynamicObject>, name: String, holder: String, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(Duration::from_secs(LEASE_SECONDS / 3)).await;
        let current = match api.get_opt(&name).await {
            Ok(Some(lease)) => serde_json::to_value(lease).unwrap_or_default(),
            Ok(None) => Value::Null,
            Err(e) => {
                tracing::warn!("cannot renew the lock: {}", describe_error(&e));
                continue;
            }
        };
        if holder_of(&current).as_deref() != Some(holder.as_str()) {
            lost.store(true, Ordering::SeqCst);
            return;
        }
        let patch = json!({"spec": {"renewTime": micro_time(jiff::Timestamp::now())}});
        if let Err(e) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!("cannot renew the lock: {}", describe_error(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_are_valid_and_distinct() {
        assert_eq!(record_name("cairn-lock", "production"), "cairn-lock-production");
        let a = record_name("cairn-lock", "Prod_EU");
        let b = record_name("cairn-lock", "prod-eu");
        assert_ne!(a, b);
        assert!(a.starts_with("cairn-lock-prod-eu-") && a.len() < 63, "{a}");
        assert_eq!(label_value("prod eu"), "prod_eu");
    }

    #[test]
    fn a_lease_is_free_when_released_expired_or_its_local_holder_is_gone() {
        let now = jiff::Timestamp::now();
        let fresh = micro_time(now);
        let old = micro_time(now - jiff::SignedDuration::from_secs(120));
        let alive = Holder::current("a");
        let mut dead = Holder::current("b");
        dead.pid = u32::MAX - 1;
        let lease = |holder: &Holder, renewed: &str| {
            json!({"metadata": {"annotations": {"cairn/holder": serde_json::to_string(holder).expect("json")}},
                "spec": {"renewTime": renewed, "leaseDurationSeconds": 30}})
        };
        assert!(lease_is_free(&json!({"spec": {}}), now));
        assert!(!lease_is_free(&lease(&alive, &fresh), now));
        assert!(lease_is_free(&lease(&alive, &old), now));
        assert!(lease_is_free(&lease(&dead, &fresh), now));
    }
}
