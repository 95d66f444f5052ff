//! Which changes of a plan are released by a strategy instead of being written at once, and
//! what each will go through: the replica counts of every canary step, the temporary objects,
//! the Services a blue/green switch moves. Worked out with the plan, so a pull request shows the
//! steps and an impossible one (a canary of one replica at 25%) stops before anything is written.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Action, Plan};
use crate::config::{BlueGreen, Config, DEFAULT_SCALE_DOWN_DELAY, DEFAULT_STEP_TIMEOUT, Environment, How, Step};
use crate::error::{Error, Result};
use crate::render::{Object, ObjectId, Rendered};
use crate::target::Target;

/// The annotation that gives one Deployment a strategy without an entry in `cairn.yaml`.
pub const STRATEGY_ANNOTATION: &str = "cairn/strategy";
/// The label cairn adds to the pods (and selector) of a rollout's temporary Deployment.
pub const TRACK_LABEL: &str = "cairn/track";

/// One Deployment's rollout as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRollout {
    pub workload: ObjectId,
    /// The strategy's name in `cairn.yaml`, or `annotation` for `cairn/strategy`.
    pub strategy: String,
    pub how: How,
    /// Replicas of the new version once it is released (the configured `spec.replicas`).
    pub replicas: u32,
    /// Replicas of the running version before the rollout; an abort restores them.
    pub stable_replicas: u32,
    /// The Deployment the new version runs in until it is released: `<name>-canary` or
    /// `<name>-preview`, deleted at the end.
    pub temporary: ObjectId,
    /// Digest of the new pod template: a rollout interrupted half-way is resumed only by an
    /// apply of this same template.
    pub template: String,
    /// The longest one step waits for its pods to become ready.
    #[serde(with = "crate::duration::text")]
    pub timeout: Duration,
    /// What will happen, in order.
    pub phases: Vec<Phase>,
}

/// One thing a rollout does, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// `weight 25%`, `pause 5m`, `verify smoke, error-rate`, `switch web to the new version`, …
    pub what: String,
    /// Replicas of the new version after this phase.
    pub new: u32,
    /// Replicas of the old version after this phase.
    pub old: u32,
}

/// New-version replicas at a weight: rounded up, so any weight above 0 runs at least one pod
/// (Argo Rollouts' basic canary rounds the same way).
pub fn canary_replicas(replicas: u32, weight: u32) -> u32 {
    (u64::from(replicas) * u64::from(weight)).div_ceil(100) as u32
}

/// The rollouts of a plan: every updated Deployment whose pod template changes and that a
/// strategy selects (in `cairn.yaml` for this environment, or by its `cairn/strategy`
/// annotation). A new Deployment has no old version to shift traffic from and is created at
/// once; a change that leaves the pod template alone (replicas, labels) is applied at once.
pub fn rollouts(
    plan: &Plan,
    rendered: &Rendered,
    config: &Config,
    env: &Environment,
    target: &Target,
) -> Result<Vec<PlannedRollout>> {
    let objects: BTreeMap<&ObjectId, &Object> = rendered.objects.iter().map(|o| (&o.id, o)).collect();
    for o in &rendered.objects {
        if o.id.kind != "Deployment" && annotation(&o.body).is_some() {
            return Err(at(
                o,
                &format!("`{STRATEGY_ANNOTATION}` is on a {}; strategies release Deployments only", o.id.kind),
            ));
        }
    }
    let mut out = Vec::new();
    for change in &plan.changes {
        if change.object.kind != "Deployment" || change.object.group != "apps" || change.action != Action::Update {
            continue;
        }
        let (Some(desired), Some(live), Some(object)) =
            (change.desired.as_ref(), change.live.as_ref(), objects.get(&change.object))
        else {
            continue;
        };
        let Some((strategy, how, timeout)) = strategy_of(object, config, env)? else { continue };
        if desired.pointer("/spec/template") == live.pointer("/spec/template") {
            continue;
        }
        let replicas = replicas_of(desired);
        let stable_replicas = replicas_of(live);
        let secret = crate::secrets::holds_secrets(&change.object.kind, &change.secrets);
        let template =
            target.digester(secret)?.digest(desired.pointer("/spec/template").unwrap_or(&Value::Null), secret);
        let suffix = match how {
            How::Canary { .. } => "canary",
            How::BlueGreen(_) => "preview",
        };
        let temporary = ObjectId { name: format!("{}-{suffix}", change.object.name), ..change.object.clone() };
        if objects.contains_key(&temporary) {
            return Err(at(
                object,
                &format!(
                    "the rollout of {} needs the name {} for its temporary Deployment, and this environment already has an object of that name",
                    change.object, temporary.name
                ),
            ));
        }
        let phases = match &how {
            How::Canary { steps } => canary_phases(object, steps, replicas, stable_replicas)?,
            How::BlueGreen(bg) => blue_green_phases(object, bg, &objects, replicas, stable_replicas)?,
        };
        out.push(PlannedRollout {
            workload: change.object.clone(),
            strategy,
            how,
            replicas,
            stable_replicas,
            temporary,
            template,
            timeout,
            phases,
        });
    }
    Ok(out)
}

