//! JSON Schema validation. Where a kind's schema comes from, first match wins: the repository's
//! own schemas mapped in `cairn.yaml`, CRDs in the same rendered environment (so custom resources
//! are checked before their CRD exists in any cluster), then the bundled schemas of the built-in
//! Kubernetes kinds. Validators are compiled once per run and shared by all objects; nothing is
//! ever fetched from the network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Resource, ValidationError};
use serde_json::{Map, Value, json};

use super::{Code, Level, Unplaced};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::render::{Object, Rendered};
use crate::repo::Snapshot;

/// The bundled schemas of the built-in kinds; see schemas/README.md.
const KUBERNETES_BUNDLE: &str = include_str!("../../schemas/kubernetes/v1.37.0.json");
const KUBERNETES_URI: &str = "https://kubernetes.io/api/_definitions.json";
pub const KUBERNETES_VERSION: &str = "1.37.0";

/// The API versions of the bundled schemas, as helm's `--api-versions` takes them (`apps/v1` and
/// `apps/v1/Deployment`): what the local target tells a chart it serves.
pub fn bundled_api_versions() -> Vec<String> {
    static VERSIONS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    VERSIONS
        .get_or_init(|| {
            #[derive(serde::Deserialize)]
            struct Kinds {
                kinds: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
            }
            let Ok(bundle) = serde_json::from_str::<Kinds>(KUBERNETES_BUNDLE) else { return Vec::new() };
            let mut out = std::collections::BTreeSet::new();
            for gvk in bundle.kinds.keys() {
                let Some((gv, kind)) = gvk.rsplit_once('/') else { continue };
                // Every group has these two; they are not kinds a chart asks about.
                if kind == "DeleteOptions" || kind == "WatchEvent" || kind.ends_with("List") {
                    continue;
                }
                out.insert(gv.to_string());
                out.insert(gvk.clone());
            }
            out.into_iter().collect()
        })
        .clone()
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Reject properties a schema does not declare.
    pub strict: bool,
    /// An object with no schema is an error instead of a warning.
    pub require_schemas: bool,
}

/// A compiled schema and where it came from (for messages).
#[derive(Clone)]
struct Compiled {
    validator: Arc<jsonschema::Validator>,
    origin: String,
}

/// Schemas for one run: the repository's own and the bundled ones, compiled on first use.
pub struct Schemas {
    options: Options,
    repo: HashMap<String, Compiled>,
    kubernetes: Kubernetes,
}

struct Kubernetes {
    kinds: HashMap<String, String>,
    registry: jsonschema::Registry<'static>,
    compiled: Mutex<HashMap<String, Compiled>>,
}

/// The validators for the kinds of one environment.
pub struct EnvironmentSchemas {
    options: Options,
    by_kind: HashMap<String, Resolution>,
}

/// What a kind is checked against.
#[derive(Clone)]
enum Resolution {
    Schema(Compiled),
    /// A CRD without a schema (or preserving unknown fields): any content is accepted.
    AnyContent,
    Missing,
}

impl From<Option<Compiled>> for Resolution {
    fn from(c: Option<Compiled>) -> Self {
        c.map_or(Resolution::AnyContent, Resolution::Schema)
    }
}

fn kind_key(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

fn object_key(object: &Object) -> String {
    let api_version = object.body.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    kind_key(api_version, &object.id.kind)
}

fn compile_options() -> jsonschema::ValidationOptions<'static> {
    // Kubernetes' formats (int32, quantity, byte, …) do not follow JSON Schema's format
    // vocabulary; the API server checks them itself.
    jsonschema::options().should_validate_formats(false)
}

