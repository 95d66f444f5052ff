//! `vars` (deprecated in kustomize, still common): a value read from one object's field,
//! substituted for `$(NAME)` in the fields kustomize's `varReference` list names — after every
//! rename, so a var of a Service's name gives its final, prefixed name.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::error::Result;
use crate::yaml::{Node, NodeValue};

use super::build::Acc;
use super::file::{Loc, Reader, field};

#[derive(Debug, Clone)]
pub struct Var {
    pub name: String,
    api_version: Option<String>,
    group: Option<String>,
    version: Option<String>,
    kind: String,
    object: String,
    namespace: Option<String>,
    field_path: String,
    pub at: Loc,
}

impl Var {
    pub fn read(r: &Reader<'_>, node: &Node) -> Result<Var> {
        let map = r.map(node, "a var", &["name", "objref", "fieldref"])?;
        let Some(name) = field(map, "name") else {
            return Err(r.at(node).error("a var needs a `name`"));
        };
        let Some(objref) = field(map, "objref") else {
            return Err(r.at(node).error("a var needs an `objref` (kind, name) saying which object it reads"));
        };
        let o = r.map(objref, "a var's objref", &["apiVersion", "group", "version", "kind", "name", "namespace"])?;
        let text = |name: &str| -> Result<Option<String>> {
            field(o, name).map(|v| r.string(v, name).map(|l| l.value)).transpose()
        };
        let (Some(kind), Some(object)) = (text("kind")?, text("name")?) else {
            return Err(r.at(objref).error("a var's objref needs `kind` and `name`"));
        };
        let field_path = match field(map, "fieldref") {
            Some(f) => {
                let f = r.map(f, "a var's fieldref", &["fieldPath"])?;
                field(f, "fieldPath").map(|v| r.string(v, "fieldPath").map(|l| l.value)).transpose()?
            }
            None => None,
        }
        .unwrap_or_else(|| "metadata.name".into());
        Ok(Var {
            name: r.string(name, "name")?.value,
            api_version: text("apiVersion")?,
            group: text("group")?,
            version: text("version")?,
            kind,
            object,
            namespace: text("namespace")?.filter(|n| !n.is_empty()),
            field_path,
            at: r.at(node),
        })
    }
}

/// Adds a kustomization's vars (or an included one's); a name may be declared once in a build.
pub fn add(acc: &mut Acc, vars: Vec<Var>) -> Result<()> {
    for var in vars {
        if let Some(first) = acc.vars.iter().find(|v| v.name == var.name) {
            return Err(var.at.error(format!(
                "var `{}` is already declared at {}:{}; give one of them another name",
                var.name, first.at.file, first.at.line
            )));
        }
        acc.vars.push(var);
    }
    Ok(())
}

/// Reads every var's value and substitutes `$(NAME)` in the `varReference` fields.
pub fn resolve(acc: &mut Acc) -> Result<()> {
    if acc.vars.is_empty() {
        return Ok(());
    }
    let mut values: HashMap<String, Value> = HashMap::new();
    for var in &acc.vars {
        let found: Vec<_> = acc
            .resources
            .iter()
            .filter(|r| {
                r.previous.iter().cloned().chain(std::iter::once(r.id())).any(|id| {
                    let (group, version) = match id.api_version.rsplit_once('/') {
                        Some((g, v)) => (g, v),
                        None => ("", id.api_version.as_str()),
                    };
                    id.kind == var.kind
                        && id.name == var.object
                        && var.api_version.as_deref().is_none_or(|a| a == id.api_version)
                        && var.group.as_deref().is_none_or(|g| g == group)
                        && var.version.as_deref().is_none_or(|v| v == version)
                        && var.namespace.as_deref().is_none_or(|n| n == id.effective_namespace())
                })
            })
            .collect();
        let r = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(var.at.error(format!(
                    "var `{}` reads {} `{}`, which is not in the build",
                    var.name, var.kind, var.object
                )));
            }
            _ => {
                return Err(var.at.error(format!(
                    "var `{}` could read any of {} objects named `{}`; give its objref a namespace",
                    var.name,
                    found.len(),
                    var.object
                )));
            }
        };
        let value = get_legacy(&r.body, &var.field_path)
            .ok_or_else(|| var.at.error(format!("var `{}`: {} has no field `{}`", var.name, r.id(), var.field_path)))?;
        values.insert(var.name.clone(), value.clone());
    }
    let specs = acc.config.var_reference.clone();
    let mut used: HashSet<String> = HashSet::new();
    for r in &mut acc.resources {
        for spec in &specs {
            if !spec.applies_to(r) {
                continue;
            }
            let mut set = |v: &mut Value| -> std::result::Result<(), String> {
                substitute(v, &values, &mut used);
                Ok(())
            };
            let origin = r.origin.clone();
            spec.visit(&mut r.body, None, &mut set)
                .map_err(|e| Loc { file: origin.file.clone(), line: origin.line, column: 1 }.error(e))?;
        }
    }
    let unused: Vec<&str> = acc.vars.iter().map(|v| v.name.as_str()).filter(|n| !used.contains(*n)).collect();
    if !unused.is_empty() {
        tracing::info!("vars declared but never used: {}", unused.join(", "));
    }
    Ok(())
}

