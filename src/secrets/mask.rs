//! What outputs show instead of a secret: `<secret: changed, fp:3f9a1c>`. The fingerprint is an
//! HMAC-SHA256 of the value under a key drawn at random for each run, so it cannot be reversed or
//! compared across runs, and it lets a reviewer see *that* a value changed without seeing it.
//! Kubernetes Secrets' `data` and `stringData` values are always secret (plaintext and base64).

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The fields of a Kubernetes Secret whose values are secret.
pub const SECRET_FIELDS: &[&str] = &["data", "stringData"];

pub struct Masker {
    key: Zeroizing<[u8; 32]>,
}

impl Default for Masker {
    fn default() -> Self {
        Masker::new()
    }
}

impl Masker {
    /// A masker with a fresh random fingerprint key.
    pub fn new() -> Masker {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        Masker { key }
    }

    /// Six hex digits of the keyed hash of a value.
    pub fn fingerprint(&self, value: &Value) -> String {
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
        let text = Zeroizing::new(text);
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key[..]) else {
            return "??????".to_string();
        };
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())[..6].to_string()
    }

    /// The marker shown in place of a secret value.
    pub fn marker(&self, state: Option<&str>, value: &Value) -> Value {
        let fp = self.fingerprint(value);
        Value::String(match state {
            Some(state) => format!("<secret: {state}, fp:{fp}>"),
            None => format!("<secret: fp:{fp}>"),
        })
    }

    /// Whether a JSON pointer in an object of this kind holds a secret value (a Kubernetes
    /// Secret's data, or a value decrypted from a SOPS file: `secrets` lists their pointers).
    pub fn is_secret(kind: &str, pointer: &str, secrets: &[String]) -> bool {
        let under = |base: &str| pointer == base || pointer.strip_prefix(base).is_some_and(|r| r.starts_with('/'));
        (kind == "Secret" && SECRET_FIELDS.iter().any(|f| under(&format!("/{f}")))) || secrets.iter().any(|s| under(s))
    }

    /// A value found at `pointer` with every secret inside it (or the value itself, when it is
    /// secret) replaced by a marker.
    pub fn mask_at(&self, kind: &str, pointer: &str, value: &Value, secrets: &[String], state: &str) -> Value {
        if Masker::is_secret(kind, pointer, secrets) {
            return self.marker(Some(state), value);
        }
        let mut out = value.clone();
        let mut inner: Vec<String> = secrets
            .iter()
            .filter_map(|s| s.strip_prefix(pointer).filter(|r| r.starts_with('/')).map(str::to_string))
            .collect();
        if kind == "Secret" && pointer.is_empty() {
            inner.extend(SECRET_FIELDS.iter().map(|f| format!("/{f}")));
        }
        for relative in inner {
            if let Some(v) = out.pointer_mut(&relative) {
                let marker = self.marker(Some(state), v);
                overwrite(v, marker);
            }
        }
        out
    }

    /// The object with every secret value replaced by a marker.
    pub fn mask_object(&self, body: &Value, secrets: &[String]) -> Value {
        self.mask_pair(None, Some(body), secrets).1.unwrap_or(Value::Null)
    }

    /// Two versions of an object (live, desired) masked so that a diff of the two shows which
    /// secret values were added, removed or changed, and which stayed the same, and nothing else.
    /// `secrets` are the pointers of values decrypted from SOPS files (in either version).
    pub fn mask_pair(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        secrets: &[String],
    ) -> (Option<Value>, Option<Value>) {
        let kind = |v: Option<&Value>| v.and_then(|b| b.get("kind")).and_then(Value::as_str).map(str::to_string);
        let is_secret_kind = kind(old).as_deref() == Some("Secret") || kind(new).as_deref() == Some("Secret");
        if !is_secret_kind && secrets.is_empty() {
            return (old.cloned(), new.cloned());
        }
        let compare = old.is_some() && new.is_some();
        let mut old_out = old.cloned();
        let mut new_out = new.cloned();
        // Values decrypted from SOPS files first, compared on their plaintext.
        for pointer in secrets {
            let before = old.and_then(|b| b.pointer(pointer));
            let after = new.and_then(|b| b.pointer(pointer));
            let state = compare.then(|| match (before, after) {
                (Some(a), Some(b)) if a == b => "unchanged",
                (Some(_), Some(_)) => "changed",
                (None, _) => "added",
                (_, None) => "removed",
            });
            for (out, original) in [(&mut old_out, before), (&mut new_out, after)] {
                if let (Some(v), Some(original)) = (out.as_mut().and_then(|b| b.pointer_mut(pointer)), original) {
                    overwrite(v, self.marker(state, original));
                }
            }
        }
        if !is_secret_kind {
            return (old_out, new_out);
        }
        let masked_already = |field: &str, key: &str| {
            let pointer = format!("/{field}/{}", crate::pointer::escape(key));
            secrets.iter().any(|s| *s == pointer || *s == format!("/{field}"))
        };
        for field in SECRET_FIELDS {
            let empty = Map::new();
            let before = old.and_then(|b| b.get(*field)).and_then(Value::as_object).unwrap_or(&empty);
            let after = new.and_then(|b| b.get(*field)).and_then(Value::as_object).unwrap_or(&empty);
            let state = |k: &str| -> Option<&'static str> {
                if !compare {
                    return None;
                }
                Some(match (before.get(k), after.get(k)) {
                    (Some(a), Some(b)) if a == b => "unchanged",
                    (Some(_), Some(_)) => "changed",
                    (None, _) => "added",
                    (_, None) => "removed",
                })
            };
            for out in [old_out.as_mut(), new_out.as_mut()].into_iter().flatten() {
                if let Some(map) = out.get_mut(*field).and_then(Value::as_object_mut) {
                    for (k, v) in map.iter_mut() {
                        if !masked_already(field, k) {
                            let marker = self.marker(state(k), v);
                            overwrite(v, marker);
                        }
                    }
                }
            }
            // A secret field that is not a mapping is masked whole.
            for out in [old_out.as_mut(), new_out.as_mut()].into_iter().flatten() {
                if let Some(v) = out.get_mut(*field)
                    && !v.is_object()
                    && !v.is_null()
                    && !masked_already(field, "")
                {
                    let marker = self.marker(None, v);
                    overwrite(v, marker);
                }
            }
        }
        (old_out, new_out)
    }
}

