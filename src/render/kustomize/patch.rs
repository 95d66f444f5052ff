//! Patches: strategic merge patches (by their own identity, or over every object a `target`
//! selects) and JSON 6902 patches (over a `target`), inline or from a file.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::render::SourceRef;
use crate::render::strategic::{self, Schemas, Shape};
use crate::yaml;
use rayon::prelude::*;

use super::build::{Acc, Builder, resolve_file};
use super::file::{Kustomization, Loc, Patch};
use super::resource::Resource;

/// What a patch text turned out to be.
enum Parsed {
    Strategic(Vec<(Value, u64)>),
    Json(json_patch::Patch),
}

/// The patch text and where it was written (the file, or the kustomization line of an inline
/// patch).
fn text_of(builder: &Builder<'_>, k: &Kustomization, p: &Patch) -> Result<(String, String, u64)> {
    if let Some(inline) = &p.inline {
        return Ok((inline.value.clone(), inline.at.file.clone(), inline.at.line));
    }
    let Some(path) = &p.path else {
        return Err(p.at.error("a patch needs `path` or `patch`"));
    };
    let file = resolve_file(k, path, "patch file")?;
    let bytes = builder.read_file(&file, path, "patch file")?;
    let text = String::from_utf8(bytes).map_err(|_| path.at.error(format!("patch file {file} is not valid UTF-8")))?;
    Ok((text, file, 1))
}

fn parse(text: &str, file: &str, line: u64, at: &Loc) -> Result<Parsed> {
    let trimmed = text.trim_start();
    // A JSON patch is a list of operations (as JSON, or as YAML).
    let as_list = if trimmed.starts_with('[') {
        serde_json::from_str::<Value>(trimmed).ok()
    } else {
        yaml::parse_documents_yaml12(file, text).ok().and_then(|docs| match docs.as_slice() {
            [one] if one.value.is_array() => Some(one.value.clone()),
            _ => None,
        })
    };
    if let Some(list) = as_list {
        return serde_json::from_value::<json_patch::Patch>(list).map(Parsed::Json).map_err(|e| {
            at.error(format!("the JSON 6902 patch in {file} is not a list of operations (op, path, value, from): {e}"))
        });
    }
    let docs = yaml::parse_documents_yaml12(file, text).map_err(|e| match e {
        // An inline patch's positions are inside the string; point at the kustomization line.
        Error::Yaml { message, .. } if line > 1 => at.error(format!("the inline patch is not valid YAML: {message}")),
        other => other,
    })?;
    let mut out = Vec::new();
    for doc in docs {
        let ok = doc.value.get("kind").and_then(Value::as_str).is_some()
            && doc.value.pointer("/metadata/name").and_then(Value::as_str).is_some();
        if !ok {
            return Err(Error::Document {
                file: file.to_string(),
                line: line + doc.line - 1,
                message: "a strategic merge patch needs `apiVersion`, `kind` and `metadata.name` (also with a `target`); a JSON 6902 patch is a list of operations".into(),
            });
        }
        out.push((doc.value, line + doc.line - 1));
    }
    Ok(Parsed::Strategic(out))
}

/// `patchesStrategicMerge`: each document applied to the object of its own identity.
pub fn run_strategic_files(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for p in &k.patches_strategic_merge {
        let (text, file, line) = text_of(builder, k, p)?;
        match parse(&text, &file, line, &p.at)? {
            Parsed::Strategic(docs) => {
                for (doc, line) in docs {
                    by_identity(builder, acc, doc, &file, line)?;
                }
            }
            Parsed::Json(_) => {
                return Err(p.at.error(
                    "a patchesStrategicMerge entry holds a JSON 6902 patch; list it under `patches` with a `target`",
                ));
            }
        }
    }
    Ok(())
}

