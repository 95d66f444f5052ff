//! The live system. `local` is the embedded default: live state is a directory, so the whole
//! pipeline runs on a laptop or in CI without a cluster.

pub mod kubernetes;
pub mod local;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Environment, TargetConfig};
use crate::error::{Error, Result};
use crate::render::ObjectId;

pub use kubernetes::KubernetesTarget;
pub use local::{Inventory, LocalTarget};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What happens to one object. Plans describe changes with more (fields, digests, sources);
/// a target only needs the operation.
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One object for a target to write or delete: the target's own view of a change.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub object: &'a ObjectId,
    pub action: Action,
    /// The desired object (creates and updates), as planned.
    pub desired: Option<&'a serde_json::Value>,
    /// The live object (updates and deletes).
    pub live: Option<&'a serde_json::Value>,
}

/// Who holds an environment's lock, written into the lock so a second apply can name them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub actor: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {}, since {})", self.actor, self.pid, self.host, self.since)
    }
}

impl Holder {
    pub fn current(actor: &str) -> Holder {
        Holder {
            actor: actor.to_string(),
            host: hostname(),
            pid: std::process::id(),
            since: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// The live system of one environment.
pub enum Target {
    Local(LocalTarget),
    Kubernetes(Box<KubernetesTarget>),
}

/// An environment's lock, held while applying: a lock file or a Lease.
pub enum Lock {
    Local(local::LockGuard),
    Kubernetes(Box<kubernetes::LeaseGuard>),
}

/// One object's apply result: what was stored, or why it failed.
pub type Written = std::result::Result<Stored, String>;

/// What a target stored for one object.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The object as stored (none for a delete, or when nothing was written).
    pub body: Option<serde_json::Value>,
    /// Field managers whose fields were taken back: another manager took them over by an
    /// imperative edit (`kubectl edit/patch/scale`), and git is the source of truth.
    pub reclaimed_from: Vec<String>,
}

/// How a group of objects is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteMode {
    /// Take over fields any other field manager owns (`--force-conflicts`).
    pub force_conflicts: bool,
    /// Take back, on objects cairn manages, fields another manager took by an imperative edit
    /// (`drift: repair`).
    pub reclaim_drift: bool,
}

/// Opens the target an environment is configured with (for a cluster: the client, which
/// discovers the served kinds when first needed). Relative local paths are relative to the configuration root.
pub fn open(root: &Path, env: &Environment) -> Result<Target> {
    match &env.target {
        TargetConfig::Local { path } => Ok(Target::Local(LocalTarget::with_label(root.join(path), path, &env.name))),
        TargetConfig::Kubernetes { context, namespace, state_namespace } => {
            Ok(Target::Kubernetes(Box::new(KubernetesTarget::connect(&kubernetes::Settings {
                context: context.as_deref(),
                namespace: namespace.as_deref(),
                state_namespace: state_namespace.as_deref(),
                environment: &env.name,
            })?)))
        }
    }
}

/// What helm is told about an environment's cluster: the server's version and every API version
/// (and kind) it serves, from discovery; for the local target, the bundled schemas' version and
/// kinds.
pub fn capabilities(env: &Environment) -> Result<crate::render::helm::Capabilities> {
    match &env.target {
        TargetConfig::Local { .. } => Ok(crate::render::helm::Capabilities {
            kube_version: crate::validate::schema::KUBERNETES_VERSION.to_string(),
            api_versions: crate::validate::schema::bundled_api_versions(),
        }),
        TargetConfig::Kubernetes { context, namespace, state_namespace } => {
            KubernetesTarget::connect(&kubernetes::Settings {
                context: context.as_deref(),
                namespace: namespace.as_deref(),
                state_namespace: state_namespace.as_deref(),
                environment: &env.name,
            })?
            .capabilities()
        }
    }
}

fn wrong_lock() -> Error {
    Error::Usage { message: "internal: a lock of another target was used".into() }
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Local(t) => t.describe(),
            Target::Kubernetes(t) => t.describe(),
        }
    }

    /// Takes the environment's lock or fails at once naming the holder.
    pub fn lock(&self, holder: &Holder) -> Result<Lock> {
        match self {
            Target::Local(t) => t.lock(holder).map(Lock::Local),
            Target::Kubernetes(t) => t.lock(holder).map(|l| Lock::Kubernetes(Box::new(l))),
        }
    }

    pub fn inventory(&self) -> Result<Inventory> {
        match self {
            Target::Local(t) => t.inventory(),
            Target::Kubernetes(t) => t.inventory(),
        }
    }

    pub fn write_inventory(&self, lock: &Lock, inventory: &Inventory) -> Result<()> {
        match (self, lock) {
            (Target::Local(t), Lock::Local(l)) => t.write_inventory(l, inventory),
            (Target::Kubernetes(t), Lock::Kubernetes(l)) => t.write_inventory(l, inventory),
            _ => Err(wrong_lock()),
        }
    }

    /// The live objects with these identities, as plans compare them (absent ones left out).
    pub fn read_objects(&self, ids: &[&ObjectId]) -> Result<HashMap<ObjectId, serde_json::Value>> {
        match self {
            Target::Local(t) => t.read_objects(ids),
            Target::Kubernetes(t) => t.read_objects(ids),
        }
    }

    /// The digester with the target's key; with `make`, a missing key is made.
    pub fn digester(&self, make: bool) -> Result<Digester> {
        match self {
            Target::Local(t) => t.digester(make),
            Target::Kubernetes(t) => t.digester(make),
        }
    }

    /// Every release record as stored (JSON), each with where it is stored.
    pub fn records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        match self {
            Target::Local(t) => t.records(),
            Target::Kubernetes(t) => t.records(),
        }
    }

    /// One release record by id: (where it is, its bytes), or `None`.
    pub fn record(&self, id: u64) -> Result<Option<(String, Vec<u8>)>> {
        match self {
            Target::Local(t) => t.record(id),
            Target::Kubernetes(t) => t.record(id),
        }
    }

    /// Writes (or rewrites) one release record.
    pub fn write_record(&self, lock: &Lock, id: u64, json: &str) -> Result<()> {
        match (self, lock) {
            (Target::Local(t), Lock::Local(l)) => t.write_record(l, id, json),
            (Target::Kubernetes(t), Lock::Kubernetes(l)) => t.write_record(l, id, json),
            _ => Err(wrong_lock()),
        }
    }

    /// Changes with equal keys may be applied together; groups go in plan order. Locally only
    /// the dependency rank matters; in a cluster: the wave, then Namespaces, CRDs, other
    /// cluster-scoped objects, namespaced objects.
    pub fn group_key(&self, op: Operation<'_>, objects: &[crate::render::Object]) -> (i64, usize, bool) {
        let wave = op.desired.or(op.live).map_or(0, crate::ordering::wave);
        let delete = op.action == Action::Delete;
        match self {
            Target::Local(_) => (wave, op.object.apply_rank(), delete),
            Target::Kubernetes(t) => {
                (wave, crate::ordering::phase(op.object, t.namespaced(op.object, objects)), delete)
            }
        }
    }

    /// Applies one group of changes; every change gets its own result.
    pub fn apply_group(
        &self,
        lock: &Lock,
        changes: &[Operation<'_>],
        bodies: &HashMap<&ObjectId, &serde_json::Value>,
        mode: WriteMode,
    ) -> Vec<Written> {
        match (self, lock) {
            (Target::Local(t), Lock::Local(l)) => t.apply_group(l, changes),
            (Target::Kubernetes(t), Lock::Kubernetes(l)) => t.apply_group(l, changes, bodies, mode),
            _ => changes.iter().map(|_| Err(wrong_lock().to_string())).collect(),
        }
    }

    /// A rollout's own write of some fields of one object (or of a whole temporary object): in a
    /// cluster a server-side apply as field manager `cairn-rollout`, taking those fields over.
    pub fn rollout_write(&self, lock: &Lock, id: &ObjectId, body: &serde_json::Value) -> Result<()> {
        match (self, lock) {
            (Target::Local(t), Lock::Local(l)) => t.rollout_write(l, id, body),
            (Target::Kubernetes(t), Lock::Kubernetes(l)) => t.rollout_write(l, id, body),
            _ => Err(wrong_lock()),
        }
    }

    /// Deletes an object a rollout made (absent is fine).
    pub fn rollout_delete(&self, lock: &Lock, id: &ObjectId) -> Result<()> {
        match (self, lock) {
            (Target::Local(t), Lock::Local(l)) => t.delete(l, id),
            (Target::Kubernetes(t), Lock::Kubernetes(l)) => t.rollout_delete(l, id),
            _ => Err(wrong_lock()),
        }
    }

    /// The label value that tells the pods of a Deployment's current version from others
    /// (`pod-template-hash`); `None` when it has none yet.
    pub fn pod_template_hash(&self, deployment: &ObjectId) -> Result<Option<String>> {
        match self {
            Target::Local(t) => t.pod_template_hash(deployment),
            Target::Kubernetes(t) => t.pod_template_hash(deployment),
        }
    }

    /// Live objects as stored, status included (a cluster's health; a directory's files).
    pub fn read_status(&self, ids: &[&ObjectId]) -> Result<HashMap<ObjectId, serde_json::Value>> {
        match self {
            Target::Local(t) => t.read_objects(ids),
            Target::Kubernetes(t) => t.read_raw(ids),
        }
    }

    /// Whether this target simulates workloads (a directory: nothing runs there).
    pub fn simulated(&self) -> bool {
        matches!(self, Target::Local(_))
    }

    /// Waits for applied objects to become healthy; returns why those that did not are not.
    /// Objects written to a directory are healthy once written.
    pub fn wait_healthy(&self, ids: &[&ObjectId], timeout: std::time::Duration) -> HashMap<ObjectId, String> {
        match self {
            Target::Local(_) => HashMap::new(),
            Target::Kubernetes(t) => t.wait_healthy(ids, timeout),
        }
    }
}

