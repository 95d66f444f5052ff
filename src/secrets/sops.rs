//! Reading SOPS files (age recipients), as the real `sops` 3.x writes them: the data key from the
//! `sops:` block (one age recipient, or key groups recombined with Shamir), every
//! `ENC[AES256_GCM,…]` value decrypted with its path as associated data, and the MAC verified.
//! Nothing here ever puts a plaintext value into an error message.

use std::io::Read;
use std::str::FromStr;

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::shamir;
use crate::error::Error;

/// AES-256-GCM with the 32-byte nonces sops uses.
type Cipher = AesGcm<Aes256, U32>;

/// age private keys, and where they came from (for messages).
pub struct Identities {
    keys: Vec<age::x25519::Identity>,
    sources: Vec<String>,
}

impl Identities {
    /// Keys from, in order: `CAIRN_AGE_KEY_FILE`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, and the
    /// default sops location (`$XDG_CONFIG_HOME/sops/age/keys.txt`, else
    /// `~/.config/sops/age/keys.txt`). Every source that exists contributes its keys.
    pub fn from_environment() -> Result<Identities, Error> {
        let mut identities = Identities { keys: Vec::new(), sources: Vec::new() };
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(path) = var("CAIRN_AGE_KEY_FILE") {
            identities.add_file("CAIRN_AGE_KEY_FILE", &path)?;
        }
        if let Some(text) = var("SOPS_AGE_KEY") {
            identities.add_text("SOPS_AGE_KEY", &text)?;
        }
        if let Some(path) = var("SOPS_AGE_KEY_FILE") {
            identities.add_file("SOPS_AGE_KEY_FILE", &path)?;
        }
        if let Some(command) = var("SOPS_AGE_KEY_CMD") {
            identities.add_command(&command)?;
        }
        let default = var("XDG_CONFIG_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".config")))
            .map(|c| c.join("sops").join("age").join("keys.txt"));
        if let Some(path) = default
            && path.exists()
        {
            identities.add_file("the default sops key file", &path.display().to_string())?;
        }
        Ok(identities)
    }

    fn add_file(&mut self, origin: &str, path: &str) -> Result<(), Error> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "cannot read the age key file", e))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::Secret {
                    file: format!("{origin} ({path})"),
                    message: format!(
                        "the age key file is open to other users (mode {mode:04o}); run `chmod 600 {path}`"
                    ),
                });
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read the age key file", e))?,
        );
        self.add_text(&format!("{origin} ({path})"), &text)
    }

    /// Keys printed by a command (a password manager, a KMS wrapper), as sops' SOPS_AGE_KEY_CMD.
    fn add_command(&mut self, command: &str) -> Result<(), Error> {
        let origin = "SOPS_AGE_KEY_CMD";
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::io("sh", "cannot run SOPS_AGE_KEY_CMD with", e))?;
        let mut stdout = output.stdout;
        let text = Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
        zeroize::Zeroize::zeroize(&mut stdout);
        if !text.contains("AGE-SECRET-KEY-") {
            // The command failed or printed something else; its output is not repeated (it may
            // be a key in another form).
            return Err(Error::Secret {
                file: origin.into(),
                message: "the command printed no age key (`AGE-SECRET-KEY-…` line); check it by running it".into(),
            });
        }
        self.add_text(origin, &text)
    }

    /// Adds every `AGE-SECRET-KEY-…` line of a key file's text.
    pub fn add_text(&mut self, origin: &str, text: &str) -> Result<(), Error> {
        let mut found = 0;
        for line in text.lines().map(str::trim).filter(|l| l.starts_with("AGE-SECRET-KEY-")) {
            let key = age::x25519::Identity::from_str(line).map_err(|_| Error::Secret {
                file: origin.to_string(),
                message: "contains a line that looks like an age key but is not a valid one".into(),
            })?;
            self.keys.push(key);
            found += 1;
        }
        self.sources.push(format!("{origin}: {found} key(s)"));
        Ok(())
    }

    fn describe(&self) -> String {
        if self.sources.is_empty() {
            "no age key was found (set SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or CAIRN_AGE_KEY_FILE)".into()
        } else {
            format!("tried {}", self.sources.join(", "))
        }
    }
}

/// A decrypted document and the JSON pointers of the values that were secret.
pub struct Decrypted {
    pub value: super::Plaintext,
    pub secret_pointers: Vec<String>,
}

/// Whether a document is a SOPS file.
pub fn is_encrypted(doc: &Value) -> bool {
    doc.get("sops").is_some_and(Value::is_object)
}

/// Decrypts one SOPS document (its `sops:` block is removed from the result).
pub fn decrypt_document(file: &str, doc: &Value, identities: &Identities) -> Result<Decrypted, Error> {
    let mut out = decrypt_documents(file, std::slice::from_ref(doc), identities)?;
    out.pop().ok_or_else(|| Error::Secret { file: file.to_string(), message: "no document".into() })
}

