//! Desired objects against live state: per object create / update / delete / unchanged, the
//! changed fields as JSON pointers, and a unified YAML diff for people.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::Result;
use crate::render::{Object, ObjectId, Rendered, SourceRef};
use crate::repo::SourceInfo;
use crate::secrets::{Maskable, Masker, Seal};
use crate::target::{Digester, Inventory, Target};

pub mod rollout;
pub use rollout::{Phase, PlannedRollout, STRATEGY_ANNOTATION, TRACK_LABEL, canary_replicas};

pub use crate::ordering::{WAVE_ANNOTATION, phase, wave};
pub use crate::target::Action;
use crate::target::Operation;

/// One changed field: its JSON pointer, the live value and the desired value (absent = no value).
///
/// A field change, a change and a plan may hold decrypted values, so they have no `Serialize`:
/// they are written and shown as a [`crate::secrets::Masked`] plan (see `Maskable for Plan`
/// below). `Deserialize` stays, for saved plans, which hold masked values only. Their `Debug`
/// never shows a value that may be secret.
#[derive(Clone, PartialEq, Deserialize)]
pub struct FieldChange {
    pub pointer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

#[derive(Clone, PartialEq, Deserialize)]
pub struct Change {
    pub object: ObjectId,
    pub action: Action,
    /// For updates: every changed field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// The desired object (creates and updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Value>,
    /// The live object (updates and deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Value>,
    /// Digest of the desired object, or of the live one for deletes.
    pub digest: String,
    /// Digest of the live object the change was computed against (absent: there was none). A
    /// saved plan is applied only while every live object still has this digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_digest: Option<String>,
    /// The documents that produced the desired object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRef>,
    /// JSON pointers of values decrypted from SOPS files, in the desired object or (as the
    /// inventory remembers) in the live one: every output masks them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The live object was changed (or removed) outside git since cairn last applied it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
}

impl Change {
    /// What a target is asked to do for this change.
    pub fn operation(&self) -> Operation<'_> {
        Operation {
            object: &self.object,
            action: self.action,
            desired: self.desired.as_ref(),
            live: self.live.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.delete > 0
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Plan {
    pub environment: String,
    pub target: String,
    pub source: SourceInfo,
    /// Whether objects cairn applied earlier and no longer renders are deleted.
    pub prune: bool,
    pub summary: Summary,
    /// Changes in apply order: creates and updates in dependency order, then deletes in reverse.
    pub changes: Vec<Change>,
    /// Objects cairn manages but no longer renders, kept because pruning is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<ObjectId>,
    /// Deployments released by a strategy (canary, blue/green) instead of being written at once,
    /// with the steps each will go through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<PlannedRollout>,
    /// How each chart layer was rendered: chart, version, digest, helm version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<crate::render::helm::ChartRender>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes()
    }
}

impl fmt::Debug for FieldChange {
    /// The pointer only: alone, a field change does not know whether its values are secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<Value>| v.as_ref().map(|_| "<value>");
        f.debug_struct("FieldChange")
            .field("pointer", &self.pointer)
            .field("old", &shown(&self.old))
            .field("new", &shown(&self.new))
            .finish()
    }
}

impl fmt::Debug for Change {
    /// The change as every output shows it: masked (under a key of its own).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Change { object, action, fields, desired, live, digest, live_digest, sources, secrets, drift } =
            &mask_change(self, &Masker::new());
        let fields: Vec<(&str, &Option<Value>, &Option<Value>)> =
            fields.iter().map(|c| (c.pointer.as_str(), &c.old, &c.new)).collect();
        f.debug_struct("Change")
            .field("object", object)
            .field("action", action)
            .field("fields", &fields)
            .field("desired", desired)
            .field("live", live)
            .field("digest", digest)
            .field("live_digest", live_digest)
            .field("sources", sources)
            .field("secrets", secrets)
            .field("drift", drift)
            .finish()
    }
}

