//! The built-in transformers of one kustomization, in kustomize's fixed order: patches
//! (strategic merge first), namespace, namePrefix, nameSuffix, labels and commonLabels,
//! commonAnnotations, JSON 6902 patches, replicas and images. Replacements follow (`replace`).

use rayon::prelude::*;
use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

use super::build::{Acc, Builder};
use super::fieldspec::{Create, FieldSpec, merge_specs, split_path};
use super::file::{Image, Kustomization, Label, Loc};
use super::patch;
use super::resource::Resource;

pub fn run(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let mut clock = std::time::Instant::now();
    let mut lap = |what: &str| {
        tracing::trace!(step = what, elapsed = ?clock.elapsed(), "transformer");
        clock = std::time::Instant::now();
    };
    patch::run_strategic_files(builder, k, acc)?;
    for p in &k.patches {
        patch::run(builder, k, p, acc)?;
    }
    lap("patches");
    if let Some(ns) = &k.namespace {
        let specs = acc.config.namespace.clone();
        namespace(acc, &ns.value, &specs, Namespacing::default(), &ns.at)?;
    }
    lap("namespace");
    if let Some(prefix) = &k.name_prefix {
        let specs = acc.config.name_prefix.clone();
        affix(acc, &prefix.value, true, &specs, &prefix.at)?;
    }
    lap("namePrefix");
    if let Some(suffix) = &k.name_suffix {
        let specs = acc.config.name_suffix.clone();
        affix(acc, &suffix.value, false, &specs, &suffix.at)?;
    }
    lap("nameSuffix");
    let at = Loc { file: k.file.clone(), line: 1, column: 1 };
    for label in &k.labels {
        let specs = label_specs(acc, label).map_err(|e| at.error(e))?;
        set_map_entries(acc, &specs, &label.pairs, "labels", &at)?;
    }
    lap("labels");
    if !k.common_labels.is_empty() {
        let specs = acc.config.common_labels.clone();
        set_map_entries(acc, &specs, &k.common_labels, "commonLabels", &at)?;
    }
    lap("commonLabels");
    if !k.common_annotations.is_empty() {
        let specs = acc.config.common_annotations.clone();
        set_map_entries(acc, &specs, &k.common_annotations, "commonAnnotations", &at)?;
    }
    lap("commonAnnotations");
    for p in &k.patches_json6902 {
        patch::run(builder, k, p, acc)?;
    }
    lap("patchesJson6902");
    let specs = acc.config.replicas.clone();
    for replica in &k.replicas {
        replicas(acc, &replica.name, replica.count, &specs, &replica.at)?;
    }
    lap("replicas");
    let specs = acc.config.images.clone();
    images(acc, &k.images, &specs)?;
    lap("images");
    Ok(())
}

/// How the namespace transformer treats what is already set (its plugin options).
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespacing {
    /// Set the namespace only where none is set.
    pub unset_only: bool,
    pub subjects: Subjects,
}

/// Which RoleBinding/ClusterRoleBinding subjects get the namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Subjects {
    /// Subjects named `default` (kustomize's default).
    #[default]
    DefaultOnly,
    AllServiceAccounts,
    None,
}

fn failed(r: &Resource, at: &Loc, what: &str, message: String) -> Error {
    at.error(format!("{what} cannot be applied to {} (from {}): {message}", r.id(), r.origin))
}

