//! `replacements`: a value copied from one field of one object into fields of others.

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::yaml::{Node, NodeValue};

use super::build::{Acc, Builder, resolve_file};
use super::file::{Kustomization, Loc, Located, Reader, field};
use super::resource::{Id, Resource};
use super::selector::{Requirement, parse_requirements};

/// An exact selector (replacements do not take regular expressions).
#[derive(Debug, Clone, Default)]
struct Exact {
    group: String,
    version: String,
    kind: String,
    name: String,
    namespace: String,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

impl Exact {
    fn selects_id(&self, id: &Id) -> bool {
        let (group, version) = match id.api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", id.api_version.as_str()),
        };
        (self.group.is_empty() || self.group == group)
            && (self.version.is_empty() || self.version == version)
            && (self.kind.is_empty() || self.kind == id.kind)
            && (self.name.is_empty() || self.name == id.name)
            && (self.namespace.is_empty() || self.namespace == id.effective_namespace())
    }

    fn selects(&self, r: &Resource) -> bool {
        r.ids().any(|id| self.selects_id(&id))
            && self.labels.iter().all(|q| q.matches(r.body.pointer("/metadata/labels")))
            && self.annotations.iter().all(|q| q.matches(r.body.pointer("/metadata/annotations")))
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("group", &self.group),
            ("version", &self.version),
            ("kind", &self.kind),
            ("name", &self.name),
            ("namespace", &self.namespace),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        if parts.is_empty() { "any object".into() } else { parts.join(" ") }
    }
}

#[derive(Debug, Clone, Default)]
struct Options {
    delimiter: Option<String>,
    index: i64,
    create: bool,
}

struct Target {
    select: Exact,
    reject: Vec<Exact>,
    paths: Vec<String>,
    options: Options,
}

struct Replacement {
    source: Exact,
    source_path: String,
    source_options: Options,
    targets: Vec<Target>,
    at: Loc,
}

pub fn run(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for node in &k.replacements {
        for replacement in read_entry(builder, k, node)? {
            apply(acc, &replacement)?;
        }
    }
    Ok(())
}

/// An entry is a replacement, or `path:` naming a file that holds one or a list of them.
fn read_entry(builder: &Builder<'_>, k: &Kustomization, node: &Node) -> Result<Vec<Replacement>> {
    let at = Reader { file: &k.file }.at(node);
    let r = Reader { file: &k.file };
    if let NodeValue::Map(m) = &node.value
        && let Some(path) = field(m, "path")
    {
        if m.len() > 1 {
            return Err(at.error("a replacements entry has either `path` or `source`/`targets`, not both"));
        }
        let path = r.string(path, "path")?;
        let file = resolve_file(k, &path, "replacements file")?;
        let bytes = builder.read_file(&file, &path, "replacements file")?;
        let doc = Node::parse_yaml12(&file, &String::from_utf8_lossy(&bytes))?;
        let fr = Reader { file: &file };
        return match &doc.value {
            NodeValue::Seq(items) => items.iter().map(|i| read_replacement(&fr, i)).collect(),
            NodeValue::Map(_) => Ok(vec![read_replacement(&fr, &doc)?]),
            _ => Err(path.at.error(format!("{file} holds neither a replacement nor a list of them"))),
        };
    }
    Ok(vec![read_replacement(&r, node)?])
}

fn read_exact(r: &Reader<'_>, node: &Node, with_path: bool) -> Result<(Exact, Option<String>, Options)> {
    let mut allowed = vec!["group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"];
    if with_path {
        allowed.extend(["fieldPath", "options"]);
    }
    let map = r.map(node, "a selector", &allowed)?;
    let text = |name: &str| -> Result<String> {
        Ok(field(map, name).map(|v| r.string(v, name)).transpose()?.map(|l| l.value).unwrap_or_default())
    };
    let reqs = |name: &str| -> Result<Vec<Requirement>> {
        match field(map, name) {
            Some(v) => {
                let l = r.string(v, name)?;
                parse_requirements(&l.value).map_err(|e| l.at.error(e))
            }
            None => Ok(Vec::new()),
        }
    };
    let exact = Exact {
        group: text("group")?,
        version: text("version")?,
        kind: text("kind")?,
        name: text("name")?,
        namespace: text("namespace")?,
        labels: reqs("labelSelector")?,
        annotations: reqs("annotationSelector")?,
    };
    let path = field(map, "fieldPath").map(|v| r.string(v, "fieldPath").map(|l| l.value)).transpose()?;
    let options = match field(map, "options") {
        Some(o) => read_options(r, o)?,
        None => Options::default(),
    };
    Ok((exact, path, options))
}

