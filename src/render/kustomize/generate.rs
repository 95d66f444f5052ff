//! `configMapGenerator` and `secretGenerator`: ConfigMaps and Secrets made from literals, files
//! and env files, merged into (or replacing) one of a base by `behavior`, and named with
//! kustomize's content hash at the end of the build.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::render::SourceRef;

use super::build::{Acc, Builder, resolve_file};
use super::file::{Behavior, Generator, GeneratorOptions, Kustomization, Located};
use super::resource::{Generated, Resource};
use super::vault::Vault;

/// Runs a kustomization's generators, ConfigMaps first, in the order written.
pub fn run(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for (g, secret) in k.config_maps.iter().map(|g| (g, false)).chain(k.secrets.iter().map(|g| (g, true))) {
        run_one(builder, k, g, secret, acc)?;
    }
    Ok(())
}

/// One generator entry (of the kustomization, or a built-in generator's configuration).
pub fn run_one(builder: &mut Builder<'_>, k: &Kustomization, g: &Generator, secret: bool, acc: &mut Acc) -> Result<()> {
    let options = merged_options(&g.options, k.generator_options.as_ref());
    let r = generate(builder, k, g, secret, &options)?;
    absorb(acc, r, g)
}

/// An entry's own options, with the kustomization's `generatorOptions` filling what it leaves
/// unset (kustomize's `MergeGlobalOptionsIntoLocal`).
fn merged_options(local: &GeneratorOptions, global: Option<&GeneratorOptions>) -> GeneratorOptions {
    let mut out = local.clone();
    if let Some(global) = global {
        for (k, v) in &global.labels {
            if !out.labels.iter().any(|(l, _)| l == k) {
                out.labels.push((k.clone(), v.clone()));
            }
        }
        for (k, v) in &global.annotations {
            if !out.annotations.iter().any(|(l, _)| l == k) {
                out.annotations.push((k.clone(), v.clone()));
            }
        }
        if global.disable_name_suffix_hash == Some(true) {
            out.disable_name_suffix_hash = Some(true);
        }
        if global.immutable == Some(true) {
            out.immutable = Some(true);
        }
    }
    out
}

