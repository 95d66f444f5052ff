//! The build itself: kustomizations read recursively, resources gathered, generators and
//! transformers run in kustomize's order, and the top-level steps at the end.

use std::collections::HashMap;

use rayon::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::render::strategic::Schemas;
use crate::render::{Parsed, SourceRef};
use crate::repo::{EntryKind, Snapshot};
use crate::yaml;

use super::fieldspec::Config;
use super::file::{self, Kind, Kustomization, Located};
use super::resource::{Id, Resource};
use super::vars::{self, Var};
use super::vault::Vault;
use super::{charts, generate, nameref, plugin, replace, transform};

/// Reads a file's documents the way every layer file is read (SOPS files decrypted).
pub type ReadDocuments<'a> = dyn Fn(&str, Vec<u8>) -> Result<Vec<Parsed>> + Sync + 'a;

/// Renders a chart of `helmCharts` for the environment being rendered.
pub type RenderChart<'a> = dyn Fn(crate::render::helm::ChartRequest) -> Result<crate::render::helm::RenderedChart> + 'a;

/// Everything gathered so far by one kustomization (and what it includes).
pub struct Acc {
    pub resources: Vec<Resource>,
    pub config: Config,
    pub vars: Vec<Var>,
    /// Identities of `resources` (group, kind, effective namespace, name) → position, for the
    /// duplicate check; rebuilt when transformers may have renamed objects.
    index: HashMap<(String, String, String, String), usize>,
    indexed: usize,
}

fn key(id: &Id) -> (String, String, String, String) {
    (id.group().to_string(), id.kind.clone(), id.effective_namespace(), id.name.clone())
}

impl Acc {
    fn new() -> Acc {
        Acc {
            resources: Vec::new(),
            config: Config::builtin().clone(),
            vars: Vec::new(),
            index: HashMap::new(),
            indexed: 0,
        }
    }