/// Whether `rollouts` may find a rollout in this environment: a strategy is declared, or an
/// object is annotated with one. Otherwise a plan needs no rendered object after it is made.
pub fn may_roll_out(config: &Config, rendered: &Rendered) -> bool {
    !config.strategies.is_empty() || rendered.objects.iter().any(|o| annotation(&o.body).is_some())
}

fn annotation(body: &Value) -> Option<&str> {
    body.pointer("/metadata/annotations").and_then(|a| a.get(STRATEGY_ANNOTATION)).and_then(Value::as_str)
}

fn replicas_of(body: &Value) -> u32 {
    body.pointer("/spec/replicas").and_then(Value::as_u64).map_or(1, |r| u32::try_from(r).unwrap_or(u32::MAX))
}

fn at(object: &Object, message: &str) -> Error {
    let place = object.sources.last().map(|s| format!("{s}: ")).unwrap_or_default();
    Error::Usage { message: format!("{place}{}: {message}", object.id) }
}

/// The strategy of one Deployment in this environment: the first in `cairn.yaml` that selects
/// it, else its annotation.
fn strategy_of(object: &Object, config: &Config, env: &Environment) -> Result<Option<(String, How, Duration)>> {
    let labels = object.body.pointer("/metadata/labels").cloned().unwrap_or(Value::Null);
    let declared = config.strategies.iter().find(|s| {
        (s.environments.is_empty() || s.environments.contains(&env.name))
            && s.select.matches(&object.id.name, object.id.namespace.as_deref(), &labels)
    });
    if let Some(s) = declared {
        return Ok(Some((s.name.clone(), s.how.clone(), s.timeout)));
    }
    let Some(kind) = annotation(&object.body) else { return Ok(None) };
    let note = |k: &str| object.body.pointer("/metadata/annotations").and_then(|a| a.get(k)).and_then(Value::as_str);
    // Annotated Deployments verify with every check of the environment.
    let all: Vec<String> = env.verify.checks.iter().map(|c| c.name.clone()).collect();
    let how = match kind {
        "canary" => {
            let weights = note("cairn/canary-weights").unwrap_or("25,50");
            let mut steps = Vec::new();
            let mut last = 0;
            for w in weights.split(',') {
                let w: u32 = w.trim().parse().ok().filter(|w| (1..=100).contains(w) && *w > last).ok_or_else(|| {
                    at(object, &format!("`cairn/canary-weights: \"{weights}\"` must be increasing percentages from 1 to 100, separated by commas"))
                })?;
                last = w;
                steps.push(Step::Weight(w));
                if !all.is_empty() {
                    steps.push(Step::Verify(all.clone()));
                }
            }
            How::Canary { steps }
        }
        "blue-green" => How::BlueGreen(BlueGreen {
            active_service: note("cairn/active-service")
                .ok_or_else(|| at(object, "`cairn/strategy: blue-green` needs the annotation `cairn/active-service` (the Service users reach)"))?
                .to_string(),
            preview_service: note("cairn/preview-service").map(str::to_string),
            verify: all,
            scale_down_delay: match note("cairn/scale-down-delay") {
                Some(d) => crate::duration::parse(d)
                    .map_err(|e| at(object, &format!("`cairn/scale-down-delay: {d}` is not a duration: {e}")))?,
                None => DEFAULT_SCALE_DOWN_DELAY,
            },
        }),
        other => {
            return Err(at(
                object,
                &format!("`{STRATEGY_ANNOTATION}: {other}` is not a strategy; use `canary` or `blue-green`"),
            ));
        }
    };
    Ok(Some(("annotation".to_string(), how, DEFAULT_STEP_TIMEOUT)))
}

