//! `transformers:` and `generators:` entries that configure kustomize's built-in plugins
//! (`apiVersion: builtin`, `kind: LabelTransformer`, …): each runs with the configuration it is
//! given — its own field specs, not the kustomization defaults, as kustomize runs it. Plugins of
//! any other kind (exec and container functions) are refused.

use crate::error::{Error, Result};
use crate::yaml::{Node, NodeValue};

use super::build::{Acc, Builder, resolve, resolve_file};
use super::fieldspec::FieldSpec;
use super::file::{Behavior, Generator, GeneratorOptions, Image, Kustomization, Located, Patch, Reader, field};
use super::selector::Selector;
use super::transform::{self, Namespacing, Subjects};
use super::{generate, patch, replace};

/// One plugin configuration document and where it was written.
struct Config {
    node: Node,
    file: String,
}

/// The plugin configurations an entry names: inline YAML, a file, or a kustomization directory
/// of them.
fn configs(builder: &mut Builder<'_>, k: &Kustomization, entry: &Located) -> Result<Vec<Config>> {
    let inline = entry.value.contains('\n') || entry.value.trim_start().starts_with('{');
    if inline {
        let docs = Node::parse_documents(&k.file, &entry.value).map_err(|e| match e {
            Error::Yaml { message, .. } => {
                entry.at.error(format!("the inline plugin configuration is not valid YAML: {message}"))
            }
            other => other,
        })?;
        // Positions inside the string are relative to it; point at the kustomization entry.
        return Ok(docs
            .into_iter()
            .map(|mut node| {
                node.line = entry.at.line;
                node.column = entry.at.column;
                Config { node, file: k.file.clone() }
            })
            .collect());
    }
    let path = resolve(k, entry)?;
    match builder.snapshot.entry_kind(&path)? {
        Some(crate::repo::EntryKind::File) => {
            let path = resolve_file(k, entry, "plugin configuration")?;
            let bytes = builder.read_file(&path, entry, "plugin configuration")?;
            let text = String::from_utf8_lossy(&bytes);
            Ok(Node::parse_documents(&path, &text)?
                .into_iter()
                .map(|node| Config { node, file: path.clone() })
                .collect())
        }
        Some(crate::repo::EntryKind::Dir) => Err(entry
            .at
            .error("a directory of plugin configurations is not supported; list the configuration files themselves")),
        None => {
            Err(entry.at.error(format!("plugin configuration `{}` does not exist (looked for {path})", entry.value)))
        }
    }
}

fn kind_of<'n>(r: &Reader<'_>, c: &'n Config) -> Result<(&'n [(crate::yaml::Key, Node)], String)> {
    let NodeValue::Map(map) = &c.node.value else {
        return Err(r.at(&c.node).error("a plugin configuration is a mapping with apiVersion and kind"));
    };
    let api = field(map, "apiVersion").and_then(Node::as_str).unwrap_or("");
    let kind = field(map, "kind").and_then(Node::as_str).unwrap_or("").to_string();
    let function = field(map, "metadata")
        .and_then(|m| match &m.value {
            NodeValue::Map(m) => field(m, "annotations"),
            _ => None,
        })
        .is_some_and(|a| matches!(&a.value, NodeValue::Map(m) if field(m, "config.kubernetes.io/function").is_some()));
    if api != "builtin" || function {
        return Err(r.at(&c.node).error(format!(
            "plugin `{api}` `{kind}` runs code (an exec or container function), which cairn does not run; use kustomize's built-in transformers (apiVersion: builtin) or the kustomization's own fields"
        )));
    }
    Ok((map.as_slice(), kind))
}

fn specs(r: &Reader<'_>, map: &[(crate::yaml::Key, Node)]) -> Result<Vec<FieldSpec>> {
    match field(map, "fieldSpecs") {
        Some(v) => r.list(v, "fieldSpecs")?.iter().map(|i| FieldSpec::read(r, i)).collect(),
        None => Ok(Vec::new()),
    }
}

fn text(r: &Reader<'_>, map: &[(crate::yaml::Key, Node)], name: &str) -> Result<Option<String>> {
    field(map, name).map(|v| r.string(v, name).map(|l| l.value)).transpose()
}