impl Schemas {
    /// Loads and compiles the repository's schemas (errors name the file) and prepares the
    /// bundled ones.
    pub fn load(snapshot: &Snapshot, config: &Config, options: Options) -> Result<Schemas> {
        let mut files: Vec<(String, Value)> = Vec::new();
        for mapping in &config.schemas {
            let bytes = snapshot.read(&mapping.schema)?.ok_or_else(|| Error::Config {
                message: format!(
                    "cairn.yaml:{}: schema file `{}` for {} {} does not exist",
                    mapping.line, mapping.schema, mapping.api_version, mapping.kind
                ),
            })?;
            let mut value = parse_schema_file(&mapping.schema, &bytes)?;
            if options.strict {
                strictify(&mut value);
            }
            files.push((mapping.schema.clone(), value));
        }
        // Schemas may `$ref` each other by relative path; nothing else is ever fetched.
        let offline = OfflineFiles(Arc::new(files.iter().map(|(p, v)| (file_uri(p), v.clone())).collect()));
        let mut repo = HashMap::new();
        for (mapping, (path, value)) in config.schemas.iter().zip(&files) {
            // The repository's own schemas use formats (`email`, `uri`, …) as their authors
            // mean them; the bundled Kubernetes ones do not (see compile_options).
            let validator = compile_options()
                .should_validate_formats(true)
                .with_retriever(offline.clone())
                .with_base_uri(file_uri(path))
                .build(value)
                .map_err(|e| schema_error(path, &e))?;
            repo.insert(
                kind_key(&mapping.api_version, &mapping.kind),
                Compiled { validator: Arc::new(validator), origin: path.clone() },
            );
        }
        Ok(Schemas { options, repo, kubernetes: Kubernetes::load(options.strict)? })
    }

    /// Resolves and compiles the schema of every kind present in an environment, including the
    /// CRDs that environment itself defines.
    pub fn for_environment(&self, rendered: &Rendered) -> Result<EnvironmentSchemas> {
        let crds = crd_schemas(rendered, self.options.strict)?;
        let mut by_kind = HashMap::new();
        for object in &rendered.objects {
            let key = object_key(object);
            if by_kind.contains_key(&key) {
                continue;
            }
            let resolved = match (self.repo.get(&key), crds.get(&key)) {
                (Some(c), _) => Resolution::Schema(c.clone()),
                (None, Some(crd)) => crd.clone().into(),
                (None, None) => self.kubernetes.get(&key)?.map_or(Resolution::Missing, Resolution::Schema),
            };
            by_kind.insert(key, resolved);
        }
        Ok(EnvironmentSchemas { options: self.options, by_kind })
    }
}

/// Serves the repository's mapped schema files to `$ref`s and refuses everything else: validation
/// never touches the network.
#[derive(Clone)]
struct OfflineFiles(Arc<HashMap<String, Value>>);

impl jsonschema::Retrieve for OfflineFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let wanted = uri.as_str().split('#').next().unwrap_or_default();
        self.0.get(wanted).cloned().ok_or_else(|| {
            format!("`{wanted}` is not a schema file mapped in cairn.yaml and is not fetched: references are resolved offline only").into()
        })
    }
}

/// Absent from the crd map means "not a CRD kind"; present with `None` means the CRD accepts any
/// content (no schema, or `x-kubernetes-preserve-unknown-fields` at the top).
type CrdSchemas = HashMap<String, Option<Compiled>>;

impl Kubernetes {
    fn load(strict: bool) -> Result<Kubernetes> {
        let bundle: Value = serde_json::from_str(KUBERNETES_BUNDLE)
            .map_err(|e| Error::Config { message: format!("the bundled Kubernetes schemas are corrupt: {e}") })?;
        let kinds: HashMap<String, String> = bundle
            .get("kinds")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let mut definitions = bundle;
        if let Some(map) = definitions.as_object_mut() {
            map.remove("kinds");
        }
        if strict {
            strictify(&mut definitions);
        }
        let registry = jsonschema::Registry::new()
            .add(KUBERNETES_URI, Resource::from_contents(definitions))
            .and_then(|b| b.prepare())
            .map_err(|e| Error::Config { message: format!("the bundled Kubernetes schemas cannot be used: {e}") })?;
        Ok(Kubernetes { kinds, registry, compiled: Mutex::new(HashMap::new()) })
    }

