//! Argo Rollouts AnalysisTemplates as checks: a team that already verifies its canaries with
//! Argo points a check at the template file and cairn runs its `prometheus` and `web` metrics
//! with Argo's semantics (conditions, `interval`, `count`, `failureLimit`, `inconclusiveLimit`,
//! `consecutiveErrorLimit`, `initialDelay`, `{{args.NAME}}`). Providers that need the cluster
//! (`job`) or a vendor's API are refused by name.
//!
//! One difference, because cairn runs in a CI job and not as a controller: a metric without
//! `count` takes one measurement (Argo would measure it until the rollout ends).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{
    AnalysisRef, Check, Expect, HttpProbe, Located, Probe, PrometheusProbe, Text, check_placeholders, check_url,
};
use crate::error::{Error, Result};
use crate::repo::Snapshot;
use crate::yaml::{Key, Node, NodeValue};

const METRIC_KEYS: &[&str] = &[
    "name",
    "interval",
    "initialDelay",
    "count",
    "successCondition",
    "failureCondition",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "provider",
];
/// Fields of Argo's Metric that cairn knows and does not run, with why.
const UNSUPPORTED_METRIC_KEYS: &[(&str, &str)] = &[
    ("dryRun", "dry-run metrics are not supported; remove the metric or run it for real"),
    ("consecutiveSuccessLimit", "consecutiveSuccessLimit is not supported; use count"),
];
const PROVIDERS: &[&str] = &[
    "prometheus",
    "web",
    "job",
    "datadog",
    "newRelic",
    "wavefront",
    "kayenta",
    "cloudWatch",
    "graphite",
    "influxdb",
    "skywalking",
    "plugin",
];

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

