//! Writing SOPS files that the real `sops` reads: a fresh 32-byte data key wrapped for each age
//! recipient (armored), every selected value encrypted with AES-256-GCM under a fresh 32-byte IV
//! and its key path as associated data, the MAC over the plaintext values, and the `sops:` block.
//! Recipients and the encryption rule come from `.sops.yaml` creation rules.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use crate::error::Error;

type Cipher = AesGcm<Aes256, U32>;

/// Which values get encrypted: sops allows one rule per file.
#[derive(Debug, Clone)]
pub enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(String),
    EncryptedRegex(String),
}

impl Rule {
    /// The rule named in a creation rule or a `sops:` block (the default suffix when none is).
    fn of(map: &Value) -> Rule {
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(r) = text("encrypted_regex") {
            Rule::EncryptedRegex(r)
        } else if let Some(r) = text("unencrypted_regex") {
            Rule::UnencryptedRegex(r)
        } else if let Some(s) = text("encrypted_suffix") {
            Rule::EncryptedSuffix(s)
        } else if let Some(s) = text("unencrypted_suffix") {
            Rule::UnencryptedSuffix(s)
        } else {
            Rule::default()
        }
    }
}

impl Default for Rule {
    fn default() -> Self {
        Rule::UnencryptedSuffix("_unencrypted".into())
    }
}

/// How to encrypt a file: recipients, rule, and whether the MAC covers only encrypted values.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// age recipients of the data key (when there are no key groups).
    pub recipients: Vec<String>,
    /// Key groups: the data key is split with Shamir, one share per group, each share wrapped
    /// for every age recipient of its group.
    pub key_groups: Vec<Vec<String>>,
    /// How many groups are needed to decrypt (default: all).
    pub shamir_threshold: Option<usize>,
    pub rule: Rule,
    pub mac_only_encrypted: bool,
}

impl Settings {
    /// The recipients, for messages: `age1…, age1…` or `2 of [age1…] [age1…]`.
    pub fn describe(&self) -> String {
        if self.key_groups.is_empty() {
            return self.recipients.join(", ");
        }
        let groups: Vec<String> = self.key_groups.iter().map(|g| format!("[{}]", g.join(", "))).collect();
        format!("{} of the key groups {}", self.shamir_threshold.unwrap_or(self.key_groups.len()), groups.join(" "))
    }
}

/// age recipients from a `.sops.yaml` value: a comma-separated string or a list.
fn recipient_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(list)) => list.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// The settings for `file` from the first matching creation rule of the nearest `.sops.yaml`
/// above it.
pub fn settings_for(file: &Path) -> Result<Settings, Error> {
    let absolute = file.canonicalize().map_err(|e| Error::io(file, "cannot open", e))?;
    let mut dir = absolute.parent().map(Path::to_path_buf);
    let config: PathBuf = loop {
        let Some(d) = dir else {
            return Err(Error::Secret {
                file: file.display().to_string(),
                message: "no .sops.yaml with creation rules was found in its directory or above".into(),
            });
        };
        let candidate = d.join(".sops.yaml");
        if candidate.exists() {
            break candidate;
        }
        dir = d.parent().map(Path::to_path_buf);
    };
    let name = config.display().to_string();
    let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, "cannot read", e))?;
    let root = crate::yaml::Node::parse(&name, &text)?.to_json();
    let bad = |message: String| Error::Secret { file: name.clone(), message };
    let rules =
        root.get("creation_rules").and_then(Value::as_array).ok_or_else(|| bad("no `creation_rules` list".into()))?;
    let base = config.parent().unwrap_or(Path::new("/"));
    let relative = absolute.strip_prefix(base).unwrap_or(&absolute).to_string_lossy().replace('\\', "/");
    for (i, rule) in rules.iter().enumerate() {
        let matches = match rule.get("path_regex").and_then(Value::as_str) {
            None => true,
            Some(pattern) => regex::Regex::new(pattern)
                .map_err(|e| bad(format!("creation rule {i}: `path_regex` is not a valid regular expression ({e})")))?
                .is_match(&relative),
        };
        if !matches {
            continue;
        }
        let key_groups: Vec<Vec<String>> = match rule.get("key_groups") {
            None => Vec::new(),
            Some(Value::Array(groups)) => {
                let mut out = Vec::new();
                for (g, group) in groups.iter().enumerate() {
                    let recipients = recipient_list(group.get("age"));
                    if recipients.is_empty() {
                        return Err(bad(format!(
                            "creation rule {i}, key group {g} has no `age` recipients (cairn writes age keys only)"
                        )));
                    }
                    out.push(recipients);
                }
                out
            }
            Some(_) => return Err(bad(format!("creation rule {i}: `key_groups` must be a list"))),
        };
        let recipients = recipient_list(rule.get("age"));
        if recipients.is_empty() && key_groups.is_empty() {
            return Err(bad(format!("creation rule {i} has no `age` recipients")));
        }
        let shamir_threshold = match rule.get("shamir_threshold") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(t) if t >= 1 && (t as usize) <= key_groups.len().max(1) => Some(t as usize),
                _ => {
                    return Err(bad(format!(
                        "creation rule {i}: `shamir_threshold` must be a number from 1 to the number of key groups ({})",
                        key_groups.len()
                    )));
                }
            },
        };
        let rule_kind = Rule::of(rule);
        let mac_only_encrypted = rule.get("mac_only_encrypted").and_then(Value::as_bool).unwrap_or(false);
        return Ok(Settings { recipients, key_groups, shamir_threshold, rule: rule_kind, mac_only_encrypted });
    }
    Err(bad(format!("no creation rule matches `{relative}`")))
}