fn generate(
    builder: &mut Builder<'_>,
    k: &Kustomization,
    g: &Generator,
    secret: bool,
    options: &GeneratorOptions,
) -> Result<Resource> {
    let what = if secret { "Secret" } else { "ConfigMap" };
    let mut pairs: Vec<(String, Vec<u8>, Located)> = Vec::new();
    // Values decrypted from SOPS files: kept apart, sealed as soon as they are in the object.
    let mut sealed: Vec<(String, zeroize::Zeroizing<Vec<u8>>, Located)> = Vec::new();
    for literal in &g.literals {
        let Some((key, value)) = literal.value.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(literal.at.error(format!("literal `{}` is not key=value", literal.value)));
        };
        pairs.push((key.to_string(), unquote(value).as_bytes().to_vec(), literal.clone()));
    }
    for entry in &g.files {
        let (key, path) = match entry.value.matches('=').count() {
            0 => (entry.value.rsplit('/').next().unwrap_or(&entry.value).to_string(), entry.value.clone()),
            1 => {
                let (key, path) = entry.value.split_once('=').unwrap_or_default();
                if key.is_empty() || path.is_empty() {
                    return Err(entry.at.error(format!("file source `{}` is not key=path", entry.value)));
                }
                (key.to_string(), path.to_string())
            }
            _ => return Err(entry.at.error(format!("file source `{}` has more than one `=`", entry.value))),
        };
        let located = Located { value: path, at: entry.at.clone() };
        let file = resolve_file(k, &located, "generator file")?;
        let bytes = builder.read_file(&file, &located, "generator file")?;
        match sops_content(builder, &file, &bytes, secret, entry)? {
            Some(plaintext) => sealed.push((key, plaintext, entry.clone())),
            None => pairs.push((key, bytes, entry.clone())),
        }
    }
    for entry in &g.envs {
        let file = resolve_file(k, entry, "env file")?;
        let bytes = builder.read_file(&file, entry, "env file")?;
        let text =
            String::from_utf8(bytes).map_err(|_| entry.at.error(format!("env file {file} is not valid UTF-8")))?;
        // SOPS writes its metadata into a dotenv file as `sops_…=` lines; read as a plain env
        // file, its ciphertexts and metadata would become the values.
        if text.lines().any(|l| l.starts_with("sops_mac=") || l.starts_with("sops_version=")) {
            return Err(entry.at.error(format!(
                "{file} is a SOPS dotenv file, a format cairn does not decrypt; encrypt the file whole (`sops encrypt --input-type binary --output-type json`) and list it under `files:`, or keep the values in a SOPS-encrypted Secret listed under `resources`"
            )));
        }
        for (n, line) in text.lines().enumerate() {
            let line = if n == 0 { line.trim_start_matches('\u{feff}') } else { line };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            if !valid_key(key) {
                return Err(Error::Document {
                    file: file.clone(),
                    line: n as u64 + 1,
                    message: format!(
                        "`{key}` is not a valid {what} key (letters, digits, `-`, `_` and `.`); write KEY=VALUE"
                    ),
                });
            }
            pairs.push((key.to_string(), value.as_bytes().to_vec(), entry.clone()));
        }
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut secret_keys = Vec::new();
    for (key, value, at) in &sealed {
        if !valid_key(key) {
            return Err(at.at.error(format!("`{key}` is not a valid {what} key (letters, digits, `-`, `_` and `.`)")));
        }
        let placeholder = builder.vault.keep(Value::String(wrapped_base64(value)));
        if data.insert(key.clone(), Value::String(placeholder)).is_some() {
            return Err(at.at.error(format!("{what} `{}` repeats the key `{key}`", g.name)));
        }
        secret_keys.push(key.clone());
    }
    drop(sealed);
    for (key, value, at) in pairs {
        if !valid_key(&key) {
            return Err(at.at.error(format!("`{key}` is not a valid {what} key (letters, digits, `-`, `_` and `.`)")));
        }
        if data.contains_key(&key) || binary.contains_key(&key) {
            return Err(at.at.error(format!("{what} `{}` repeats the key `{key}`", g.name)));
        }
        let b64 = || wrapped_base64(&value);
        match (secret, String::from_utf8(value.clone())) {
            (true, _) => {
                data.insert(key, Value::String(b64()));
            }
            (false, Ok(text)) => {
                data.insert(key, Value::String(text));
            }
            (false, Err(_)) => {
                binary.insert(key, Value::String(b64()));
            }
        }
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(g.name.clone()));
    if let Some(ns) = &g.namespace {
        metadata.insert("namespace".into(), Value::String(ns.clone()));
    }
    if !options.labels.is_empty() {
        metadata.insert("labels".into(), string_map(&options.labels));
    }
    if !options.annotations.is_empty() {
        metadata.insert("annotations".into(), string_map(&options.annotations));
    }
    let mut body = Map::new();
    body.insert("apiVersion".into(), Value::String("v1".into()));
    body.insert("kind".into(), Value::String(what.into()));
    body.insert("metadata".into(), Value::Object(metadata));
    if secret {
        body.insert("type".into(), Value::String(g.secret_type.clone().unwrap_or_else(|| "Opaque".into())));
    }
    if !data.is_empty() {
        body.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        body.insert("binaryData".into(), Value::Object(binary));
    }
    if options.immutable == Some(true) {
        body.insert("immutable".into(), Value::Bool(true));
    }
    let mut body = Value::Object(body);
    if secret {
        // Generated Secret values are secrets like any decrypted value: sealed for the build
        // (those from SOPS files already are).
        let pointers: Vec<String> = body
            .pointer("/data")
            .and_then(Value::as_object)
            .map(|d| {
                d.keys()
                    .filter(|k| !secret_keys.contains(k))
                    .map(|k| format!("/data/{}", crate::pointer::escape(k)))
                    .collect()
            })
            .unwrap_or_default();
        builder.vault.seal(&mut body, &pointers);
    }
    let mut r = Resource::new(body, SourceRef { file: g.at.file.clone(), line: g.at.line });
    r.generated = Some(Generated { behavior: g.behavior, hash: options.disable_name_suffix_hash != Some(true) });
    Ok(r)
}