/// The checks of one template, each with the arguments its placeholders take.
pub fn expand(
    snapshot: &Snapshot,
    check: &Check,
    reference: &AnalysisRef,
) -> Result<Vec<(Check, BTreeMap<String, Text>)>> {
    let file = reference.template.as_str();
    let bytes = snapshot.read(file)?.ok_or_else(|| Error::Config {
        message: format!(
            "{}:{}: check `{}`: the AnalysisTemplate `{file}` does not exist",
            check.file, check.line, check.name
        ),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Config { message: format!("{file}: not valid UTF-8") })?;
    let loc = Located { file };
    let docs = Node::parse_documents(file, &text)?;
    let template = docs
        .iter()
        .find(|d| {
            matches!(&d.value, NodeValue::Map(m) if find(m, "kind").and_then(Node::as_str).is_some_and(|k| k == "AnalysisTemplate" || k == "ClusterAnalysisTemplate"))
        })
        .ok_or_else(|| Error::Config {
            message: format!("{file}: no AnalysisTemplate (or ClusterAnalysisTemplate) document in it"),
        })?;
    let top = loc.map(template, "the AnalysisTemplate")?;
    let spec = find(top, "spec").ok_or_else(|| loc.at(template, "the AnalysisTemplate has no `spec`"))?;
    let spec_map = loc.map(spec, "`spec`")?;
    let args = arguments(&loc, spec_map, spec, check, reference)?;
    let arg_names: Vec<String> = args.keys().cloned().collect();
    let metrics = find(spec_map, "metrics").ok_or_else(|| loc.at(spec, "`spec` has no `metrics`"))?;
    let NodeValue::Seq(items) = &metrics.value else {
        return Err(loc.at(metrics, "`spec.metrics` must be a list"));
    };
    let mut out = Vec::new();
    for item in items {
        out.push((metric(&loc, item, check, reference, &arg_names)?, args.clone()));
    }
    if out.is_empty() {
        return Err(loc.at(metrics, "`spec.metrics` is empty"));
    }
    Ok(out)
}

/// `spec.args`, with the values cairn.yaml gives (which win over a template's defaults).
fn arguments(
    loc: &Located,
    spec: &[(Key, Node)],
    spec_node: &Node,
    check: &Check,
    reference: &AnalysisRef,
) -> Result<BTreeMap<String, Text>> {
    let mut args = BTreeMap::new();
    let declared = match find(spec, "args") {
        Some(Node { value: NodeValue::Seq(items), .. }) => items.as_slice(),
        Some(other) => return Err(loc.at(other, "`spec.args` must be a list")),
        None => &[],
    };
    for item in declared {
        let map = loc.map(item, "an argument")?;
        let name = find(map, "name")
            .and_then(Node::as_str)
            .ok_or_else(|| loc.at(item, "an argument needs a `name`"))?
            .to_string();
        let value_from = map.iter().find(|(k, _)| k.name == "valueFrom").map(|(k, _)| k);
        let value = match (reference.args.get(&name), find(map, "value"), value_from) {
            (Some(given), _, _) => given.clone(),
            (None, Some(v), _) => Text::Literal(loc.string(v, &format!("argument `{name}`: `value`"))?),
            (None, None, Some(from)) => {
                return Err(loc.at_key(
                    from,
                    &format!(
                        "argument `{name}` takes its value from the cluster (`valueFrom`); give it in cairn.yaml, check `{}`: `analysis: {{ args: {{ {name}: {{ env: VARIABLE }} }} }}`",
                        check.name
                    ),
                ));
            }
            (None, None, None) => {
                return Err(loc.at(
                    item,
                    &format!(
                        "argument \"{name}\" was not supplied; give it in cairn.yaml, check `{}`: `analysis: {{ args: {{ {name}: … }} }}`",
                        check.name
                    ),
                ));
            }
        };
        args.insert(name, value);
    }
    if let Some(extra) = reference.args.keys().find(|k| !args.contains_key(*k)) {
        return Err(loc.at(
            spec_node,
            &format!(
                "check `{}` gives argument `{extra}`, which the template does not declare{}",
                check.name,
                crate::config::suggest(extra, args.keys().map(String::as_str))
            ),
        ));
    }
    Ok(args)
}

fn metric(loc: &Located, node: &Node, check: &Check, reference: &AnalysisRef, args: &[String]) -> Result<Check> {
    let map = loc.map(node, "a metric")?;
    for (key, _) in map {
        if let Some((_, why)) = UNSUPPORTED_METRIC_KEYS.iter().find(|(k, _)| *k == key.name) {
            return Err(loc.at_key(key, why));
        }
    }
    loc.keys(map, METRIC_KEYS, "a metric")?;
    let name = find(map, "name").and_then(Node::as_str).ok_or_else(|| loc.at(node, "a metric needs a `name`"))?;
    let what = format!("metric `{name}`");
    let condition = |key: &str| find(map, key).map(|c| loc.condition(c, &format!("{what}: `{key}`"))).transpose();
    let success = condition("successCondition")?;
    let failure = condition("failureCondition")?;
    let provider = find(map, "provider").ok_or_else(|| loc.at(node, &format!("{what} has no `provider`")))?;
    let pmap = loc.map(provider, &format!("{what}: `provider`"))?;
    let Some((pkey, body)) = pmap.first() else {
        return Err(loc.at(provider, &format!("{what}: `provider` names none")));
    };
    let (probe, timeout) = match pkey.name.as_str() {
        "prometheus" => prometheus(loc, body, &what, success, failure, reference, args)?,
        "web" => web(loc, body, &what, success, failure, args)?,
        other if PROVIDERS.contains(&other) => {
            return Err(loc.at_key(
                pkey,
                &format!(
                    "{what}: the `{other}` provider is not supported by cairn (it runs `prometheus` and `web` metrics)"
                ),
            ));
        }
        other => {
            return Err(loc.at_key(
                pkey,
                &format!(
                    "{what}: unknown provider `{other}`{}",
                    crate::config::suggest(other, PROVIDERS.iter().copied())
                ),
            ));
        }
    };
    let duration = |key: &str| find(map, key).map(|d| loc.duration(d, &format!("{what}: `{key}`"))).transpose();
    let count = match find(map, "count") {
        None => 1,
        Some(v) => loc.whole(v, &format!("{what}: `count`"), 10_000)?.max(1),
    };
    let failure_limit = match find(map, "failureLimit") {
        None => Some(0),
        Some(v) if matches!(&v.value, NodeValue::Number(n) if n.as_i64() == Some(-1)) => None,
        Some(v) => Some(loc.whole(v, &format!("{what}: `failureLimit`"), 10_000)?),
    };
    let limit = |key: &str, default: u32| {
        find(map, key).map_or(Ok(default), |v| loc.whole(v, &format!("{what}: `{key}`"), 10_000))
    };
    Ok(Check {
        name: format!("{}/{name}", check.name),
        probe,
        // Argo requires an interval when count > 1; without one, measurements follow each
        // other at cairn's default.
        interval: duration("interval")?.unwrap_or(check.interval).max(Duration::from_millis(10)),
        count,
        failure_limit,
        inconclusive_limit: limit("inconclusiveLimit", 0)?,
        consecutive_error_limit: limit("consecutiveErrorLimit", 4)?,
        initial_delay: duration("initialDelay")?.unwrap_or(Duration::ZERO),
        timeout,
        file: loc.file.to_string(),
        line: node.line,
    })
}

/// `headers: [{key, value}]`, Argo's shape.
fn headers(loc: &Located, node: Option<&Node>, what: &str, args: &[String]) -> Result<Vec<(String, Text)>> {
    let Some(node) = node else { return Ok(Vec::new()) };
    let NodeValue::Seq(items) = &node.value else {
        return Err(loc.at(node, &format!("{what}: `headers` must be a list of {{key, value}}")));
    };
    let mut out = Vec::new();
    for item in items {
        let map = loc.map(item, &format!("{what}: a header"))?;
        loc.keys(map, &["key", "value"], &format!("{what}: a header"))?;
        let key = find(map, "key").ok_or_else(|| loc.at(item, &format!("{what}: a header needs `key`")))?;
        let value = find(map, "value").ok_or_else(|| loc.at(item, &format!("{what}: a header needs `value`")))?;
        let value_text = loc.string(value, &format!("{what}: a header's `value`"))?;
        check_placeholders(loc, value, &value_text, what, args)?;
        out.push((loc.string(key, &format!("{what}: a header's `key`"))?, Text::Literal(value_text)));
    }
    Ok(out)
}

fn seconds(loc: &Located, node: Option<&Node>, what: &str, default: u64) -> Result<Duration> {
    match node {
        None => Ok(Duration::from_secs(default)),
        Some(v) => match loc.whole(v, what, 3600)? {
            0 => Ok(Duration::from_secs(default)),
            n => Ok(Duration::from_secs(u64::from(n))),
        },
    }
}

fn prometheus(
    loc: &Located,
    node: &Node,
    what: &str,
    success: Option<crate::expr::Condition>,
    failure: Option<crate::expr::Condition>,
    reference: &AnalysisRef,
    args: &[String],
) -> Result<(Probe, Duration)> {
    let map = loc.map(node, &format!("{what}: `prometheus`"))?;
    if let Some((key, _)) = map.iter().find(|(k, _)| k.name == "rangeQuery" || k.name == "authentication") {
        return Err(loc.at_key(
            key,
            &format!("{what}: `prometheus.{}` is not supported by cairn; use an instant query (a range selector such as `[5m]` in it) and headers", key.name),
        ));
    }
    loc.keys(map, &["address", "query", "timeout", "headers", "insecure"], &format!("{what}: `prometheus`"))?;
    let address = match (&reference.address, find(map, "address")) {
        (Some(over), _) => over.clone(),
        (None, Some(a)) => {
            let text = loc.string(a, &format!("{what}: `address`"))?;
            check_url(loc, a, &text, what)?;
            text
        }
        (None, None) => {
            return Err(loc.at(
                node,
                &format!("{what}: `prometheus` has no `address`; give one, or `address:` on the check in cairn.yaml"),
            ));
        }
    };
    let query_node =
        find(map, "query").ok_or_else(|| loc.at(node, &format!("{what}: `prometheus` needs a `query`")))?;
    let query = loc.string(query_node, &format!("{what}: `query`"))?;
    check_placeholders(loc, query_node, &query, what, args)?;
    let probe = PrometheusProbe {
        address,
        query,
        headers: headers(loc, find(map, "headers"), what, args)?,
        success,
        failure,
        empty_is_inconclusive: false,
    };
    Ok((Probe::Prometheus(probe), seconds(loc, find(map, "timeout"), &format!("{what}: `timeout`"), 30)?))
}

fn web(
    loc: &Located,
    node: &Node,
    what: &str,
    success: Option<crate::expr::Condition>,
    failure: Option<crate::expr::Condition>,
    args: &[String],
) -> Result<(Probe, Duration)> {
    let map = loc.map(node, &format!("{what}: `web`"))?;
    if let Some((key, _)) = map.iter().find(|(k, _)| k.name == "authentication") {
        return Err(loc.at_key(
            key,
            &format!("{what}: `web.authentication` is not supported by cairn; send a token in `headers`"),
        ));
    }
    loc.keys(
        map,
        &["url", "method", "headers", "body", "jsonBody", "timeoutSeconds", "jsonPath", "insecure"],
        &format!("{what}: `web`"),
    )?;
    let url_node = find(map, "url").ok_or_else(|| loc.at(node, &format!("{what}: `web` needs a `url`")))?;
    let url = loc.string(url_node, &format!("{what}: `url`"))?;
    // The URL may be a placeholder alone (`{{ args.api-url }}`): check its shape once filled.
    if !url.trim_start().starts_with("{{") {
        check_url(loc, url_node, &url, what)?;
    }
    check_placeholders(loc, url_node, &url, what, args)?;
    let method =
        find(map, "method").map(|m| loc.string(m, &format!("{what}: `method`"))).transpose()?.unwrap_or_default();
    let method = if method.is_empty() { "GET".to_string() } else { method.to_ascii_uppercase() };
    let body = match (find(map, "body"), find(map, "jsonBody")) {
        (Some(_), Some(j)) => {
            return Err(
                loc.at(j, &format!("{what}: use either Body or JSONBody; both cannot exists for WebMetric payload"))
            );
        }
        (Some(b), None) => Some(loc.string(b, &format!("{what}: `body`"))?),
        (None, Some(j)) => Some(j.to_json().to_string()),
        (None, None) => None,
    };
    if body.is_some() && !["POST", "PUT"].contains(&method.as_str()) {
        return Err(
            loc.at(node, &format!("{what}: Body/JSONBody can only be used with POST or PUT WebMetric Method types"))
        );
    }
    let insecure = matches!(find(map, "insecure").map(|n| &n.value), Some(NodeValue::Bool(true)));
    let probe = HttpProbe {
        method,
        url,
        headers: headers(loc, find(map, "headers"), what, args)?,
        body,
        expect: Expect::default(),
        json_path: find(map, "jsonPath").map(|j| loc.string(j, &format!("{what}: `jsonPath`"))).transpose()?,
        success,
        failure,
        non_2xx_is_error: true,
        insecure,
    };
    Ok((
        Probe::Http(Box::new(probe)),
        seconds(loc, find(map, "timeoutSeconds"), &format!("{what}: `timeoutSeconds`"), 10)?,
    ))
}
