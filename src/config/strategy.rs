//! `strategies:` of `cairn.yaml`: which Deployments are released as a canary or blue/green
//! rollout, in which environments, through which steps. Validated once here, against the
//! environments and their checks, so a weight of 150 or a step naming a check that does not
//! exist is a config error with its line, not a rollout that stops half-way.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Environment;
use super::verify::Located;
use crate::error::Result;
use crate::yaml::{Key, Node, NodeValue};

/// How long one step may wait for its pods to become ready before the rollout aborts.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long blue/green keeps the old version running after the switch (Argo Rollouts' default).
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);

/// One declared strategy.
#[derive(Debug, Clone, Serialize)]
pub struct Strategy {
    pub name: String,
    pub select: Selector,
    /// The environments it applies in; every environment when empty.
    pub environments: Vec<String>,
    pub how: How,
    /// The longest one step waits for its pods to become ready.
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub timeout: Duration,
    pub file: String,
    pub line: u64,
}

/// Which Deployments a strategy is for: every field given must match.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selector {
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Labels the Deployment's own `metadata.labels` must carry.
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    pub fn matches(&self, name: &str, namespace: Option<&str>, labels: &serde_json::Value) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.namespace.as_deref().is_none_or(|n| Some(n) == namespace)
            && self.labels.iter().all(|(k, v)| labels.get(k).and_then(serde_json::Value::as_str) == Some(v))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    Canary { steps: Vec<Step> },
    BlueGreen(BlueGreen),
}

impl How {
    pub fn kind(&self) -> &'static str {
        match self {
            How::Canary { .. } => "canary",
            How::BlueGreen(_) => "blue-green",
        }
    }
}