/// One `patches` (or `patchesJson6902`) entry.
pub fn run(builder: &mut Builder<'_>, k: &Kustomization, p: &Patch, acc: &mut Acc) -> Result<()> {
    let (text, file, line) = text_of(builder, k, p)?;
    match (parse(&text, &file, line, &p.at)?, &p.target) {
        (Parsed::Json(_), None) => {
            Err(p.at.error("a JSON 6902 patch needs a `target` saying which objects it applies to"))
        }
        (Parsed::Json(ops), Some(target)) => {
            warn_if_unmatched(acc, target, &p.at);
            // Each selected object is patched on its own: in parallel.
            acc.resources.par_iter_mut().filter(|r| target.matches(r)).try_for_each(|r| -> Result<()> {
                r.record_previous();
                r.shaped_by.push(SourceRef { file: file.clone(), line });
                json_patch::patch(&mut r.body, &ops).map_err(|e| {
                    p.at.error(format!(
                        "the JSON 6902 patch from {file} does not apply to {} (from {}): {e}",
                        r.id(),
                        r.origin
                    ))
                })?;
                if !r.body.is_object() || crate::render::ObjectId::of(&r.body).is_err() {
                    return Err(p.at.error(format!(
                        "the JSON 6902 patch from {file} leaves {} without apiVersion, kind or metadata.name",
                        r.origin
                    )));
                }
                Ok(())
            })
        }
        (Parsed::Strategic(docs), None) => {
            for (doc, line) in docs {
                by_identity(builder, acc, doc, &file, line)?;
            }
            Ok(())
        }
        (Parsed::Strategic(mut docs), Some(target)) => {
            if docs.len() != 1 {
                return Err(p.at.error(
                    "a `patches` entry with a `target` may hold one strategic merge patch; give each its own entry",
                ));
            }
            let (doc, line) = docs.remove(0);
            warn_if_unmatched(acc, target, &p.at);
            let schemas = &builder.schemas;
            // Each selected object is merged on its own: in parallel.
            let deleted = acc
                .resources
                .par_iter_mut()
                .enumerate()
                .filter(|(_, r)| target.matches(r))
                .map(|(i, r)| -> Result<Option<usize>> {
                    let mut patch = doc.clone();
                    if let Some(map) = patch.as_object_mut() {
                        map.insert("apiVersion".into(), Value::String(r.api_version().to_string()));
                    }
                    if p.allow_name_change || p.allow_kind_change {
                        r.record_previous();
                    }
                    let (name, kind, namespace) =
                        (r.name().to_string(), r.kind().to_string(), r.namespace().to_string());
                    if apply(schemas, r, patch, &file, line)? {
                        return Ok(Some(i));
                    }
                    restore(r, &name, &kind, &namespace, p.allow_name_change, p.allow_kind_change);
                    Ok(None)
                })
                .collect::<Result<Vec<Option<usize>>>>()?;
            for i in deleted.into_iter().flatten().rev() {
                acc.resources.remove(i);
            }
            Ok(())
        }
    }
}

/// kustomize applies a patch whose target selects nothing to nothing, silently; cairn does the
/// same but says so, since it is usually a typo in the selector.
fn warn_if_unmatched(acc: &Acc, target: &super::selector::Selector, at: &Loc) {
    if !acc.resources.iter().any(|r| target.matches(r)) {
        tracing::warn!(
            "{}:{}: the patch target ({}) selects no object, so the patch changes nothing",
            at.file,
            at.line,
            target.written
        );
    }
}

fn restore(r: &mut Resource, name: &str, kind: &str, namespace: &str, name_change: bool, kind_change: bool) {
    if !kind_change && let Some(body) = r.body.as_object_mut() {
        body.insert("kind".into(), Value::String(kind.to_string()));
    }
    let meta = r.metadata_mut();
    if !name_change {
        meta.insert("name".into(), Value::String(name.to_string()));
    }
    if namespace.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), Value::String(namespace.to_string()));
    }
}

/// A strategic merge patch applied to the one object with its identity (by any name the object
/// has had). Returns an error naming the patch when no object or several have it.
fn by_identity(builder: &Builder<'_>, acc: &mut Acc, doc: Value, file: &str, line: u64) -> Result<()> {
    let patch_res = Resource::new(doc.clone(), SourceRef { file: file.to_string(), line });
    let want = patch_res.id();
    let matches = acc.having_been(&want);
    let i = match matches.as_slice() {
        [i] => *i,
        [] => {
            return Err(Error::Document {
                file: file.to_string(),
                line,
                message: format!(
                    "this strategic merge patch is for {want} ({}), which no resource of the build is; check its apiVersion, kind, name and namespace",
                    want.api_version
                ),
            });
        }
        _ => {
            return Err(Error::Document {
                file: file.to_string(),
                line,
                message: format!("this strategic merge patch matches several resources ({want}); give it a namespace"),
            });
        }
    };
    let r = &mut acc.resources[i];
    let (name, kind, namespace) = (r.name().to_string(), r.kind().to_string(), r.namespace().to_string());
    if apply(&builder.schemas, r, doc, file, line)? {
        acc.resources.remove(i);
        return Ok(());
    }
    restore(&mut acc.resources[i], &name, &kind, &namespace, false, false);
    Ok(())
}

/// Merges `patch` over the resource; `true` when the patch deletes it (`$patch: delete`).
fn apply(schemas: &Schemas, r: &mut Resource, mut patch: Value, file: &str, line: u64) -> Result<bool> {
    if patch.get("$patch").and_then(Value::as_str) == Some("delete") {
        return Ok(true);
    }
    if let Some(map) = patch.as_object_mut() {
        // The identity comes from the object; the patch only had to name it.
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.remove("namespace");
        }
    }
    r.shaped_by.push(SourceRef { file: file.to_string(), line });
    let shape = schemas.shape_of(r.api_version(), r.kind()).unwrap_or(Shape::Plain);
    strategic::merge(&mut r.body, patch, shape).map_err(|message| Error::Document {
        file: file.to_string(),
        line,
        message: format!("cannot merge this patch over {} (from {}): {message}", r.id(), r.origin),
    })?;
    Ok(false)
}