/// Runs a kustomization's `transformers:` entries, in order.
pub fn transformers(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for entry in &k.transformers {
        for c in configs(builder, k, entry)? {
            let r = Reader { file: &c.file };
            let (map, kind) = kind_of(&r, &c)?;
            let at = r.at(&c.node);
            let bool_field = |name: &str| -> Result<bool> {
                match field(map, name).map(|v| &v.value) {
                    None => Ok(false),
                    Some(NodeValue::Bool(b)) => Ok(*b),
                    Some(_) => Err(at.error(format!("`{name}` is true or false"))),
                }
            };
            match kind.as_str() {
                "LabelTransformer" | "AnnotationsTransformer" => {
                    let key = if kind == "LabelTransformer" { "labels" } else { "annotations" };
                    let pairs = match field(map, key) {
                        Some(v) => r.string_map(v, key)?,
                        None => Vec::new(),
                    };
                    transform::set_map_entries(acc, &specs(&r, map)?, &pairs, &kind, &at)?;
                }
                "NamespaceTransformer" => {
                    let ns = field(map, "metadata")
                        .and_then(|m| match &m.value {
                            NodeValue::Map(m) => field(m, "namespace"),
                            _ => None,
                        })
                        .map(|v| r.string(v, "metadata.namespace"))
                        .transpose()?
                        .map(|l| l.value)
                        .unwrap_or_default();
                    if ns.is_empty() {
                        continue;
                    }
                    let subjects = match text(&r, map, "setRoleBindingSubjects")?.as_deref() {
                        None | Some("") | Some("defaultOnly") => Subjects::DefaultOnly,
                        Some("allServiceAccounts") => Subjects::AllServiceAccounts,
                        Some("none") => Subjects::None,
                        Some(other) => {
                            return Err(at.error(format!(
                                "setRoleBindingSubjects `{other}` is not defaultOnly, allServiceAccounts or none"
                            )));
                        }
                    };
                    let how = Namespacing { unset_only: bool_field("unsetOnly")?, subjects };
                    transform::namespace(acc, &ns, &specs(&r, map)?, how, &at)?;
                }
                "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
                    if field(map, "fieldSpecs").is_none() {
                        return Err(
                            at.error(format!("a {kind} needs `fieldSpecs` (for example `- path: metadata/name`)"))
                        );
                    }
                    let specs = specs(&r, map)?;
                    if kind != "SuffixTransformer"
                        && let Some(prefix) = text(&r, map, "prefix")?.filter(|p| !p.is_empty())
                    {
                        transform::affix(acc, &prefix, true, &specs, &at)?;
                    }
                    if kind != "PrefixTransformer"
                        && let Some(suffix) = text(&r, map, "suffix")?.filter(|p| !p.is_empty())
                    {
                        transform::affix(acc, &suffix, false, &specs, &at)?;
                    }
                }
                "ImageTagTransformer" => {
                    let Some(tag) = field(map, "imageTag") else {
                        return Err(at.error("an ImageTagTransformer needs `imageTag` (name, newName, newTag, digest)"));
                    };
                    let m = r.map(tag, "imageTag", &["name", "newName", "newTag", "digest", "tagSuffix"])?;
                    let Some(name) = text(&r, m, "name")? else {
                        return Err(r.at(tag).error("`imageTag` needs a `name`"));
                    };
                    let image = Image {
                        name,
                        new_name: text(&r, m, "newName")?,
                        new_tag: text(&r, m, "newTag")?,
                        digest: text(&r, m, "digest")?,
                        tag_suffix: text(&r, m, "tagSuffix")?,
                        at: at.clone(),
                    };
                    transform::images(acc, std::slice::from_ref(&image), &specs(&r, map)?)?;
                }
                "ReplicaCountTransformer" => {
                    let Some(replica) = field(map, "replica") else {
                        return Err(at.error("a ReplicaCountTransformer needs `replica` (name, count)"));
                    };
                    let m = r.map(replica, "replica", &["name", "count"])?;
                    let name = text(&r, m, "name")?.unwrap_or_default();
                    let count = field(m, "count").and_then(|c| match &c.value {
                        NodeValue::Number(n) => n.as_i64(),
                        _ => None,
                    });
                    let Some(count) = count else {
                        return Err(r.at(replica).error("`replica.count` is a whole number"));
                    };
                    transform::replicas(acc, &name, count, &specs(&r, map)?, &at)?;
                }
                "PatchTransformer" | "PatchJson6902Transformer" => {
                    let inline_key = if kind == "PatchTransformer" { "patch" } else { "jsonOp" };
                    let located = |name: &str| -> Result<Option<Located>> {
                        field(map, name).map(|v| r.string(v, name)).transpose()
                    };
                    let mut p = Patch {
                        path: located("path")?,
                        inline: located(inline_key)?,
                        target: field(map, "target").map(|t| Selector::read(&r, t)).transpose()?,
                        allow_name_change: false,
                        allow_kind_change: false,
                        at: at.clone(),
                    };
                    if let Some(o) = field(map, "options") {
                        for (key, value) in r.map(o, "patch options", &["allowNameChange", "allowKindChange"])? {
                            let b = matches!(value.value, NodeValue::Bool(true));
                            if key.name == "allowNameChange" {
                                p.allow_name_change = b;
                            } else {
                                p.allow_kind_change = b;
                            }
                        }
                    }
                    // Paths in a plugin configuration resolve against the kustomization's directory.
                    patch::run(builder, k, &p, acc)?;
                }
                "PatchStrategicMergeTransformer" => {
                    let mut k2 = k.clone();
                    k2.patches_strategic_merge.clear();
                    if let Some(paths) = field(map, "paths") {
                        for path in r.strings(paths, "paths")? {
                            k2.patches_strategic_merge.push(Patch {
                                at: path.at.clone(),
                                path: Some(path),
                                inline: None,
                                target: None,
                                allow_name_change: false,
                                allow_kind_change: false,
                            });
                        }
                    }
                    if let Some(inline) = field(map, "patches") {
                        let inline = r.string(inline, "patches")?;
                        k2.patches_strategic_merge.push(Patch {
                            at: inline.at.clone(),
                            path: None,
                            inline: Some(inline),
                            target: None,
                            allow_name_change: false,
                            allow_kind_change: false,
                        });
                    }
                    patch::run_strategic_files(builder, &k2, acc)?;
                }
                "ReplacementTransformer" => {
                    let mut k2 = k.clone();
                    k2.replacements = match field(map, "replacements") {
                        Some(v) => r.list(v, "replacements")?.to_vec(),
                        None => Vec::new(),
                    };
                    replace::run(builder, &k2, acc)?;
                }
                other => {
                    return Err(at.error(format!(
                        "`{other}` is not one of kustomize's built-in transformers cairn runs (LabelTransformer, AnnotationsTransformer, NamespaceTransformer, PrefixSuffixTransformer, PrefixTransformer, SuffixTransformer, ImageTagTransformer, ReplicaCountTransformer, PatchTransformer, PatchStrategicMergeTransformer, PatchJson6902Transformer, ReplacementTransformer)"
                    )));
                }
            }
        }
    }
    acc.renamed();
    Ok(())
}