/// Digests of objects for plans, saved plans and release records: `sha256:<hex>` of the
/// object's canonical JSON (keys sorted), and for an object that holds secrets (a Secret, or
/// values from a SOPS file) `hmac-sha256:<hex>` under the target's own key instead — a plain
/// hash of a low-entropy password inside an otherwise known object could be confirmed by
/// guessing. The key lives beside the live state, so whoever can read it can read the secrets
/// anyway.
pub struct Digester {
    key: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl Digester {
    pub fn new(key: Option<&[u8]>) -> Digester {
        Digester { key: key.map(|k| zeroize::Zeroizing::new(k.to_vec())) }
    }

    /// A digester with a key for this run only: its digests of secret-holding objects match
    /// nothing recorded, so anything compared with them is re-checked, never trusted.
    pub fn ephemeral() -> Digester {
        Digester::new(Some(&random_key()[..]))
    }

    /// The digest of an object; `secret` says whether it holds secrets.
    pub fn digest(&self, value: &serde_json::Value, secret: bool) -> String {
        use hmac::{KeyInit, Mac};
        match (&self.key, secret) {
            (Some(key), true) => {
                let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
                    // HMAC takes keys of any length; this is unreachable.
                    return "hmac-sha256:?".into();
                };
                write_canonical(value, &mut mac);
                format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
            }
            // Without a key a secret object's digest would be guessable: it gets none that
            // matches anything (the caller asks for the key whenever secrets are involved).
            (None, true) => "hmac-sha256:no-key".into(),
            (_, false) => {
                let mut hasher = Sha256::new();
                write_canonical(value, &mut hasher);
                format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)))
            }
        }
    }

    /// Whether `value` still has the digest recorded earlier (of either form).
    pub fn matches(&self, value: &serde_json::Value, recorded: &str) -> bool {
        recorded != "hmac-sha256:no-key" && self.digest(value, recorded.starts_with("hmac-")) == recorded
    }
}