/// `namespace:` — every namespaced object moves into the namespace (a `v1` Namespace object is
/// renamed to it), RoleBinding subjects named `default` follow, and the namespace field specs
/// (APIService services, CRD conversion webhooks) are set.
pub fn namespace(acc: &mut Acc, ns: &str, specs: &[FieldSpec], how: Namespacing, at: &Loc) -> Result<()> {
    let specs: Vec<FieldSpec> = specs.iter().filter(|s| s.path != ["metadata", "namespace"]).cloned().collect();
    let unset = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    // Objects are independent: in parallel.
    acc.resources.par_iter_mut().try_for_each(|r| -> Result<()> {
        r.record_previous();
        let set = |v: &mut Value| -> std::result::Result<(), String> {
            if v.is_object() || v.is_array() {
                return Err("namespace field specs must name a scalar".into());
            }
            *v = Value::String(ns.to_string());
            Ok(())
        };
        if !r.is_cluster_scoped() && (!how.unset_only || unset(r.body.pointer("/metadata/namespace"))) {
            r.metadata_mut().insert("namespace".into(), Value::String(ns.to_string()));
        }
        if matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(Value::Array(subjects)) = r.body.get_mut("subjects")
        {
            for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
                let chosen = match how.subjects {
                    Subjects::DefaultOnly => subject.get("name").and_then(Value::as_str) == Some("default"),
                    Subjects::AllServiceAccounts => {
                        subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    }
                    Subjects::None => false,
                };
                if chosen && (!how.unset_only || unset(subject.get("namespace"))) {
                    subject.insert("namespace".into(), Value::String(ns.to_string()));
                }
            }
        }
        let core = r.api_version() == "v1";
        for spec in &specs {
            if spec.path == ["metadata", "name"] && !core {
                continue;
            }
            if spec.applies_to(r) {
                let mut setter = set;
                spec.visit(&mut r.body, Some(Create::Scalar), &mut setter)
                    .map_err(|e| failed(r, at, "namespace", e))?;
            }
        }
        Ok(())
    })?;
    // Objects that differed only by namespace are now one object.
    let mut seen: std::collections::HashMap<(String, String, String, String), usize> = std::collections::HashMap::new();
    for (i, r) in acc.resources.iter().enumerate() {
        let id = r.id();
        let key = (id.group().to_string(), id.kind.clone(), id.effective_namespace(), id.name.clone());
        if let Some(&first) = seen.get(&key) {
            return Err(at.error(format!(
                "namespace `{ns}` makes two objects one: {id} (from {} and from {}); rename one",
                acc.resources[first].origin, r.origin
            )));
        }
        seen.insert(key, i);
    }
    Ok(())
}

/// `namePrefix` / `nameSuffix`: every object but CRDs, APIServices and Namespaces.
pub fn affix(acc: &mut Acc, affix: &str, prefix: bool, specs: &[FieldSpec], at: &Loc) -> Result<()> {
    let what = if prefix { "namePrefix" } else { "nameSuffix" };
    acc.resources.par_iter_mut().try_for_each(|r| -> Result<()> {
        let org = r.org_id();
        let skip = org.kind == "CustomResourceDefinition"
            || org.kind == "Namespace"
            || (org.kind == "APIService" && org.group() == "apiregistration.k8s.io");
        if skip {
            return Ok(());
        }
        let (group, version) = match org.api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), org.api_version.clone()),
        };
        for spec in specs {
            let selects = (spec.kind.is_empty() || spec.kind == org.kind)
                && (spec.group.is_empty() || spec.group == group)
                && (spec.version.is_empty() || spec.version == version);
            if !selects {
                continue;
            }
            if spec.path == ["metadata", "name"] {
                if prefix {
                    r.prefixes.push(affix.to_string());
                } else {
                    r.suffixes.push(affix.to_string());
                }
                r.record_previous();
            }
            let mut set = |v: &mut Value| -> std::result::Result<(), String> {
                let current = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    _ => return Err("the field is not a string".into()),
                };
                *v = Value::String(if prefix { format!("{affix}{current}") } else { format!("{current}{affix}") });
                Ok(())
            };
            spec.visit(&mut r.body, Some(Create::Scalar), &mut set).map_err(|e| failed(r, at, what, e))?;
        }
        Ok(())
    })
}

/// The field specs of one `labels` entry (kustomize's LabelTransformer configuration).
fn label_specs(acc: &Acc, label: &Label) -> std::result::Result<Vec<FieldSpec>, String> {
    let mut specs = label.fields.clone();
    merge_specs(&mut specs, acc.config.labels.clone())?;
    if label.include_selectors {
        merge_specs(&mut specs, acc.config.common_labels.clone())?;
    } else {
        if label.include_templates {
            merge_specs(&mut specs, acc.config.template_labels.clone())?;
        }
        merge_specs(
            &mut specs,
            vec![FieldSpec {
                group: String::new(),
                version: String::new(),
                kind: String::new(),
                path: split_path("metadata/labels"),
                create: true,
            }],
        )?;
    }
    Ok(specs)
}

/// Sets string entries (labels, annotations) in the maps the specs name, keys in sorted order.
pub fn set_map_entries(
    acc: &mut Acc,
    specs: &[FieldSpec],
    pairs: &[(String, String)],
    what: &str,
    at: &Loc,
) -> Result<()> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    acc.resources.par_iter_mut().try_for_each(|r| -> Result<()> {
        for spec in specs {
            if !spec.applies_to(r) {
                continue;
            }
            let mut set = |v: &mut Value| -> std::result::Result<(), String> {
                match v {
                    Value::Object(map) => {
                        for (k, value) in &sorted {
                            map.insert(k.clone(), Value::String(value.clone()));
                        }
                        Ok(())
                    }
                    Value::Null => Ok(()),
                    _ => Err("the field is not a mapping".into()),
                }
            };
            spec.visit(&mut r.body, Some(Create::Map), &mut set).map_err(|e| failed(r, at, what, e))?;
        }
        Ok(())
    })
}