/// Decrypts the documents of one SOPS file: the `sops:` block is in the first document and its
/// MAC covers the values of all of them, in order.
pub fn decrypt_documents(file: &str, docs: &[Value], identities: &Identities) -> Result<Vec<Decrypted>, Error> {
    Ok(open(file, docs, identities)?.0)
}

/// The documents decrypted and the file's data key (which re-encryption keeps).
pub(crate) fn open(
    file: &str,
    docs: &[Value],
    identities: &Identities,
) -> Result<(Vec<Decrypted>, Zeroizing<Vec<u8>>), Error> {
    let fail = |message: String| Error::Secret { file: file.to_string(), message };
    let mut values: Vec<Value> = docs.to_vec();
    let meta = values
        .first_mut()
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("sops"))
        .ok_or_else(|| fail("no `sops` metadata block".into()))?;
    if !meta.is_object() {
        return Err(fail("the `sops` block is not a mapping".into()));
    }
    let key = data_key(&meta, identities).map_err(fail)?;
    let cipher = Cipher::new_from_slice(&key[..]).map_err(|_| fail("the data key is not 32 bytes".into()))?;
    let mac_only = meta.get("mac_only_encrypted").and_then(Value::as_bool).unwrap_or(false);
    let mut hasher = Sha512::new();
    if mac_only {
        hasher.update(Sha256::digest(b"sops"));
    }
    let mut out = Vec::with_capacity(values.len());
    for mut value in values {
        let mut secrets = Vec::new();
        walk(&mut value, &mut Vec::new(), &mut String::new(), &cipher, &mut hasher, mac_only, &mut secrets)
            .map_err(fail)?;
        out.push(Decrypted { value: super::Plaintext::new(value), secret_pointers: secrets });
    }
    let lastmodified = meta
        .get("lastmodified")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no `lastmodified` in the sops block".into()))?;
    let mac = meta.get("mac").and_then(Value::as_str).ok_or_else(|| fail("no `mac` in the sops block".into()))?;
    let (stored, _) =
        decrypt_value(&cipher, mac, lastmodified).map_err(|e| fail(format!("the MAC cannot be decrypted ({e})")))?;
    let computed = hex::encode_upper(hasher.finalize());
    if stored.as_slice() != computed.as_bytes() {
        return Err(fail("MAC mismatch: the file was changed without sops, or is damaged; re-encrypt it with sops or `cairn secrets`".into()));
    }
    Ok((out, key))
}

/// The JSON pointers of the encrypted values of a document, without decrypting them (for
/// outputs that never need the plaintext, such as release notes).
pub fn encrypted_pointers(value: &Value) -> Vec<String> {
    fn visit(value: &Value, pointer: &mut String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let len = pointer.len();
                    crate::pointer::push(pointer, k);
                    visit(v, pointer, out);
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    visit(v, pointer, out);
                    pointer.truncate(len);
                }
            }
            Value::String(s) if s.starts_with("ENC[AES256_GCM,") => out.push(pointer.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    visit(value, &mut String::new(), &mut out);
    out
}

/// The age recipients a SOPS document is encrypted for (its `sops.age` entries and those of its
/// key groups): public keys, safe to show, and what someone needs to find the right key.
pub fn recipients(document: &Value) -> Vec<String> {
    let Some(meta) = document.get("sops") else { return Vec::new() };
    let groups = meta.get("key_groups").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for entries in std::iter::once(meta.get("age")).chain(groups.iter().map(|g| g.get("age"))) {
        for r in entries.and_then(Value::as_array).into_iter().flatten() {
            if let Some(r) = r.get("recipient").and_then(Value::as_str)
                && !out.iter().any(|o| o == r)
            {
                out.push(r.to_string());
            }
        }
    }
    out
}

/// The 32-byte data key: from the file's age recipients, or recombined from its key groups.
pub(crate) fn data_key(meta: &Value, identities: &Identities) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(groups) = meta.get("key_groups").and_then(Value::as_array).filter(|g| !g.is_empty()) {
        let threshold = meta.get("shamir_threshold").and_then(Value::as_u64).map_or(groups.len(), |t| t as usize);
        let mut shares = Vec::new();
        for group in groups {
            let entries = group.get("age").and_then(Value::as_array).cloned().unwrap_or_default();
            if let Some(share) = unwrap_any(&entries, identities)? {
                shares.push(share.to_vec());
            }
            if shares.len() >= threshold {
                break;
            }
        }
        if shares.len() < threshold {
            return Err(format!(
                "only {} of the {threshold} key groups needed could be opened; {}",
                shares.len(),
                identities.describe()
            ));
        }
        let key = shamir::combine(&shares)?;
        shares.iter_mut().for_each(zeroize::Zeroize::zeroize);
        return Ok(Zeroizing::new(key));
    }
    let entries = meta.get("age").and_then(Value::as_array).cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err("the file has no age recipients (only age is supported)".into());
    }
    unwrap_any(&entries, identities)?.ok_or_else(|| {
        let recipients: Vec<&str> = entries.iter().filter_map(|e| e.get("recipient").and_then(Value::as_str)).collect();
        format!("no age key opens this file: it is encrypted for {}; {}", recipients.join(", "), identities.describe())
    })
}

