//! Strategic merge patch: how a later layer's document is merged over an earlier one, the way
//! `kubectl` and kustomize merge a strategic merge patch.
//!
//! Maps merge and `null` deletes a key, as in a JSON merge patch. Lists differ by field: a list
//! with a patch merge key (containers by `name`, ports by `containerPort`, …) merges item by item,
//! a list of scalars with the `merge` strategy (`finalizers`) is a set union, and every other list
//! is replaced. The merged order is the one kustomize produces: the patch's items in the patch's
//! order, then the earlier items the patch did not name, in their order.
//!
//! Where the merge keys come from:
//! - built-in kinds: the upstream OpenAPI definitions (`x-kubernetes-patch-merge-key`,
//!   `x-kubernetes-patch-strategy`), bundled as `schemas/kubernetes/<version>-merge.json`;
//! - custom resources: the CRDs of the same environment (`x-kubernetes-list-type: map` with
//!   `x-kubernetes-list-map-keys`, `set`, or the same patch annotations when a CRD carries them);
//! - any other kind has no merge information and is merged as a JSON merge patch (RFC 7386).
//!
//! Directives, with the meaning `kubectl patch --type strategic` gives them: `$patch: replace |
//! delete | merge` on a map or a list item, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
//! `$setElementOrder/<field>`. None of them is left in the merged object.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

const MERGE_BUNDLE: &str = include_str!("../../schemas/kubernetes/v1.37.0-merge.json");

/// What the bundle says about one field of a built-in definition.
#[derive(Debug, Deserialize)]
struct Field {
    #[serde(default)]
    list: bool,
    /// A map whose values (under any key) are of the definition `of`.
    #[serde(default)]
    map: bool,
    /// The definition of the value (of each item for a list, of each value for a map).
    #[serde(default, rename = "type")]
    of: Option<String>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Bundle {
    kinds: HashMap<String, String>,
    types: HashMap<String, HashMap<String, Field>>,
}

struct Builtin {
    bundle: Bundle,
    /// (group, kind) → definition, for a version the bundle does not list.
    by_group_kind: HashMap<(String, String), String>,
}

fn builtin() -> &'static Option<Builtin> {
    static BUILTIN: OnceLock<Option<Builtin>> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        // The bundle is part of the binary and checked by a test, so it parses.
        let bundle: Bundle = serde_json::from_str(MERGE_BUNDLE).ok()?;
        let mut by_group_kind = HashMap::new();
        for (gvk, definition) in &bundle.kinds {
            let (api_version, kind) = gvk.rsplit_once('/').unwrap_or(("", gvk));
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            by_group_kind.entry((group.to_string(), kind.to_string())).or_insert_with(|| definition.clone());
        }
        Some(Builtin { bundle, by_group_kind })
    })
}

/// One version of a CRD: its name, its `openAPIV3Schema`, whether it is the storage version.
type CrdVersion = (String, Value, bool);

/// The merge information known for one environment: the built-in kinds plus its CRDs.
#[derive(Default)]
pub struct Schemas {
    /// (group, kind) → the CRD's versions.
    crds: HashMap<(String, String), Vec<CrdVersion>>,
}