/// `replicas:` — by name (current or any earlier one), in every namespace.
pub fn replicas(acc: &mut Acc, name: &str, count: i64, specs: &[FieldSpec], at: &Loc) -> Result<()> {
    let mut matched = false;
    for r in &mut acc.resources {
        for spec in specs {
            let selected = r.previous.iter().chain(std::iter::once(&r.id())).any(|id| {
                let (group, version) = match id.api_version.rsplit_once('/') {
                    Some((g, v)) => (g, v),
                    None => ("", id.api_version.as_str()),
                };
                id.name == name
                    && (spec.kind.is_empty() || spec.kind == id.kind)
                    && (spec.group.is_empty() || spec.group == group)
                    && (spec.version.is_empty() || spec.version == version)
            });
            if !selected {
                continue;
            }
            matched = true;
            let mut set = |v: &mut Value| -> std::result::Result<(), String> {
                if v.is_object() || v.is_array() {
                    return Err("`replicas` is not a number".into());
                }
                *v = Value::from(count);
                Ok(())
            };
            spec.visit(&mut r.body, Some(Create::Scalar), &mut set).map_err(|e| failed(r, at, "replicas", e))?;
        }
    }
    if !matched {
        let kinds: Vec<&str> = specs.iter().map(|s| s.kind.as_str()).collect();
        return Err(at.error(format!(
            "replicas: no {} is named `{name}` (by its name in the base or its name now); fix the name or remove the entry",
            kinds.join(", ")
        )));
    }
    Ok(())
}