fn canary_phases(object: &Object, steps: &[Step], replicas: u32, stable: u32) -> Result<Vec<Phase>> {
    let mut phases = Vec::new();
    let (mut new, mut old) = (0, stable);
    for step in steps {
        let what = match step {
            Step::Weight(w) => {
                new = canary_replicas(replicas, *w);
                if *w < 100 && new >= replicas {
                    let least = 100u32.div_ceil(100 - w).max(2);
                    let allowed = match replicas {
                        0 | 1 => "no weight below 100% can be honoured".to_string(),
                        r => format!("weights up to {}% can be honoured", 100 * (r - 1) / r),
                    };
                    return Err(at(
                        object,
                        &format!(
                            "a canary weight of {w}% cannot be honoured with {replicas} replica(s): pods are split whole, the new version gets {w}% of them rounded up, and that leaves no old pod; with {replicas} replica(s) {allowed}; set `spec.replicas` to at least {least}, or lower the weight"
                        ),
                    ));
                }
                old = replicas - new;
                format!("weight {w}%: {new} new, {old} old")
            }
            Step::Pause(d) => format!("pause {}", crate::duration::format(*d)),
            Step::Verify(names) => format!("verify {}", names.join(", ")),
        };
        phases.push(Phase { what, new, old });
    }
    phases.push(Phase {
        what: format!(
            "release: {} takes the new version ({replicas} replicas), {}-canary is deleted",
            object.id.name, object.id.name
        ),
        new: replicas,
        old: 0,
    });
    Ok(phases)
}

fn blue_green_phases(
    object: &Object,
    bg: &BlueGreen,
    objects: &BTreeMap<&ObjectId, &Object>,
    replicas: u32,
    stable: u32,
) -> Result<Vec<Phase>> {
    let pod_labels = object.body.pointer("/spec/template/metadata/labels").cloned().unwrap_or(Value::Null);
    let services = std::iter::once(&bg.active_service).chain(bg.preview_service.as_ref());
    for name in services {
        let id = ObjectId {
            group: String::new(),
            kind: "Service".into(),
            namespace: object.id.namespace.clone(),
            name: name.clone(),
        };
        let Some(service) = objects.get(&id) else {
            return Err(at(
                object,
                &format!(
                    "blue/green needs the Service `{name}` in this environment (namespace {}), and there is none",
                    object.id.namespace.as_deref().unwrap_or("default")
                ),
            ));
        };
        let selector = service.body.pointer("/spec/selector").and_then(Value::as_object);
        let selects =
            selector.is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| pod_labels.get(k).is_some_and(|p| p == v)));
        if !selects {
            return Err(at(
                service,
                &format!(
                    "the Service `{name}` does not select the pods of {} (its `spec.selector` must be labels the pod template carries), so blue/green cannot switch it",
                    object.id
                ),
            ));
        }
    }
    let name = &object.id.name;
    let mut phases = vec![Phase {
        what: format!("start {name}-preview with the new version ({replicas} replicas)"),
        new: replicas,
        old: stable,
    }];
    if let Some(preview) = &bg.preview_service {
        phases.push(Phase { what: format!("point {preview} at the new version"), new: replicas, old: stable });
    }
    if !bg.verify.is_empty() {
        phases.push(Phase { what: format!("verify {}", bg.verify.join(", ")), new: replicas, old: stable });
    }
    phases.push(Phase { what: format!("switch {} to the new version", bg.active_service), new: replicas, old: stable });
    phases.push(Phase {
        what: format!(
            "after {}: {name} takes the new version, the old one stops, {name}-preview is deleted",
            crate::duration::format(bg.scale_down_delay)
        ),
        new: replicas,
        old: 0,
    });
    Ok(phases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_up_to_whole_pods() {
        assert_eq!(canary_replicas(10, 10), 1);
        assert_eq!(canary_replicas(10, 50), 5);
        assert_eq!(canary_replicas(4, 10), 1);
        assert_eq!(canary_replicas(4, 90), 4);
        assert_eq!(canary_replicas(3, 100), 3);
    }
}