/// A copy of a change that is safe to show: the live and desired objects masked as a pair (so a
/// diff says which secret values changed), and every changed field that is or holds a secret.
/// (Built field by field rather than cloned and overwritten, so no unmasked copy is made.)
fn mask_change(change: &Change, masker: &Masker) -> Change {
    let (live, desired) = masker.mask_pair(change.live.as_ref(), change.desired.as_ref(), &change.secrets);
    let kind = &change.object.kind;
    let fields = change
        .fields
        .iter()
        .map(|field| {
            let state = match (&field.old, &field.new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let mask = |v: &Value| masker.mask_at(kind, &field.pointer, v, &change.secrets, state);
            FieldChange {
                pointer: field.pointer.clone(),
                old: field.old.as_ref().map(mask),
                new: field.new.as_ref().map(mask),
            }
        })
        .collect();
    Change {
        object: change.object.clone(),
        action: change.action,
        fields,
        desired,
        live,
        digest: change.digest.clone(),
        live_digest: change.live_digest.clone(),
        sources: change.sources.clone(),
        secrets: change.secrets.clone(),
        drift: change.drift,
    }
}

impl Maskable for Plan {
    fn mask(&self, masker: &Masker) -> Plan {
        Plan { changes: self.changes.iter().map(|c| mask_change(c, masker)).collect(), ..self.clone() }
    }

    /// Only changes that hold a secret are replaced by masked copies (their plaintext zeroed);
    /// the others are kept as they are.
    fn mask_owned(mut self, masker: &Masker) -> Plan {
        for change in &mut self.changes {
            if !crate::secrets::holds_secrets(&change.object.kind, &change.secrets) {
                continue;
            }
            let masked = mask_change(change, masker);
            for value in [change.desired.as_mut(), change.live.as_mut()].into_iter().flatten() {
                crate::secrets::zeroize_at(value, &change.secrets);
            }
            for field in &mut change.fields {
                for value in [field.old.as_mut(), field.new.as_mut()].into_iter().flatten() {
                    crate::secrets::zeroize_value(value);
                }
            }
            *change = masked;
        }
        self
    }

    fn serialize_masked<S: Serializer>(&self, serializer: S, seal: Seal) -> std::result::Result<S::Ok, S::Error> {
        wire::Plan::of(self, seal).serialize(serializer)
    }
}

/// The JSON of a masked plan, field for field what `derive(Serialize)` on `Plan` wrote. Each view
/// destructures its type without `..`, so a new field does not compile until it is added here.
mod wire {
    use serde::Serialize;
    use serde_json::Value;

    use crate::render::{ObjectId, SourceRef};
    use crate::repo::SourceInfo;
    use crate::secrets::Seal;

    #[derive(Serialize)]
    pub(super) struct Plan<'a> {
        environment: &'a str,
        target: &'a str,
        source: &'a SourceInfo,
        prune: bool,
        summary: super::Summary,
        changes: Vec<Change<'a>>,
        #[serde(skip_serializing_if = "<[ObjectId]>::is_empty")]
        orphans: &'a [ObjectId],
        #[serde(skip_serializing_if = "<[super::PlannedRollout]>::is_empty")]
        rollouts: &'a [super::PlannedRollout],
        #[serde(skip_serializing_if = "<[crate::render::helm::ChartRender]>::is_empty")]
        charts: &'a [crate::render::helm::ChartRender],
    }

    impl<'a> Plan<'a> {
        /// The view of a plan `Maskable::mask` made (the seal says so).
        pub(super) fn of(plan: &'a super::Plan, _: Seal) -> Plan<'a> {
            let super::Plan { environment, target, source, prune, summary, changes, orphans, rollouts, charts } = plan;
            Plan {
                environment,
                target,
                source,
                prune: *prune,
                summary: *summary,
                changes: changes.iter().map(Change::of).collect(),
                orphans,
                rollouts,
                charts,
            }
        }
    }

    #[derive(Serialize)]
    struct Change<'a> {
        object: &'a ObjectId,
        action: super::Action,
        #[serde(skip_serializing_if = "<[FieldChange]>::is_empty")]
        fields: Vec<FieldChange<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        desired: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        live: Option<&'a Value>,
        digest: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        live_digest: Option<&'a str>,
        #[serde(skip_serializing_if = "<[SourceRef]>::is_empty")]
        sources: &'a [SourceRef],
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        secrets: &'a [String],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        drift: bool,
    }

    impl<'a> Change<'a> {
        fn of(change: &'a super::Change) -> Change<'a> {
            let super::Change { object, action, fields, desired, live, digest, live_digest, sources, secrets, drift } =
                change;
            Change {
                object,
                action: *action,
                fields: fields.iter().map(FieldChange::of).collect(),
                desired: desired.as_ref(),
                live: live.as_ref(),
                digest,
                live_digest: live_digest.as_deref(),
                sources,
                secrets,
                drift: *drift,
            }
        }
    }

    #[derive(Serialize)]
    struct FieldChange<'a> {
        pointer: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        old: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        new: Option<&'a Value>,
    }

    impl<'a> FieldChange<'a> {
        fn of(field: &'a super::FieldChange) -> FieldChange<'a> {
            let super::FieldChange { pointer, old, new } = field;
            FieldChange { pointer, old: old.as_ref(), new: new.as_ref() }
        }
    }
}

/// Refuses a wave annotation that is not an integer, naming the document.
pub fn check_waves(rendered: &Rendered) -> Result<()> {
    for object in &rendered.objects {
        let Some(text) = object.body.pointer("/metadata/annotations/cairn~1wave") else { continue };
        if text.as_str().is_some_and(|w| w.trim().parse::<i64>().is_ok()) {
            continue;
        }
        let (file, line) =
            object.sources.last().map_or_else(|| (object.id.to_string(), 0), |s| (s.file.clone(), s.line));
        return Err(crate::Error::Document {
            file,
            line,
            message: format!(
                "{}: annotation `{WAVE_ANNOTATION}` must be an integer in quotes (for example \"-1\" or \"2\"), found {text}",
                object.id
            ),
        });
    }
    Ok(())
}

/// Compares the rendered environment with the target's live state. Given the rendered objects
/// themselves (`Cow::Owned`), the plan takes their bodies instead of copying them: a caller that
/// has no further use for them (a full `plan` of thousands of environments) holds each object
/// once.
pub fn plan(rendered: Cow<'_, Rendered>, target: &Target, source: &SourceInfo, prune: bool) -> Result<Plan> {
    plan_with(rendered, target, source, prune, true)
}

/// Like `plan`; without `exact`, objects a cluster does not have yet are not dry-run (their
/// desired side is the object as rendered), which is all an apply that writes them next needs.
pub fn plan_with(
    rendered: Cow<'_, Rendered>,
    target: &Target,
    source: &SourceInfo,
    prune: bool,
    exact: bool,
) -> Result<Plan> {
    check_waves(&rendered)?;
    let inventory = target.inventory()?;
    let desired_ids: std::collections::HashSet<&ObjectId> = rendered.objects.iter().map(|o| &o.id).collect();
    let stale: Vec<&ObjectId> = inventory.objects.iter().filter(|id| !desired_ids.contains(id)).collect();
    let secrets_involved = rendered.objects.iter().any(|o| crate::secrets::holds_secrets(&o.id.kind, &o.secrets))
        || !inventory.secrets.is_empty()
        || inventory.objects.iter().any(|id| crate::secrets::holds_secrets(&id.kind, &[]));
    match target {
        Target::Local(local) => {
            let mut ids: Vec<&ObjectId> = rendered.objects.iter().map(|o| &o.id).collect();
            ids.extend(stale.iter().copied());
            let live = local.read_objects(&ids)?;
            let digester = local.digester(secrets_involved)?;
            let observed = Observed { live: &live, stale: &stale, inventory: &inventory, digester: &digester };
            let mut plan = compare(rendered, &observed, target.describe(), source, prune);
            order(&mut plan, |id| (0, id.apply_rank()));
            Ok(plan)
        }
        Target::Kubernetes(cluster) => {
            let digester = match cluster.digester(secrets_involved) {
                Ok(digester) => digester,
                Err(e) if secrets_involved => {
                    tracing::warn!("{e}; digests of objects holding secrets are good for this run only");
                    Digester::ephemeral()
                }
                Err(e) => return Err(e),
            };
            // Rendered as last applied and live as cairn left it: the server would store what it
            // has, so no dry run is needed.
            let reuse = |object: &crate::render::Object, live: &Value| {
                let key = object.id.to_string();
                let secret = crate::secrets::holds_secrets(&object.id.kind, &object.secrets);
                inventory.rendered.get(&key).is_some_and(|d| *d == digester.digest(&object.body, secret))
                    && inventory.applied.get(&key).is_some_and(|d| digester.matches(live, d))
            };
            let mut observation = cluster.observe(&rendered.objects, &reuse, !exact)?;
            let mut live = observation.live;
            live.extend(cluster.read_objects(&stale)?);
            // The phases are read before the objects move into the plan (a custom resource's
            // scope comes from its CRD among them).
            let phases: HashMap<ObjectId, usize> = rendered
                .objects
                .iter()
                .map(|o| &o.id)
                .chain(stale.iter().copied())
                .map(|id| (id.clone(), phase(id, cluster.namespaced(id, &rendered.objects))))
                .collect();
            let mut projected = rendered.into_owned();
            for object in &mut projected.objects {
                // An object whose CRD arrives in the same plan has no projection yet: a create.
                if let Some(body) = observation.projected.remove(&object.id) {
                    let mut rendered_body = std::mem::replace(&mut object.body, body);
                    crate::secrets::zeroize_at(&mut rendered_body, &object.secrets);
                }
            }
            let observed = Observed { live: &live, stale: &stale, inventory: &inventory, digester: &digester };
            let mut plan = compare(Cow::Owned(projected), &observed, target.describe(), source, prune);
            order(&mut plan, |id| (phases.get(id).copied().unwrap_or_default(), id.apply_rank()));
            Ok(plan)
        }
    }
}

/// Puts changes in apply order: by wave, then `rank`, then identity; deletions last, reversed.
fn order(plan: &mut Plan, rank: impl Fn(&ObjectId) -> (usize, usize)) {
    let key = |c: &Change| {
        let wave = c.desired.as_ref().or(c.live.as_ref()).map_or(0, wave);
        let (phase, apply_rank) = rank(&c.object);
        (wave, phase, apply_rank, c.object.sort_key().1.to_string(), c.object.clone())
    };
    let (mut deletes, mut others): (Vec<Change>, Vec<Change>) =
        std::mem::take(&mut plan.changes).into_iter().partition(|c| c.action == Action::Delete);
    others.sort_by_cached_key(key);
    deletes.sort_by_cached_key(key);
    deletes.reverse();
    plan.changes = others;
    plan.changes.extend(deletes);
}

/// What the target holds: live objects, inventoried objects no longer rendered, the inventory,
/// and the target's digest key.
pub struct Observed<'a> {
    pub live: &'a HashMap<ObjectId, Value>,
    pub stale: &'a [&'a ObjectId],
    /// What cairn manages there: secret pointers and the digests it last applied.
    pub inventory: &'a Inventory,
    pub digester: &'a Digester,
}

