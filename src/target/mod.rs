//! The live system. `local` is the embedded default: live state is a directory, so the whole
//! pipeline runs on a laptop or in CI without a cluster.

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
                "environment `{}` uses the kubernetes target, which this build of cairn does not support yet; use a `local` target",
                env.name
            ),
        }),
    }
}

/// `sha256:<hex>` of an object's canonical JSON (keys sorted), so the digest does not depend on
/// the order keys were written in.
pub fn digest(value: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    write_canonical(value, &mut hasher);
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

fn write_canonical(value: &serde_json::Value, hasher: &mut Sha256) {
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
    fn digest_ignores_key_order_but_not_values() {
        let a = json!({"a": 1, "b": {"c": [1, 2]}});
        let b = json!({"b": {"c": [1, 2]}, "a": 1});
        let c = json!({"b": {"c": [2, 1]}, "a": 1});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
        assert!(digest(&a).starts_with("sha256:"));
    }
}