/// `images:` — every `image` of a container list at any depth (kustomize's legacy pass, which
/// reaches custom resources) and at the configured image field specs, entry by entry.
pub fn images(acc: &mut Acc, entries: &[Image], specs: &[FieldSpec]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut matchers = Vec::with_capacity(entries.len());
    for image in entries {
        let pattern = format!("^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$", image.name);
        matchers.push(
            Regex::new(&pattern)
                .map_err(|e| image.at.error(format!("image name `{}` is not usable as a pattern: {e}", image.name)))?,
        );
    }
    // Objects are independent: in parallel.
    acc.resources.par_iter_mut().try_for_each(|r| -> Result<()> {
        if r.kind() == "CustomResourceDefinition" {
            return Ok(());
        }
        // Each entry runs a legacy pass (every container list at any depth) and then a pass over
        // the image field specs, and each image is updated independently of the others; so each
        // image is found once and given every entry in order, once per pass that reaches it.
        let mut passes: Vec<(String, usize, usize)> = Vec::new();
        let mut legacy = Vec::new();
        legacy_image_slots(&r.body, &mut Vec::new(), &mut legacy)
            .map_err(|e| failed(r, &entries[0].at, "images", e))?;
        for pointer in legacy {
            passes.push((pointer, 1, 0));
        }
        for spec in specs {
            if !spec.applies_to(r) {
                continue;
            }
            for pointer in spec.pointers(&mut r.body).map_err(|e| failed(r, &entries[0].at, "images", e))? {
                match passes.iter_mut().find(|(p, _, _)| *p == pointer) {
                    Some(slot) => slot.2 += 1,
                    None => passes.push((pointer, 0, 1)),
                }
            }
        }
        for (pointer, by_legacy, by_specs) in &passes {
            let Some(v) = r.body.pointer_mut(pointer) else { continue };
            for (image, matcher) in entries.iter().zip(&matchers) {
                for _ in 0..(by_legacy + by_specs) {
                    match v {
                        Value::String(s) => {
                            if matcher.is_match(s) {
                                *s = rewrite_image(s, image);
                            }
                        }
                        Value::Null => {}
                        _ => {
                            let e = format!("`{pointer}` is not a string");
                            return Err(image.at.error(format!(
                                "images cannot be applied to {} (from {}): {e}",
                                r.id(),
                                r.origin
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

/// The JSON pointers of every `image` of a `containers` / `initContainers` list at any depth, in
/// the order kustomize's legacy pass visits them (children first). The path is kept as steps and
/// spelled as a pointer only for an image found.
fn legacy_image_slots<'v>(
    value: &'v Value,
    path: &mut Vec<&'v str>,
    out: &mut Vec<String>,
) -> std::result::Result<(), String> {
    let spell = |path: &[&str], i: usize| {
        let mut pointer = String::new();
        for step in path {
            crate::pointer::push(&mut pointer, step);
        }
        format!("{pointer}/{i}/image")
    };
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(key);
                legacy_image_slots_in(child, path, out)?;
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(items) = child
                {
                    for (i, item) in items.iter().enumerate() {
                        let Value::Object(container) = item else {
                            return Err(format!("an item of `{key}` is not a mapping"));
                        };
                        if container.contains_key("image") {
                            out.push(spell(path, i));
                        }
                    }
                }
                path.pop();
            }
            Ok(())
        }
        _ => legacy_image_slots_in(value, path, out),
    }
}

/// The lists and scalars under a value (maps go through [`legacy_image_slots`]).
fn legacy_image_slots_in<'v>(
    value: &'v Value,
    path: &mut Vec<&'v str>,
    out: &mut Vec<String>,
) -> std::result::Result<(), String> {
    match value {
        Value::Object(_) => legacy_image_slots(value, path, out),
        Value::Array(items) => {
            // List indexes are spelled into the path only when an image is found below them.
            for (i, item) in items.iter().enumerate() {
                let mut inner = Vec::new();
                legacy_image_slots(item, &mut Vec::new(), &mut inner)?;
                for found in inner {
                    let mut pointer = String::new();
                    for step in path.iter() {
                        crate::pointer::push(&mut pointer, step);
                    }
                    out.push(format!("{pointer}/{i}{found}"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An image reference with the entry's new name, tag or digest (or the tag suffix, when neither
/// a tag nor a digest is given).
fn rewrite_image(current: &str, image: &Image) -> String {
    let (name, tag, digest) = split_image(current);
    let name = image.new_name.as_deref().unwrap_or(name);
    let (tag, digest): (String, &str) = match (&image.new_tag, &image.digest, &image.tag_suffix) {
        (Some(t), Some(d), _) => (t.clone(), d),
        (Some(t), None, _) => (t.clone(), ""),
        (None, Some(d), _) => (String::new(), d),
        (None, None, Some(suffix)) => (format!("{tag}{suffix}"), ""),
        (None, None, None) => (tag.to_string(), digest),
    };
    let mut out = name.to_string();
    if !tag.is_empty() {
        out.push(':');
        out.push_str(&tag);
    }
    if !digest.is_empty() {
        out.push('@');
        out.push_str(digest);
    }
    out
}

/// (name, tag, digest) of an image reference; a registry port is part of the name.
fn split_image(image: &str) -> (&str, &str, &str) {
    let search_from = match image.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let rest = &image[search_from..];
    let at = rest.find('@').map(|i| i + search_from);
    let colon = rest.find(':').map(|i| i + search_from);
    match (colon, at) {
        (None, None) => (image, "", ""),
        (Some(c), Some(a)) if c < a => (&image[..c], &image[c + 1..a], &image[a + 1..]),
        (_, Some(a)) => (&image[..a], "", &image[a + 1..]),
        (Some(c), None) => (&image[..c], &image[c + 1..], ""),
    }
}

/// Drops an empty `metadata.annotations` map, as kustomize's output does.
pub fn strip_empty_metadata(body: &mut Value) {
    if let Some(Value::Object(meta)) = body.get_mut("metadata")
        && meta.get("annotations").and_then(Value::as_object).is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(new_name: Option<&str>, new_tag: Option<&str>, digest: Option<&str>) -> Image {
        Image {
            name: String::new(),
            new_name: new_name.map(str::to_string),
            new_tag: new_tag.map(str::to_string),
            digest: digest.map(str::to_string),
            tag_suffix: None,
            at: Loc { file: "k".into(), line: 1, column: 1 },
        }
    }

    #[test]
    fn image_references_split_and_rewrite_as_kustomize_does() {
        assert_eq!(split_image("reg.example.com:5000/team/app:v1"), ("reg.example.com:5000/team/app", "v1", ""));
        assert_eq!(split_image("alpine:3@sha256:aaa"), ("alpine", "3", "sha256:aaa"));
        assert_eq!(split_image("dig@sha256:bbb"), ("dig", "", "sha256:bbb"));
        assert_eq!(rewrite_image("nginx:1.0", &image(Some("my/nginx"), Some("2.0"), None)), "my/nginx:2.0");
        assert_eq!(rewrite_image("alpine:3@sha256:aaa", &image(None, None, Some("sha256:ccc"))), "alpine@sha256:ccc");
        assert_eq!(rewrite_image("dig@sha256:bbb", &image(None, Some("t"), Some("sha256:ddd"))), "dig:t@sha256:ddd");
        assert_eq!(rewrite_image("busybox", &image(Some("bb"), None, None)), "bb");
    }
}