/// The plaintext of a generator file that is a SOPS file, decrypted as every layer file is; `None`
/// for any other file. Only a Secret may take one, and only a file encrypted whole (sops' binary
/// format, whose plaintext is the file byte for byte, so the name hash is kustomize's over it).
fn sops_content(
    builder: &Builder<'_>,
    file: &str,
    bytes: &[u8],
    secret: bool,
    entry: &Located,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    let looks_encrypted =
        std::str::from_utf8(bytes).ok().and_then(|t| crate::yaml::parse_documents_yaml12(file, t).ok());
    let Some(docs) = looks_encrypted else { return Ok(None) };
    if !docs.first().is_some_and(|d| crate::secrets::is_encrypted(&d.value)) {
        return Ok(None);
    }
    if !secret {
        return Err(entry.at.error(format!(
            "{file} is a SOPS file: a ConfigMap would show its plaintext; generate a Secret (secretGenerator) from it"
        )));
    }
    let mut parsed = (builder.read)(file, bytes.to_vec())?;
    let Some(mut first) = parsed.pop().filter(|_| parsed.is_empty()) else {
        return Err(entry.at.error(format!("{file} holds several SOPS documents; a generator file is one")));
    };
    let plaintext = match first.doc.value.as_object_mut().map(|m| (m.len(), m.get_mut("data"))) {
        Some((1, Some(Value::String(text)))) => zeroize::Zeroizing::new(std::mem::take(text).into_bytes()),
        _ => {
            crate::secrets::zeroize_at(&mut first.doc.value, &first.secrets);
            return Err(entry.at.error(format!(
                "{file} is a structured SOPS file; for a generator, encrypt the file whole (`sops encrypt --input-type binary`), or list it under `resources` if it is a Secret"
            )));
        }
    };
    Ok(Some(plaintext))
}

