//! Field specs: which field of which kinds a transformer touches (`spec/template/metadata/labels`
//! of a Deployment), and the transformer configuration that lists them — kustomize's defaults
//! (`builtin-config.yaml`, generated from kustomize's source) merged with a kustomization's
//! `configurations:` files and `crds:`.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::yaml::{Node, NodeValue};

use super::file::{Reader, field};
use super::resource::Resource;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The path, split at unescaped `/`; a step ending in `[]` names a list.
    pub path: Vec<String>,
    /// Create the field (and the maps leading to it) where it is missing.
    pub create: bool,
}

/// What to create at the end of a path where the field is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Map,
    Scalar,
}

impl FieldSpec {
    pub fn read(r: &Reader<'_>, node: &Node) -> Result<FieldSpec, Error> {
        let map = r.map(node, "a field spec", &["path", "group", "version", "kind", "create", "behavior"])?;
        let text = |name: &str| -> Result<String, Error> {
            Ok(field(map, name).map(|v| r.string(v, name)).transpose()?.map(|l| l.value).unwrap_or_default())
        };
        let path = text("path")?;
        if path.is_empty() {
            return Err(r.at(node).error("a field spec needs a `path` (for example spec/template/metadata/labels)"));
        }
        let create = match field(map, "create").map(|v| &v.value) {
            None => false,
            Some(NodeValue::Bool(b)) => *b,
            Some(_) => return Err(r.at(node).error("`create` is true or false")),
        };
        Ok(FieldSpec {
            group: text("group")?,
            version: text("version")?,
            kind: text("kind")?,
            path: split_path(&path),
            create,
        })
    }

    pub fn applies_to(&self, r: &Resource) -> bool {
        let (group, version) = r.group_version();
        (self.kind.is_empty() || self.kind == r.kind())
            && (self.group.is_empty() || self.group == group)
            && (self.version.is_empty() || self.version == version)
    }

    /// Calls `set` on the field at this spec's path in `body` (on every item where the path
    /// crosses a list), creating it as `create` says when the spec allows it. An error says
    /// which step could not be followed.
    pub fn visit(
        &self,
        body: &mut Value,
        create: Option<Create>,
        set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
    ) -> Result<(), String> {
        walk(body, &self.path, self.create, create, set).map_err(|e| format!("field `{}`: {e}", self.path.join("/")))
    }
}

impl FieldSpec {
    /// The JSON pointers of the fields this spec reaches in `body` (nothing is created; a step
    /// marked as a list turns a null into an empty list, as [`FieldSpec::visit`] does).
    pub fn pointers(&self, body: &mut Value) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut path: Vec<String> = Vec::new();
        pointers_in(body, &self.path, &mut path, &mut out)
            .map_err(|e| format!("field `{}`: {e}", self.path.join("/")))?;
        Ok(out)
    }
}

fn pointers_in(node: &mut Value, path: &[String], at: &mut Vec<String>, out: &mut Vec<String>) -> Result<(), String> {
    let Some((step, rest)) = path.split_first() else {
        let mut pointer = String::new();
        for s in at.iter() {
            crate::pointer::push(&mut pointer, s);
        }
        out.push(pointer);
        return Ok(());
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                at.push(i.to_string());
                pointers_in(item, path, at, out)?;
                at.pop();
            }
            Ok(())
        }
        Value::Object(map) => {
            let (name, is_list) = match step.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (step.as_str(), false),
            };
            if name.is_empty() || name == "*" {
                return Err(format!("`{step}` is not a field name"));
            }
            let Some(child) = map.get_mut(name) else { return Ok(()) };
            if child.is_null() && is_list {
                *child = Value::Array(Vec::new());
            }
            if child.is_null() && !rest.is_empty() {
                return Ok(());
            }
            at.push(name.to_string());
            let result = pointers_in(child, rest, at, out);
            at.pop();
            result
        }
        _ => Err(format!("expected a mapping or a list at `{step}`, found a scalar")),
    }
}

