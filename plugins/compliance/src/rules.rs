//! The rules. Each takes an object and its rule settings and returns what does not hold, with a
//! JSON pointer so cairn can point at the line.

use cairn_policy_sdk::Object;
use serde_json::{Map, Value};

pub struct Found {
    pub message: String,
    pub pointer: String,
}

type Check = fn(&Object, &Rule, &str) -> Vec<Found>;

/// Every rule, by stable id, in report order.
pub const RULES: &[(&str, Check)] = &[
    ("privileged", privileged),
    ("host-namespaces", host_namespaces),
    ("host-path", host_path),
    ("privilege-escalation", privilege_escalation),
    ("run-as-non-root", run_as_non_root),
    ("capabilities", capabilities),
    ("resources", resources),
    ("probes", probes),
    ("image-tag", image_tag),
    ("allowed-registries", allowed_registries),
    ("owner-label", owner_label),
    ("default-namespace", default_namespace),
    ("replicas", replicas),
    ("node-port", node_port),
];

/// One rule's settings: `enabled`, `severity` and its own options.
pub struct Rule {
    pub severity: String,
    options: Map<String, Value>,
}

impl Rule {
    fn strings(&self, key: &str, default: &[&str]) -> Vec<String> {
        match self.options.get(key).and_then(Value::as_array) {
            Some(list) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            None => default.iter().map(|s| s.to_string()).collect(),
        }
    }
}

pub struct Settings {
    rules: Vec<(&'static str, Option<Rule>)>,
}

/// The options each rule accepts besides `enabled` and `severity`, with their JSON type.
const OPTIONS: &[(&str, &[(&str, &str)])] = &[
    ("capabilities", &[("allowed", "list")]),
    ("resources", &[("require", "list")]),
    ("probes", &[("require", "list")]),
    ("allowed-registries", &[("registries", "list")]),
    ("owner-label", &[("label", "string"), ("kinds", "list")]),
    ("replicas", &[("min", "number"), ("environments", "list")]),
];

impl Settings {
    pub fn read(settings: &Value) -> Result<Settings, String> {
        let empty = Map::new();
        let top = match settings {
            Value::Null => &empty,
            Value::Object(map) => map,
            _ => return Err("settings must be a mapping".into()),
        };
        if let Some(key) = top.keys().find(|k| *k != "rules") {
            return Err(format!("unknown setting `{key}` (valid: rules)"));
        }
        let given = match top.get("rules") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => return Err("settings.rules must be a mapping of rule id → settings".into()),
        };
        for id in given.keys() {
            if !RULES.iter().any(|(r, _)| r == id) {
                let ids: Vec<&str> = RULES.iter().map(|(r, _)| *r).collect();
                return Err(format!("settings.rules: unknown rule `{id}` (rules: {})", ids.join(", ")));
            }
        }
        let mut rules = Vec::new();
        for (id, _) in RULES {
            let options = match given.get(*id) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(map)) => map.clone(),
                Some(_) => return Err(format!("settings.rules.{id} must be a mapping")),
            };
            let allowed: &[(&str, &str)] = OPTIONS.iter().find(|(r, _)| r == id).map_or(&[], |(_, o)| o);
            for (key, value) in &options {
                let kind = match key.as_str() {
                    "enabled" => "bool",
                    "severity" => "severity",
                    other => match allowed.iter().find(|(k, _)| *k == other) {
                        Some((_, kind)) => kind,
                        None => {
                            let mut valid = vec!["enabled", "severity"];
                            valid.extend(allowed.iter().map(|(k, _)| *k));
                            return Err(format!(
                                "settings.rules.{id}: unknown option `{other}` (valid: {})",
                                valid.join(", ")
                            ));
                        }
                    },
                };
                let ok = match kind {
                    "bool" => value.is_boolean(),
                    "severity" => matches!(value.as_str(), Some("error" | "warning")),
                    "list" => value.as_array().is_some_and(|l| l.iter().all(Value::is_string)),
                    "number" => value.as_u64().is_some(),
                    _ => value.is_string(),
                };
                if !ok {
                    let want = match kind {
                        "bool" => "true or false",
                        "severity" => "`error` or `warning`",
                        "list" => "a list of strings",
                        "number" => "a whole number",
                        _ => "a string",
                    };
                    return Err(format!("settings.rules.{id}.{key} must be {want}"));
                }
            }
            let enabled = options.get("enabled").and_then(Value::as_bool).unwrap_or(true);
            let severity = options.get("severity").and_then(Value::as_str).unwrap_or_default().to_string();
            rules.push((*id, enabled.then_some(Rule { severity, options })));
        }
        Ok(Settings { rules })
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|(r, _)| *r == id).and_then(|(_, rule)| rule.as_ref())
    }
}

/// The pod spec of a workload and its JSON pointer.
fn pod_spec(object: &Object) -> Option<(&Map<String, Value>, &'static str)> {
    let pointer = match object.kind() {
        "Pod" => "/spec",
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            "/spec/template/spec"
        }
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    object.0.pointer(pointer).and_then(Value::as_object).map(|spec| (spec, pointer))
}

