//! Release notes for people: what changed in an environment between two points (a release and
//! the one before it, or two revisions), in words a stakeholder can read: version changes,
//! configuration, feature flags, objects created and removed, commits by type, who wrote,
//! approved and owns it, and how to roll back. Secret values never appear; a secret key is only
//! ever "changed".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::commits::{self, CommitGroup};
use super::{Release, ReleaseKind};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::owners::CodeOwners;
use crate::render::{self, Object, ObjectId};
use crate::repo::{CommitInfo, Repo};

/// A ConfigMap labelled so is a set of feature flags: each data key is a flag, on when its value
/// is `true`, `on`, `yes`, `enabled` or `1` (any case).
pub const FEATURE_FLAGS_LABEL: &str = "cairn/feature-flags";

#[derive(Debug, Clone, Serialize)]
pub struct Notes {
    pub environment: String,
    /// The release the notes are about (absent for `--from/--to` notes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseBrief>,
    pub from: Option<String>,
    pub to: String,
    pub summary: String,
    pub versions: Vec<VersionChange>,
    pub configuration: Vec<ConfigChange>,
    pub features: Vec<FeatureChange>,
    pub created: Vec<ObjectId>,
    pub removed: Vec<ObjectId>,
    /// Other fields that changed in objects present before and after.
    pub updated: Vec<ObjectUpdate>,
    pub commits: Vec<CommitGroup>,
    pub commit_count: usize,
    /// The commits listed were undone (a rollback), not brought in.
    pub undone: bool,
    pub authors: Vec<String>,
    pub approvers: Vec<String>,
    pub owners: Vec<String>,
    pub drift: Vec<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseBrief {
    pub id: u64,
    pub kind: ReleaseKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
    pub outcome: String,
    pub source: String,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The release was forced past error findings (`--override-findings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<crate::gate::Override>,
    /// How its last verification ended, when it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::release::verification::Verdict>,
    /// For a rollback cairn made after a failed verification: the release it undid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_rollback_of: Option<u64>,
}

/// A container image that changed (absent old: the workload is new; absent new: removed).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct VersionChange {
    pub object: ObjectId,
    pub container: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A configuration key that changed. For secrets only the key and the fact are shown.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfigChange {
    pub object: ObjectId,
    pub key: String,
    pub secret: bool,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// Fields of one object that changed, beyond versions, configuration keys and flags.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectUpdate {
    pub object: ObjectId,
    pub fields: Vec<FieldUpdate>,
}

/// One changed field of an object, from bodies whose secrets are markers already (see
/// `diff_objects`). A plan's `plan::FieldChange` may hold plaintext and has no `Serialize`; this
/// one has, and writes what it did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldUpdate {
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeatureChange {
    pub object: ObjectId,
    pub flag: String,
    /// The state before (absent: the flag is new).
    pub was: Option<bool>,
    pub now: bool,
}

/// What the notes are about.
pub enum Selection {
    /// A release (the latest when `None`).
    Release(Option<u64>),
    /// Two revisions; `from` must be an ancestor of `to`.
    Range { from: String, to: String },
}

/// Builds the notes for an environment.
pub fn build(
    repo: &Repo,
    environment: &str,
    releases: &[Release],
    selection: &Selection,
    repo_url: Option<&str>,
) -> Result<Notes> {
    let (release, from, to) = match selection {
        Selection::Range { from, to } => (None, Some(from.clone()), to.clone()),
        Selection::Release(id) => {
            let release = match id {
                Some(id) => super::find(releases, environment, *id)?,
                None => releases.last().cloned().ok_or_else(|| Error::Usage {
                    message: format!("environment `{environment}` has no releases yet; apply it first"),
                })?,
            };
            let to = release.sha().map(str::to_string).ok_or_else(|| Error::Usage {
                message: format!(
                    "release {} of `{environment}` was applied from a repository without commits; there is no history to describe",
                    release.id
                ),
            })?;
            let previous = release.previous.and_then(|p| releases.iter().find(|r| r.id == p));
            let from = previous.and_then(|p| p.sha()).map(str::to_string);
            for (label, sha) in [("release", Some(&to)), ("previous release", from.as_ref())] {
                if let Some(sha) = sha
                    && !repo.has_commit(sha)
                {
                    return Err(Error::Usage {
                        message: format!(
                            "the {label}'s commit {sha} is no longer in the repository (history rewritten since?); fetch it or choose another release"
                        ),
                    });
                }
            }
            (Some(release), from, to)
        }
    };
    let undone = release.as_ref().is_some_and(|r| r.kind == ReleaseKind::Rollback);
    let commits = match (&release, &from) {
        // A rollback goes back in history: list what it undid.
        (Some(_), Some(from)) if undone => repo.commits_reachable(Some(&to), from)?,
        (Some(_), _) => repo.commits_reachable(from.as_deref(), &to)?,
        (None, _) => repo.commits_between(from.as_deref(), &to)?,
    };
    let old = match &from {
        Some(rev) => desired_at(repo, environment, rev)?,
        None => Vec::new(),
    };
    let new = desired_at(repo, environment, &to)?;
    let diff = diff_objects(&old, &new);

    let snapshot = repo.snapshot(Some(&to))?;
    let codeowners = CodeOwners::load(&snapshot)?;
    let changed_paths = match &from {
        Some(from) => repo.changed_paths(from, &to)?.paths,
        None => snapshot.files_under("")?,
    };
    let owners: BTreeSet<String> = changed_paths.iter().flat_map(|p| codeowners.owners_of(p).iter().cloned()).collect();
    let authors: BTreeSet<String> = commits.iter().map(|c| c.author.name.clone()).collect();
    let mut approvers: BTreeSet<String> =
        commits.iter().flat_map(|c| c.trailer_values("Approved-by").map(str::to_string)).collect();
    if let Some(r) = &release {
        approvers.extend(r.approvals.iter().cloned());
    }
    let groups = commits::group(&commits, repo_url);
    let previous_release = release.as_ref().and_then(|r| r.previous);
    let rollback_command = previous_release.map(|p| format!("cairn rollback --env {environment} --to {p}"));
    let mut notes = Notes {
        environment: environment.to_string(),
        release: release.as_ref().map(|r| ReleaseBrief {
            id: r.id,
            kind: r.kind,
            rollback_to: r.rollback_to,
            outcome: r.outcome.as_str().to_string(),
            source: r.source.clone(),
            actor: r.actor.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            overridden: r.overridden.clone(),
            verified: r.verification.as_ref().map(|v| v.verdict),
            automatic_rollback_of: r.cause.as_ref().map(|c| c.release),
        }),
        from,
        to,
        summary: String::new(),
        versions: diff.versions,
        configuration: diff.configuration,
        features: diff.features,
        created: diff.created,
        removed: diff.removed,
        updated: diff.updated,
        commits: groups,
        commit_count: commits.len(),
        undone,
        authors: authors.into_iter().collect(),
        approvers: approvers.into_iter().collect(),
        owners: owners.into_iter().collect(),
        drift: release.as_ref().map(|r| r.drift.clone()).unwrap_or_default(),
        previous_release,
        rollback_command,
    };
    notes.summary = summarize(&notes, &commits);
    Ok(notes)
}

/// The rendered objects of an environment at a revision (none when the environment did not
/// exist there).
pub fn desired_at(repo: &Repo, environment: &str, rev: &str) -> Result<Vec<Object>> {
    let snapshot = repo.snapshot(Some(rev))?;
    let config = config_at(repo, rev, &snapshot)?;
    match config.environment(environment) {
        // Notes and status never show a value, so they need no keys: secrets stay encrypted.
        Ok(env) => Ok(render::Renderer::new(&snapshot, &[env])
            .with_capabilities(&crate::target::capabilities)
            .keep_encrypted()
            .render(env)?
            .objects),
        Err(_) => Ok(Vec::new()),
    }
}

/// The configuration at a commit, parsed once per commit: the status site reads the
/// configuration of every environment's releases, and with thousands of environments each parse
/// of `cairn.yaml` is itself large. Only full commit ids are kept (a branch name moves).
fn config_at(repo: &Repo, rev: &str, snapshot: &crate::repo::Snapshot) -> Result<std::sync::Arc<Config>> {
    type Cache = std::sync::Mutex<HashMap<(std::path::PathBuf, String), std::sync::Arc<Config>>>;
    static CONFIGS: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let is_sha = rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_sha {
        return Ok(std::sync::Arc::new(Config::load(snapshot)?));
    }
    let key = (repo.root().to_path_buf(), rev.to_string());
    let cache = CONFIGS.get_or_init(Default::default);
    if let Some(config) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(config);
    }
    let config = std::sync::Arc::new(Config::load(snapshot)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, config.clone());
    }
    Ok(config)
}

/// The people-facing differences between two sets of objects.
#[derive(Debug, Default)]
pub struct ObjectDiff {
    pub versions: Vec<VersionChange>,
    pub configuration: Vec<ConfigChange>,
    pub features: Vec<FeatureChange>,
    pub created: Vec<ObjectId>,
    pub removed: Vec<ObjectId>,
    pub updated: Vec<ObjectUpdate>,
}

pub fn diff_objects(old: &[Object], new: &[Object]) -> ObjectDiff {
    // Values from SOPS files become markers first (the same value, the same marker), so no
    // section below can show one, encrypted or not.
    let masker = crate::secrets::Masker::new();
    let mut secrets: BTreeMap<&ObjectId, Vec<String>> = BTreeMap::new();
    for o in old.iter().chain(new).filter(|o| !o.secrets.is_empty()) {
        secrets.entry(&o.id).or_default().extend(o.secrets.iter().cloned());
    }
    let masked = |objects: &[Object]| -> BTreeMap<ObjectId, Value> {
        objects
            .iter()
            .filter_map(|o| secrets.get(&o.id).map(|s| (o.id.clone(), masker.mask_pair(None, Some(&o.body), s).1)))
            .filter_map(|(id, body)| body.map(|b| (id, b)))
            .collect()
    };
    let (old_masked, new_masked) = (masked(old), masked(new));
    let old_map: BTreeMap<&ObjectId, &Value> =
        old.iter().map(|o| (&o.id, old_masked.get(&o.id).unwrap_or(&o.body))).collect();
    let new_map: BTreeMap<&ObjectId, &Value> =
        new.iter().map(|o| (&o.id, new_masked.get(&o.id).unwrap_or(&o.body))).collect();
    let mut diff = ObjectDiff::default();
    let empty = Value::Null;
    for (id, body) in &new_map {
        let before = old_map.get(id).copied();
        if before.is_none() {
            diff.created.push((*id).clone());
        }
        if let Some(old) = before
            && kind_of(body) != "Secret"
        {
            let mut fields = Vec::new();
            crate::plan::diff_fields(old, body, &mut String::new(), &mut fields);
            // Versions, configuration keys and flags have their own sections.
            let covered = |p: &str| {
                p.starts_with("/data/") || p.starts_with("/binaryData/") || p == "/data" || p.ends_with("/image")
            };
            fields.retain(|f| !covered(&f.pointer));
            if !fields.is_empty() {
                let fields =
                    fields.into_iter().map(|f| FieldUpdate { pointer: f.pointer, old: f.old, new: f.new }).collect();
                diff.updated.push(ObjectUpdate { object: (*id).clone(), fields });
            }
        }
        let before = before.unwrap_or(&empty);
        diff_images(id, before, body, &mut diff.versions);
        if is_feature_flags(body) || is_feature_flags(before) {
            diff_flags(id, before, body, &mut diff.features);
        } else {
            diff_config(id, before, body, &mut diff.configuration);
        }
    }
    for (id, body) in &old_map {
        if !new_map.contains_key(id) {
            diff.removed.push((*id).clone());
            diff_images(id, body, &empty, &mut diff.versions);
        }
    }
    diff
}

/// Container name → image of a workload (any kind with a pod template, or a Pod).
pub fn images(body: &Value) -> BTreeMap<String, String> {
    let spec = body
        .pointer("/spec/template/spec")
        .or_else(|| body.pointer("/spec/jobTemplate/spec/template/spec"))
        .or_else(|| (body.get("kind").and_then(Value::as_str) == Some("Pod")).then(|| body.get("spec")).flatten());
    let mut out = BTreeMap::new();
    if let Some(spec) = spec {
        for list in ["initContainers", "containers"] {
            for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
                if let (Some(name), Some(image)) =
                    (c.get("name").and_then(Value::as_str), c.get("image").and_then(Value::as_str))
                {
                    out.insert(name.to_string(), image.to_string());
                }
            }
        }
    }
    out
}

/// The images that change between two bodies of one object (`Null` for an absent one).
pub fn diff_images(id: &ObjectId, old: &Value, new: &Value, out: &mut Vec<VersionChange>) {
    let (before, after) = (images(old), images(new));
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let (o, n) = (before.get(name), after.get(name));
        if o != n {
            out.push(VersionChange { object: id.clone(), container: name.clone(), old: o.cloned(), new: n.cloned() });
        }
    }
}

fn kind_of(body: &Value) -> &str {
    body.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn is_feature_flags(body: &Value) -> bool {
    let label = format!("/metadata/labels/{}", crate::pointer::escape(FEATURE_FLAGS_LABEL));
    kind_of(body) == "ConfigMap" && body.pointer(&label).and_then(Value::as_str) == Some("true")
}

fn flag_value(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "enabled" | "1"),
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn diff_flags(id: &ObjectId, old: &Value, new: &Value, out: &mut Vec<FeatureChange>) {
    let empty = serde_json::Map::new();
    let before = old.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let after = new.get("data").and_then(Value::as_object).unwrap_or(&empty);
    for (flag, value) in after {
        let now = flag_value(value);
        let was = before.get(flag).map(flag_value);
        if was != Some(now) {
            out.push(FeatureChange { object: id.clone(), flag: flag.clone(), was, now });
        }
    }
}

/// ConfigMap and Secret keys. A Secret's values are never read into the notes: only whether a
/// key was added, removed or changed.
fn diff_config(id: &ObjectId, old: &Value, new: &Value, out: &mut Vec<ConfigChange>) {
    let kind = if kind_of(new).is_empty() { kind_of(old) } else { kind_of(new) };
    let (secret, fields): (bool, &[&str]) = match kind {
        "ConfigMap" => (false, &["data", "binaryData"]),
        "Secret" => (true, &["data", "stringData"]),
        _ => return,
    };
    let collect = |body: &Value| -> BTreeMap<String, Value> {
        fields
            .iter()
            .filter_map(|f| body.get(*f).and_then(Value::as_object))
            .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    };
    let (before, after) = (collect(old), collect(new));
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (o, n) = (before.get(key), after.get(key));
        if o == n {
            continue;
        }
        let change = match (o, n) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let shown = |v: Option<&Value>| -> Option<String> {
            if secret {
                return None;
            }
            v.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        };
        out.push(ConfigChange { object: id.clone(), key: key.clone(), secret, change, old: shown(o), new: shown(n) });
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}

/// One plain-language line a stakeholder can read.
fn summarize(notes: &Notes, commits: &[CommitInfo]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let upgrades: Vec<String> = notes
        .versions
        .iter()
        .filter_map(|v| match (&v.old, &v.new) {
            (Some(o), Some(n)) => Some(format!("{} {} → {}", v.object.name, tag(o), tag(n))),
            _ => None,
        })
        .collect();
    if !upgrades.is_empty() {
        parts.push(upgrades.join(", "));
    }
    if !notes.configuration.is_empty() {
        parts.push(plural(notes.configuration.len(), "configuration change", "configuration changes"));
    }
    let on = notes.features.iter().filter(|f| f.now).count();
    let off = notes.features.len() - on;
    if on > 0 {
        parts.push(format!("{} switched on", plural(on, "feature", "features")));
    }
    if off > 0 {
        parts.push(format!("{} switched off", plural(off, "feature", "features")));
    }
    if !notes.created.is_empty() {
        parts.push(format!("{} added", plural(notes.created.len(), "object", "objects")));
    }
    if !notes.removed.is_empty() {
        parts.push(format!("{} removed", plural(notes.removed.len(), "object", "objects")));
    }
    if !notes.updated.is_empty() {
        parts.push(format!("{} changed", plural(notes.updated.len(), "other object", "other objects")));
    }
    let what = if parts.is_empty() { "no changes to what runs".to_string() } else { parts.join("; ") };
    let head = match &notes.release {
        Some(r) if r.kind == ReleaseKind::Rollback => format!(
            "Release {} rolled {} back to release {}",
            r.id,
            notes.environment,
            r.rollback_to.map_or_else(|| "?".to_string(), |t| t.to_string())
        ),
        Some(r) => format!("Release {} to {}", r.id, notes.environment),
        None => format!("Changes to {}", notes.environment),
    };
    let authors = if notes.authors.is_empty() { String::new() } else { format!(" by {}", notes.authors.join(", ")) };
    let approvals = if notes.approvers.is_empty() {
        "no recorded approval".to_string()
    } else {
        format!("approved by {}", notes.approvers.join(", "))
    };
    let commits_text = plural(commits.len(), "commit", "commits");
    if notes.undone {
        return format!("{head}: {what}. {commits_text} undone.");
    }
    format!("{head}: {what}. {commits_text}{authors}; {approvals}.")
}

/// The tag of an image reference (`registry/app:1.2.3` → `1.2.3`), or the reference itself.
pub fn tag(image: &str) -> &str {
    let name = short_image(image);
    match name.split_once('@') {
        Some((_, digest)) => digest,
        None => name.split_once(':').map_or(name, |(_, t)| t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::SourceRef;
    use serde_json::json;

    fn obj(body: Value) -> Object {
        Object::new(ObjectId::of(&body).expect("id"), body, vec![SourceRef { file: "f".into(), line: 1 }])
    }

    #[test]
    fn diff_reports_versions_config_flags_and_hides_secrets() {
        let old = vec![
            obj(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "r.io/web:1.4.0"}]}}}})),
            obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"LEVEL": "info", "GONE": "x"}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags", "labels": {"cairn/feature-flags": "true"}}, "data": {"checkout-v2": "off"}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}}),
            ),
        ];
        let new = vec![
            obj(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "r.io/web:1.5.0"}]}}}})),
            obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"LEVEL": "debug", "NEW": "1"}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags", "labels": {"cairn/feature-flags": "true"}}, "data": {"checkout-v2": "on", "dark-mode": "false"}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "czNjcjN0"}}),
            ),
        ];
        let d = diff_objects(&old, &new);
        assert_eq!(d.versions.len(), 1);
        assert_eq!(
            (d.versions[0].old.as_deref(), d.versions[0].new.as_deref()),
            (Some("r.io/web:1.4.0"), Some("r.io/web:1.5.0"))
        );
        let config: Vec<(&str, &str, Option<&str>, Option<&str>)> =
            d.configuration.iter().map(|c| (c.key.as_str(), c.change, c.old.as_deref(), c.new.as_deref())).collect();
        assert_eq!(
            config,
            vec![
                ("GONE", "removed", Some("x"), None),
                ("LEVEL", "changed", Some("info"), Some("debug")),
                ("NEW", "added", None, Some("1")),
                ("password", "changed", None, None),
            ]
        );
        assert!(d.configuration[3].secret);
        let flags: Vec<(&str, Option<bool>, bool)> =
            d.features.iter().map(|f| (f.flag.as_str(), f.was, f.now)).collect();
        assert_eq!(flags, vec![("checkout-v2", Some(false), true), ("dark-mode", None, false)]);
        let text = serde_json::to_string(&d.configuration).expect("json");
        assert!(!text.contains("czNjcjN0") && !text.contains("s3cr3t") && !text.contains("aHVudGVyMg"));
    }

    #[test]
    fn other_field_changes_are_listed_but_never_for_secrets() {
        let old = vec![
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"a": "1"}}, "type": "Opaque"}),
            ),
        ];
        let new = vec![
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"a": "2"}}, "type": "Opaque"}),
            ),
        ];
        let d = diff_objects(&old, &new);
        assert_eq!(d.updated.len(), 1);
        assert_eq!(d.updated[0].object.name, "web");
        assert_eq!(d.updated[0].fields[0].pointer, "/spec/replicas");
    }

    #[test]
    fn image_tags() {
        assert_eq!(tag("registry.example.org/shop/web:1.4.0"), "1.4.0");
        assert_eq!(tag("localhost:5000/web:2"), "2");
        assert_eq!(tag("nginx"), "nginx");
        assert_eq!(tag("web@sha256:abc"), "sha256:abc");
    }
}
