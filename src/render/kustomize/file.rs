//! `kustomization.yaml`: read once into a [`Kustomization`] that the build trusts. Every field
//! kustomize knows is either read with its meaning or refused by name; nothing is skipped.

use crate::error::Error;
use crate::yaml::{Key, Node, NodeValue};

use super::fieldspec::FieldSpec;
use super::selector::Selector;

/// The names kustomize looks for in a directory, in its order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Where something was written: a file and a position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl Loc {
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Yaml { file: self.file.clone(), line: self.line, column: self.column, message: message.into() }
    }
}

/// A string value and where it was written.
#[derive(Debug, Clone)]
pub struct Located {
    pub value: String,
    pub at: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kustomization,
    Component,
}

#[derive(Debug, Clone)]
pub struct Label {
    pub pairs: Vec<(String, String)>,
    pub include_selectors: bool,
    pub include_templates: bool,
    pub fields: Vec<FieldSpec>,
}

/// A `patches` entry (also what `patchesStrategicMerge` and `patchesJson6902` entries become).
#[derive(Debug, Clone)]
pub struct Patch {
    /// A file holding the patch, relative to the kustomization.
    pub path: Option<Located>,
    /// An inline patch.
    pub inline: Option<Located>,
    pub target: Option<Selector>,
    pub allow_name_change: bool,
    pub allow_kind_change: bool,
    pub at: Loc,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
    pub tag_suffix: Option<String>,
    pub at: Loc,
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub name: String,
    pub count: i64,
    pub at: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Create,
    Merge,
    Replace,
}

/// How `valuesInline` combines with the values file (kustomize's `valuesMerge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValuesMerge {
    /// Inline values win (the default).
    Override,
    /// The file's values win.
    Merge,
    /// Only the inline values (over the chart's defaults).
    Replace,
}

/// A `helmCharts` entry (kustomize's HelmChartInflationGenerator).
#[derive(Debug, Clone)]
pub struct HelmChartEntry {
    pub name: String,
    pub version: Option<String>,
    pub repo: Option<String>,
    pub release_name: String,
    pub namespace: Option<String>,
    pub values_file: Option<Located>,
    pub additional_values_files: Vec<Located>,
    pub values_inline: Option<serde_json::Value>,
    pub values_merge: ValuesMerge,
    pub include_crds: bool,
    pub skip_hooks: bool,
    pub skip_tests: bool,
    pub api_versions: Vec<String>,
    pub kube_version: Option<String>,
    pub at: Loc,
}

#[derive(Debug, Clone, Default)]
pub struct GeneratorOptions {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Generator {
    pub name: String,
    pub namespace: Option<String>,
    pub behavior: Behavior,
    pub literals: Vec<Located>,
    pub files: Vec<Located>,
    pub envs: Vec<Located>,
    pub options: GeneratorOptions,
    /// Secrets only: the `type` (Opaque when absent).
    pub secret_type: Option<String>,
    pub at: Loc,
}

#[derive(Debug, Clone)]
pub struct Kustomization {
    /// The kustomization file, relative to the configuration root.
    pub file: String,
    /// Its directory ("" for the root).
    pub dir: String,
    pub kind: Kind,
    pub resources: Vec<Located>,
    pub components: Vec<Located>,
    pub crds: Vec<Located>,
    pub configurations: Vec<Located>,
    pub namespace: Option<Located>,
    pub name_prefix: Option<Located>,
    pub name_suffix: Option<Located>,
    pub common_labels: Vec<(String, String)>,
    pub labels: Vec<Label>,
    pub common_annotations: Vec<(String, String)>,
    /// `patchesStrategicMerge` entries, as patches without a target.
    pub patches_strategic_merge: Vec<Patch>,
    pub patches: Vec<Patch>,
    pub patches_json6902: Vec<Patch>,
    pub images: Vec<Image>,
    pub replicas: Vec<Replica>,
    pub config_maps: Vec<Generator>,
    pub secrets: Vec<Generator>,
    pub generator_options: Option<GeneratorOptions>,
    /// `replacements` entries as written (inline, or `path:` naming a file of them).
    pub replacements: Vec<Node>,
    pub vars: Vec<super::vars::Var>,
    pub transformers: Vec<Located>,
    pub generators: Vec<Located>,
    pub openapi: Option<Located>,
    /// `helmCharts`, inflated with the real helm as `kustomize build --enable-helm` does.
    pub helm_charts: Vec<HelmChartEntry>,
    /// `helmGlobals.chartHome` (default `charts`, relative to the kustomization).
    pub chart_home: Option<Located>,
}

/// Every field of a kustomization and whether cairn reads it.
const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "imageTags",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "replacements",
    "vars",
    "sortOptions",
    "openapi",
    "transformers",
    "generators",
    "buildMetadata",
    "helmCharts",
    "helmGlobals",
    "helmChartInflationGenerator",
    "validators",
];