    fn get(&self, key: &str) -> Result<Option<Compiled>> {
        let Some(definition) = self.kinds.get(key) else {
            return Ok(None);
        };
        if let Some(c) = self.compiled.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(Some(c));
        }
        let schema = json!({ "$ref": format!("{KUBERNETES_URI}#/$defs/{definition}") });
        let validator = compile_options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&schema)
            .map_err(|e| Error::Config { message: format!("bundled schema for {key}: {e}") })?;
        let compiled = Compiled {
            validator: Arc::new(validator),
            origin: format!("Kubernetes {KUBERNETES_VERSION} {definition}"),
        };
        if let Ok(mut m) = self.compiled.lock() {
            m.insert(key.to_string(), compiled.clone());
        }
        Ok(Some(compiled))
    }
}

impl EnvironmentSchemas {
    /// Schema findings for one object.
    pub(crate) fn check(&self, object: &Object) -> Vec<Unplaced> {
        let key = object_key(object);
        match self.by_kind.get(&key) {
            Some(Resolution::Schema(compiled)) => {
                if compiled.validator.is_valid(&object.body) {
                    return Vec::new();
                }
                compiled.validator.iter_errors(&object.body).flat_map(|e| findings_for(&e, &compiled.origin)).collect()
            }
            Some(Resolution::AnyContent) => Vec::new(),
            Some(Resolution::Missing) | None => vec![Unplaced {
                code: Code::SchemaMissing,
                severity: if self.options.require_schemas { Level::Error } else { Level::Warning },
                pointer: String::new(),
                schema_path: String::new(),
                message: format!(
                    "no schema for `{key}`: map one in cairn.yaml `schemas:`, add its CRD to the environment, or check apiVersion and kind"
                ),
            }],
        }
    }
}

/// Turns one validation error into findings with a stable code and a message a person can act
/// on. Messages never quote the offending value (it may be a secret).
fn findings_for(error: &ValidationError<'_>, origin: &str) -> Vec<Unplaced> {
    let pointer = error.instance_path().as_str().to_string();
    let schema_path = error.schema_path().as_str().to_string();
    let at = if pointer.is_empty() { "the object".to_string() } else { format!("`{pointer}`") };
    let one = |code: Code, message: String| {
        vec![Unplaced {
            code,
            severity: Level::Error,
            pointer: pointer.clone(),
            schema_path: schema_path.clone(),
            message,
        }]
    };
    match error.kind() {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(set) => set
                    .iter()
                    .filter(|t| t.to_string() != "null")
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            one(Code::SchemaType, format!("{at} must be {expected}, found {}", type_name(error.instance())))
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map_or_else(|| property.to_string(), str::to_string);
            one(Code::SchemaRequired, format!("{at} is missing required field `{name}` ({origin})"))
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|field| Unplaced {
                code: Code::SchemaUnknownField,
                severity: Level::Error,
                pointer: format!("{pointer}/{}", crate::pointer::escape(field)),
                schema_path: schema_path.clone(),
                message: format!(
                    "unknown field `{field}` in {at}: {origin} does not declare it (check the spelling and indentation)"
                ),
            })
            .collect(),
        ValidationErrorKind::Enum { options } => one(Code::SchemaEnum, format!("{at} must be one of {options}")),
        ValidationErrorKind::Constant { expected_value } => {
            one(Code::SchemaEnum, format!("{at} must be {expected_value}"))
        }
        ValidationErrorKind::Pattern { pattern } => {
            one(Code::SchemaPattern, format!("{at} must match the pattern `{pattern}`"))
        }
        ValidationErrorKind::Format { format } => one(Code::SchemaFormat, format!("{at} must be a valid `{format}`")),
        ValidationErrorKind::Minimum { limit } => one(Code::SchemaRange, format!("{at} must be at least {limit}")),
        ValidationErrorKind::Maximum { limit } => one(Code::SchemaRange, format!("{at} must be at most {limit}")),
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            one(Code::SchemaRange, format!("{at} must be greater than {limit}"))
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            one(Code::SchemaRange, format!("{at} must be less than {limit}"))
        }
        ValidationErrorKind::MinLength { limit } => {
            one(Code::SchemaRange, format!("{at} must be at least {limit} characters long"))
        }
        ValidationErrorKind::MaxLength { limit } => {
            one(Code::SchemaRange, format!("{at} must be at most {limit} characters long"))
        }
        ValidationErrorKind::MinItems { limit } => {
            one(Code::SchemaRange, format!("{at} must have at least {limit} items"))
        }
        ValidationErrorKind::MaxItems { limit } => {
            one(Code::SchemaRange, format!("{at} must have at most {limit} items"))
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            one(Code::SchemaOneOf, format!("{at} matches none of the allowed forms ({})", error.masked()))
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            one(Code::SchemaOneOf, format!("{at} matches more than one of the allowed forms"))
        }
        _ => one(Code::SchemaInvalid, format!("{at}: {}", error.masked())),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn file_uri(path: &str) -> String {
    format!("file:///{path}")
}