/// The settings a SOPS document was written with (its age recipients or key groups, rule and
/// MAC mode), so `rotate` keeps them.
pub fn settings_of(doc: &Value) -> Result<Settings, String> {
    let meta = doc.get("sops").ok_or("not a SOPS document")?;
    let entries = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|entries| {
                entries.iter().filter_map(|e| e.get("recipient").and_then(Value::as_str).map(str::to_string)).collect()
            })
            .unwrap_or_default()
    };
    let key_groups: Vec<Vec<String>> = meta
        .get("key_groups")
        .and_then(Value::as_array)
        .map(|groups| groups.iter().map(|g| entries(g.get("age"))).collect())
        .unwrap_or_default();
    if key_groups.iter().any(Vec::is_empty) {
        return Err("a key group has no age recipients (cairn writes age keys only)".into());
    }
    let recipients = entries(meta.get("age"));
    if recipients.is_empty() && key_groups.is_empty() {
        return Err("the file has no age recipients".into());
    }
    let shamir_threshold = meta.get("shamir_threshold").and_then(Value::as_u64).map(|t| t as usize);
    let rule = Rule::of(meta);
    let mac_only_encrypted = meta.get("mac_only_encrypted").and_then(Value::as_bool).unwrap_or(false);
    Ok(Settings { recipients, key_groups, shamir_threshold, rule, mac_only_encrypted })
}

/// Wraps the file's data key for a new set of recipients (or key groups), leaving every
/// encrypted value, the MAC and `lastmodified` as they are (`updatekeys`).
pub fn rewrap(doc: &Value, identities: &super::Identities, settings: &Settings) -> Result<Value, String> {
    let meta = doc.get("sops").ok_or("not a SOPS document")?;
    let key = super::sops::data_key(meta, identities)?;
    let mut out = doc.clone();
    if let Some(meta) = out.get_mut("sops").and_then(Value::as_object_mut) {
        for k in ["age", "key_groups", "shamir_threshold"] {
            meta.remove(k);
        }
        meta.extend(key_entries(&key[..], settings)?);
    }
    Ok(out)
}

/// The `sops:` block's key entries: `age` for plain recipients, or `key_groups` and
/// `shamir_threshold` with one Shamir share per group.
fn key_entries(key: &[u8], settings: &Settings) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    if settings.key_groups.is_empty() {
        let mut entries = Vec::new();
        for recipient in &settings.recipients {
            entries.push(json!({"recipient": recipient, "enc": wrap_key(key, recipient)?}));
        }
        out.insert("age".into(), Value::Array(entries));
        return Ok(out);
    }
    let threshold = settings.shamir_threshold.unwrap_or(settings.key_groups.len());
    let shares = super::shamir::split(key, settings.key_groups.len(), threshold)?;
    let mut groups = Vec::new();
    for (group, share) in settings.key_groups.iter().zip(&shares) {
        let mut entries = Vec::new();
        for recipient in group {
            entries.push(json!({"recipient": recipient, "enc": wrap_key(&share[..], recipient)?}));
        }
        groups.push(json!({"age": entries}));
    }
    out.insert("shamir_threshold".into(), Value::from(threshold));
    out.insert("key_groups".into(), Value::Array(groups));
    Ok(out)
}