/// Base64 as kustomize writes generated values: lines of 70 characters, each ended by a newline,
/// once the text reaches 70 characters.
fn wrapped_base64(value: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    if encoded.len() < 70 {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 70 + 1);
    for chunk in encoded.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn string_map(pairs: &[(String, String)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// kustomize's `removeQuotes`: one pair of matching outer quotes is dropped.
fn unquote(value: &str) -> &str {
    let bytes = value.as_bytes();
    if bytes.len() >= 2 && bytes[0] == bytes[bytes.len() - 1] && (bytes[0] == b'"' || bytes[0] == b'\'') {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, not `.` or `..`.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key.len() <= 253
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Adds a generated resource as its `behavior` says.
fn absorb(acc: &mut Acc, mut r: Resource, g: &Generator) -> Result<()> {
    let id = r.id();
    let matches = acc.having_been(&id);
    let behavior = g.behavior;
    match (matches.as_slice(), behavior) {
        ([], Behavior::Create) => acc.append(r),
        ([], _) => Err(g.at.error(format!(
            "{id} does not exist in the resources so far, so it cannot be merged or replaced; use `behavior: create`, or generate it in a base first"
        ))),
        ([_], Behavior::Create) => Err(g.at.error(format!(
            "{id} is already generated or defined in a base; use `behavior: merge` or `behavior: replace`"
        ))),
        ([i], _) => {
            let old = &acc.resources[*i];
            // The base's identity, history and labels and annotations (the new ones win).
            for field in ["labels", "annotations"] {
                let mut merged = old.body.pointer(&format!("/metadata/{field}")).cloned().unwrap_or(Value::Null);
                if let (Some(new), Value::Object(m)) = (r.body.pointer(&format!("/metadata/{field}")).cloned(), &mut merged) {
                    if let Value::Object(new) = new {
                        m.extend(new);
                    }
                } else if let Some(new) = r.body.pointer(&format!("/metadata/{field}")).cloned() {
                    merged = new;
                }
                if !merged.is_null() {
                    r.metadata_mut().insert(field.into(), merged);
                }
            }
            let name = old.name().to_string();
            let namespace = old.namespace().to_string();
            let meta = r.metadata_mut();
            meta.insert("name".into(), Value::String(name));
            if namespace.is_empty() {
                meta.remove("namespace");
            } else {
                meta.insert("namespace".into(), Value::String(namespace));
            }
            if behavior == Behavior::Merge {
                for field in ["data", "binaryData"] {
                    if let Some(Value::Object(old_data)) = old.body.get(field) {
                        let mut merged = old_data.clone();
                        if let Some(Value::Object(new)) = r.body.get(field) {
                            merged.extend(new.clone());
                        }
                        if let Some(body) = r.body.as_object_mut() {
                            body.insert(field.into(), Value::Object(merged));
                        }
                    }
                }
            }
            r.original = old.original.clone();
            r.previous = old.previous.clone();
            r.origin = old.origin.clone();
            r.shaped_by = old.shaped_by.clone();
            r.shaped_by.push(SourceRef { file: g.at.file.clone(), line: g.at.line });
            // The hash is added only when both the base and this generator ask for it (a plain
            // ConfigMap of a base stays unhashed).
            let hash = old.generated.is_some_and(|o| o.hash) && r.generated.is_some_and(|n| n.hash);
            r.generated = Some(Generated { behavior, hash });
            acc.resources[*i] = r;
            Ok(())
        }
        _ => Err(g.at.error(format!("several resources could take the merge of {id}; name one namespace"))),
    }
}

/// Appends the content hash to the names of generated resources (top level only, after every
/// prefix and suffix), as `kustomize build` does.
pub fn add_hashes(acc: &mut Acc, vault: &Vault) -> Result<()> {
    for r in &mut acc.resources {
        if !r.generated.is_some_and(|g| g.hash) {
            continue;
        }
        let hash = {
            // The hash is over the plaintext: a copy with the sealed values put back, zeroed
            // when dropped.
            let mut open = r.body.clone();
            let pointers = vault.open(&mut open);
            let hash = content_hash(&open);
            crate::secrets::zeroize_at(&mut open, &pointers);
            hash
        };
        r.renaming(|body| {
            if let Some(Value::String(name)) = body.pointer_mut("/metadata/name") {
                name.push('-');
                name.push_str(&hash);
            }
        });
    }
    Ok(())
}

/// kustomize's name hash of a ConfigMap or Secret: SHA-256 over Go's JSON encoding of the kind
/// and data (for a Secret also the type), the first ten hex digits with vowels swapped out so
/// the suffix never spells a word.
pub fn content_hash(body: &Value) -> String {
    use sha2::Digest;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    // kustomize looks the name up under a key spelled `metadata/name`, which no object has: the
    // name never counts (a prefix does not change the hash).
    let name = Value::String(String::new());
    let field = |f: &str| match body.get(f) {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::String(s)) => Value::String(s.clone()),
        _ => Value::String(String::new()),
    };
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("kind", Value::String(kind.to_string()));
    m.insert("name", name);
    m.insert("data", field("data"));
    if kind == "Secret" {
        m.insert("type", field("type"));
        if let Some(v @ Value::Object(_)) = body.get("stringData") {
            m.insert("stringData", v.clone());
        }
    } else if let Some(v @ Value::Object(_)) = body.get("binaryData") {
        m.insert("binaryData", v.clone());
    }
    let encoded = go_json(&serde_json::to_value(&m).unwrap_or(Value::Null));
    let digest = hex::encode(sha2::Sha256::digest(encoded.as_bytes()));
    digest[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// JSON as Go's `encoding/json` writes it: keys sorted, `<`, `>`, `&`, U+2028 and U+2029
/// escaped.
fn go_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let text = sorted(value).to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_kustomizes() {
        // Names kustomize v5.5.0 gives these generators.
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}});
        assert_eq!(content_hash(&cm), "bdg947hgcc");
        let cm = serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "x"}});
        assert_eq!(content_hash(&cm), "5642bm9b6f");
        let html = serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "h"}, "data": {"a": "<&>", "u": "é"}});
        assert_eq!(content_hash(&html), "54mtcb6fm2");
        let secret = serde_json::json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "sec1"},
            "data": {"user": "YWRtaW4=", "pass": "czNjcjN0"}});
        assert_eq!(content_hash(&secret), "27b7dg5m6t");
        assert_eq!(content_hash(&serde_json::json!({"kind": "ConfigMap"})), "6ct58987ht");
    }
}
