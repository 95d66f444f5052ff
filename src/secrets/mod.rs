//! Secrets in SOPS files with age keys: reading and writing what the real `sops` reads and
//! writes, the pipeline's decryption, and the markers every output shows instead of a value.

pub mod encrypt;
pub mod files;
pub mod mask;
pub mod redact;
pub mod shamir;
pub mod sops;

use serde_json::Value;
use zeroize::Zeroize;

pub use encrypt::{Settings, encrypt_document, reencrypt_document, rewrap, settings_for, settings_of};
pub use mask::{Maskable, Masked, Masker, Part, Seal};
pub use redact::Redactor;
pub use sops::{Decrypted, Identities, decrypt_document, decrypt_documents, encrypted_pointers, is_encrypted};

/// A decrypted document. Its Debug never shows a value, and its strings are overwritten when it
/// is dropped, so a plaintext does not outlive its use in this copy.
pub struct Plaintext(Value);

impl Plaintext {
    pub fn new(value: Value) -> Plaintext {
        Plaintext(value)
    }

    /// The plaintext, for the code that must read it (writing it to the target, or to stdout
    /// when the user asked for it).
    pub fn expose(&self) -> &Value {
        &self.0
    }

    /// The plaintext as a value the caller now owns (and must keep out of outputs).
    pub fn into_exposed(mut self) -> Value {
        std::mem::take(&mut self.0)
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(<secret>)")
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        zeroize_value(&mut self.0);
    }
}

/// Whether an object holds secret values: a Secret (its data is secret whatever its source), or
/// any object with values decrypted from SOPS files (their JSON pointers). Such objects get keyed
/// digests and masked output.
pub fn holds_secrets(kind: &str, decrypted: &[String]) -> bool {
    kind == "Secret" || !decrypted.is_empty()
}

/// Overwrites every string of a value with zeros (numbers and booleans are not heap data).
pub fn zeroize_value(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_value),
        Value::Object(map) => map.values_mut().for_each(zeroize_value),
        _ => {}
    }
}

/// Overwrites the values at these JSON pointers.
pub fn zeroize_at(value: &mut Value, pointers: &[String]) {
    for pointer in pointers {
        if let Some(v) = value.pointer_mut(pointer) {
            zeroize_value(v);
        }
    }
}

/// A copy of a value with the values at these pointers replaced by `<secret>`, for Debug output.
pub fn redacted(value: &Value, pointers: &[String]) -> Value {
    let mut copy = value.clone();
    for pointer in pointers {
        if let Some(v) = copy.pointer_mut(pointer) {
            *v = Value::String("<secret>".into());
        }
    }
    if copy.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in mask::SECRET_FIELDS {
            if let Some(v) = copy.get_mut(*field) {
                *v = Value::String("<secret>".into());
            }
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plaintext_debug_hides_values_and_redaction_covers_pointers() {
        let p = Plaintext::new(json!({"password": "hunter2"}));
        assert!(!format!("{p:?}").contains("hunter2"));
        let r = redacted(&json!({"kind": "X", "a": {"b": "hunter2"}, "c": 1}), &["/a/b".to_string()]);
        assert_eq!(r, json!({"kind": "X", "a": {"b": "<secret>"}, "c": 1}));
        let mut v = json!({"a": ["hunter2"]});
        zeroize_at(&mut v, &["/a".to_string()]);
        assert!(!v.to_string().contains("hunter2"));
    }
}
