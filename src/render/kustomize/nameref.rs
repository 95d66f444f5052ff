//! Name references: once every object has its final name (prefixes, suffixes, hashes), fields
//! that refer to an object by name — a pod's ConfigMap volume, a RoleBinding's subjects, an HPA's
//! target — are changed to the new name, as kustomize's `nameReference` configuration says.
//!
//! kustomize's rules, kept: a reference matches only an object that has been renamed, by one of
//! its earlier names and kinds; a namespaced referrer sees objects of its namespace and
//! cluster-wide ones (and, for a RoleBinding, ServiceAccounts of its subjects' namespaces); among
//! several candidates the one renamed the same way (same prefixes and suffixes) wins; a
//! reference nothing matches is left as it is; ambiguity is an error.

use std::collections::HashMap;

use rayon::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};

use super::build::Acc;
use super::fieldspec::{Config, FieldSpec, NameReference};
use super::resource::{Id, Resource};

pub fn fix(acc: &mut Acc) -> Result<()> {
    let config = acc.config.name_reference.clone();
    // Candidates are read from a copy: a fix-up writes only the referrer's own fields. Only
    // renamed objects can be referred to, so only they are copied, indexed by earlier names.
    let renamed: Vec<Candidate> = acc.resources.iter().filter(|r| !r.previous.is_empty()).map(Candidate::of).collect();
    if renamed.is_empty() {
        return Ok(());
    }
    let mut by_old_name: HashMap<&str, Vec<&Candidate>> = HashMap::new();
    for r in &renamed {
        let mut names: Vec<&str> = r.previous.iter().map(|id| id.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            by_old_name.entry(name).or_default().push(r);
        }
    }
    // Each referrer changes only its own fields: they are fixed in parallel.
    acc.resources.par_iter_mut().try_for_each(|referrer| -> Result<()> {
        let org = referrer.org_id();
        let view = Referrer::of(referrer);
        for target in &config {
            for spec in &target.fields {
                if !selects_id(spec, &org) {
                    continue;
                }
                let roleref = roleref_of(&referrer.body, spec);
                let mut set = |v: &mut Value| -> std::result::Result<(), String> {
                    update(v, &view, &by_old_name, target, roleref.as_ref())
                };
                // Name references never create fields.
                spec.visit(&mut referrer.body, None, &mut set).map_err(|message| Error::Document {
                    file: view.origin.clone(),
                    line: view.line,
                    message: format!("name reference in {}: {message}", view.id),
                })?;
            }
        }
        Ok(())
    })
}

/// What the rules need to know of an object that may be referred to (not its body).
struct Candidate {
    id: Id,
    previous: Vec<Id>,
    org_namespace: String,
    cluster_scoped: bool,
    namespace: String,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

impl Candidate {
    fn of(r: &Resource) -> Candidate {
        Candidate {
            id: r.id(),
            previous: r.previous.clone(),
            org_namespace: r.org_id().effective_namespace(),
            cluster_scoped: r.is_cluster_scoped(),
            namespace: r.effective_namespace(),
            prefixes: r.prefixes.clone(),
            suffixes: r.suffixes.clone(),
        }
    }

    fn name(&self) -> &str {
        &self.id.name
    }

    fn raw_namespace(&self) -> &str {
        &self.id.namespace
    }
}

/// What the rules need to know of a referrer, read before its fields change.
struct Referrer {
    id: Id,
    cluster_scoped: bool,
    namespace: String,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    /// A RoleBinding's ServiceAccount subjects' namespaces.
    subject_namespaces: Vec<String>,
    origin: String,
    line: u64,
}

impl Referrer {
    fn of(r: &Resource) -> Referrer {
        let mut subject_namespaces = Vec::new();
        if r.kind() == "RoleBinding"
            && let Some(Value::Array(subjects)) = r.body.get("subjects")
        {
            for s in subjects {
                if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    && let Some(n) = s.get("namespace").and_then(Value::as_str)
                {
                    subject_namespaces.push(n.to_string());
                }
            }
        }
        Referrer {
            id: r.id(),
            cluster_scoped: r.is_cluster_scoped(),
            namespace: r.effective_namespace(),
            prefixes: r.prefixes.clone(),
            suffixes: r.suffixes.clone(),
            subject_namespaces,
            origin: r.origin.file.clone(),
            line: r.origin.line,
        }
    }