fn schema_error(file: &str, e: &ValidationError<'_>) -> Error {
    Error::Config { message: format!("{file}: schema cannot be compiled: {e}") }
}

/// Reads a schema file: JSON, or YAML for `.yaml`/`.yml`.
fn parse_schema_file(path: &str, bytes: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::Document {
        file: path.to_string(),
        line: 1,
        message: "not valid UTF-8".into(),
    })?;
    let value: Value = if path.ends_with(".yaml") || path.ends_with(".yml") {
        crate::yaml::Node::parse(path, text)?.to_json()
    } else {
        serde_json::from_str(text).map_err(|e| Error::Yaml {
            file: path.to_string(),
            line: e.line() as u64,
            column: e.column() as u64,
            message: format!("invalid JSON: {e}"),
        })?
    };
    if !value.is_object() && !value.is_boolean() {
        return Err(Error::Document {
            file: path.to_string(),
            line: 1,
            message: "a JSON Schema must be an object (or true/false)".into(),
        });
    }
    Ok(value)
}

/// Compiles the schemas of every CRD in the environment, keyed by "group/version/Kind".
fn crd_schemas(rendered: &Rendered, strict: bool) -> Result<CrdSchemas> {
    let mut out = CrdSchemas::new();
    for object in &rendered.objects {
        if object.id.group != "apiextensions.k8s.io" || object.id.kind != "CustomResourceDefinition" {
            continue;
        }
        let source =
            object.sources.last().cloned().unwrap_or_else(|| crate::render::SourceRef { file: String::new(), line: 0 });
        let bad = |message: String| Error::Document {
            file: source.file.clone(),
            line: source.line,
            message: format!("CustomResourceDefinition `{}`: {message}", object.id.name),
        };
        let spec = object.body.get("spec").ok_or_else(|| bad("missing `spec`".into()))?;
        let group = spec.get("group").and_then(Value::as_str).ok_or_else(|| bad("missing `spec.group`".into()))?;
        let kind = spec
            .pointer("/names/kind")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing `spec.names.kind`".into()))?;
        let versions = spec.get("versions").and_then(Value::as_array).cloned().unwrap_or_default();
        // apiextensions v1beta1 kept one schema for all versions in `spec.validation`.
        let shared = spec.pointer("/validation/openAPIV3Schema");
        let mut names: Vec<(String, Option<&Value>)> = versions
            .iter()
            .filter_map(|v| {
                Some((v.get("name")?.as_str()?.to_string(), v.pointer("/schema/openAPIV3Schema").or(shared)))
            })
            .collect();
        if names.is_empty()
            && let Some(version) = spec.get("version").and_then(Value::as_str)
        {
            names.push((version.to_string(), shared));
        }
        if names.is_empty() {
            return Err(bad("no `spec.versions`".into()));
        }
        for (version, schema) in names {
            let key = kind_key(&format!("{group}/{version}"), kind);
            let compiled = match schema {
                None => None,
                Some(schema) => {
                    if !schema.is_object() {
                        return Err(bad(format!("version `{version}`: `openAPIV3Schema` must be a mapping")));
                    }
                    let mut schema = openapi_to_json_schema(schema);
                    if strict {
                        allow_object_envelope(&mut schema);
                        strictify(&mut schema);
                    }
                    let validator = compile_options()
                        .with_draft(Draft::Draft4)
                        .build(&schema)
                        .map_err(|e| bad(format!("version `{version}`: schema cannot be compiled: {e}")))?;
                    Some(Compiled {
                        validator: Arc::new(validator),
                        origin: format!("CRD {} ({}:{})", object.id.name, source.file, source.line),
                    })
                }
            };
            out.insert(key, compiled);
        }
    }
    Ok(out)
}