/// Runs a kustomization's `generators:` entries (built-in ConfigMapGenerator and
/// SecretGenerator configurations), after its own generators.
pub fn generators(builder: &mut Builder<'_>, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for entry in &k.generators {
        for c in configs(builder, k, entry)? {
            let r = Reader { file: &c.file };
            let (map, kind) = kind_of(&r, &c)?;
            let secret = match kind.as_str() {
                "ConfigMapGenerator" => false,
                "SecretGenerator" => true,
                other => {
                    return Err(r.at(&c.node).error(format!(
                        "`{other}` is not one of kustomize's built-in generators cairn runs (ConfigMapGenerator, SecretGenerator)"
                    )));
                }
            };
            let g = read_generator(&r, &c.node, map, secret)?;
            generate::run_one(builder, k, &g, secret, acc)?;
        }
    }
    Ok(())
}

fn read_generator(r: &Reader<'_>, node: &Node, map: &[(crate::yaml::Key, Node)], secret: bool) -> Result<Generator> {
    let meta = field(map, "metadata").ok_or_else(|| r.at(node).error("a generator needs `metadata.name`"))?;
    let meta = match &meta.value {
        NodeValue::Map(m) => m.as_slice(),
        _ => return Err(r.at(meta).error("`metadata` is a mapping")),
    };
    let name = text(r, meta, "name")?.ok_or_else(|| r.at(node).error("a generator needs `metadata.name`"))?;
    let behavior = match text(r, map, "behavior")?.as_deref() {
        None | Some("") | Some("create") => Behavior::Create,
        Some("merge") => Behavior::Merge,
        Some("replace") => Behavior::Replace,
        Some(other) => return Err(r.at(node).error(format!("behavior `{other}` is not create, merge or replace"))),
    };
    let list = |name: &str| -> Result<Vec<Located>> {
        match field(map, name) {
            Some(v) => r.strings(v, name),
            None => Ok(Vec::new()),
        }
    };
    let mut envs = list("envs")?;
    if let Some(env) = field(map, "env") {
        envs.push(r.string(env, "env")?);
    }
    let options = match field(map, "options") {
        Some(o) => r.generator_options(o, "generator options")?,
        None => GeneratorOptions::default(),
    };
    Ok(Generator {
        name,
        namespace: text(r, meta, "namespace")?.filter(|n| !n.is_empty()),
        behavior,
        literals: list("literals")?,
        files: list("files")?,
        envs,
        options,
        secret_type: if secret { text(r, map, "type")? } else { None },
        at: r.at(node),
    })
}