fn read_options(r: &Reader<'_>, node: &Node) -> Result<Options> {
    let map = r.map(node, "replacement options", &["delimiter", "index", "create"])?;
    let mut o = Options::default();
    for (key, v) in map {
        match key.name.as_str() {
            "delimiter" => o.delimiter = Some(r.string(v, "delimiter")?.value).filter(|d| !d.is_empty()),
            "index" => {
                o.index = match &v.value {
                    NodeValue::Number(n) => n.as_i64().ok_or_else(|| r.at(v).error("`index` is a whole number"))?,
                    _ => return Err(r.at(v).error("`index` is a whole number")),
                }
            }
            _ => {
                o.create = match v.value {
                    NodeValue::Bool(b) => b,
                    _ => return Err(r.at(v).error("`create` is true or false")),
                }
            }
        }
    }
    Ok(o)
}

fn read_replacement(r: &Reader<'_>, node: &Node) -> Result<Replacement> {
    let map = r.map(node, "a replacement", &["source", "targets"])?;
    let (Some(source), Some(targets)) = (field(map, "source"), field(map, "targets")) else {
        return Err(r.at(node).error("a replacement needs a `source` and at least one target"));
    };
    let (source, source_path, source_options) = read_exact(r, source, true)?;
    let mut out = Vec::new();
    for t in r.list(targets, "targets")? {
        let tm = r.map(t, "a replacement target", &["select", "reject", "fieldPaths", "options"])?;
        let Some(select) = field(tm, "select") else {
            return Err(r.at(t).error("a replacement target needs `select`"));
        };
        let (select, _, _) = read_exact(r, select, false)?;
        let mut reject = Vec::new();
        if let Some(rj) = field(tm, "reject") {
            for item in r.list(rj, "reject")? {
                reject.push(read_exact(r, item, false)?.0);
            }
        }
        let paths = match field(tm, "fieldPaths") {
            Some(p) => r.strings(p, "fieldPaths")?.into_iter().map(|l: Located| l.value).collect(),
            None => vec!["metadata.name".to_string()],
        };
        let options = match field(tm, "options") {
            Some(o) => read_options(r, o)?,
            None => Options::default(),
        };
        out.push(Target { select, reject, paths, options });
    }
    if out.is_empty() {
        return Err(r.at(node).error("a replacement needs at least one target"));
    }
    Ok(Replacement {
        source,
        source_path: source_path.unwrap_or_else(|| "metadata.name".into()),
        source_options,
        targets: out,
        at: r.at(node),
    })
}

/// A field path split at unescaped dots, `[…]` kept whole.
fn split_dotted(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                current.push('.');
                chars.next();
            }
            '[' => {
                depth += 1;
                current.push(c);
            }
            ']' => {
                depth -= 1;
                current.push(c);
            }
            '.' if depth == 0 => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn apply(acc: &mut Acc, rep: &Replacement) -> Result<()> {
    let sources: Vec<&Resource> = acc.resources.iter().filter(|r| rep.source.selects(r)).collect();
    let source = match sources.as_slice() {
        [one] => *one,
        [] => {
            return Err(rep.at.error(format!("the replacement's source ({}) selects nothing", rep.source.describe())));
        }
        _ => {
            return Err(rep.at.error(format!(
                "the replacement's source ({}) selects {} objects; name one",
                rep.source.describe(),
                sources.len()
            )));
        }
    };
    let mut value = get_path(&source.body, &split_dotted(&rep.source_path))
        .cloned()
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
        .ok_or_else(|| rep.at.error(format!("the source field `{}` is missing in {}", rep.source_path, source.id())))?;
    if let Some(delimiter) = &rep.source_options.delimiter {
        let Some(text) = value.as_str().map(str::to_string) else {
            return Err(rep.at.error("`delimiter` applies only to a scalar source"));
        };
        let parts: Vec<&str> = text.split(delimiter.as_str()).collect();
        let index = usize::try_from(rep.source_options.index).ok().filter(|i| *i < parts.len()).ok_or_else(|| {
            rep.at.error(format!("options.index {} is out of bounds for the source value", rep.source_options.index))
        })?;
        value = Value::String(parts[index].to_string());
    }
    for target in &rep.targets {
        for r in acc.resources.iter_mut() {
            if !target.select.selects(r) || target.reject.iter().any(|x| x.selects(r)) {
                continue;
            }
            for path in &target.paths {
                let steps = split_dotted(path);
                let id = r.id();
                set_path(&mut r.body, &steps, &value, &target.options)
                    .map_err(|e| rep.at.error(format!("replacement into `{path}` of {id} (from {}): {e}", r.origin)))?;
            }
        }
    }
    Ok(())
}