/// Puts a marker in place of a secret in a copy, zeroing the plaintext it replaces (the copy
/// was cloned from the original, so the value would otherwise be freed as it was).
fn overwrite(slot: &mut Value, marker: Value) {
    let mut plaintext = std::mem::replace(slot, marker);
    super::zeroize_value(&mut plaintext);
}

/// A value that may hold decrypted secrets (a plan, rendered objects, an apply report, a saved
/// plan). Such a type has no `Serialize` of its own: it is written and shown only as a
/// [`Masked`] copy, so an output that forgets to mask does not compile (STYLE 20).
///
/// The types live in later stages than `secrets` (`render`, `plan`, `check`, `apply`), which
/// therefore implement this trait for them; `Masked` is the one place that calls it.
pub trait Maskable: Sized {
    /// A copy with every secret value replaced by a marker.
    fn mask(&self, masker: &Masker) -> Self;

    /// The value itself with every secret value replaced by a marker (the plaintext zeroed), for
    /// an output that no longer needs the original: nothing without a secret is copied.
    fn mask_owned(self, masker: &Masker) -> Self {
        self.mask(masker)
    }

    /// Serializes `self`, a copy that [`Maskable::mask`] made. The [`Seal`] is handed out only
    /// by [`Masked`]'s `Serialize`, so nothing else can call this on an unmasked value.
    fn serialize_masked<S: Serializer>(&self, serializer: S, seal: Seal) -> Result<S::Ok, S::Error>;
}

/// Proof that the value being serialized is masked: only [`Masked`] makes one (its field is
/// private), and an implementation of [`Maskable::serialize_masked`] passes it on to the masked
/// values inside it with [`Seal::part`].
#[derive(Clone, Copy)]
pub struct Seal(());

