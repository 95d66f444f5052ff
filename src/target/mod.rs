//! The live system. `local` is the embedded default: live state is a directory, so the whole
//! pipeline runs on a laptop or in CI without a cluster.

pub mod kubernetes;
pub mod local;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Environment, TargetConfig};
use crate::error::{Error, Result};

pub use local::LocalTarget;

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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Opens the target an environment is configured with. Relative local paths are relative to the
/// configuration root.
pub fn open(root: &Path, env: &Environment) -> Result<LocalTarget> {
    match &env.target {
        TargetConfig::Local { path } => Ok(LocalTarget::with_label(root.join(path), path, &env.name)),
        TargetConfig::Kubernetes { .. } => Err(Error::Usage {
            message: format!(
                "environment `{}` uses the kubernetes target: `cairn plan` works against it, but this command does not yet (use a `local` target)",
                env.name
            ),
        }),
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

/// Whether an object holds secrets: a Secret, or values decrypted from a SOPS file.
pub fn holds_secrets(id: &crate::render::ObjectId, secrets: &[String]) -> bool {
    id.kind == "Secret" || !secrets.is_empty()
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