/// The data key (or share) from the first age entry one of the identities opens.
fn unwrap_any(entries: &[Value], identities: &Identities) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    for entry in entries {
        let Some(armored) = entry.get("enc").and_then(Value::as_str) else { continue };
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let decryptor = age::Decryptor::new_buffered(reader).map_err(|e| format!("an age entry is damaged ({e})"))?;
        let keys = identities.keys.iter().map(|k| k as &dyn age::Identity);
        match decryptor.decrypt(keys) {
            Ok(mut stream) => {
                let mut out = Zeroizing::new(Vec::new());
                stream.read_to_end(&mut out).map_err(|e| format!("an age entry cannot be read ({e})"))?;
                return Ok(Some(out));
            }
            Err(age::DecryptError::NoMatchingKeys) => continue,
            Err(e) => return Err(format!("an age entry cannot be decrypted ({e})")),
        }
    }
    Ok(None)
}

/// Decrypts every `ENC[…]` value in place, in document order, feeding the MAC.
#[allow(clippy::too_many_arguments)]
fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    pointer: &mut String,
    cipher: &Cipher,
    hasher: &mut Sha512,
    mac_only: bool,
    secrets: &mut Vec<String>,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = pointer.len();
                crate::pointer::push(pointer, k);
                path.push(k.clone());
                walk(v, path, pointer, cipher, hasher, mac_only, secrets)?;
                path.pop();
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            // List indices are not part of the associated data: items share their parent's path.
            for (i, item) in items.iter_mut().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                walk(item, path, pointer, cipher, hasher, mac_only, secrets)?;
                pointer.truncate(len);
            }
        }
        Value::String(text) if text.starts_with("ENC[AES256_GCM,") => {
            let aad = format!("{}:", path.join(":"));
            let (plain, kind) = decrypt_value(cipher, text, &aad)
                .map_err(|e| format!("the value at `{pointer}` cannot be decrypted ({e})"))?;
            hasher.update(&plain[..]);
            *value = typed(&plain, &kind).map_err(|e| format!("the value at `{pointer}`: {e}"))?;
            secrets.push(pointer.clone());
        }
        Value::String(text) if !mac_only => hasher.update(text.as_bytes()),
        Value::Number(n) if !mac_only => hasher.update(n.to_string().as_bytes()),
        Value::Bool(b) if !mac_only => hasher.update(if *b { b"True".as_slice() } else { b"False".as_slice() }),
        _ => {}
    }
    Ok(())
}

/// Decrypts one `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value: its plaintext bytes and type.
fn decrypt_value(cipher: &Cipher, text: &str, aad: &str) -> Result<(Zeroizing<Vec<u8>>, String), String> {
    let inner = text.strip_prefix("ENC[AES256_GCM,").and_then(|t| t.strip_suffix(']')).ok_or("not an ENC[…] value")?;
    let field = |name: &str| -> Result<&str, String> {
        inner
            .split(',')
            .find_map(|part| part.strip_prefix(name).and_then(|p| p.strip_prefix(':')))
            .ok_or_else(|| format!("missing `{name}`"))
    };
    let data = STANDARD.decode(field("data")?).map_err(|_| "`data` is not base64")?;
    let iv = STANDARD.decode(field("iv")?).map_err(|_| "`iv` is not base64")?;
    let tag = STANDARD.decode(field("tag")?).map_err(|_| "`tag` is not base64")?;
    let kind = field("type")?.to_string();
    if iv.len() != 32 {
        return Err(format!("an IV of {} bytes (sops writes 32)", iv.len()));
    }
    let mut sealed = data;
    sealed.extend_from_slice(&tag);
    let nonce = aes_gcm::aead::generic_array::GenericArray::from_slice(&iv);
    let plain = cipher
        .decrypt(nonce, Payload { msg: &sealed, aad: aad.as_bytes() })
        .map_err(|_| "authentication failed: wrong key, or the value was moved or altered")?;
    Ok((Zeroizing::new(plain), kind))
}

/// The JSON value of a decrypted plaintext of the given sops type.
fn typed(plain: &[u8], kind: &str) -> Result<Value, String> {
    let text = std::str::from_utf8(plain).map_err(|_| "the plaintext is not UTF-8".to_string())?;
    match kind {
        "str" | "time" | "bytes" | "comment" => Ok(Value::String(text.to_string())),
        "int" => text.parse::<i64>().map(Value::from).map_err(|_| "an `int` that is not an integer".into()),
        // sops' JSON store encrypts every number as a float; "5432" is still the integer 5432.
        "float" if !text.contains(['.', 'e', 'E']) && text.parse::<i64>().is_ok() => {
            text.parse::<i64>().map(Value::from).map_err(|_| "a `float` that is not a number".into())
        }
        "float" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| "a `float` that is not a number".into()),
        "bool" => match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
            _ => Err("a `bool` that is not a boolean".into()),
        },
        other => Err(format!("unknown value type `{other}`")),
    }
}