/// One step of a canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Percent of the Deployment's pods that run the new version.
    Weight(u32),
    #[serde(with = "crate::duration::text")]
    Pause(Duration),
    /// The environment's checks of these names; every one must pass.
    Verify(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueGreen {
    /// The Service that carries users' traffic; switched to the new version once it is proven.
    pub active_service: String,
    /// The Service that reaches the new version before the switch (for the checks).
    pub preview_service: Option<String>,
    /// The environment's checks run against the new version before the switch.
    pub verify: Vec<String>,
    /// How long the old version keeps running after the switch, for an instant switch back.
    #[serde(with = "crate::duration::text")]
    pub scale_down_delay: Duration,
}

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

/// `strategies:` — a list of strategies, checked against the environments they name.
pub(crate) fn parse_strategies(loc: &Located, node: &Node, environments: &[Environment]) -> Result<Vec<Strategy>> {
    let NodeValue::Seq(items) = &node.value else {
        return Err(loc.at(node, &format!("`strategies` must be a list, found {}", node.kind_name())));
    };
    let mut out: Vec<Strategy> = Vec::new();
    for item in items {
        let strategy = parse_strategy(loc, item, environments)?;
        if out.iter().any(|s| s.name == strategy.name) {
            return Err(loc.at(item, &format!("a second strategy is named `{}`; names must be unique", strategy.name)));
        }
        out.push(strategy);
    }
    Ok(out)
}

fn parse_strategy(loc: &Located, node: &Node, environments: &[Environment]) -> Result<Strategy> {
    let map = loc.map(node, "a strategy")?;
    loc.keys(map, &["name", "select", "environments", "canary", "blue_green", "timeout"], "a strategy")?;
    let name = match find(map, "name") {
        Some(v) => loc.string(v, "a strategy's `name`")?,
        None => return Err(loc.at(node, "a strategy needs `name`")),
    };
    let what = format!("strategy `{name}`");
    let select_node = find(map, "select")
        .ok_or_else(|| loc.at(node, &format!("{what} needs `select` ({{kind: Deployment, name}})")))?;
    let select = parse_select(loc, select_node, &what)?;
    let mut names = Vec::new();
    if let Some(v) = find(map, "environments") {
        let NodeValue::Seq(list) = &v.value else {
            return Err(loc.at(v, &format!("{what}: `environments` must be a list of environment names")));
        };
        for e in list {
            let env = loc.string(e, &format!("{what}: an environment"))?;
            if !environments.iter().any(|x| x.name == env) {
                let known = environments.iter().map(|x| x.name.as_str());
                return Err(
                    loc.at(e, &format!("{what}: unknown environment `{env}`{}", crate::suggest::suggest(&env, known)))
                );
            }
            names.push(env);
        }
    }
    let timeout = match find(map, "timeout") {
        Some(v) => loc.duration(v, &format!("{what}: `timeout`"))?,
        None => DEFAULT_STEP_TIMEOUT,
    };
    let how = match (find(map, "canary"), find(map, "blue_green")) {
        (Some(c), None) => parse_canary(loc, c, &what)?,
        (None, Some(b)) => How::BlueGreen(parse_blue_green(loc, b, &what)?),
        (Some(_), Some(_)) => return Err(loc.at(node, &format!("{what}: give `canary` or `blue_green`, not both"))),
        (None, None) => return Err(loc.at(node, &format!("{what} needs `canary: {{steps}}` or `blue_green: {{…}}`"))),
    };
    // Each step's checks must exist in every environment the strategy applies to.
    let applies: Vec<&Environment> =
        environments.iter().filter(|e| names.is_empty() || names.contains(&e.name)).collect();
    for (check, at) in named_checks(&how, map) {
        for env in &applies {
            if !env.verify.checks.iter().any(|c| c.name == check) {
                let known = env.verify.checks.iter().map(|c| c.name.as_str());
                return Err(loc.at(
                    at,
                    &format!(
                        "{what}: environment `{}` has no check named `{check}`{} (a step's checks are the environment's `verify:` checks, by name)",
                        env.name,
                        crate::suggest::suggest(&check, known)
                    ),
                ));
            }
        }
    }
    Ok(Strategy { name, select, environments: names, how, timeout, file: loc.file.to_string(), line: node.line })
}

/// Every check a strategy names, with the node that names it (for the error's line).
fn named_checks<'a>(how: &How, map: &'a [(Key, Node)]) -> Vec<(String, &'a Node)> {
    let mut out = Vec::new();
    let nodes: Vec<&Node> = match how {
        How::Canary { .. } => find(map, "canary")
            .and_then(|c| match &c.value {
                NodeValue::Map(m) => find(m, "steps"),
                _ => None,
            })
            .map(|s| match &s.value {
                NodeValue::Seq(steps) => steps
                    .iter()
                    .filter_map(|step| match &step.value {
                        NodeValue::Map(m) => find(m, "verify"),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default(),
        How::BlueGreen(_) => find(map, "blue_green")
            .and_then(|b| match &b.value {
                NodeValue::Map(m) => find(m, "verify"),
                _ => None,
            })
            .into_iter()
            .collect(),
    };
    for node in nodes {
        if let NodeValue::Seq(names) = &node.value {
            for n in names {
                if let Some(s) = n.as_str() {
                    out.push((s.to_string(), n));
                }
            }
        }
    }
    out
}

fn parse_select(loc: &Located, node: &Node, what: &str) -> Result<Selector> {
    let map = loc.map(node, &format!("{what}: `select`"))?;
    loc.keys(map, &["kind", "name", "namespace", "labels"], &format!("{what}: `select`"))?;
    match find(map, "kind") {
        Some(v) => {
            let kind = loc.string(v, &format!("{what}: `select.kind`"))?;
            if kind != "Deployment" {
                return Err(loc.at(
                    v,
                    &format!("{what}: a strategy releases Deployments only, not `{kind}`; StatefulSets and DaemonSets roll out with their own update strategy"),
                ));
            }
        }
        None => return Err(loc.at(node, &format!("{what}: `select` needs `kind: Deployment`"))),
    }
    let text = |k: &str| find(map, k).map(|v| loc.string(v, &format!("{what}: `select.{k}`"))).transpose();
    let mut labels = BTreeMap::new();
    if let Some(v) = find(map, "labels") {
        for (key, value) in loc.map(v, &format!("{what}: `select.labels`"))? {
            labels.insert(key.name.clone(), loc.string(value, &format!("{what}: label `{}`", key.name))?);
        }
    }
    Ok(Selector { name: text("name")?, namespace: text("namespace")?, labels })
}

fn parse_canary(loc: &Located, node: &Node, what: &str) -> Result<How> {
    let map = loc.map(node, &format!("{what}: `canary`"))?;
    loc.keys(map, &["steps"], &format!("{what}: `canary`"))?;
    let steps_node = find(map, "steps").ok_or_else(|| loc.at(node, &format!("{what}: `canary` needs `steps`")))?;
    let NodeValue::Seq(items) = &steps_node.value else {
        return Err(loc.at(steps_node, &format!("{what}: `canary.steps` must be a list of steps")));
    };
    let mut steps = Vec::new();
    let mut last_weight = 0;
    for item in items {
        let step = loc.map(item, &format!("{what}: a step"))?;
        loc.keys(step, &["weight", "pause", "verify"], &format!("{what}: a step"))?;
        let [(key, value)] = step else {
            return Err(
                loc.at(item, &format!("{what}: a step is one of `weight: N`, `pause: DURATION` or `verify: [checks]`"))
            );
        };
        steps.push(match key.name.as_str() {
            "weight" => {
                let w = loc.whole(value, &format!("{what}: `weight`"), u64::from(u32::MAX))?;
                if !(1..=100).contains(&w) {
                    return Err(loc.at(
                        value,
                        &format!("{what}: `weight` is the percent of the pods that run the new version: from 1 to 100, found {w}"),
                    ));
                }
                if w <= last_weight {
                    return Err(loc.at(
                        value,
                        &format!("{what}: weights must increase from step to step: {w} follows {last_weight}"),
                    ));
                }
                last_weight = w;
                Step::Weight(w)
            }
            "pause" => Step::Pause(loc.duration(value, &format!("{what}: `pause`"))?),
            _ => Step::Verify(names(loc, value, &format!("{what}: `verify`"))?),
        });
    }
    if !steps.iter().any(|s| matches!(s, Step::Weight(_))) {
        return Err(loc.at(steps_node, &format!("{what}: a canary needs at least one `weight:` step")));
    }
    Ok(How::Canary { steps })
}

fn parse_blue_green(loc: &Located, node: &Node, what: &str) -> Result<BlueGreen> {
    let map = loc.map(node, &format!("{what}: `blue_green`"))?;
    loc.keys(
        map,
        &["active_service", "preview_service", "verify", "scale_down_delay"],
        &format!("{what}: `blue_green`"),
    )?;
    let active_service = match find(map, "active_service") {
        Some(v) => loc.string(v, &format!("{what}: `active_service`"))?,
        None => {
            return Err(loc.at(node, &format!("{what}: `blue_green` needs `active_service` (the Service users reach)")));
        }
    };
    let preview_service =
        find(map, "preview_service").map(|v| loc.string(v, &format!("{what}: `preview_service`"))).transpose()?;
    if preview_service.as_deref() == Some(active_service.as_str()) {
        return Err(loc.at(node, &format!("{what}: `preview_service` must differ from `active_service`")));
    }
    let verify = match find(map, "verify") {
        Some(v) => names(loc, v, &format!("{what}: `verify`"))?,
        None => Vec::new(),
    };
    let scale_down_delay = match find(map, "scale_down_delay") {
        Some(v) => loc.duration(v, &format!("{what}: `scale_down_delay`"))?,
        None => DEFAULT_SCALE_DOWN_DELAY,
    };
    Ok(BlueGreen { active_service, preview_service, verify, scale_down_delay })
}

fn names(loc: &Located, node: &Node, what: &str) -> Result<Vec<String>> {
    let NodeValue::Seq(items) = &node.value else {
        return Err(loc.at(node, &format!("{what} must be a list of check names")));
    };
    if items.is_empty() {
        return Err(loc.at(node, &format!("{what} names no check")));
    }
    items.iter().map(|n| loc.string(n, what)).collect()
}