/// The pure part of planning: desired versus observed. Owned objects give their bodies to the
/// changes; borrowed ones are copied.
pub fn compare(
    rendered: Cow<'_, Rendered>,
    observed: &Observed,
    target: String,
    source: &SourceInfo,
    prune: bool,
) -> Plan {
    let digest = |v: &Value, id: &ObjectId, secrets: &[String]| {
        observed.digester.digest(v, crate::secrets::holds_secrets(&id.kind, secrets))
    };
    let live_secrets = |id: &ObjectId| observed.inventory.secrets.get(&id.to_string()).cloned().unwrap_or_default();
    // Changed outside git since cairn applied it: the live object no longer has the digest
    // cairn recorded.
    let drifted = |id: &ObjectId, live: &Value| {
        observed
            .inventory
            .applied
            .get(&id.to_string())
            .is_some_and(|recorded| !observed.digester.matches(live, recorded))
    };
    let mut summary = Summary::default();
    let mut changes = Vec::with_capacity(rendered.objects.len() + observed.stale.len());
    let (environment, charts, mut objects) = match rendered {
        Cow::Borrowed(r) => (r.environment.clone(), r.charts.clone(), Objects::Borrowed(&r.objects)),
        Cow::Owned(mut r) => {
            let objects = std::mem::take(&mut r.objects);
            (std::mem::take(&mut r.environment), std::mem::take(&mut r.charts), Objects::Owned(objects))
        }
    };
    for i in 0..objects.len() {
        let object = objects.get(i);
        let change = match observed.live.get(&object.id) {
            None => {
                summary.create += 1;
                let digest = digest(&object.body, &object.id, &object.secrets);
                let drift = observed.inventory.applied.contains_key(&object.id.to_string());
                let (id, body, sources, secrets) = objects.take(i);
                Change {
                    object: id,
                    action: Action::Create,
                    fields: Vec::new(),
                    desired: Some(body),
                    live: None,
                    digest,
                    live_digest: None,
                    sources,
                    secrets,
                    drift,
                }
            }
            Some(current) if *current == object.body => {
                summary.unchanged += 1;
                let d = digest(&object.body, &object.id, &object.secrets);
                Change {
                    object: object.id.clone(),
                    action: Action::Unchanged,
                    fields: Vec::new(),
                    desired: None,
                    live: None,
                    live_digest: Some(d.clone()),
                    digest: d,
                    sources: Vec::new(),
                    secrets: Vec::new(),
                    drift: false,
                }
            }
            Some(current) => {
                summary.update += 1;
                let mut fields = Vec::new();
                diff_fields(current, &object.body, &mut String::new(), &mut fields);
                let mut secrets = object.secrets.clone();
                for pointer in live_secrets(&object.id) {
                    if !secrets.contains(&pointer) {
                        secrets.push(pointer);
                    }
                }
                let (desired_digest, live_digest) =
                    (digest(&object.body, &object.id, &secrets), digest(current, &object.id, &secrets));
                let drift = drifted(&object.id, current);
                let (id, body, sources, _) = objects.take(i);
                Change {
                    object: id,
                    action: Action::Update,
                    fields,
                    desired: Some(body),
                    live: Some(current.clone()),
                    digest: desired_digest,
                    live_digest: Some(live_digest),
                    sources,
                    secrets,
                    drift,
                }
            }
        };
        changes.push(change);
    }
    let mut orphans = Vec::new();
    let mut deletes: Vec<Change> = Vec::new();
    for id in observed.stale {
        // An inventoried object that is already gone needs no delete.
        let Some(current) = observed.live.get(*id) else { continue };
        if prune {
            summary.delete += 1;
            let secrets = live_secrets(id);
            deletes.push(Change {
                object: (*id).clone(),
                action: Action::Delete,
                fields: Vec::new(),
                desired: None,
                live: Some(current.clone()),
                digest: digest(current, id, &secrets),
                live_digest: Some(digest(current, id, &secrets)),
                sources: Vec::new(),
                secrets,
                drift: drifted(id, current),
            });
        } else {
            orphans.push((*id).clone());
        }
    }
    deletes.sort_by(|a, b| b.object.sort_key().cmp(&a.object.sort_key()));
    changes.extend(deletes);
    orphans.sort();
    Plan { environment, target, source: source.clone(), prune, summary, changes, orphans, rollouts: Vec::new(), charts }
}