/// Parses the kustomization file `file` (relative to the configuration root).
pub fn parse(file: &str, text: &str) -> Result<Kustomization, Error> {
    let root = Node::parse_yaml12(file, text)?;
    let r = Reader { file };
    let entries = match &root.value {
        NodeValue::Map(entries) => entries.as_slice(),
        NodeValue::Null => &[],
        _ => return Err(r.at(&root).error(format!("a kustomization is a mapping, found {}", root.kind_name()))),
    };
    let dir = file.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
    let mut k = Kustomization {
        file: file.to_string(),
        dir,
        kind: Kind::Kustomization,
        resources: Vec::new(),
        components: Vec::new(),
        crds: Vec::new(),
        configurations: Vec::new(),
        namespace: None,
        name_prefix: None,
        name_suffix: None,
        common_labels: Vec::new(),
        labels: Vec::new(),
        common_annotations: Vec::new(),
        patches_strategic_merge: Vec::new(),
        patches: Vec::new(),
        patches_json6902: Vec::new(),
        images: Vec::new(),
        replicas: Vec::new(),
        config_maps: Vec::new(),
        secrets: Vec::new(),
        generator_options: None,
        replacements: Vec::new(),
        vars: Vec::new(),
        transformers: Vec::new(),
        generators: Vec::new(),
        openapi: None,
        helm_charts: Vec::new(),
        chart_home: None,
    };
    let mut bases = Vec::new();
    for (key, value) in entries {
        match key.name.as_str() {
            "apiVersion" => {
                let v = r.string(value, "apiVersion")?;
                if !v.value.starts_with("kustomize.config.k8s.io/") {
                    return Err(v.at.error(format!(
                        "apiVersion `{}` is not a kustomization's; use kustomize.config.k8s.io/v1beta1 (or v1alpha1 for a Component)",
                        v.value
                    )));
                }
            }
            "kind" => {
                let v = r.string(value, "kind")?;
                k.kind = match v.value.as_str() {
                    "Kustomization" => Kind::Kustomization,
                    "Component" => Kind::Component,
                    other => {
                        return Err(v.at.error(format!(
                            "kind `{other}` is not a kustomization's; use Kustomization or Component"
                        )));
                    }
                };
            }
            // kustomize ignores a kustomization's own metadata (its name is a label for tools).
            "metadata" | "buildMetadata" => {}
            "resources" => k.resources = r.strings(value, "resources")?,
            "bases" => bases = r.strings(value, "bases")?,
            "components" => k.components = r.strings(value, "components")?,
            "crds" => k.crds = r.strings(value, "crds")?,
            "configurations" => k.configurations = r.strings(value, "configurations")?,
            "namespace" => k.namespace = Some(r.string(value, "namespace")?).filter(|v| !v.value.is_empty()),
            "namePrefix" => k.name_prefix = Some(r.string(value, "namePrefix")?).filter(|v| !v.value.is_empty()),
            "nameSuffix" => k.name_suffix = Some(r.string(value, "nameSuffix")?).filter(|v| !v.value.is_empty()),
            "commonLabels" => k.common_labels = r.string_map(value, "commonLabels")?,
            "commonAnnotations" => k.common_annotations = r.string_map(value, "commonAnnotations")?,
            "labels" => {
                for item in r.list(value, "labels")? {
                    k.labels.push(r.label(item)?);
                }
            }
            "patches" => {
                for item in r.list(value, "patches")? {
                    k.patches.push(r.patch(item, "patches")?);
                }
            }
            "patchesJson6902" => {
                for item in r.list(value, "patchesJson6902")? {
                    let patch = r.patch(item, "patchesJson6902")?;
                    if patch.target.is_none() {
                        return Err(r.at(item).error("a patchesJson6902 entry needs a `target`"));
                    }
                    k.patches_json6902.push(patch);
                }
            }
            "patchesStrategicMerge" => {
                for item in r.strings(value, "patchesStrategicMerge")? {
                    // kustomize's rule: an entry that names a file is the file, anything else is
                    // an inline patch (the build tells them apart by whether it is a document).
                    let at = item.at.clone();
                    let (path, inline) = if item.value.contains('\n') || item.value.trim_start().starts_with('{') {
                        (None, Some(item))
                    } else {
                        (Some(item), None)
                    };
                    k.patches_strategic_merge.push(Patch {
                        path,
                        inline,
                        target: None,
                        allow_name_change: false,
                        allow_kind_change: false,
                        at,
                    });
                }
            }
            "images" | "imageTags" => {
                for item in r.list(value, &key.name)? {
                    k.images.push(r.image(item)?);
                }
            }
            "replicas" => {
                for item in r.list(value, "replicas")? {
                    let map = r.map(item, "a replicas entry", &["name", "count"])?;
                    let name = r.required_string(item, map, "name", "a replicas entry")?;
                    let count = match field(map, "count") {
                        Some(node) => match &node.value {
                            NodeValue::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => n.as_i64().unwrap_or(0),
                            _ => {
                                return Err(r.at(node).error(format!(
                                    "`count` is a whole number of replicas, found {}",
                                    node.kind_name()
                                )));
                            }
                        },
                        None => return Err(r.at(item).error("a replicas entry needs `count`")),
                    };
                    k.replicas.push(Replica { name, count, at: r.at(item) });
                }
            }
            "configMapGenerator" => {
                for item in r.list(value, "configMapGenerator")? {
                    k.config_maps.push(r.generator(item, false)?);
                }
            }
            "secretGenerator" => {
                for item in r.list(value, "secretGenerator")? {
                    k.secrets.push(r.generator(item, true)?);
                }
            }
            "generatorOptions" => k.generator_options = Some(r.generator_options(value, "generatorOptions")?),
            "replacements" => {
                k.replacements = r.list(value, "replacements")?.to_vec();
            }
            "vars" => k.vars = super::vars::read_all(&r, value)?,
            "sortOptions" => {
                // cairn orders objects its own way (docs/kustomize.md); the field is checked so a
                // typo is still caught.
                let map = r.map(value, "sortOptions", &["order", "legacySortOptions"])?;
                if let Some(order) = field(map, "order") {
                    let order = r.string(order, "sortOptions.order")?;
                    if order.value != "legacy" && order.value != "fifo" {
                        return Err(order
                            .at
                            .error(format!("sortOptions.order `{}` is neither legacy nor fifo", order.value)));
                    }
                }
            }
            "openapi" => {
                let map = r.map(value, "openapi", &["path", "version"])?;
                if let Some(path) = field(map, "path") {
                    k.openapi = Some(r.string(path, "openapi.path")?);
                }
            }
            "transformers" => k.transformers = r.strings(value, "transformers")?,
            "generators" => k.generators = r.strings(value, "generators")?,
            "helmCharts" => {
                for item in r.list(value, "helmCharts")? {
                    k.helm_charts.push(r.helm_chart(item)?);
                }
            }
            "helmGlobals" => {
                let map = r.map(value, "helmGlobals", &["chartHome", "configHome"])?;
                if let Some(home) = field(map, "chartHome") {
                    k.chart_home = Some(r.string(home, "helmGlobals.chartHome")?);
                }
                // `configHome` is helm's configuration directory; cairn runs helm with empty ones
                // of its own (docs/helm.md), so nothing of the machine changes the output.
            }
            "helmChartInflationGenerator" => {
                return Err(r.key(key).error(
                    "`helmChartInflationGenerator` is kustomize's deprecated form of `helmCharts`; write the charts as `helmCharts` entries (with `helmGlobals.chartHome`)",
                ));
            }
            "validators" => {
                return Err(r.key(key).error(
                    "`validators` runs plugins, which cairn does not run; check objects with `schemas:` and `policies:` in cairn.yaml instead",
                ));
            }
            other => {
                return Err(r.key(key).error(format!(
                    "unknown kustomization field `{other}`{}",
                    crate::config::suggest(other, FIELDS.iter().copied())
                )));
            }
        }
    }
    k.resources.extend(bases);
    Ok(k)
}