fn walk(
    node: &mut Value,
    path: &[String],
    may_create: bool,
    create: Option<Create>,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    let Some((step, rest)) = path.split_first() else {
        return set(node);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => items.iter_mut().try_for_each(|item| walk(item, path, may_create, create, set)),
        Value::Object(map) => {
            let (name, is_list) = match step.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (step.as_str(), false),
            };
            if name.is_empty() {
                return Err("a path step is empty".into());
            }
            if name == "*" {
                return Err("`*` is not supported in field spec paths; name the field".into());
            }
            let creating = match create {
                Some(kind) if may_create && !is_list => Some(if rest.is_empty() { kind } else { Create::Map }),
                _ => None,
            };
            let child = match (map.contains_key(name), creating) {
                (true, _) => map.get_mut(name),
                (false, None) => None,
                (false, Some(_)) => Some(map.entry(name.to_string()).or_insert(Value::Null)),
            };
            let Some(child) = child else { return Ok(()) };
            // As kustomize does: a step marked as a list turns a null into an empty list.
            if child.is_null() && is_list {
                *child = Value::Array(Vec::new());
            }
            if child.is_null() && creating == Some(Create::Map) {
                *child = Value::Object(Map::new());
            }
            if child.is_null() && !rest.is_empty() {
                return Ok(());
            }
            walk(child, rest, may_create, create, set)
        }
        _ => Err(format!("expected a mapping or a list at `{step}`, found a scalar")),
    }
}

/// Splits a field-spec path at `/`, except where the slash is escaped as `\/`.
pub fn split_path(path: &str) -> Vec<String> {
    let path = path.strip_prefix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match out.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(part);
            }
            _ => out.push(part.to_string()),
        }
    }
    out
}

/// One `nameReference` entry: fields of other kinds that hold the name of a `kind` object.
#[derive(Debug, Clone)]
pub struct NameReference {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub fields: Vec<FieldSpec>,
}

/// The field specs every transformer uses, by transformer.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_reference: Vec<NameReference>,
    pub var_reference: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

const BUILTIN: &str = include_str!("builtin-config.yaml");
const BUILTIN_FILE: &str = "src/render/kustomize/builtin-config.yaml";

impl Config {
    /// kustomize's defaults.
    pub fn builtin() -> &'static Config {
        static CONFIG: OnceLock<Config> = OnceLock::new();
        CONFIG.get_or_init(|| {
            let mut config = Config::default();
            // The file is generated and checked by a unit test; a failure here is a build defect.
            config
                .merge_file(BUILTIN_FILE, BUILTIN)
                .expect("the bundled kustomize configuration parses (see the unit test)");
            config
        })
    }

    /// Merges a transformer configuration file (kustomize's `configurations:` format).
    pub fn merge_file(&mut self, file: &str, text: &str) -> Result<(), Error> {
        let root = Node::parse_yaml12(file, text)?;
        let r = Reader { file };
        const KEYS: [&str; 11] = [
            "namePrefix",
            "nameSuffix",
            "namespace",
            "commonLabels",
            "labels",
            "templateLabels",
            "commonAnnotations",
            "nameReference",
            "varReference",
            "images",
            "replicas",
        ];
        for (key, value) in r.map(&root, "a transformer configuration", &KEYS)? {
            let specs = |v: &Node| -> Result<Vec<FieldSpec>, Error> {
                r.list(v, &key.name)?.iter().map(|item| FieldSpec::read(&r, item)).collect()
            };
            let into = match key.name.as_str() {
                "namePrefix" => &mut self.name_prefix,
                "nameSuffix" => &mut self.name_suffix,
                "namespace" => &mut self.namespace,
                "commonLabels" => &mut self.common_labels,
                "labels" => &mut self.labels,
                "templateLabels" => &mut self.template_labels,
                "commonAnnotations" => &mut self.common_annotations,
                "varReference" => &mut self.var_reference,
                "images" => &mut self.images,
                "replicas" => &mut self.replicas,
                _ => {
                    for item in r.list(value, "nameReference")? {
                        let map = r.map(item, "a nameReference entry", &["kind", "group", "version", "fieldSpecs"])?;
                        let text = |name: &str| -> Result<String, Error> {
                            Ok(field(map, name)
                                .map(|v| r.string(v, name))
                                .transpose()?
                                .map(|l| l.value)
                                .unwrap_or_default())
                        };
                        let fields = match field(map, "fieldSpecs") {
                            Some(v) => specs(v)?,
                            None => Vec::new(),
                        };
                        self.add_name_reference(NameReference {
                            group: text("group")?,
                            version: text("version")?,
                            kind: text("kind")?,
                            fields,
                        })
                        .map_err(|e| r.at(item).error(e))?;
                    }
                    continue;
                }
            };
            merge_specs(into, specs(value)?).map_err(|e| r.at(value).error(e))?;
        }
        Ok(())
    }

    pub fn add_name_reference(&mut self, entry: NameReference) -> Result<(), String> {
        match self
            .name_reference
            .iter_mut()
            .find(|n| n.kind == entry.kind && n.group == entry.group && n.version == entry.version)
        {
            Some(existing) => merge_specs(&mut existing.fields, entry.fields),
            None => {
                self.name_reference.push(entry);
                Ok(())
            }
        }
    }

    /// Merges the configuration of an included kustomization.
    pub fn merge(&mut self, other: &Config) -> Result<(), String> {
        merge_specs(&mut self.name_prefix, other.name_prefix.clone())?;
        merge_specs(&mut self.name_suffix, other.name_suffix.clone())?;
        merge_specs(&mut self.namespace, other.namespace.clone())?;
        merge_specs(&mut self.common_labels, other.common_labels.clone())?;
        merge_specs(&mut self.labels, other.labels.clone())?;
        merge_specs(&mut self.template_labels, other.template_labels.clone())?;
        merge_specs(&mut self.common_annotations, other.common_annotations.clone())?;
        merge_specs(&mut self.var_reference, other.var_reference.clone())?;
        merge_specs(&mut self.images, other.images.clone())?;
        merge_specs(&mut self.replicas, other.replicas.clone())?;
        for entry in &other.name_reference {
            self.add_name_reference(entry.clone())?;
        }
        Ok(())
    }
}