/// 32 random bytes for a digest key, zeroed when dropped.
pub(crate) fn random_key() -> zeroize::Zeroizing<[u8; 32]> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut key[..]);
    key
}

fn write_canonical(value: &serde_json::Value, hasher: &mut impl sha2::digest::Update) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                hasher.update(serde_json::to_string(key).unwrap_or_default().as_bytes());
                hasher.update(b":");
                write_canonical(&map[key.as_str()], hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                write_canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_but_not_values_and_secret_objects_are_keyed() {
        let d = Digester::new(Some(b"k1"));
        let a = json!({"a": 1, "b": {"c": [1, 2]}});
        let b = json!({"b": {"c": [1, 2]}, "a": 1});
        let c = json!({"b": {"c": [2, 1]}, "a": 1});
        assert_eq!(d.digest(&a, false), d.digest(&b, false));
        assert_ne!(d.digest(&a, false), d.digest(&c, false));
        assert!(d.digest(&a, false).starts_with("sha256:") && d.digest(&a, false).len() == 71);
        assert_eq!(d.digest(&a, false), Digester::new(None).digest(&a, false));
        assert_ne!(d.digest(&a, true), Digester::new(Some(b"k2")).digest(&a, true));
        assert!(d.digest(&a, true).starts_with("hmac-sha256:") && d.digest(&a, true).len() == 76);
        assert!(d.matches(&b, &d.digest(&a, true)) && d.matches(&b, &d.digest(&a, false)));
        assert!(!Digester::new(None).matches(&a, &Digester::new(None).digest(&a, true)));
    }
}