    /// The objects once named `old` that this referrer can refer to.
    fn candidates<'a>(&self, index: &Index<'a>, old: &str) -> Vec<&'a Candidate> {
        index.get(old).into_iter().flatten().copied().filter(|c| self.sees(c)).collect()
    }

    /// Whether a candidate is among the objects this referrer can refer to.
    fn sees(&self, c: &Candidate) -> bool {
        self.cluster_scoped
            || c.cluster_scoped
            || c.namespace == self.namespace
            || self.subject_namespaces.iter().any(|n| n == c.raw_namespace())
    }
}

fn split(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Whether a field spec's group/version/kind select an identity (empty = any).
fn selects_id(spec: &FieldSpec, id: &Id) -> bool {
    let (group, version) = split(&id.api_version);
    (spec.kind.is_empty() || spec.kind == id.kind)
        && (spec.group.is_empty() || spec.group == group)
        && (spec.version.is_empty() || spec.version == version)
}

fn target_selects(target: &NameReference, id: &Id) -> bool {
    let (group, version) = split(&id.api_version);
    (target.kind.is_empty() || target.kind == id.kind)
        && (target.group.is_empty() || target.group == group)
        && (target.version.is_empty() || target.version == version)
}

/// `roleRef` (apiGroup, kind) of a binding, when the field is its name.
fn roleref_of(body: &Value, spec: &FieldSpec) -> Option<(String, String)> {
    if spec.path.len() < 2 || spec.path[spec.path.len() - 2..] != ["roleRef".to_string(), "name".to_string()] {
        return None;
    }
    let rr = body.get("roleRef")?;
    Some((rr.get("apiGroup")?.as_str()?.to_string(), rr.get("kind")?.as_str()?.to_string()))
}

type Index<'a> = HashMap<&'a str, Vec<&'a Candidate>>;

fn update(
    value: &mut Value,
    referrer: &Referrer,
    pool: &Index<'_>,
    target: &NameReference,
    roleref: Option<&(String, String)>,
) -> std::result::Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::String(_) => set_scalar(value, referrer, pool, target, roleref),
        Value::Object(_) => set_mapping(value, referrer, pool, target, roleref),
        Value::Array(items) => items.iter_mut().try_for_each(|item| match item {
            Value::String(_) => set_scalar(item, referrer, pool, target, roleref),
            Value::Object(_) => set_mapping(item, referrer, pool, target, roleref),
            _ => Err("expected a name or a map with a name".into()),
        }),
        _ => Ok(()),
    }
}

fn set_scalar(
    value: &mut Value,
    referrer: &Referrer,
    pool: &Index<'_>,
    target: &NameReference,
    roleref: Option<&(String, String)>,
) -> std::result::Result<(), String> {
    let Some(old) = value.as_str().map(str::to_string) else { return Ok(()) };
    let candidates = referrer.candidates(pool, &old);
    if let Some(found) = select(&old, referrer, candidates, target, roleref, false)? {
        *value = Value::String(found.name().to_string());
    }
    Ok(())
}

fn set_mapping(
    value: &mut Value,
    referrer: &Referrer,
    pool: &Index<'_>,
    target: &NameReference,
    roleref: Option<&(String, String)>,
) -> std::result::Result<(), String> {
    let Some(map) = value.as_object_mut() else { return Ok(()) };
    let Some(old) = map.get("name").and_then(Value::as_str).map(str::to_string) else {
        return Err("a name reference map has no `name`".into());
    };
    let pool = referrer.candidates(pool, &old);
    let candidates: Vec<&Candidate> = match map.get("namespace").and_then(Value::as_str) {
        Some(ns) => {
            let original: Vec<&Candidate> = pool.iter().copied().filter(|c| c.org_namespace == ns).collect();
            if original.is_empty() { pool.iter().copied().filter(|c| c.namespace == ns).collect() } else { original }
        }
        None => pool,
    };
    let Some(found) = select(&old, referrer, candidates, target, roleref, true)? else {
        return Ok(());
    };
    if found.name() == old && found.raw_namespace().is_empty() {
        return Ok(());
    }
    map.insert("name".into(), Value::String(found.name().to_string()));
    if !found.raw_namespace().is_empty() {
        map.insert("namespace".into(), Value::String(found.raw_namespace().to_string()));
    }
    Ok(())
}