impl Schemas {
    /// Adds the kinds of an OpenAPI document (kustomize's `openapi:` schema: `definitions` with
    /// `x-kubernetes-group-version-kind`), their `$ref`s resolved within the document; as in
    /// kustomize, a reference to a definition the document lacks carries no merge keys.
    pub fn add_openapi(&mut self, document: &Value) -> Result<usize, String> {
        let Some(definitions) = document.get("definitions").and_then(Value::as_object) else {
            return Err("an openapi schema needs `definitions`".into());
        };
        fn inline(node: &Value, definitions: &Map<String, Value>, depth: usize) -> Value {
            if depth > 32 {
                return Value::Object(Map::new());
            }
            match node {
                Value::Object(map) => {
                    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                        let name = reference.trim_start_matches("#/definitions/");
                        return match definitions.get(name) {
                            Some(target) => inline(target, definitions, depth + 1),
                            None => Value::Object(Map::new()),
                        };
                    }
                    Value::Object(map.iter().map(|(k, v)| (k.clone(), inline(v, definitions, depth + 1))).collect())
                }
                Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, definitions, depth + 1)).collect()),
                other => other.clone(),
            }
        }
        let mut added = 0;
        for definition in definitions.values() {
            let Some(gvks) = definition.get("x-kubernetes-group-version-kind").and_then(Value::as_array) else {
                continue;
            };
            let schema = inline(definition, definitions, 0);
            for gvk in gvks {
                let text = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let (group, kind, version) = (text("group"), text("kind"), text("version"));
                if kind.is_empty() {
                    continue;
                }
                let versions = self.crds.entry((group, kind)).or_default();
                versions.retain(|(name, _, _)| *name != version);
                versions.push((version, schema.clone(), true));
                added += 1;
            }
        }
        Ok(added)
    }

    /// Reads the CRDs among `documents` (any layer of the environment).
    pub fn with_crds<'a>(documents: impl Iterator<Item = &'a Value>) -> Schemas {
        let mut crds = HashMap::new();
        for doc in documents {
            if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let spec = doc.get("spec");
            let group = spec.and_then(|s| s.get("group")).and_then(Value::as_str);
            let kind = spec.and_then(|s| s.pointer("/names/kind")).and_then(Value::as_str);
            let (Some(group), Some(kind)) = (group, kind) else { continue };
            let versions = spec
                .and_then(|s| s.get("versions"))
                .and_then(Value::as_array)
                .map(|versions| {
                    versions
                        .iter()
                        .filter_map(|v| {
                            let name = v.get("name")?.as_str()?.to_string();
                            let schema = v.pointer("/schema/openAPIV3Schema")?.clone();
                            let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
                            Some((name, schema, storage))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if !versions.is_empty() {
                crds.insert((group.to_string(), kind.to_string()), versions);
            }
        }
        Schemas { crds }
    }

    /// The shape of an object of this `apiVersion` and `kind`, or `None` when nothing is known
    /// about it (it is then merged as a JSON merge patch).
    pub fn shape_of(&self, api_version: &str, kind: &str) -> Option<Shape<'_>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if let Some(versions) = self.crds.get(&(group.to_string(), kind.to_string())) {
            let chosen = versions
                .iter()
                .find(|(name, _, _)| name == version)
                .or_else(|| versions.iter().find(|(_, _, storage)| *storage))
                .or(versions.first());
            return chosen.map(|(_, schema, _)| Shape::Crd(schema));
        }
        let builtin = builtin().as_ref()?;
        let definition = builtin
            .bundle
            .kinds
            .get(&format!("{api_version}/{kind}"))
            .or_else(|| builtin.by_group_kind.get(&(group.to_string(), kind.to_string())))?;
        Some(Shape::Builtin(definition))
    }
}

/// What is known about a value: a built-in definition (by name), a map whose values are of a
/// built-in definition, a CRD schema node, or nothing (maps merge, lists replace).
#[derive(Clone, Copy)]
pub enum Shape<'a> {
    Builtin(&'a str),
    ValuesOf(&'a str),
    Crd(&'a Value),
    Plain,
}

/// How a list field merges.
enum ListMerge {
    Replace,
    ByKeys(Vec<String>),
    Union,
}

impl<'a> Shape<'a> {
    /// The shape of `field` of a map of this shape, and how it merges when it is a list.
    fn field(self, field: &str) -> (ListMerge, Shape<'a>) {
        match self {
            Shape::Plain => (ListMerge::Replace, Shape::Plain),
            Shape::ValuesOf(definition) => (ListMerge::Replace, Shape::Builtin(definition)),
            Shape::Builtin(definition) => {
                let Some(builtin) = builtin().as_ref() else { return (ListMerge::Replace, Shape::Plain) };
                let Some(f) = builtin.bundle.types.get(definition).and_then(|t| t.get(field)) else {
                    return (ListMerge::Replace, Shape::Plain);
                };
                let inner = match f.of.as_deref().and_then(|of| builtin.bundle.types.get_key_value(of)) {
                    Some((name, _)) if f.map => Shape::ValuesOf(name.as_str()),
                    Some((name, _)) => Shape::Builtin(name.as_str()),
                    None => Shape::Plain,
                };
                let merges = f.strategy.as_deref().is_some_and(|s| s.split(',').any(|p| p == "merge"));
                let list = if !f.list || !merges {
                    ListMerge::Replace
                } else if let Some(key) = &f.key {
                    ListMerge::ByKeys(vec![key.clone()])
                } else {
                    ListMerge::Union
                };
                (list, inner)
            }
            Shape::Crd(node) => {
                let Some(child) = node
                    .get("properties")
                    .and_then(|p| p.get(field))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
                else {
                    return (ListMerge::Replace, Shape::Plain);
                };
                if child.get("type").and_then(Value::as_str) != Some("array") {
                    return (ListMerge::Replace, Shape::Crd(child));
                }
                let items = child.get("items").map_or(Shape::Plain, Shape::Crd);
                let strategy = child.get("x-kubernetes-patch-strategy").and_then(Value::as_str);
                let list_type = child.get("x-kubernetes-list-type").and_then(Value::as_str);
                let list = if let (Some(s), Some(key)) =
                    (strategy, child.get("x-kubernetes-patch-merge-key").and_then(Value::as_str))
                    && s.split(',').any(|p| p == "merge")
                {
                    ListMerge::ByKeys(vec![key.to_string()])
                } else if list_type == Some("map") {
                    let keys: Vec<String> = child
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| k.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default();
                    if keys.is_empty() { ListMerge::Replace } else { ListMerge::ByKeys(keys) }
                } else if list_type == Some("set") || strategy.is_some_and(|s| s.split(',').any(|p| p == "merge")) {
                    ListMerge::Union
                } else {
                    ListMerge::Replace
                };
                (list, items)
            }
        }
    }
}

/// Merges `patch` over `target` as a strategic merge patch of the given shape. An error names
/// the JSON pointer (in the patch) of what is wrong.
pub fn merge(target: &mut Value, patch: Value, shape: Shape<'_>) -> Result<(), String> {
    match (target.as_object_mut(), patch) {
        (Some(t), Value::Object(p)) => match merge_map(t, p, shape, "")? {
            Outcome::Kept => Ok(()),
            Outcome::Deleted => Err("`$patch: delete` at the top of a document is handled per object; \
                 a map-level one cannot delete the whole object here"
                .to_string()),
            Outcome::Replaced(v) => {
                *target = Value::Object(v);
                Ok(())
            }
        },
        (_, patch) => {
            *target = create(patch, shape, "")?;
            Ok(())
        }
    }
}

/// As [`merge`], for an object or document that holds secret values (at the JSON pointers
/// `target_secrets` and `patch_secrets`): a list merged by key moves items, so the values are
/// marked before the merge and found again after it. Returns the pointers of the secret values
/// in the merged object, together with the earlier pointers (a value once secret stays masked).
/// A secret used as a merge key never matches an earlier item: it is added as a new one.
pub fn merge_tracking(
    target: &mut Value,
    target_secrets: &[String],
    mut patch: Value,
    patch_secrets: &[String],
    shape: Shape<'_>,
) -> Result<Vec<String>, String> {
    let mut held: Vec<Value> = Vec::new();
    let mut mark = |value: &mut Value, pointers: &[String]| {
        for pointer in pointers {
            if let Some(slot) = value.pointer_mut(pointer) {
                let n = held.len();
                held.push(std::mem::replace(slot, Value::String(format!("{SECRET_MARK}{n}"))));
            }
        }
    };
    mark(target, target_secrets);
    mark(&mut patch, patch_secrets);
    let result = merge(target, patch, shape);
    // Put every value back, merged or not, so nothing is left marked even on an error.
    let mut found = Vec::new();
    restore(target, &mut held, &mut String::new(), &mut found);
    // Values the merge dropped (replaced or deleted) are overwritten before they are freed.
    held.iter_mut().for_each(crate::secrets::zeroize_value);
    result?;
    for pointer in target_secrets {
        if !found.contains(pointer) {
            found.push(pointer.clone());
        }
    }
    Ok(found)
}

/// What a secret value is replaced with while a merge moves it.
const SECRET_MARK: &str = "\u{0}cairn-secret-";

fn restore(value: &mut Value, held: &mut [Value], at: &mut String, found: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Some(n) = s.strip_prefix(SECRET_MARK).and_then(|n| n.parse::<usize>().ok())
                && let Some(slot) = held.get_mut(n)
            {
                *value = std::mem::take(slot);
                found.push(at.clone());
            }
        }
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let len = at.len();
                at.push('/');
                at.push_str(&escape(key));
                restore(child, held, at, found);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                restore(child, held, at, found);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// A document applied to nothing: its directives carried out against an empty value.
pub fn create(patch: Value, shape: Shape<'_>, at: &str) -> Result<Value, String> {
    if !has_directives(&patch) {
        let mut value = patch;
        remove_nulls(&mut value);
        return Ok(value);
    }
    match patch {
        Value::Object(p) => {
            let mut target = Map::new();
            match merge_map(&mut target, p, shape, at)? {
                Outcome::Replaced(v) => Ok(Value::Object(v)),
                _ => Ok(Value::Object(target)),
            }
        }
        Value::Array(items) => Ok(Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| create(item, shape, &format!("{at}/{i}")))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other),
    }
}

enum Outcome {
    Kept,
    Deleted,
    Replaced(Map<String, Value>),
}

fn merge_map(
    target: &mut Map<String, Value>,
    mut patch: Map<String, Value>,
    shape: Shape<'_>,
    at: &str,
) -> Result<Outcome, String> {
    if let Some(directive) = patch.remove("$patch") {
        match directive.as_str() {
            Some("delete") => return Ok(Outcome::Deleted),
            Some("replace") => {
                let mut fresh = Map::new();
                return match merge_map(&mut fresh, patch, shape, at)? {
                    Outcome::Replaced(v) => Ok(Outcome::Replaced(v)),
                    _ => Ok(Outcome::Replaced(fresh)),
                };
            }
            Some("merge") => {}
            _ => {
                let shown = directive.as_str().map_or_else(|| directive.to_string(), str::to_string);
                return Err(format!("{at}/$patch: `{shown}` is not a directive; use replace, delete or merge"));
            }
        }
    }
    let retain = match patch.remove("$retainKeys") {
        None => None,
        Some(Value::Array(keys)) => {
            let keys: Option<Vec<String>> = keys.iter().map(|k| k.as_str().map(str::to_string)).collect();
            Some(keys.ok_or_else(|| format!("{at}/$retainKeys: must be a list of field names"))?)
        }
        Some(_) => return Err(format!("{at}/$retainKeys: must be a list of field names")),
    };
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with('$')).cloned().collect();
    for key in keys {
        let value = patch.remove(&key).unwrap_or(Value::Null);
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let Value::Array(drop) = value else {
                return Err(format!("{at}/{}: must be a list of values", escape(&key)));
            };
            if let Some(Value::Array(list)) = target.get_mut(field) {
                list.retain(|v| !drop.contains(v));
            }
        } else if let Some(field) = key.strip_prefix("$setElementOrder/") {
            let Value::Array(order) = value else {
                return Err(format!("{at}/{}: must be a list", escape(&key)));
            };
            orders.push((field.to_string(), order));
        } else {
            return Err(format!(
                "{at}/{}: unknown directive; strategic merge knows $patch, $retainKeys, $deleteFromPrimitiveList/<field> and $setElementOrder/<field>",
                escape(&key)
            ));
        }
    }
    for (key, value) in patch {
        let here = format!("{at}/{}", escape(&key));
        let (list_merge, inner) = shape.field(&key);
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(p) => match target.get_mut(&key) {
                Some(Value::Object(t)) => match merge_map(t, p, inner, &here)? {
                    Outcome::Kept => {}
                    Outcome::Deleted => {
                        target.remove(&key);
                    }
                    Outcome::Replaced(v) => {
                        target.insert(key, Value::Object(v));
                    }
                },
                _ => {
                    let mut fresh = Map::new();
                    match merge_map(&mut fresh, p, inner, &here)? {
                        Outcome::Deleted => {
                            target.remove(&key);
                        }
                        Outcome::Replaced(v) => {
                            target.insert(key, Value::Object(v));
                        }
                        Outcome::Kept => {
                            target.insert(key, Value::Object(fresh));
                        }
                    }
                }
            },
            Value::Array(items) => {
                let earlier = match target.remove(&key) {
                    Some(Value::Array(list)) => list,
                    _ => Vec::new(),
                };
                let merged = merge_list(earlier, items, &list_merge, inner, &here)?;
                target.insert(key, Value::Array(merged));
            }
            scalar => {
                target.insert(key, scalar);
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = target.get_mut(&field) {
            let (list_merge, _) = shape.field(&field);
            reorder(list, &order, &list_merge);
        }
    }
    if let Some(keep) = retain {
        target.retain(|k, _| keep.iter().any(|r| r == k));
    }
    Ok(Outcome::Kept)
}

fn merge_list(
    earlier: Vec<Value>,
    items: Vec<Value>,
    how: &ListMerge,
    inner: Shape<'_>,
    at: &str,
) -> Result<Vec<Value>, String> {
    // `- $patch: replace` as an item replaces the whole list with the other items, whatever the
    // list's strategy.
    let replace = items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    match how {
        _ if replace => replaced(items, inner, at),
        ListMerge::Replace => replaced(items, inner, at),
        ListMerge::Union => {
            let mut out: Vec<Value> = Vec::new();
            for item in items {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            for item in earlier {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Ok(out)
        }
        ListMerge::ByKeys(keys) => {
            let mut earlier: Vec<Option<Value>> = earlier.into_iter().map(Some).collect();
            let mut merged: Vec<Value> = Vec::new();
            for (n, item) in items.into_iter().enumerate() {
                let here = format!("{at}/{n}");
                let Value::Object(mut item) = item else {
                    return Err(format!("{here}: this list merges by {}, so each item must be a map", keys.join(", ")));
                };
                let delete = match item.get("$patch").and_then(Value::as_str) {
                    Some("delete") => true,
                    Some("merge") | None => false,
                    Some(other) => {
                        return Err(format!(
                            "{here}/$patch: `{other}` is not a directive here; use delete, replace or merge"
                        ));
                    }
                };
                let identity: Vec<&Value> = keys.iter().filter_map(|k| item.get(k)).collect();
                if identity.len() != keys.len() {
                    let missing: Vec<&str> =
                        keys.iter().filter(|k| !item.contains_key(*k)).map(String::as_str).collect();
                    return Err(format!(
                        "{here}: the item has no `{}`, the key this list merges by; add it to say which item to change",
                        missing.join("`, `")
                    ));
                }
                let matches = |e: &Value| keys.iter().zip(&identity).all(|(k, v)| e.get(k) == Some(*v));
                let found = earlier.iter().position(|e| e.as_ref().is_some_and(matches));
                if delete {
                    if let Some(i) = found {
                        earlier[i] = None;
                    }
                    // Earlier merged items with the same key (a patch naming one twice) go too.
                    merged.retain(|e| !matches(e));
                    continue;
                }
                item.remove("$patch");
                match found.and_then(|i| earlier[i].take()) {
                    Some(Value::Object(mut base)) => match merge_map(&mut base, item, inner, &here)? {
                        Outcome::Replaced(v) => merged.push(Value::Object(v)),
                        Outcome::Deleted => {}
                        Outcome::Kept => merged.push(Value::Object(base)),
                    },
                    _ => merged.push(create(Value::Object(item), inner, &here)?),
                }
            }
            merged.extend(earlier.into_iter().flatten());
            Ok(merged)
        }
    }
}

/// The patch's items as the whole list (a `$patch: replace` item itself left out).
fn replaced(items: Vec<Value>, inner: Shape<'_>, at: &str) -> Result<Vec<Value>, String> {
    items
        .into_iter()
        .enumerate()
        .filter(|(_, i)| i.get("$patch").and_then(Value::as_str) != Some("replace"))
        .map(|(n, i)| create(i, inner, &format!("{at}/{n}")))
        .collect()
}

/// Orders `list` by `order` (`$setElementOrder`): the items it names in its order, then the
/// others in the order they had.
fn reorder(list: &mut Vec<Value>, order: &[Value], how: &ListMerge) {
    let rank = |item: &Value| -> Option<usize> {
        order.iter().position(|o| match how {
            ListMerge::ByKeys(keys) => keys.iter().all(|k| o.get(k).is_some() && o.get(k) == item.get(k)),
            _ => o == item,
        })
    };
    let mut ranked: Vec<(usize, usize, Value)> =
        std::mem::take(list).into_iter().enumerate().map(|(i, v)| (rank(&v).unwrap_or(usize::MAX), i, v)).collect();
    ranked.sort_by_key(|(r, i, _)| (*r, *i));
    *list = ranked.into_iter().map(|(_, _, v)| v).collect();
}

/// Whether a value holds a strategic merge directive (a `$`-key) anywhere.
fn has_directives(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.starts_with('$') || has_directives(v)),
        Value::Array(items) => items.iter().any(has_directives),
        _ => false,
    }
}

/// Removes `null` members of maps, recursively.
fn remove_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(remove_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_nulls),
        _ => {}
    }
}

fn escape(key: &str) -> String {
    crate::pointer::escape(key)
}

#[cfg(test)]
mod tests;