/// The objects `compare` reads: borrowed, each taken as a copy, or owned, each taken as it is.
enum Objects<'a> {
    Borrowed(&'a [Object]),
    Owned(Vec<Object>),
}

impl Objects<'_> {
    fn len(&self) -> usize {
        match self {
            Objects::Borrowed(list) => list.len(),
            Objects::Owned(list) => list.len(),
        }
    }

    fn get(&self, i: usize) -> &Object {
        match self {
            Objects::Borrowed(list) => &list[i],
            Objects::Owned(list) => &list[i],
        }
    }

    /// The identity, body, sources and secret pointers of object `i` for its change. An owned
    /// object is left empty (its `Drop` then has nothing to zero: the change holds the values).
    fn take(&mut self, i: usize) -> (ObjectId, Value, Vec<SourceRef>, Vec<String>) {
        match self {
            Objects::Borrowed(list) => {
                let o = &list[i];
                (o.id.clone(), o.body.clone(), o.sources.clone(), o.secrets.clone())
            }
            Objects::Owned(list) => {
                let o = &mut list[i];
                let body = std::mem::take(&mut o.body);
                (o.id.clone(), body, std::mem::take(&mut o.sources), std::mem::take(&mut o.secrets))
            }
        }
    }
}

/// Collects the differences between two values as JSON pointers. Lists of different length are
/// reported as a whole; lists of equal length element by element.
pub fn diff_fields(old: &Value, new: &Value, pointer: &mut String, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, av) in a {
                let len = pointer.len();
                crate::pointer::push(pointer, key);
                match b.get(key) {
                    Some(bv) => diff_fields(av, bv, pointer, out),
                    None => out.push(FieldChange { pointer: pointer.clone(), old: Some(av.clone()), new: None }),
                }
                pointer.truncate(len);
            }
            for (key, bv) in b {
                if !a.contains_key(key) {
                    let len = pointer.len();
                    crate::pointer::push(pointer, key);
                    out.push(FieldChange { pointer: pointer.clone(), old: None, new: Some(bv.clone()) });
                    pointer.truncate(len);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                let len = pointer.len();
                crate::pointer::push(pointer, &i.to_string());
                diff_fields(av, bv, pointer, out);
                pointer.truncate(len);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange { pointer: pointer.clone(), old: Some(a.clone()), new: Some(b.clone()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_changes_are_json_pointers_with_old_and_new() {
        let old =
            json!({"metadata": {"labels": {"a/b": "1", "gone": "x"}}, "spec": {"replicas": 1, "ports": [80, 443]}});
        let new = json!({"metadata": {"labels": {"a/b": "2", "new~": "y"}}, "spec": {"replicas": 1, "ports": [80]}});
        let mut out = Vec::new();
        diff_fields(&old, &new, &mut String::new(), &mut out);
        let pointers: Vec<&str> = out.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec!["/metadata/labels/a~1b", "/metadata/labels/gone", "/metadata/labels/new~0", "/spec/ports"]
        );
        assert_eq!(out[0].old, Some(json!("1")));
        assert_eq!(out[0].new, Some(json!("2")));
        assert_eq!(out[1].new, None);
        assert_eq!(out[2].old, None);
    }

    #[test]
    fn a_masked_plan_writes_every_field_and_no_secret() {
        let id = |kind: &str| ObjectId { group: String::new(), kind: kind.into(), namespace: None, name: "db".into() };
        let change = Change {
            object: id("Secret"),
            action: Action::Update,
            fields: vec![FieldChange {
                pointer: "/data/password".into(),
                old: Some(json!("aHVudGVyMg==")),
                new: Some(json!("aHVudGVyMw==")),
            }],
            desired: Some(json!({"kind": "Secret", "data": {"password": "aHVudGVyMw=="}, "spec": {"pin": 1234}})),
            live: Some(json!({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}, "spec": {"pin": 1234}})),
            digest: "hmac-sha256:01".into(),
            live_digest: Some("hmac-sha256:02".into()),
            sources: vec![SourceRef { file: "base/db.yaml".into(), line: 1 }],
            secrets: vec!["/spec/pin".into()],
            drift: true,
        };
        let plan = Plan {
            environment: "staging".into(),
            target: "local".into(),
            source: SourceInfo::WorkTree { head: None, dirty: true },
            prune: false,
            summary: Summary { update: 1, ..Summary::default() },
            changes: vec![change],
            orphans: vec![id("ConfigMap")],
            rollouts: Vec::new(),
            charts: Vec::new(),
        };
        let debug = format!("{plan:?}");
        let masked = crate::secrets::Masked::new(&vec![plan]);
        let json = serde_json::to_value(&masked).expect("serializes");
        for shown in [json.to_string(), debug] {
            assert!(!shown.contains("aHVudGVy") && !shown.contains("1234"), "{shown}");
        }
        // Read back, every field is there: the view left nothing out.
        let back: Vec<Plan> = serde_json::from_value(json).expect("reads back");
        assert_eq!(&back, &*masked);
        assert!(back[0].changes[0].drift && back[0].changes[0].live_digest.is_some() && !back[0].orphans.is_empty());
    }

    fn object(kind: &str, name: &str, body: Value, secrets: &[&str]) -> Object {
        let id =
            ObjectId { group: String::new(), kind: kind.into(), namespace: Some("shop".into()), name: name.into() };
        let mut object = Object::new(id, body, vec![SourceRef { file: format!("base/{name}.yaml"), line: 1 }]);
        object.secrets = secrets.iter().map(|s| s.to_string()).collect();
        object
    }

    /// An environment with a create, an update, an unchanged object and a stale one, two of them
    /// holding secrets, and its live side.
    fn environment() -> (Rendered, HashMap<ObjectId, Value>, Inventory) {
        let settings = |level: i64| json!({"kind": "ConfigMap", "data": {"level": level}});
        let secret = |password: &str| json!({"kind": "Secret", "stringData": {"password": password}});
        let token = |token: &str| json!({"kind": "ConfigMap", "data": {"token": token, "plain": "x"}});
        let rendered = Rendered {
            environment: "staging".into(),
            objects: vec![
                object("ConfigMap", "settings", settings(2), &[]),
                object("Secret", "db", secret("hunter3"), &[]),
                object("ConfigMap", "api", token("sesame-2"), &["/data/token"]),
                object("ConfigMap", "same", settings(1), &[]),
            ],
            charts: Vec::new(),
        };
        let mut live = HashMap::new();
        live.insert(rendered.objects[1].id.clone(), secret("hunter2"));
        live.insert(rendered.objects[3].id.clone(), settings(1));
        let stale = object("ConfigMap", "old", settings(0), &[]);
        live.insert(stale.id.clone(), settings(0));
        let mut inventory = Inventory { environment: "staging".into(), ..Inventory::default() };
        inventory.objects.extend(rendered.objects.iter().map(|o| o.id.clone()));
        inventory.objects.insert(stale.id.clone());
        (rendered, live, inventory)
    }

    #[test]
    fn a_plan_of_owned_objects_equals_a_plan_of_borrowed_ones() {
        let (rendered, live, inventory) = environment();
        let stale: Vec<&ObjectId> =
            inventory.objects.iter().filter(|id| !rendered.objects.iter().any(|o| o.id == **id)).collect();
        let digester = Digester::new(Some(b"key"));
        let observed = Observed { live: &live, stale: &stale, inventory: &inventory, digester: &digester };
        let source = SourceInfo::WorkTree { head: None, dirty: false };
        let borrowed = compare(Cow::Borrowed(&rendered), &observed, "local".into(), &source, true);
        let owned = compare(Cow::Owned(rendered.clone()), &observed, "local".into(), &source, true);
        assert_eq!(borrowed, owned);
        let actions: Vec<Action> = owned.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::Create, Action::Update, Action::Create, Action::Unchanged, Action::Delete]);
        assert_eq!(owned.changes[2].desired, Some(rendered.objects[2].body.clone()));
        assert_eq!(owned.changes[2].secrets, ["/data/token"]);
        assert_eq!(owned.changes[0].sources, rendered.objects[0].sources);
    }

    #[test]
    fn masking_a_plan_in_place_equals_masking_a_copy() {
        let (rendered, live, inventory) = environment();
        let stale: Vec<&ObjectId> = Vec::new();
        let digester = Digester::new(Some(b"key"));
        let observed = Observed { live: &live, stale: &stale, inventory: &inventory, digester: &digester };
        let source = SourceInfo::WorkTree { head: None, dirty: false };
        let plan = compare(Cow::Owned(rendered), &observed, "local".into(), &source, true);
        let masker = Masker::new();
        let plan_copy_of_first = |p: &Plan| p.changes[0].clone();
        let untouched = plan.changes[0].clone();
        let copied = plan.mask(&masker);
        let in_place = plan.mask_owned(&masker);
        assert_eq!(copied, in_place);
        let at =
            |i: usize, pointer: &str| in_place.changes[i].desired.as_ref().and_then(|d| d.pointer(pointer)).cloned();
        let marker = |v: Option<Value>| v.and_then(|v| v.as_str().map(|s| s.starts_with("<secret: "))).unwrap_or(false);
        assert!(marker(at(1, "/stringData/password")) && marker(at(2, "/data/token")));
        assert_eq!(at(2, "/data/plain"), Some(json!("x")));
        assert_eq!(in_place.changes[0], plan_copy_of_first(&copied));
        assert_eq!(in_place.changes[0], untouched);
        let live = in_place.changes[1].live.as_ref().and_then(|l| l.pointer("/stringData/password")).cloned();
        assert!(marker(live));
    }
}