/// kustomize's `selectReferral`: the one object the old name refers to, if any.
fn select<'a>(
    old: &str,
    referrer: &Referrer,
    candidates: Vec<&'a Candidate>,
    target: &NameReference,
    roleref: Option<&(String, String)>,
    mapping: bool,
) -> std::result::Result<Option<&'a Candidate>, String> {
    let mut c: Vec<&Candidate> = candidates
        .into_iter()
        .filter(|c| c.previous.iter().any(|id| id.name == old))
        .filter(|c| c.previous.iter().any(|id| target_selects(target, id)))
        .filter(|c| match roleref {
            Some((group, kind)) => c.previous.iter().any(|id| split(&id.api_version).0 == group && &id.kind == kind),
            None => true,
        })
        .filter(|c| {
            referrer.cluster_scoped
                || c.cluster_scoped
                || c.id.kind == "ServiceAccount"
                || c.namespace == referrer.namespace
        })
        .collect();
    if c.len() == 1 {
        return Ok(c.pop());
    }
    let ends_same = |a: &[String], b: &[String], lenient: bool| {
        if a.is_empty() || b.is_empty() {
            return lenient || (a.is_empty() && b.is_empty());
        }
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        long[long.len() - short.len()..] == *short
    };
    c.retain(|c| ends_same(&c.prefixes, &referrer.prefixes, true) && ends_same(&c.suffixes, &referrer.suffixes, true));
    if c.len() > 1 {
        c.retain(|c| {
            ends_same(&c.prefixes, &referrer.prefixes, false) && ends_same(&c.suffixes, &referrer.suffixes, false)
        });
    }
    match c.len() {
        0 => Ok(None),
        1 => Ok(c.pop()),
        _ => {
            let first = c[0];
            let identical =
                c.iter().all(|o| o.name() == first.name() && (!mapping || o.raw_namespace() == first.raw_namespace()));
            if identical {
                Ok(Some(first))
            } else {
                let ids: Vec<String> = c.iter().map(|o| o.id.to_string()).collect();
                Err(format!("`{old}` could refer to any of {}; give the objects distinct names", ids.join(", ")))
            }
        }
    }
}

/// A kustomization's `crds:` entry: fields of a custom kind that hold another object's name
/// (`x-kubernetes-object-ref-kind` in its schema) become name references.
pub fn config_from_crd(config: &mut Config, doc: &Value) -> std::result::Result<(), String> {
    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return Ok(());
    }
    let Some(kind) = doc.pointer("/spec/names/kind").and_then(Value::as_str) else { return Ok(()) };
    let versions = doc.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    for version in versions {
        let Some(schema) = version.pointer("/schema/openAPIV3Schema") else { continue };
        let mut found = Vec::new();
        collect_refs(schema, &mut Vec::new(), &mut found);
        for (path, ref_kind) in found {
            config.add_name_reference(NameReference {
                group: String::new(),
                version: String::new(),
                kind: ref_kind,
                fields: vec![FieldSpec {
                    group: String::new(),
                    version: String::new(),
                    kind: kind.to_string(),
                    path,
                    create: false,
                }],
            })?;
        }
    }
    Ok(())
}

fn collect_refs(schema: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    if let Some(kind) = schema.get("x-kubernetes-object-ref-kind").and_then(Value::as_str) {
        out.push((path.clone(), kind.to_string()));
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, child) in props {
            path.push(name.clone());
            collect_refs(child, path, out);
            path.pop();
        }
    }
    if let Some(items) = schema.get("items") {
        collect_refs(items, path, out);
    }
}