impl Seal {
    /// A masked value inside the one being serialized (the plan of an apply report), as a field
    /// of the implementation's output.
    pub fn part<T: Maskable>(self, value: &T) -> Part<'_, T> {
        Part { value, seal: self }
    }
}

/// A masked value inside a masked value, serialized through [`Maskable::serialize_masked`].
pub struct Part<'a, T> {
    value: &'a T,
    seal: Seal,
}

impl<T: Maskable> Serialize for Part<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize_masked(serializer, self.seal)
    }
}

impl<T: Maskable> Maskable for Vec<T> {
    fn mask(&self, masker: &Masker) -> Self {
        self.iter().map(|v| v.mask(masker)).collect()
    }

    fn mask_owned(self, masker: &Masker) -> Self {
        self.into_iter().map(|v| v.mask_owned(masker)).collect()
    }

    fn serialize_masked<S: Serializer>(&self, serializer: S, seal: Seal) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(|v| seal.part(v)))
    }
}

/// A copy of a value with every secret replaced by a marker: the only form in which plans,
/// rendered objects, apply reports and saved plans can be serialized, and the form every reporter
/// takes. Its one constructor masks; it reads as the value inside (`Deref`).
///
/// The masked path compiles:
///
/// ```
/// use cairn::plan::{Action, Change, Plan, Summary};
/// use cairn::render::ObjectId;
/// use cairn::repo::SourceInfo;
/// use cairn::report::{self, Format, Style};
/// use cairn::secrets::Masked;
/// use serde_json::json;
///
/// let id = ObjectId { group: String::new(), kind: "Secret".into(), namespace: Some("shop".into()), name: "db".into() };
/// let change = Change {
///     object: id,
///     action: Action::Create,
///     fields: Vec::new(),
///     desired: Some(json!({"kind": "Secret", "stringData": {"password": "hunter2"}})),
///     live: None,
///     digest: "hmac-sha256:00".into(),
///     live_digest: None,
///     sources: Vec::new(),
///     secrets: Vec::new(),
///     drift: false,
/// };
/// let summary = Summary { create: 1, ..Summary::default() };
/// let plan = Plan {
///     environment: "staging".into(),
///     target: "local".into(),
///     source: SourceInfo::WorkTree { head: None, dirty: false },
///     prune: true,
///     summary,
///     changes: vec![change],
///     orphans: Vec::new(),
///     rollouts: Vec::new(),
///     charts: Vec::new(),
/// };
/// let plans = Masked::new(&vec![plan]);
/// let json = serde_json::to_string(&plans)?;
/// assert!(json.contains("<secret: fp:") && !json.contains("hunter2"));
/// let mut out = Vec::new();
/// report::write_plans(&mut out, &plans, Format::Json, Style { color: false }, true)?;
/// assert!(!String::from_utf8(out)?.contains("hunter2"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A plan cannot be serialized without masking it:
///
/// ```compile_fail,E0277
/// fn leak(plan: &cairn::plan::Plan) -> String {
///     serde_json::to_string(plan).unwrap_or_default()
/// }
/// ```
///
/// and no reporter takes one:
///
/// ```compile_fail,E0308
/// use cairn::report::{self, Format, Style};
/// fn leak(plans: &Vec<cairn::plan::Plan>) -> std::io::Result<()> {
///     report::write_plans(&mut std::io::stdout(), plans, Format::Json, Style { color: false }, true)
/// }
/// ```
///
/// (nor do rendered objects serialize unmasked):
///
/// ```compile_fail,E0277
/// fn leak(rendered: &cairn::render::Rendered) -> String {
///     serde_json::to_string(rendered).unwrap_or_default()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Masked<T>(T);

impl<T: Maskable> Masked<T> {
    /// A masked copy, its fingerprints under a fresh key.
    pub fn new(value: &T) -> Masked<T> {
        Masked::with(value, &Masker::new())
    }