    /// The positions of the resources that have (or once had) this identity, version included.
    pub fn having_been(&self, id: &Id) -> Vec<usize> {
        self.resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.ids().any(|o| o.api_version == id.api_version && o.same_object(id)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Forgets the identity index (transformers renamed objects).
    pub fn renamed(&mut self) {
        self.index.clear();
        self.indexed = 0;
    }

    /// Adds a resource; two with one identity are an error, as in kustomize.
    pub fn append(&mut self, r: Resource) -> Result<()> {
        if self.indexed != self.resources.len() {
            self.index = self.resources.iter().enumerate().map(|(i, o)| (key(&o.id()), i)).collect();
            self.indexed = self.resources.len();
        }
        let id = r.id();
        if let Some(&first) = self.index.get(&key(&id)) {
            return Err(Error::Document {
                file: r.origin.file.clone(),
                line: r.origin.line,
                message: format!(
                    "{id} is already defined at {}; a kustomize build may hold an object once (remove one, or make the second a patch)",
                    self.resources[first].origin
                ),
            });
        }
        self.index.insert(key(&id), self.resources.len());
        self.resources.push(r);
        self.indexed = self.resources.len();
        Ok(())
    }

    fn absorb(&mut self, other: Acc) -> Result<()> {
        for r in other.resources {
            self.append(r)?;
        }
        self.config.merge(&other.config).map_err(|message| Error::Config { message })?;
        vars::add(self, other.vars)
    }
}

pub struct Builder<'a> {
    pub snapshot: &'a Snapshot,
    pub read: &'a ReadDocuments<'a>,
    /// How `helmCharts` are rendered (none: they are an error).
    pub charts: Option<&'a RenderChart<'a>>,
    pub vault: Vault,
    pub schemas: Schemas,
    /// The kustomizations being built, outermost first (a cycle is an error, not a hang).
    stack: Vec<String>,
}

/// Builds the kustomization in `dir` (relative to the configuration root): its output objects
/// grouped by the file that wrote each, with the JSON pointers of their secret values.
pub(in crate::render) fn build(
    snapshot: &Snapshot,
    dir: &str,
    read: &ReadDocuments<'_>,
    charts: Option<&RenderChart<'_>>,
) -> Result<Vec<(String, Vec<Parsed>)>> {
    let mut builder = Builder {
        snapshot,
        read,
        charts,
        vault: Vault::default(),
        schemas: Schemas::with_crds(std::iter::empty()),
        stack: Vec::new(),
    };
    let started = std::time::Instant::now();
    let mut acc = builder.directory(dir, None, Kind::Kustomization, Acc::new())?;
    let built = started.elapsed();
    generate::add_hashes(&mut acc, &builder.vault)?;
    nameref::fix(&mut acc)?;
    vars::resolve(&mut acc)?;
    tracing::debug!(kustomization = dir, objects = acc.resources.len(), ?built, finished = ?started.elapsed(), "kustomize build");
    acc.resources.retain(|r| {
        r.body.pointer("/metadata/annotations/config.kubernetes.io~1local-config").and_then(Value::as_str)
            != Some("true")
    });
    // Sealed values are put back object by object: in parallel.
    let vault = &builder.vault;
    let opened: Vec<(String, Parsed)> = acc
        .resources
        .into_par_iter()
        .map(|mut r| {
            transform::strip_empty_metadata(&mut r.body);
            let secrets = vault.open(&mut r.body);
            let doc = yaml::Document { value: r.body, line: r.origin.line };
            (r.origin.file, Parsed { doc, secrets, also: r.shaped_by })
        })
        .collect();
    let mut out: Vec<(String, Vec<Parsed>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (file, parsed) in opened {
        match at.get(&file) {
            Some(&i) => out[i].1.push(parsed),
            None => {
                at.insert(file.clone(), out.len());
                out.push((file, vec![parsed]));
            }
        }
    }
    Ok(out)
}

/// A path written in a kustomization, resolved against its directory inside the repository.
pub fn resolve(k: &Kustomization, entry: &Located) -> Result<String> {
    join(&k.dir, &entry.value).ok_or_else(|| {
        entry.at.error(format!(
            "`{}` is outside the configuration repository; cairn reads only files in the repository (copy it in)",
            entry.value
        ))
    })
}

/// `rel` resolved against the directory `dir` (both relative to the configuration root), `..`
/// steps included; `None` when the result would leave the root or `rel` is absolute.
pub fn join(dir: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') || rel.contains('\\') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A file a kustomization names (a patch, a generator source, a configuration): kustomize's
/// load restriction allows only files in or below the kustomization's directory.
pub fn resolve_file(k: &Kustomization, entry: &Located, what: &str) -> Result<String> {
    let path = resolve(k, entry)?;
    let inside = k.dir.is_empty() || path.starts_with(&format!("{}/", k.dir));
    if !inside {
        return Err(entry.at.error(format!(
            "{what} `{}` is outside the kustomization's directory `{}`; kustomize loads files only from the kustomization's own directory and below (move the file there, or make its directory a kustomization listed in `resources`)",
            entry.value,
            if k.dir.is_empty() { "." } else { &k.dir }
        )));
    }
    Ok(path)
}

/// A remote base (a URL, `git::`, `?ref=`) is refused: the build reads only the repository, at
/// the commit under review.
fn refuse_remote(entry: &Located, what: &str) -> Result<()> {
    let value = &entry.value;
    let remote = value.contains("://")
        || value.starts_with("git::")
        || value.starts_with("git@")
        || value.contains("?ref=")
        || value.starts_with("github.com/");
    if remote {
        return Err(entry.at.error(format!(
            "remote {what} `{value}`: cairn builds only what is in the repository; vendor the remote base into the repository and list its directory"
        )));
    }
    Ok(())
}

impl Builder<'_> {
    pub fn read_file(&self, path: &str, entry: &Located, what: &str) -> Result<Vec<u8>> {
        match self.snapshot.read(path)? {
            Some(bytes) => Ok(bytes),
            None => Err(entry.at.error(format!("{what} `{}` does not exist (looked for {path})", entry.value))),
        }
    }

    /// Builds the kustomization in `dir` into `acc` (a fresh one for a resource, the includer's
    /// for a component).
    fn directory(&mut self, dir: &str, from: Option<&Located>, expect: Kind, acc: Acc) -> Result<Acc> {
        let Some(file) = super::kustomization_file(self.snapshot, dir)? else {
            let message = format!(
                "`{dir}` has no kustomization.yaml; add one, or list the directory's files in `resources` one by one"
            );
            return Err(match from {
                Some(entry) => entry.at.error(message),
                None => Error::Document { file: dir.to_string(), line: 1, message },
            });
        };
        if let Some(pos) = self.stack.iter().position(|d| d == dir) {
            let mut chain: Vec<&str> = self.stack[pos..].iter().map(String::as_str).collect();
            chain.push(dir);
            let message = format!(
                "kustomizations include each other in a cycle: {}; remove one of the entries",
                chain.join(" → ")
            );
            return Err(match from {
                Some(entry) => entry.at.error(message),
                None => Error::Document { file, line: 1, message },
            });
        }
        let bytes = self.snapshot.read(&file)?.unwrap_or_default();
        let text = String::from_utf8(bytes).map_err(|_| Error::Document {
            file: file.clone(),
            line: 1,
            message: "not valid UTF-8".into(),
        })?;
        let k = file::parse(&file, &text)?;
        match (expect, k.kind) {
            (Kind::Component, Kind::Kustomization) => {
                return Err(Error::Document {
                    file,
                    line: 1,
                    message: "listed in `components`, but its kind is Kustomization; set `kind: Component` (apiVersion kustomize.config.k8s.io/v1alpha1) or list it in `resources`".into(),
                });
            }
            (Kind::Kustomization, Kind::Component) => {
                return Err(Error::Document {
                    file,
                    line: 1,
                    message: "a Component can only be listed in `components`, not built as a kustomization or listed in `resources`".into(),
                });
            }
            _ => {}
        }
        if let Some(entry) = &k.openapi {
            // As kustomize does: the schema's merge keys hold for the rest of the build.
            let path = resolve_file(&k, entry, "openapi schema")?;
            let bytes = self.read_file(&path, entry, "openapi schema")?;
            let text = String::from_utf8_lossy(&bytes);
            let document =
                yaml::parse_documents_yaml12(&path, &text)?.into_iter().next().map(|d| d.value).unwrap_or(Value::Null);
            self.schemas.add_openapi(&document).map_err(|e| entry.at.error(format!("{path}: {e}")))?;
        }
        self.stack.push(dir.to_string());
        let out = self.target(&k, acc);
        self.stack.pop();
        out
    }

    /// kustomize's `accumulateTarget`: one kustomization's steps over `acc`.
    fn target(&mut self, k: &Kustomization, mut acc: Acc) -> Result<Acc> {
        // Files are read and parsed first, in parallel (parsing dominates); entries are then
        // taken in their order, directories built where they stand.
        let mut kinds = Vec::with_capacity(k.resources.len());
        let mut texts = Vec::new();
        for entry in &k.resources {
            refuse_remote(entry, "resource")?;
            let path = resolve(k, entry)?;
            let kind = self.snapshot.entry_kind(&path)?;
            if kind == Some(EntryKind::File) {
                resolve_file(k, entry, "resource file")?;
                texts.push((path.clone(), self.read_file(&path, entry, "resource")?));
            }
            kinds.push((path, kind));
        }
        let started = std::time::Instant::now();
        let read = self.read;
        let mut parsed = texts
            .into_par_iter()
            .map(|(path, bytes)| read(&path, bytes))
            .collect::<Vec<Result<Vec<Parsed>>>>()
            .into_iter();
        for (entry, (path, kind)) in k.resources.iter().zip(kinds) {
            match kind {
                Some(EntryKind::File) => {
                    let docs = parsed.next().unwrap_or_else(|| Ok(Vec::new()))?;
                    for Parsed { doc, secrets, .. } in docs {
                        let origin = SourceRef { file: path.clone(), line: doc.line };
                        let mut body = doc.value;
                        check_object(&body, &origin)?;
                        self.vault.seal(&mut body, &secrets);
                        // A `List` is its items, as kustomize reads it.
                        if body.get("kind").and_then(Value::as_str) == Some("List") {
                            let items = body.get_mut("items").map(Value::take).unwrap_or(Value::Null);
                            for item in items.as_array().cloned().unwrap_or_default() {
                                check_object(&item, &origin)?;
                                acc.append(Resource::new(item, origin.clone()))?;
                            }
                            continue;
                        }
                        acc.append(Resource::new(body, origin))?;
                    }
                }
                Some(EntryKind::Dir) => {
                    let sub = self.directory(&path, Some(entry), Kind::Kustomization, Acc::new())?;
                    acc.absorb(sub)?;
                }
                None => {
                    return Err(entry.at.error(format!(
                        "resource `{}` does not exist (looked for {path}); fix the path or remove the entry",
                        entry.value
                    )));
                }
            }
        }
        for entry in &k.configurations {
            let path = resolve_file(k, entry, "configuration")?;
            let bytes = self.read_file(&path, entry, "configuration")?;
            let text = String::from_utf8_lossy(&bytes);
            acc.config.merge_file(&path, &text)?;
        }
        for entry in &k.crds {
            let path = resolve_file(k, entry, "CRD file")?;
            let bytes = self.read_file(&path, entry, "CRD file")?;
            for doc in yaml::parse_documents_yaml12(&path, &String::from_utf8_lossy(&bytes))? {
                nameref::config_from_crd(&mut acc.config, &doc.value).map_err(|e| entry.at.error(e))?;
            }
        }
        tracing::debug!(kustomization = %k.file, resources = acc.resources.len(), elapsed = ?started.elapsed(), "resources read");
        generate::run(self, k, &mut acc)?;
        // kustomize's built-in generators run in this order: ConfigMaps, Secrets, Helm charts.
        charts::inflate(self, k, &mut acc)?;
        plugin::generators(self, k, &mut acc)?;
        for entry in &k.components {
            refuse_remote(entry, "component")?;
            let path = resolve(k, entry)?;
            if self.snapshot.entry_kind(&path)? != Some(EntryKind::Dir) {
                return Err(entry.at.error(format!(
                    "component `{}` is not a directory (looked for {path}); a component is a directory with a kustomization.yaml of kind Component",
                    entry.value
                )));
            }
            acc = self.directory(&path, Some(entry), Kind::Component, acc)?;
        }
        acc.renamed();
        let transforms = std::time::Instant::now();
        transform::run(self, k, &mut acc)?;
        tracing::debug!(kustomization = %k.file, elapsed = ?transforms.elapsed(), "transformed");
        replace::run(self, k, &mut acc)?;
        plugin::transformers(self, k, &mut acc)?;
        acc.renamed();
        vars::add(&mut acc, k.vars.clone())?;
        Ok(acc)
    }
}

/// A resource document must be an object with apiVersion, kind and metadata.name.
fn check_object(body: &Value, origin: &SourceRef) -> Result<()> {
    if body.get("kind").and_then(Value::as_str) == Some("List") && body.get("items").is_some() {
        return Ok(());
    }
    crate::render::ObjectId::of(body).map(|_| ()).map_err(|message| Error::Document {
        file: origin.file.clone(),
        line: origin.line,
        message,
    })
}