/// Kubernetes' structural-schema extensions in JSON Schema terms: `nullable` allows null,
/// `x-kubernetes-int-or-string` allows an integer or a string.
fn openapi_to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let converted = match key.as_str() {
                    "properties" | "patternProperties" | "definitions" => match value {
                        Value::Object(children) => Value::Object(
                            children.iter().map(|(k, v)| (k.clone(), openapi_to_json_schema(v))).collect(),
                        ),
                        other => other.clone(),
                    },
                    "items" | "additionalProperties" | "not" => openapi_to_json_schema(value),
                    "allOf" | "anyOf" | "oneOf" => match value {
                        Value::Array(items) => Value::Array(items.iter().map(openapi_to_json_schema).collect()),
                        other => other.clone(),
                    },
                    _ => value.clone(),
                };
                out.insert(key.clone(), converted);
            }
            if out.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                out.remove("type");
                out.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
            }
            if out.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = out.get("type").cloned()
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// A CRD's schema often leaves out the fields every object has; strict mode must not flag them.
fn allow_object_envelope(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    let properties = map.entry("properties").or_insert_with(|| json!({}));
    if let Some(props) = properties.as_object_mut() {
        props.entry("apiVersion").or_insert_with(|| json!({"type": "string"}));
        props.entry("kind").or_insert_with(|| json!({"type": "string"}));
        props.entry("metadata").or_insert_with(|| json!({"type": "object"}));
    }
}

/// Strict mode: every object schema that lists its properties and says nothing about others
/// rejects undeclared ones, unless it preserves unknown fields. Walks schema keywords only, so a
/// property that happens to be called `properties` is not mistaken for a keyword.
pub(crate) fn strictify(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !map.contains_key("patternProperties")
        && !map.contains_key("unevaluatedProperties")
        && !preserves
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Some(children) = value.as_object_mut() {
                    children.values_mut().for_each(strictify);
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "contains"
            | "propertyNames"
            | "if"
            | "then"
            | "else"
            | "unevaluatedItems"
            | "additionalItems" => strictify(value),
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Some(items) = value.as_array_mut() {
                    items.iter_mut().for_each(strictify);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictify_walks_keywords_not_property_names() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "properties": {"type": "object", "properties": {"a": {}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"b": {}}},
                "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"c": {}}}}
            }
        });
        strictify(&mut schema);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["properties"]["additionalProperties"], false);
        assert!(schema["properties"].get("additionalProperties").is_none(), "the properties map is not a schema");
        assert!(schema["properties"]["free"].get("additionalProperties").is_none());
        assert_eq!(schema["properties"]["map"]["additionalProperties"]["additionalProperties"], false);
    }

    #[test]
    fn openapi_extensions_become_json_schema() {
        let converted = openapi_to_json_schema(&json!({
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": true},
                "note": {"type": "string", "nullable": true}
            }
        }));
        assert_eq!(converted["properties"]["port"]["anyOf"], json!([{"type": "integer"}, {"type": "string"}]));
        assert_eq!(converted["properties"]["note"]["type"], json!(["string", "null"]));
    }

    #[test]
    fn bundled_kubernetes_schemas_validate_a_deployment() {
        let k8s = Kubernetes::load(false).expect("bundle loads");
        let compiled = k8s.get("apps/v1/Deployment").expect("compiles").expect("known kind");
        let good = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(compiled.validator.is_valid(&good));
        let mut bad = good.clone();
        bad["spec"]["replicas"] = json!("two");
        let errors: Vec<Unplaced> =
            compiled.validator.iter_errors(&bad).flat_map(|e| findings_for(&e, &compiled.origin)).collect();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].code, errors[0].pointer.as_str()), (Code::SchemaType, "/spec/replicas"));
        assert_eq!(errors[0].message, "`/spec/replicas` must be integer, found a string");
        assert!(k8s.get("example.org/v1/Nothing").expect("no error").is_none());
    }
}