/// The value of `name` in a mapping.
pub fn field<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

/// Reads typed values out of located nodes of one file.
pub struct Reader<'f> {
    pub file: &'f str,
}

impl Reader<'_> {
    pub fn at(&self, node: &Node) -> Loc {
        Loc { file: self.file.to_string(), line: node.line, column: node.column }
    }

    fn key(&self, key: &Key) -> Loc {
        Loc { file: self.file.to_string(), line: key.line, column: key.column }
    }

    /// A string field. As in kustomize, a number or boolean is not taken for one (`1.10` would
    /// silently become `1.1`): it has to be quoted.
    pub fn string(&self, node: &Node, what: &str) -> Result<Located, Error> {
        let value = match &node.value {
            NodeValue::String(s) => s.clone(),
            NodeValue::Number(_) | NodeValue::Bool(_) => {
                return Err(self
                    .at(node)
                    .error(format!("`{what}` is a string, found {}; quote the value", node.kind_name())));
            }
            _ => return Err(self.at(node).error(format!("`{what}` is a string, found {}", node.kind_name()))),
        };
        Ok(Located { value, at: self.at(node) })
    }

    pub fn list<'n>(&self, node: &'n Node, what: &str) -> Result<&'n [Node], Error> {
        match &node.value {
            NodeValue::Seq(items) => Ok(items),
            NodeValue::Null => Ok(&[]),
            _ => Err(self.at(node).error(format!("`{what}` is a list, found {}", node.kind_name()))),
        }
    }

    pub fn strings(&self, node: &Node, what: &str) -> Result<Vec<Located>, Error> {
        self.list(node, what)?.iter().map(|item| self.string(item, what)).collect()
    }

    /// A mapping whose keys must be among `allowed` (an unknown key is named with the nearest).
    pub fn map<'n>(&self, node: &'n Node, what: &str, allowed: &[&str]) -> Result<&'n [(Key, Node)], Error> {
        let entries = match &node.value {
            NodeValue::Map(entries) => entries.as_slice(),
            NodeValue::Null => &[],
            _ => return Err(self.at(node).error(format!("{what} is a mapping, found {}", node.kind_name()))),
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                return Err(self.key(key).error(format!(
                    "unknown field `{}` in {what}{} (valid fields: {})",
                    key.name,
                    crate::config::suggest(&key.name, allowed.iter().copied()),
                    allowed.join(", ")
                )));
            }
        }
        Ok(entries)
    }

    pub fn string_map(&self, node: &Node, what: &str) -> Result<Vec<(String, String)>, Error> {
        let entries = match &node.value {
            NodeValue::Map(entries) => entries.as_slice(),
            NodeValue::Null => &[],
            _ => return Err(self.at(node).error(format!("`{what}` is a mapping, found {}", node.kind_name()))),
        };
        entries.iter().map(|(k, v)| Ok((k.name.clone(), self.string(v, what)?.value))).collect()
    }

    fn required_string(&self, node: &Node, map: &[(Key, Node)], name: &str, what: &str) -> Result<String, Error> {
        match field(map, name) {
            Some(v) => Ok(self.string(v, name)?.value),
            None => Err(self.at(node).error(format!("{what} needs `{name}`"))),
        }
    }

    fn bool(&self, node: &Node, what: &str) -> Result<bool, Error> {
        match node.value {
            NodeValue::Bool(b) => Ok(b),
            _ => Err(self.at(node).error(format!("`{what}` is true or false, found {}", node.kind_name()))),
        }
    }

    fn helm_chart(&self, node: &Node) -> Result<HelmChartEntry, Error> {
        const FIELDS: &[&str] = &[
            "name",
            "version",
            "repo",
            "releaseName",
            "namespace",
            "valuesFile",
            "additionalValuesFiles",
            "valuesInline",
            "valuesMerge",
            "includeCRDs",
            "skipHooks",
            "skipTests",
            "apiVersions",
            "kubeVersion",
            "nameTemplate",
            "devel",
            "digest",
            "debug",
        ];
        let map = self.map(node, "a helmCharts entry", FIELDS)?;
        let name = self.required_string(node, map, "name", "a helmCharts entry")?;
        let optional = |field_name: &str| -> Result<Option<String>, Error> {
            field(map, field_name)
                .map(|v| self.string(v, field_name).map(|l| l.value))
                .transpose()
                .map(|v| v.filter(|s| !s.is_empty()))
        };
        let release_name = match optional("releaseName")? {
            Some(name) => name,
            None => {
                return Err(self.at(node).error(format!(
                    "helmCharts entry `{name}` has no `releaseName`; kustomize would have helm generate a random one, so every build would differ — set `releaseName`"
                )));
            }
        };
        for refused in ["nameTemplate", "devel", "digest"] {
            if let Some(v) = field(map, refused) {
                let why = match refused {
                    "nameTemplate" => "the release is named by `releaseName`; drop `nameTemplate`",
                    "devel" => "a development version is chosen at render time, not by git; pin `version`",
                    _ => "`digest` is for OCI registries, which cairn does not fetch from; vendor the chart",
                };
                return Err(self.at(v).error(format!("`{refused}` in helmCharts entry `{name}`: {why}")));
            }
        }
        let flag = |field_name: &str| -> Result<bool, Error> {
            field(map, field_name).map(|v| self.bool(v, field_name)).transpose().map(|v| v.unwrap_or(false))
        };
        let values_merge = match optional("valuesMerge")?.as_deref() {
            None | Some("override") => ValuesMerge::Override,
            Some("merge") => ValuesMerge::Merge,
            Some("replace") => ValuesMerge::Replace,
            Some(other) => {
                return Err(self
                    .at(field(map, "valuesMerge").unwrap_or(node))
                    .error(format!("valuesMerge `{other}` is not one of override, merge, replace")));
            }
        };
        let values_inline = match field(map, "valuesInline") {
            None => None,
            Some(v) if matches!(v.value, NodeValue::Map(_) | NodeValue::Null) => Some(v.to_json()),
            Some(v) => {
                return Err(self
                    .at(v)
                    .error(format!("`valuesInline` is a mapping of values, found {}", v.kind_name())));
            }
        };
        let repo = optional("repo")?;
        if let Some(repo) = &repo
            && repo.starts_with("oci://")
        {
            return Err(self.at(field(map, "repo").unwrap_or(node)).error(
                "OCI registries are not supported; vendor the chart (`helm pull --untar`) under the chart home",
            ));
        }
        Ok(HelmChartEntry {
            name,
            version: optional("version")?,
            repo,
            release_name,
            namespace: optional("namespace")?,
            values_file: field(map, "valuesFile").map(|v| self.string(v, "valuesFile")).transpose()?,
            additional_values_files: match field(map, "additionalValuesFiles") {
                Some(v) => self.strings(v, "additionalValuesFiles")?,
                None => Vec::new(),
            },
            values_inline,
            values_merge,
            include_crds: flag("includeCRDs")?,
            skip_hooks: flag("skipHooks")?,
            skip_tests: flag("skipTests")?,
            api_versions: match field(map, "apiVersions") {
                Some(v) => self.strings(v, "apiVersions")?.into_iter().map(|l| l.value).collect(),
                None => Vec::new(),
            },
            kube_version: optional("kubeVersion")?,
            at: self.at(node),
        })
    }

    fn label(&self, node: &Node) -> Result<Label, Error> {
        let map = self.map(node, "a labels entry", &["pairs", "includeSelectors", "includeTemplates", "fields"])?;
        let mut label =
            Label { pairs: Vec::new(), include_selectors: false, include_templates: false, fields: Vec::new() };
        for (key, value) in map {
            match key.name.as_str() {
                "pairs" => label.pairs = self.string_map(value, "pairs")?,
                "includeSelectors" => label.include_selectors = self.bool(value, "includeSelectors")?,
                "includeTemplates" => label.include_templates = self.bool(value, "includeTemplates")?,
                _ => {
                    for item in self.list(value, "fields")? {
                        label.fields.push(FieldSpec::read(self, item)?);
                    }
                }
            }
        }
        Ok(label)
    }

    fn patch(&self, node: &Node, what: &str) -> Result<Patch, Error> {
        let map = self.map(node, &format!("a {what} entry"), &["path", "patch", "target", "options"])?;
        let mut patch = Patch {
            path: None,
            inline: None,
            target: None,
            allow_name_change: false,
            allow_kind_change: false,
            at: self.at(node),
        };
        for (key, value) in map {
            match key.name.as_str() {
                "path" => patch.path = Some(self.string(value, "path")?),
                "patch" => patch.inline = Some(self.string(value, "patch")?),
                "target" => patch.target = Some(Selector::read(self, value)?),
                _ => {
                    let options = self.map(value, "patch options", &["allowNameChange", "allowKindChange"])?;
                    for (key, value) in options {
                        let b = self.bool(value, &key.name)?;
                        if key.name == "allowNameChange" {
                            patch.allow_name_change = b;
                        } else {
                            patch.allow_kind_change = b;
                        }
                    }
                }
            }
        }
        match (&patch.path, &patch.inline) {
            (None, None) => Err(self.at(node).error(format!("a {what} entry needs `path` or `patch`"))),
            (Some(_), Some(_)) => {
                Err(self.at(node).error(format!("a {what} entry has both `path` and `patch`; keep one")))
            }
            _ => Ok(patch),
        }
    }

    fn image(&self, node: &Node) -> Result<Image, Error> {
        let map = self.map(node, "an images entry", &["name", "newName", "newTag", "digest", "tagSuffix"])?;
        let get = |name: &str| -> Result<Option<String>, Error> {
            field(map, name).map(|v| self.string(v, name).map(|l| l.value)).transpose()
        };
        Ok(Image {
            name: self.required_string(node, map, "name", "an images entry")?,
            new_name: get("newName")?,
            new_tag: get("newTag")?,
            digest: get("digest")?,
            tag_suffix: get("tagSuffix")?,
            at: self.at(node),
        })
    }

    pub fn generator_options(&self, node: &Node, what: &str) -> Result<GeneratorOptions, Error> {
        let map = self.map(node, what, &["labels", "annotations", "disableNameSuffixHash", "immutable"])?;
        let mut o = GeneratorOptions::default();
        for (key, value) in map {
            match key.name.as_str() {
                "labels" => o.labels = self.string_map(value, "labels")?,
                "annotations" => o.annotations = self.string_map(value, "annotations")?,
                "disableNameSuffixHash" => o.disable_name_suffix_hash = Some(self.bool(value, &key.name)?),
                _ => o.immutable = Some(self.bool(value, &key.name)?),
            }
        }
        Ok(o)
    }

    fn generator(&self, node: &Node, secret: bool) -> Result<Generator, Error> {
        let what = if secret { "a secretGenerator entry" } else { "a configMapGenerator entry" };
        let mut allowed =
            vec!["name", "namespace", "behavior", "literals", "files", "envs", "env", "options", "kvSources"];
        if secret {
            allowed.push("type");
        }
        let map = self.map(node, what, &allowed)?;
        let mut g = Generator {
            name: self.required_string(node, map, "name", what)?,
            namespace: None,
            behavior: Behavior::Create,
            literals: Vec::new(),
            files: Vec::new(),
            envs: Vec::new(),
            options: GeneratorOptions::default(),
            secret_type: None,
            at: self.at(node),
        };
        for (key, value) in map {
            match key.name.as_str() {
                "name" => {}
                "namespace" => g.namespace = Some(self.string(value, "namespace")?.value).filter(|n| !n.is_empty()),
                "behavior" => {
                    let b = self.string(value, "behavior")?;
                    g.behavior = match b.value.as_str() {
                        "" | "create" => Behavior::Create,
                        "merge" => Behavior::Merge,
                        "replace" => Behavior::Replace,
                        other => {
                            return Err(b.at.error(format!("behavior `{other}` is not create, merge or replace")));
                        }
                    };
                }
                "literals" => g.literals = self.strings(value, "literals")?,
                "files" => g.files = self.strings(value, "files")?,
                "envs" => g.envs.extend(self.strings(value, "envs")?),
                "env" => g.envs.push(self.string(value, "env")?),
                "options" => g.options = self.generator_options(value, "generator options")?,
                "type" => g.secret_type = Some(self.string(value, "type")?.value),
                _ => {
                    return Err(self
                        .key(key)
                        .error("`kvSources` runs plugins, which cairn does not run; use literals, files or envs"));
                }
            }
        }
        Ok(g)
    }
}