/// Encrypts a plaintext document into a SOPS document, with a new data key.
pub fn encrypt_document(doc: &Value, settings: &Settings) -> Result<Value, String> {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut key[..]);
    let entries = key_entries(&key[..], settings)?;
    seal(doc, settings, &key[..], entries, None)
}

/// Encrypts an edited plaintext of `previous` (a SOPS document) with `previous`'s data key and
/// recipients. A value that is the same as before, at the same place, keeps its ciphertext (the
/// IV stash), so a git diff shows only the values that really changed.
pub fn reencrypt_document(
    file: &str,
    plain: &Value,
    previous: &Value,
    identities: &super::Identities,
) -> Result<Value, crate::error::Error> {
    let fail = |message: String| crate::error::Error::Secret { file: file.to_string(), message };
    let settings = settings_of(previous).map_err(fail)?;
    let (mut decrypted, key) = super::sops::open(file, std::slice::from_ref(previous), identities)?;
    let old = decrypted.pop().ok_or_else(|| fail("no document".into()))?;
    let mut stash = Stash(HashMap::new());
    for pointer in &old.secret_pointers {
        if let (Some(value), Some(Value::String(enc))) =
            (old.value.expose().pointer(pointer), previous.pointer(pointer))
        {
            stash.0.insert(pointer.clone(), (value.clone(), enc.clone()));
        }
    }
    let meta = previous.get("sops").and_then(Value::as_object).ok_or_else(|| fail("no `sops` block".into()))?;
    let entries: Map<String, Value> = meta
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "age" | "key_groups" | "shamir_threshold"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    seal(plain, &settings, &key[..], entries, Some(&stash)).map_err(fail)
}

/// Earlier plaintexts and their ciphertexts by JSON pointer; the plaintexts are zeroed on drop.
struct Stash(HashMap<String, (Value, String)>);

impl Drop for Stash {
    fn drop(&mut self) {
        for (value, _) in self.0.values_mut() {
            super::zeroize_value(value);
        }
    }
}

/// Encrypts the selected values of `doc` with `key` and adds the `sops:` block.
fn seal(
    doc: &Value,
    settings: &Settings,
    key: &[u8],
    key_entries: Map<String, Value>,
    stash: Option<&Stash>,
) -> Result<Value, String> {
    let mut value = doc.clone();
    let map = value.as_object_mut().ok_or("only a mapping can be encrypted")?;
    if map.contains_key("sops") {
        return Err("the document is already encrypted (it has a `sops` block)".into());
    }
    let regex = match &settings.rule {
        Rule::EncryptedRegex(r) | Rule::UnencryptedRegex(r) => Some(
            regex::Regex::new(r).map_err(|e| format!("the encryption rule is not a valid regular expression ({e})"))?,
        ),
        _ => None,
    };
    let selects = |key: &str| -> bool {
        match (&settings.rule, &regex) {
            (Rule::EncryptedSuffix(s) | Rule::UnencryptedSuffix(s), _) => key.ends_with(s.as_str()),
            (_, Some(r)) => r.is_match(key),
            _ => false,
        }
    };
    // With an "encrypted" rule nothing is encrypted until a key selects it; with an
    // "unencrypted" rule everything is, except under a selected key.
    let start = matches!(settings.rule, Rule::UnencryptedSuffix(_) | Rule::UnencryptedRegex(_));
    let positive = !start;

    let cipher = Cipher::new_from_slice(key).map_err(|_| "cannot set up AES-256-GCM")?;
    let mut hasher = Sha512::new();
    if settings.mac_only_encrypted {
        hasher.update(Sha256::digest(b"sops"));
    }
    let ctx = Walk { cipher: &cipher, selects: &selects, positive, mac_only: settings.mac_only_encrypted, stash };
    ctx.walk(&mut value, &mut Vec::new(), &mut String::new(), start, &mut hasher)?;

    let lastmodified = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mac = encrypt_value(&cipher, hex::encode_upper(hasher.finalize()).as_bytes(), "str", &lastmodified)?;
    let mut meta = key_entries;
    meta.insert("lastmodified".into(), Value::String(lastmodified));
    meta.insert("mac".into(), Value::String(mac));
    let (rule_key, rule_value) = match &settings.rule {
        Rule::UnencryptedSuffix(s) => ("unencrypted_suffix", s),
        Rule::EncryptedSuffix(s) => ("encrypted_suffix", s),
        Rule::UnencryptedRegex(s) => ("unencrypted_regex", s),
        Rule::EncryptedRegex(s) => ("encrypted_regex", s),
    };
    meta.insert(rule_key.into(), Value::String(rule_value.clone()));
    if settings.mac_only_encrypted {
        meta.insert("mac_only_encrypted".into(), Value::Bool(true));
    }
    meta.insert("version".into(), Value::String("3.11.0".into()));
    if let Some(map) = value.as_object_mut() {
        map.insert("sops".into(), Value::Object(meta));
    }
    Ok(value)
}

