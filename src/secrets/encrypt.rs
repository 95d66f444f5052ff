//! Writing SOPS files that the real `sops` reads: a fresh 32-byte data key wrapped for each age
//! recipient (armored), every selected value encrypted with AES-256-GCM under a fresh 32-byte IV
//! and its key path as associated data, the MAC over the plaintext values, and the `sops:` block.
//! Recipients and the encryption rule come from `.sops.yaml` creation rules.

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
    pub recipients: Vec<String>,
    pub rule: Rule,
    pub mac_only_encrypted: bool,
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
        if rule.get("key_groups").is_some() {
            return Err(bad(format!(
                "creation rule {i}: key groups are read by cairn but not written yet; encrypt this file with sops"
            )));
        }
        let recipients: Vec<String> = match rule.get("age") {
            Some(Value::String(list)) => {
                list.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect()
            }
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        if recipients.is_empty() {
            return Err(bad(format!("creation rule {i} has no `age` recipients")));
        }
        let rule_kind = Rule::of(rule);
        let mac_only_encrypted = rule.get("mac_only_encrypted").and_then(Value::as_bool).unwrap_or(false);
        return Ok(Settings { recipients, rule: rule_kind, mac_only_encrypted });
    }
    Err(bad(format!("no creation rule matches `{relative}`")))
}

/// The settings a SOPS document was written with (its age recipients, rule and MAC mode), so
/// `rotate` keeps them.
pub fn settings_of(doc: &Value) -> Result<Settings, String> {
    let meta = doc.get("sops").ok_or("not a SOPS document")?;
    if meta.get("key_groups").and_then(Value::as_array).is_some_and(|g| !g.is_empty()) {
        return Err("the file uses key groups, which cairn reads but does not write yet; rotate it with sops".into());
    }
    let recipients: Vec<String> = meta
        .get("age")
        .and_then(Value::as_array)
        .map(|entries| {
            entries.iter().filter_map(|e| e.get("recipient").and_then(Value::as_str).map(str::to_string)).collect()
        })
        .unwrap_or_default();
    if recipients.is_empty() {
        return Err("the file has no age recipients".into());
    }
    let rule = Rule::of(meta);
    let mac_only_encrypted = meta.get("mac_only_encrypted").and_then(Value::as_bool).unwrap_or(false);
    Ok(Settings { recipients, rule, mac_only_encrypted })
}

/// Wraps the file's data key for a new set of recipients, leaving every encrypted value, the MAC
/// and `lastmodified` as they are (`updatekeys`).
pub fn rewrap(doc: &Value, identities: &super::Identities, recipients: &[String]) -> Result<Value, String> {
    let meta = doc.get("sops").ok_or("not a SOPS document")?;
    if meta.get("key_groups").and_then(Value::as_array).is_some_and(|g| !g.is_empty()) {
        return Err(
            "the file uses key groups, which cairn reads but does not write yet; update its keys with sops".into()
        );
    }
    let key = super::sops::data_key(meta, identities)?;
    let mut entries = Vec::new();
    for recipient in recipients {
        entries.push(json!({"recipient": recipient, "enc": wrap_key(&key[..], recipient)?}));
    }
    let mut out = doc.clone();
    if let Some(meta) = out.get_mut("sops").and_then(Value::as_object_mut) {
        meta.insert("age".into(), Value::Array(entries));
    }
    Ok(out)
}

/// Encrypts a plaintext document into a SOPS document.
pub fn encrypt_document(doc: &Value, settings: &Settings) -> Result<Value, String> {
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

    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut key[..]);
    let cipher = Cipher::new_from_slice(&key[..]).map_err(|_| "cannot set up AES-256-GCM")?;
    let mut hasher = Sha512::new();
    if settings.mac_only_encrypted {
        hasher.update(Sha256::digest(b"sops"));
    }
    let ctx = Walk { cipher: &cipher, selects: &selects, positive, mac_only: settings.mac_only_encrypted };
    ctx.walk(&mut value, &mut Vec::new(), start, &mut hasher)?;

    let lastmodified = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mac = encrypt_value(&cipher, hex::encode_upper(hasher.finalize()).as_bytes(), "str", &lastmodified)?;
    let mut age_entries = Vec::new();
    for recipient in &settings.recipients {
        age_entries.push(json!({"recipient": recipient, "enc": wrap_key(&key[..], recipient)?}));
    }
    let mut meta = Map::new();
    meta.insert("age".into(), Value::Array(age_entries));
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
}

impl Walk<'_> {
    fn walk(
        &self,
        value: &mut Value,
        path: &mut Vec<String>,
        encrypt: bool,
        hasher: &mut Sha512,
    ) -> Result<(), String> {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let child = if (self.selects)(k) { self.positive } else { encrypt };
                    path.push(k.clone());
                    self.walk(v, path, child, hasher)?;
                    path.pop();
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.walk(item, path, encrypt, hasher)?;
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
                        let aad = format!("{}:", path.join(":"));
                        *leaf = Value::String(encrypt_value(self.cipher, plain.as_bytes(), kind, &aad)?);
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