fn get_path<'v>(value: &'v Value, steps: &[String]) -> Option<&'v Value> {
    let Some((step, rest)) = steps.split_first() else { return Some(value) };
    let next = match value {
        Value::Object(map) => map.get(step.as_str())?,
        Value::Array(items) => {
            if let Some(inner) = step.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                let (k, v) = inner.split_once('=')?;
                items.iter().find(|i| {
                    if k.is_empty() { i.as_str() == Some(v) } else { i.get(k).and_then(Value::as_str) == Some(v) }
                })?
            } else if step == "-" {
                items.last()?
            } else {
                items.get(step.parse::<usize>().ok()?)?
            }
        }
        _ => return None,
    };
    get_path(next, rest)
}

fn set_path(node: &mut Value, steps: &[String], value: &Value, options: &Options) -> std::result::Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        return write(node, value, options);
    };
    let missing = || {
        if options.create {
            format!("cannot find or create `{step}`")
        } else {
            format!("`{step}` does not exist (set `options.create: true` to create it)")
        }
    };
    match node {
        Value::Object(map) => {
            if step == "*" {
                return map.values_mut().try_for_each(|v| set_path(v, rest, value, options));
            }
            if !map.contains_key(step.as_str()) {
                if !options.create {
                    return Err(missing());
                }
                let fresh = if rest.first().is_some_and(|s| s.starts_with('[')) {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                };
                map.insert(step.clone(), if rest.is_empty() { Value::Null } else { fresh });
            }
            let child = map.get_mut(step.as_str()).ok_or_else(missing)?;
            if child.is_null() && !rest.is_empty() && options.create {
                *child = Value::Object(Map::new());
            }
            set_path(child, rest, value, options)
        }
        Value::Array(items) => {
            if step == "*" {
                return items.iter_mut().try_for_each(|v| set_path(v, rest, value, options));
            }
            if let Some(inner) = step.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                let (k, v) = inner.split_once('=').ok_or_else(|| format!("`{step}` is not [key=value]"))?;
                let re = Regex::new(v).map_err(|e| format!("`{step}`: {e}"))?;
                let mut hit = false;
                for item in items.iter_mut() {
                    let matches = if k.is_empty() {
                        item.as_str().is_some_and(|s| re.is_match(s))
                    } else {
                        item.get(k).and_then(Value::as_str).is_some_and(|s| re.is_match(s))
                    };
                    if matches {
                        hit = true;
                        set_path(item, rest, value, options)?;
                    }
                }
                if !hit {
                    if !options.create || k.is_empty() {
                        return Err(missing());
                    }
                    let mut fresh = Map::new();
                    fresh.insert(k.to_string(), Value::String(v.to_string()));
                    items.push(Value::Object(fresh));
                    let last = items.len() - 1;
                    return set_path(&mut items[last], rest, value, options);
                }
                return Ok(());
            }
            let index: usize = step.parse().map_err(|_| format!("`{step}` is not an index of a list"))?;
            if index == items.len() && options.create {
                items.push(Value::Null);
            }
            let child = items.get_mut(index).ok_or_else(missing)?;
            set_path(child, rest, value, options)
        }
        _ => Err(missing()),
    }
}

/// Writes the value: into part of a delimited scalar, or as the whole value (a scalar keeps its
/// type: `"3"` into `replicas: 1` is the number 3).
fn write(node: &mut Value, value: &Value, options: &Options) -> std::result::Result<(), String> {
    if let Some(delimiter) = &options.delimiter {
        let current = node.as_str().unwrap_or("").to_string();
        let mut parts: Vec<String> = current.split(delimiter.as_str()).map(str::to_string).collect();
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if options.index < 0 {
            parts.insert(0, text);
        } else if options.index as usize >= parts.len() {
            parts.push(text);
        } else {
            parts[options.index as usize] = text;
        }
        *node = Value::String(parts.join(delimiter));
        return Ok(());
    }
    let text = match value {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    *node = match (&*node, text) {
        (Value::Number(_), Some(t)) => serde_json::from_str::<serde_json::Number>(t)
            .map(Value::Number)
            .map_err(|_| format!("`{t}` is not a number"))?,
        (Value::Bool(_), Some(t)) => match t {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("`{t}` is not true or false")),
        },
        (Value::String(_), None) if !value.is_object() && !value.is_array() => Value::String(value.to_string()),
        _ => value.clone(),
    };
    Ok(())
}