/// Every container (init, regular, ephemeral) with its pointer.
fn containers(object: &Object) -> Vec<(&Map<String, Value>, String)> {
    let Some((spec, base)) = pod_spec(object) else { return Vec::new() };
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(items) = spec.get(list).and_then(Value::as_array) {
            for (i, c) in items.iter().enumerate() {
                if let Some(c) = c.as_object() {
                    out.push((c, format!("{base}/{list}/{i}")));
                }
            }
        }
    }
    out
}

fn name_of(container: &Map<String, Value>) -> &str {
    container.get("name").and_then(Value::as_str).unwrap_or("?")
}

fn found(message: String, pointer: String) -> Found {
    Found { message, pointer }
}

fn privileged(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    containers(object)
        .into_iter()
        .filter(|(c, _)| c.get("securityContext").and_then(|s| s.get("privileged")) == Some(&Value::Bool(true)))
        .map(|(c, p)| {
            found(
                format!("container `{}` runs privileged; drop `privileged: true`", name_of(c)),
                format!("{p}/securityContext/privileged"),
            )
        })
        .collect()
}

fn host_namespaces(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    let Some((spec, base)) = pod_spec(object) else { return Vec::new() };
    ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec.get(*k) == Some(&Value::Bool(true)))
        .map(|k| found(format!("the pod shares the host's namespace (`{k}: true`)"), format!("{base}/{k}")))
        .collect()
}

fn host_path(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    let Some((spec, base)) = pod_spec(object) else { return Vec::new() };
    let volumes = spec.get("volumes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| v.get("hostPath").is_some())
        .map(|(i, v)| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
            found(format!("volume `{name}` mounts a path of the host node"), format!("{base}/volumes/{i}/hostPath"))
        })
        .collect()
}

fn privilege_escalation(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    containers(object)
        .into_iter()
        .filter(|(c, _)| {
            c.get("securityContext").and_then(|s| s.get("allowPrivilegeEscalation")) != Some(&Value::Bool(false))
        })
        .map(|(c, p)| {
            found(
                format!(
                    "container `{}` may escalate privileges; set `securityContext.allowPrivilegeEscalation: false`",
                    name_of(c)
                ),
                existing(object, &format!("{p}/securityContext/allowPrivilegeEscalation"), &p),
            )
        })
        .collect()
}

fn run_as_non_root(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    let Some((spec, base)) = pod_spec(object) else { return Vec::new() };
    let pod = spec.get("securityContext");
    let non_root = |ctx: Option<&Value>| -> Option<bool> {
        let ctx = ctx?;
        if let Some(flag) = ctx.get("runAsNonRoot").and_then(Value::as_bool) {
            return Some(flag);
        }
        ctx.get("runAsUser").and_then(Value::as_u64).map(|uid| uid > 0)
    };
    containers(object)
        .into_iter()
        .filter(|(c, _)| !non_root(c.get("securityContext")).or(non_root(pod)).unwrap_or(false))
        .map(|(c, p)| {
            found(
                format!(
                    "container `{}` may run as root; set `runAsNonRoot: true` on the pod or the container",
                    name_of(c)
                ),
                existing(object, &format!("{p}/securityContext/runAsNonRoot"), &format!("{base}/securityContext")),
            )
        })
        .collect()
}

fn capabilities(object: &Object, rule: &Rule, _: &str) -> Vec<Found> {
    let allowed = rule.strings("allowed", &["NET_BIND_SERVICE"]);
    let mut out = Vec::new();
    for (c, p) in containers(object) {
        let caps = c.get("securityContext").and_then(|s| s.get("capabilities"));
        let drop = caps.and_then(|c| c.get("drop")).and_then(Value::as_array);
        if !drop.is_some_and(|d| d.iter().any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("ALL")))) {
            out.push(found(
                format!("container `{}` keeps the default capabilities; add `capabilities.drop: [ALL]`", name_of(c)),
                existing(object, &format!("{p}/securityContext/capabilities/drop"), &p),
            ));
        }
        let add = caps.and_then(|c| c.get("add")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (i, cap) in add.iter().enumerate() {
            let name = cap.as_str().unwrap_or_default();
            let bare = name.trim_start_matches("CAP_");
            if !allowed.iter().any(|a| a.trim_start_matches("CAP_").eq_ignore_ascii_case(bare)) {
                out.push(found(
                    format!("container `{}` adds capability `{name}` (allowed: {})", name_of(c), allowed.join(", ")),
                    format!("{p}/securityContext/capabilities/add/{i}"),
                ));
            }
        }
    }
    out
}

