//! The built-in transformers of one kustomization, in kustomize's fixed order: patches
//! (strategic merge first), namespace, namePrefix, nameSuffix, labels and commonLabels,
//! commonAnnotations, JSON 6902 patches, replicas and images. Replacements follow (`replace`).

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

use super::build::{Acc, Builder};
use super::fieldspec::{Create, FieldSpec, merge_specs, split_path};
use super::file::{Image, Kustomization, Label, Loc};
use super::patch;
use super::resource::Resource;

pub fn run(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    patch::run_strategic_files(builder, k, acc)?;
    for p in &k.patches {
        patch::run(builder, k, p, acc)?;
    }
    if let Some(ns) = &k.namespace {
        namespace(acc, &ns.value, &ns.at)?;
    }
    if let Some(prefix) = &k.name_prefix {
        affix(acc, &prefix.value, true, &prefix.at)?;
    }
    if let Some(suffix) = &k.name_suffix {
        affix(acc, &suffix.value, false, &suffix.at)?;
    }
    let at = Loc { file: k.file.clone(), line: 1, column: 1 };
    for label in &k.labels {
        let specs = label_specs(acc, label).map_err(|e| at.error(e))?;
        set_map_entries(acc, &specs, &label.pairs, "labels", &at)?;
    }
    if !k.common_labels.is_empty() {
        let specs = acc.config.common_labels.clone();
        set_map_entries(acc, &specs, &k.common_labels, "commonLabels", &at)?;
    }
    if !k.common_annotations.is_empty() {
        let specs = acc.config.common_annotations.clone();
        set_map_entries(acc, &specs, &k.common_annotations, "commonAnnotations", &at)?;
    }
    for p in &k.patches_json6902 {
        patch::run(builder, k, p, acc)?;
    }
    for replica in &k.replicas {
        replicas(acc, &replica.name, replica.count, &replica.at)?;
    }
    for image in &k.images {
        images(acc, image)?;
    }
    Ok(())
}

fn failed(r: &Resource, at: &Loc, what: &str, message: String) -> Error {
    at.error(format!("{what} cannot be applied to {} (from {}): {message}", r.id(), r.origin))
}

/// `namespace:` — every namespaced object moves into the namespace (a `v1` Namespace object is
/// renamed to it), RoleBinding subjects named `default` follow, and the namespace field specs
/// (APIService services, CRD conversion webhooks) are set.
fn namespace(acc: &mut Acc, ns: &str, at: &Loc) -> Result<()> {
    let specs: Vec<FieldSpec> =
        acc.config.namespace.iter().filter(|s| s.path != ["metadata", "namespace"]).cloned().collect();
    for i in 0..acc.resources.len() {
        let r = &mut acc.resources[i];
        r.record_previous();
        let set = |v: &mut Value| -> std::result::Result<(), String> {
            if v.is_object() || v.is_array() {
                return Err("namespace field specs must name a scalar".into());
            }
            *v = Value::String(ns.to_string());
            Ok(())
        };
        if !r.is_cluster_scoped() {
            r.metadata_mut().insert("namespace".into(), Value::String(ns.to_string()));
        }
        if matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(Value::Array(subjects)) = r.body.get_mut("subjects")
        {
            for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
                if subject.get("name").and_then(Value::as_str) == Some("default") {
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
    }
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
fn affix(acc: &mut Acc, affix: &str, prefix: bool, at: &Loc) -> Result<()> {
    let what = if prefix { "namePrefix" } else { "nameSuffix" };
    let specs = if prefix { acc.config.name_prefix.clone() } else { acc.config.name_suffix.clone() };
    for r in &mut acc.resources {
        let org = r.org_id();
        let skip = org.kind == "CustomResourceDefinition"
            || org.kind == "Namespace"
            || (org.kind == "APIService" && org.group() == "apiregistration.k8s.io");
        if skip {
            continue;
        }
        let (group, version) = match org.api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), org.api_version.clone()),
        };
        for spec in &specs {
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
    }
    Ok(())
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
fn set_map_entries(acc: &mut Acc, specs: &[FieldSpec], pairs: &[(String, String)], what: &str, at: &Loc) -> Result<()> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for r in &mut acc.resources {
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
    }
    Ok(())
}

/// `replicas:` — by name (current or any earlier one), in every namespace.
fn replicas(acc: &mut Acc, name: &str, count: i64, at: &Loc) -> Result<()> {
    let specs = acc.config.replicas.clone();
    let mut matched = false;
    for r in &mut acc.resources {
        for spec in &specs {
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
/// reaches custom resources) and at the configured image field specs.
fn images(acc: &mut Acc, image: &Image) -> Result<()> {
    let pattern = format!("^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$", image.name);
    let matcher = Regex::new(&pattern)
        .map_err(|e| image.at.error(format!("image name `{}` is not usable as a pattern: {e}", image.name)))?;
    let specs = acc.config.images.clone();
    for r in &mut acc.resources {
        if r.kind() == "CustomResourceDefinition" {
            continue;
        }
        let mut update = |v: &mut Value| -> std::result::Result<(), String> {
            match v {
                Value::String(s) => {
                    if matcher.is_match(s) {
                        *s = rewrite_image(s, image);
                    }
                    Ok(())
                }
                Value::Null => Ok(()),
                _ => Err("`image` is not a string".into()),
            }
        };
        legacy_images(&mut r.body, &mut update).map_err(|e| failed(r, &image.at, "images", e))?;
        for spec in &specs {
            if spec.applies_to(r) {
                spec.visit(&mut r.body, None, &mut update).map_err(|e| failed(r, &image.at, "images", e))?;
            }
        }
    }
    Ok(())
}

/// Every `containers` / `initContainers` list at any depth: each item's `image`.
fn legacy_images(
    value: &mut Value,
    update: &mut dyn FnMut(&mut Value) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                legacy_images(child, update)?;
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(items) = child
                {
                    for item in items {
                        let Value::Object(container) = item else {
                            return Err(format!("an item of `{key}` is not a mapping"));
                        };
                        if let Some(image) = container.get_mut("image") {
                            update(image)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|item| legacy_images(item, update)),
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