/// Substitutes in a string (or each string of a list): a whole `$(NAME)` takes the var's value
/// with its type; inside text, its text; `$$` is a `$`; an unknown `$(X)` stays.
fn substitute(value: &mut Value, values: &HashMap<String, Value>, used: &mut HashSet<String>) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, values, used)),
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("$(").and_then(|r| r.strip_suffix(')'))
                && let Some(v) = values.get(name)
                && !name.contains(['(', ')', '$'])
            {
                used.insert(name.to_string());
                *value = v.clone();
                return;
            }
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let after = &rest[i + 1..];
                if let Some(tail) = after.strip_prefix('$') {
                    out.push('$');
                    rest = tail;
                } else if let Some(inner) = after.strip_prefix('(')
                    && let Some(end) = inner.find(')')
                    && let Some(v) = values.get(&inner[..end])
                {
                    used.insert(inner[..end].to_string());
                    match v {
                        Value::String(t) => out.push_str(t),
                        other => out.push_str(&other.to_string()),
                    }
                    rest = &inner[end + 1..];
                } else {
                    out.push('$');
                    rest = after;
                }
            }
            out.push_str(rest);
            *s = out;
        }
        _ => {}
    }
}

/// A field at kustomize's legacy var path (`spec.ports[0].port`).
fn get_legacy<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut node = value;
    for step in path.split('.') {
        let (name, indexes) = match step.find('[') {
            Some(i) => (&step[..i], &step[i..]),
            None => (step, ""),
        };
        if !name.is_empty() {
            node = node.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            node = node.get(index.strip_suffix(']')?.parse::<usize>().ok()?)?;
        }
    }
    Some(node).filter(|v| !v.is_null())
}

/// The vars entries of a kustomization, read.
pub fn read_all(r: &Reader<'_>, node: &Node) -> Result<Vec<Var>> {
    match &node.value {
        NodeValue::Seq(items) => items.iter().map(|i| Var::read(r, i)).collect(),
        NodeValue::Null => Ok(Vec::new()),
        _ => Err(r.at(node).error(format!("`vars` is a list, found {}", node.kind_name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_keeps_types_escapes_and_unknown_names() {
        let values: HashMap<String, Value> =
            [("PORT".to_string(), Value::from(5432)), ("HOST".to_string(), Value::from("p-db"))].into();
        let mut used = HashSet::new();
        let mut whole = Value::from("$(PORT)");
        substitute(&mut whole, &values, &mut used);
        assert_eq!(whole, Value::from(5432));
        let mut text = Value::from("postgres://$(HOST):$(PORT)/x $$(HOST) $(NOPE)");
        substitute(&mut text, &values, &mut used);
        assert_eq!(text, Value::from("postgres://p-db:5432/x $(HOST) $(NOPE)"));
        assert_eq!(
            get_legacy(&serde_json::json!({"spec": {"ports": [{"port": 80}]}}), "spec.ports[0].port"),
            Some(&Value::from(80))
        );
    }
}