fn resources(object: &Object, rule: &Rule, _: &str) -> Vec<Found> {
    let require = rule.strings("require", &["requests.cpu", "requests.memory", "limits.memory"]);
    let mut out = Vec::new();
    for (c, p) in containers(object).into_iter().filter(|(_, p)| !p.contains("/ephemeralContainers/")) {
        let missing: Vec<&str> = require
            .iter()
            .map(String::as_str)
            .filter(|r| {
                let (group, name) = r.split_once('.').unwrap_or((r, ""));
                c.get("resources").and_then(|res| res.get(group)).and_then(|g| g.get(name)).is_none()
            })
            .collect();
        if !missing.is_empty() {
            out.push(found(
                format!("container `{}` has no resource {}", name_of(c), missing.join(", ")),
                existing(object, &format!("{p}/resources"), &p),
            ));
        }
    }
    out
}

fn probes(object: &Object, rule: &Rule, _: &str) -> Vec<Found> {
    // Jobs run to completion; probes are for long-running workloads.
    if matches!(object.kind(), "Job" | "CronJob") {
        return Vec::new();
    }
    let require = rule.strings("require", &["livenessProbe", "readinessProbe"]);
    let mut out = Vec::new();
    for (c, p) in containers(object).into_iter().filter(|(_, p)| p.contains("/containers/")) {
        let missing: Vec<&str> = require.iter().map(String::as_str).filter(|k| c.get(*k).is_none()).collect();
        if !missing.is_empty() {
            out.push(found(format!("container `{}` has no {}", name_of(c), missing.join(" or ")), p));
        }
    }
    out
}

fn image_tag(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for (c, p) in containers(object) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        if image.contains('@') {
            continue; // pinned by digest
        }
        let last = image.rsplit('/').next().unwrap_or(image);
        match last.split_once(':') {
            None => out.push(found(
                format!("container `{}` image `{image}` has no tag; pin a version", name_of(c)),
                format!("{p}/image"),
            )),
            Some((_, "latest")) => out.push(found(
                format!("container `{}` image `{image}` uses `latest`; pin a version", name_of(c)),
                format!("{p}/image"),
            )),
            Some(_) => {}
        }
    }
    out
}

/// The registry of an image reference, as the container runtime resolves it.
fn registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

fn allowed_registries(object: &Object, rule: &Rule, _: &str) -> Vec<Found> {
    let registries = rule.strings("registries", &[]);
    if registries.is_empty() {
        return Vec::new(); // nothing configured: every registry is allowed
    }
    containers(object)
        .into_iter()
        .filter_map(|(c, p)| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let ok = registries.iter().any(|r| {
                let r = r.trim_end_matches('/');
                registry(image) == r || image.starts_with(&format!("{r}/"))
            });
            (!ok).then(|| {
                found(
                    format!(
                        "container `{}` image `{image}` is not from an allowed registry ({})",
                        name_of(c),
                        registries.join(", ")
                    ),
                    format!("{p}/image"),
                )
            })
        })
        .collect()
}

fn owner_label(object: &Object, rule: &Rule, _: &str) -> Vec<Found> {
    let label = rule.options.get("label").and_then(Value::as_str).unwrap_or("owner");
    let kinds = rule.strings("kinds", &["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "Service"]);
    if !kinds.iter().any(|k| k == object.kind()) || object.label(label).is_some_and(|v| !v.is_empty()) {
        return Vec::new();
    }
    vec![found(
        format!("{} `{}` has no `{label}` label; say which team owns it", object.kind(), object.name()),
        existing(object, "/metadata/labels", "/metadata"),
    )]
}

fn default_namespace(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    if object.namespace() == Some("default") {
        return vec![found(
            format!("{} `{}` is in the `default` namespace; give it its own", object.kind(), object.name()),
            "/metadata/namespace".into(),
        )];
    }
    Vec::new()
}

fn replicas(object: &Object, rule: &Rule, environment: &str) -> Vec<Found> {
    let min = rule.options.get("min").and_then(Value::as_u64).unwrap_or(2);
    let environments = rule.strings("environments", &["production"]);
    if !matches!(object.kind(), "Deployment" | "StatefulSet") || !environments.iter().any(|e| e == environment) {
        return Vec::new();
    }
    // Unset, Kubernetes runs one replica.
    let n = object.0.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    if n >= min {
        return Vec::new();
    }
    vec![found(
        format!(
            "{} `{}` runs {n} replica{} in {environment}; at least {min} are required",
            object.kind(),
            object.name(),
            if n == 1 { "" } else { "s" }
        ),
        existing(object, "/spec/replicas", "/spec"),
    )]
}

fn node_port(object: &Object, _: &Rule, _: &str) -> Vec<Found> {
    if object.kind() != "Service" {
        return Vec::new();
    }
    if object.0.pointer("/spec/type").and_then(Value::as_str) == Some("NodePort") {
        return vec![found(
            format!("Service `{}` is a NodePort; expose it through an Ingress or a LoadBalancer", object.name()),
            "/spec/type".into(),
        )];
    }
    Vec::new()
}

/// The pointer of a value when the object has it, else of the nearest place to add it.
fn existing(object: &Object, pointer: &str, fallback: &str) -> String {
    if object.0.pointer(pointer).is_some() { pointer.to_string() } else { fallback.to_string() }
}