struct Walk<'a> {
    cipher: &'a Cipher,
    selects: &'a dyn Fn(&str) -> bool,
    /// An "encrypted_*" rule: a selected key turns encryption on; otherwise it turns it off.
    positive: bool,
    mac_only: bool,
    stash: Option<&'a Stash>,
}

impl Walk<'_> {
    fn walk(
        &self,
        value: &mut Value,
        path: &mut Vec<String>,
        pointer: &mut String,
        encrypt: bool,
        hasher: &mut Sha512,
    ) -> Result<(), String> {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let child = if (self.selects)(k) { self.positive } else { encrypt };
                    let len = pointer.len();
                    crate::pointer::push(pointer, k);
                    path.push(k.clone());
                    self.walk(v, path, pointer, child, hasher)?;
                    path.pop();
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    self.walk(item, path, pointer, encrypt, hasher)?;
                    pointer.truncate(len);
                }
            }
            Value::Null => {}
            leaf => {
                let (plain, kind) = match &*leaf {
                    Value::String(s) => (s.clone(), "str"),
                    Value::Bool(b) => ((if *b { "True" } else { "False" }).to_string(), "bool"),
                    Value::Number(n) if n.is_f64() => (n.to_string(), "float"),
                    Value::Number(n) => (n.to_string(), "int"),
                    _ => return Ok(()),
                };
                let plain = Zeroizing::new(plain);
                if encrypt {
                    hasher.update(plain.as_bytes());
                    // sops leaves empty strings as they are.
                    if !plain.is_empty() || kind != "str" {
                        let kept = self
                            .stash
                            .and_then(|s| s.0.get(pointer.as_str()))
                            .filter(|(old, enc)| old == &*leaf && enc.ends_with(&format!(",type:{kind}]")))
                            .map(|(_, enc)| enc.clone());
                        let aad = format!("{}:", path.join(":"));
                        *leaf = Value::String(match kept {
                            Some(enc) => enc,
                            None => encrypt_value(self.cipher, plain.as_bytes(), kind, &aad)?,
                        });
                    }
                } else if !self.mac_only {
                    hasher.update(plain.as_bytes());
                }
            }
        }
        Ok(())
    }
}

fn encrypt_value(cipher: &Cipher, plain: &[u8], kind: &str, aad: &str) -> Result<String, String> {
    let mut iv = [0u8; 32];
    OsRng.fill_bytes(&mut iv);
    let sealed = cipher
        .encrypt(GenericArray::from_slice(&iv), Payload { msg: plain, aad: aad.as_bytes() })
        .map_err(|_| "encryption failed")?;
    let (data, tag) = sealed.split_at(sealed.len() - 16);
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
        STANDARD.encode(data),
        STANDARD.encode(iv),
        STANDARD.encode(tag)
    ))
}

/// The data key as an armored age file for one recipient.
fn wrap_key(key: &[u8], recipient: &str) -> Result<String, String> {
    let recipient = age::x25519::Recipient::from_str(recipient)
        .map_err(|e| format!("`{recipient}` is not an age recipient ({e})"))?;
    let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| format!("cannot encrypt for the recipients ({e})"))?;
    let armored = age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor)
        .map_err(|e| e.to_string())?;
    let mut writer = encryptor.wrap_output(armored).map_err(|e| e.to_string())?;
    writer.write_all(key).map_err(|e| e.to_string())?;
    let armored = writer.finish().map_err(|e| e.to_string())?;
    let bytes = armored.finish().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the armored key is not text".into())
}