/// Adds specs not already present (kustomize's `MergeAll`): a spec is present when one with the
/// same path is for kinds it selects (a generic spec is covered by a kind-specific one); the two
/// must then agree on `create`.
pub fn merge_specs(into: &mut Vec<FieldSpec>, specs: Vec<FieldSpec>) -> Result<(), String> {
    for spec in specs {
        let selects = |s: &FieldSpec| {
            (spec.group.is_empty() || spec.group == s.group)
                && (spec.version.is_empty() || spec.version == s.version)
                && (spec.kind.is_empty() || spec.kind == s.kind)
        };
        match into.iter().find(|s| s.path == spec.path && selects(s)) {
            Some(s) if s.create != spec.create => {
                return Err(format!(
                    "conflicting field specs for `{}`: one creates the field and one does not",
                    spec.path.join("/")
                ));
            }
            Some(_) => {}
            None => into.push(spec),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_configuration_parses() {
        let mut config = Config::default();
        config.merge_file(BUILTIN_FILE, BUILTIN).expect("test input is valid");
        assert!(config.common_labels.iter().any(|s| s.path == ["spec", "selector", "matchLabels"]));
        assert!(config.name_reference.iter().any(|n| n.kind == "ConfigMap" && n.fields.len() > 10));
        assert_eq!(config.images.len(), 4);
    }

    #[test]
    fn paths_split_at_unescaped_slashes() {
        assert_eq!(split_path("metadata/annotations/a.io\\/b"), ["metadata", "annotations", "a.io/b"]);
        assert_eq!(split_path("/spec/x"), ["spec", "x"]);
    }

    #[test]
    fn a_walk_crosses_lists_and_creates_maps() {
        let spec = FieldSpec {
            group: String::new(),
            version: String::new(),
            kind: String::new(),
            path: split_path("spec/containers[]/env/x"),
            create: true,
        };
        let mut body = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "env": {}}]}});
        spec.visit(&mut body, Some(Create::Scalar), &mut |v| {
            *v = Value::String("set".into());
            Ok(())
        })
        .expect("test input is valid");
        assert_eq!(body["spec"]["containers"][0]["env"]["x"], "set");
        assert_eq!(body["spec"]["containers"][1]["env"]["x"], "set");
    }
}