    /// A masked copy under this masker's key (one key across the outputs of a run shows the same
    /// value with the same fingerprint).
    pub fn with(value: &T, masker: &Masker) -> Masked<T> {
        Masked(value.mask(masker))
    }

    /// The value itself, masked (see [`Maskable::mask_owned`]).
    pub fn owned(value: T) -> Masked<T> {
        Masked(value.mask_owned(&Masker::new()))
    }
}

impl<T: Maskable> Masked<Vec<T>> {
    /// Masked copies of these values, under one fresh key.
    pub fn each(values: &[T]) -> Masked<Vec<T>> {
        let masker = Masker::new();
        Masked(values.iter().map(|v| v.mask(&masker)).collect())
    }
}

impl<T> std::ops::Deref for Masked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Maskable> Serialize for Masked<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_masked(serializer, Seal(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_become_markers_that_show_changes_only() {
        let m = Masker::new();
        let old = json!({"kind": "Secret", "metadata": {"name": "db"}, "data": {"a": "aHVudGVy", "b": "eA=="}, "stringData": {"c": "plain"}});
        let new = json!({"kind": "Secret", "metadata": {"name": "db"}, "data": {"a": "aHVudGVy", "b": "eQ=="}, "stringData": {"d": "new"}});
        let (o, n) = m.mask_pair(Some(&old), Some(&new), &[]);
        let (o, n) = (o.expect("old"), n.expect("new"));
        let text = format!("{o}{n}");
        for secret in ["aHVudGVy", "eA==", "eQ==", "plain", "new", "hunter"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(o["data"]["a"], n["data"]["a"], "an unchanged value shows the same marker");
        assert!(n["data"]["b"].as_str().expect("marker").starts_with("<secret: changed, fp:"));
        assert_ne!(o["data"]["b"], n["data"]["b"]);
        assert!(o["stringData"]["c"].as_str().expect("marker").starts_with("<secret: removed"));
        assert!(n["stringData"]["d"].as_str().expect("marker").starts_with("<secret: added"));
        assert_eq!(n["metadata"], json!({"name": "db"}), "the rest is untouched");
        let cm = json!({"kind": "ConfigMap", "data": {"a": "visible"}});
        assert_eq!(m.mask_object(&cm, &[]), cm);
        assert!(Masker::is_secret("Secret", "/data/a", &[]) && !Masker::is_secret("ConfigMap", "/data/a", &[]));
        assert!(Masker::is_secret("ConfigMap", "/data/a", &["/data".to_string()]));
        assert!(!Masker::is_secret("ConfigMap", "/database", &["/data".to_string()]));
    }

    #[test]
    fn decrypted_values_in_any_kind_are_masked_by_pointer() {
        let m = Masker::new();
        let secrets = vec!["/spec/db/password".to_string(), "/spec/port".to_string()];
        let old = json!({"kind": "AppSettings", "spec": {"db": {"password": "hunter2", "user": "app"}, "port": 5432}});
        let new = json!({"kind": "AppSettings", "spec": {"db": {"password": "hunter3", "user": "app"}, "port": 5432}});
        let (o, n) = m.mask_pair(Some(&old), Some(&new), &secrets);
        let (o, n) = (o.expect("old"), n.expect("new"));
        let text = format!("{o}{n}");
        assert!(!text.contains("hunter") && !text.contains("5432"), "{text}");
        assert!(n["spec"]["db"]["password"].as_str().expect("marker").starts_with("<secret: changed"));
        assert!(n["spec"]["port"].as_str().expect("marker").starts_with("<secret: unchanged"));
        assert_eq!(n["spec"]["db"]["user"], "app");
        let whole = m.mask_at("AppSettings", "/spec", &new["spec"], &secrets, "added");
        assert!(!whole.to_string().contains("hunter3") && whole["db"]["user"] == "app");
        let kept = m.mask_at("Secret", "", &json!({"kind": "Secret", "data": {"k": "aHVudGVy"}}), &[], "added");
        assert!(!kept.to_string().contains("aHVudGVy"));
    }
}
