//! `verify:` and `on_failure:` of an environment: the checks that tell whether a release works,
//! validated once here (a typo in a check is a config error with its line, not a failed
//! release at 9 pm). The same parsers read an Argo Rollouts AnalysisTemplate's metrics
//! (`delivery::analysis`), so both speak one set of types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::expr::Condition;
use crate::yaml::{Key, Node, NodeValue};

/// An environment's verification: its checks, and whether `apply` runs them by default.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verify {
    pub checks: Vec<Check>,
    /// `verify: { on_apply: true, checks: […] }`: every apply of the environment verifies, as
    /// with `apply --verify`.
    pub on_apply: bool,
}

/// What a failed verification does to the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Record the failure and exit; the release stays in place for a person to look at.
    #[default]
    Stop,
    /// Put the previous verified release back at once, and record why.
    Rollback,
}

/// One check: what to measure and how often, with Argo Rollouts' counting rules.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub probe: Probe,
    /// Time between measurements.
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub interval: Duration,
    /// Measurements to take (errors do not count, as in Argo Rollouts).
    pub count: u32,
    /// Failed measurements tolerated; one more fails the check at once. `None`: no limit
    /// (Argo's `-1`).
    pub failure_limit: Option<u32>,
    /// Inconclusive measurements tolerated (an empty query result, say).
    pub inconclusive_limit: u32,
    /// Consecutive measurements that could not be taken (server unreachable, timeout) before the
    /// check gives up as inconclusive.
    pub consecutive_error_limit: u32,
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub initial_delay: Duration,
    /// Limit of one measurement: the request, or the command.
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub timeout: Duration,
    /// Where the check is written.
    pub file: String,
    pub line: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    Http(Box<HttpProbe>),
    Prometheus(PrometheusProbe),
    Command(CommandProbe),
    /// An Argo Rollouts AnalysisTemplate in the repository; its metrics become checks when the
    /// verification starts.
    Analysis(AnalysisRef),
}

/// A value written in the file, or read from an environment variable when the check runs (and
/// then never shown: it may be a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Text {
    Literal(String),
    Env(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpProbe {
    pub method: String,
    /// May hold `{{ environment }}`, `{{ release }}`, `{{ commit }}` (and `{{ args.NAME }}` in a
    /// template).
    pub url: String,
    pub headers: Vec<(String, Text)>,
    pub body: Option<String>,
    pub expect: Expect,
    /// The part of a JSON body the conditions see (`{$.data.ok}`); the whole body when absent.
    pub json_path: Option<String>,
    pub success: Option<Condition>,
    pub failure: Option<Condition>,
    /// Argo's web provider: a status outside 2xx is an error (not measured), not a failure.
    pub non_2xx_is_error: bool,
    pub insecure: bool,
}

/// `expect:` of an HTTP check: every condition given must hold for the measurement to pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Expect {
    /// Accepted statuses; empty: any 2xx.
    pub status: Vec<u16>,
    /// The body must match this regular expression.
    #[serde(serialize_with = "regex_text")]
    pub body_regex: Option<regex::Regex>,
    /// The JSON body's value at this pointer must equal `equals`.
    pub pointer: Option<(String, serde_json::Value)>,
    /// The response must arrive within this long.
    pub latency: Option<Duration>,
}

fn regex_text<S: serde::Serializer>(r: &Option<regex::Regex>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(r.as_str()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PrometheusProbe {
    pub address: String,
    pub query: String,
    pub headers: Vec<(String, Text)>,
    pub success: Option<Condition>,
    pub failure: Option<Condition>,
    /// cairn's own checks: an empty result is inconclusive before any condition is asked. A
    /// template's metrics keep Argo's rule: the condition decides, and one that cannot be
    /// evaluated on an empty result is an error.
    pub empty_is_inconclusive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandProbe {
    pub argv: Vec<String>,
    /// Working directory, relative to the repository root.
    pub dir: Option<String>,
    pub env: Vec<(String, Text)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnalysisRef {
    /// The template file, relative to the repository root.
    pub template: String,
    pub args: BTreeMap<String, Text>,
    /// Replaces the templates' Prometheus `address` (the template stays as written for the
    /// cluster; CI may reach Prometheus by another name).
    pub address: Option<String>,
}

/// Where a node is, for messages: the file's name and the node's line and column.
pub(crate) struct Located<'f> {
    pub file: &'f str,
}

impl Located<'_> {
    pub fn at(&self, node: &Node, message: &str) -> Error {
        Error::Config { message: format!("{}:{}:{}: {message}", self.file, node.line, node.column) }
    }

    pub fn at_key(&self, key: &Key, message: &str) -> Error {
        Error::Config { message: format!("{}:{}:{}: {message}", self.file, key.line, key.column) }
    }

    pub fn map<'a>(&self, node: &'a Node, what: &str) -> Result<&'a [(Key, Node)]> {
        match &node.value {
            NodeValue::Map(entries) => Ok(entries),
            _ => Err(self.at(node, &format!("{what} must be a mapping, found {}", node.kind_name()))),
        }
    }

    pub fn keys(&self, map: &[(Key, Node)], allowed: &[&str], what: &str) -> Result<()> {
        for (key, _) in map {
            if !allowed.contains(&key.name.as_str()) {
                return Err(self.at_key(
                    key,
                    &format!(
                        "unknown key `{}` in {what}{} (valid keys: {})",
                        key.name,
                        super::suggest(&key.name, allowed.iter().copied()),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn string(&self, node: &Node, what: &str) -> Result<String> {
        match &node.value {
            NodeValue::String(s) => Ok(s.clone()),
            NodeValue::Number(n) => Ok(n.to_string()),
            _ => Err(self.at(node, &format!("{what} must be a string, found {}", node.kind_name()))),
        }
    }

    pub fn duration(&self, node: &Node, what: &str) -> Result<Duration> {
        let text = match &node.value {
            NodeValue::Number(n) => n.to_string(),
            NodeValue::String(s) => s.clone(),
            _ => String::new(),
        };
        crate::duration::parse(&text)
            .map_err(|e| self.at(node, &format!("{what} must be a duration such as `10s`, `500ms` or `1m`: {e}")))
    }

    pub fn whole(&self, node: &Node, what: &str, max: u64) -> Result<u32> {
        match &node.value {
            NodeValue::Number(n) => match n.as_u64() {
                Some(v) if v <= max => Ok(v as u32),
                _ => Err(self.at(node, &format!("{what} must be a whole number from 0 to {max}, found {n}"))),
            },
            NodeValue::String(s) if s.parse::<u64>().is_ok_and(|v| v <= max) => Ok(s.parse::<u32>().unwrap_or(0)),
            _ => {
                Err(self
                    .at(node, &format!("{what} must be a whole number from 0 to {max}, found {}", node.kind_name())))
            }
        }
    }

    pub fn condition(&self, node: &Node, what: &str) -> Result<Condition> {
        let text = self.string(node, what)?;
        Condition::parse(&text).map_err(|e| self.at(node, &format!("{what} `{}` cannot be parsed: {e}", text.trim())))
    }

    /// `{ NAME: value }` where a value is text, or `{ env: VARIABLE }`.
    pub fn texts(&self, node: &Node, what: &str) -> Result<Vec<(String, Text)>> {
        let mut out = Vec::new();
        for (key, value) in self.map(node, what)? {
            out.push((key.name.clone(), self.text(value, &format!("{what}: `{}`", key.name))?));
        }
        Ok(out)
    }

    /// The name of an environment variable (letters, digits, `_`): where a secret comes from,
    /// for the file never holds the value itself.
    pub fn variable(&self, node: &Node, what: &str) -> Result<String> {
        let name = self.string(node, what)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.at(
                node,
                &format!("{what} must name an environment variable (such as `API_TOKEN`), not `{name}`; the value itself never goes in cairn.yaml"),
            ));
        }
        Ok(name)
    }

    pub fn text(&self, node: &Node, what: &str) -> Result<Text> {
        match &node.value {
            NodeValue::Map(inner) => {
                self.keys(inner, &["env"], what)?;
                match inner.first() {
                    Some((_, v)) => Ok(Text::Env(self.variable(v, &format!("{what}: `env`"))?)),
                    None => Err(self.at(node, &format!("{what}: give a value, or `{{ env: VARIABLE }}`"))),
                }
            }
            _ => Ok(Text::Literal(self.string(node, what)?)),
        }
    }
}

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

const CHECK_KEYS: &[&str] = &[
    "name",
    "http",
    "prometheus",
    "command",
    "analysis",
    "interval",
    "count",
    "failure_limit",
    "inconclusive_limit",
    "consecutive_error_limit",
    "initial_delay",
    "timeout",
];
const PROBES: &[&str] = &["http", "prometheus", "command", "analysis"];

/// Placeholders a check's URL, query or command may hold.
pub const PLACEHOLDERS: &[&str] = &["environment", "release", "commit"];

/// `verify:` — a list of checks, or `{ on_apply, checks }`.
pub(crate) fn parse_verify(loc: &Located, node: &Node, what: &str) -> Result<Verify> {
    let (list, on_apply) = match &node.value {
        NodeValue::Seq(_) => (node, false),
        NodeValue::Map(map) => {
            loc.keys(map, &["checks", "on_apply"], &format!("{what}: `verify`"))?;
            let on_apply = match find(map, "on_apply") {
                None => false,
                Some(v) => match v.value {
                    NodeValue::Bool(b) => b,
                    _ => return Err(loc.at(v, &format!("{what}: `verify.on_apply` must be true or false"))),
                },
            };
            match find(map, "checks") {
                Some(list) => (list, on_apply),
                None => return Err(loc.at(node, &format!("{what}: `verify` needs `checks` (a list of checks)"))),
            }
        }
        _ => {
            return Err(loc.at(
                node,
                &format!(
                    "{what}: `verify` must be a list of checks, or `{{ on_apply, checks }}`, found {}",
                    node.kind_name()
                ),
            ));
        }
    };
    let NodeValue::Seq(items) = &list.value else {
        return Err(loc.at(list, &format!("{what}: `verify.checks` must be a list, found {}", list.kind_name())));
    };
    let mut checks: Vec<Check> = Vec::new();
    for item in items {
        let check = parse_check(loc, item, what)?;
        if checks.iter().any(|c| c.name == check.name) {
            return Err(loc.at(item, &format!("{what}: two checks are named `{}`; give each its own name", check.name)));
        }
        checks.push(check);
    }
    Ok(Verify { checks, on_apply })
}

pub(crate) fn parse_on_failure(loc: &Located, node: &Node, what: &str) -> Result<OnFailure> {
    match node.as_str() {
        Some("stop") => Ok(OnFailure::Stop),
        Some("rollback") => Ok(OnFailure::Rollback),
        other => Err(loc.at(
            node,
            &format!(
                "{what}: `on_failure` must be `stop` (the default) or `rollback`, found {}{}",
                other.map_or_else(|| node.kind_name().to_string(), |t| format!("`{t}`")),
                other.map(|t| super::suggest(t, ["stop", "rollback"].into_iter())).unwrap_or_default()
            ),
        )),
    }
}

fn parse_check(loc: &Located, node: &Node, env: &str) -> Result<Check> {
    let map = loc.map(node, &format!("{env}: a `verify` check"))?;
    loc.keys(map, CHECK_KEYS, &format!("{env}: a `verify` check"))?;
    let name = match find(map, "name") {
        Some(v) => loc.string(v, "a check's `name`")?,
        None => return Err(loc.at(node, &format!("{env}: a check needs a `name`"))),
    };
    let what = format!("check `{name}`");
    let probes: Vec<&(Key, Node)> = map.iter().filter(|(k, _)| PROBES.contains(&k.name.as_str())).collect();
    let (kind, body) = match probes.as_slice() {
        [one] => (one.0.name.as_str(), &one.1),
        [] => {
            return Err(loc.at(node, &format!("{what} needs one of {} (what it measures)", PROBES.join(", "))));
        }
        [_, second, ..] => {
            return Err(loc.at_key(
                &second.0,
                &format!("{what} has more than one of {}; give each its own check", PROBES.join(", ")),
            ));
        }
    };
    let probe = match kind {
        "http" => Probe::Http(Box::new(parse_http(loc, body, &what)?)),
        "prometheus" => Probe::Prometheus(parse_prometheus(loc, body, &what)?),
        "command" => Probe::Command(parse_command(loc, body, &what)?),
        _ => Probe::Analysis(parse_analysis(loc, body, &what)?),
    };
    let duration = |key: &str, default: Duration| -> Result<Duration> {
        match find(map, key) {
            None => Ok(default),
            Some(v) => {
                let d = loc.duration(v, &format!("{what}: `{key}`"))?;
                if d > Duration::from_secs(24 * 3600) {
                    return Err(loc.at(v, &format!("{what}: `{key}` must be at most 24h")));
                }
                Ok(d)
            }
        }
    };
    let interval = duration("interval", Duration::from_secs(10))?;
    let timeout = duration("timeout", Duration::from_secs(10))?;
    for (key, d) in [("interval", interval), ("timeout", timeout)] {
        if d < Duration::from_millis(10) {
            let v = find(map, key).unwrap_or(node);
            return Err(loc.at(v, &format!("{what}: `{key}` must be at least 10ms")));
        }
    }
    let count = match find(map, "count") {
        None => 1,
        Some(v) => match loc.whole(v, &format!("{what}: `count`"), 10_000)? {
            0 => return Err(loc.at(v, &format!("{what}: `count` must be at least 1"))),
            n => n,
        },
    };
    let failure_limit = match find(map, "failure_limit") {
        None => Some(0),
        Some(v) if matches!(&v.value, NodeValue::Number(n) if n.as_i64() == Some(-1)) => None,
        Some(v) => Some(loc.whole(v, &format!("{what}: `failure_limit` (or -1 for no limit)"), 10_000)?),
    };
    let limit = |key: &str, default: u32| -> Result<u32> {
        find(map, key).map_or(Ok(default), |v| loc.whole(v, &format!("{what}: `{key}`"), 10_000))
    };
    Ok(Check {
        probe,
        interval,
        count,
        failure_limit,
        inconclusive_limit: limit("inconclusive_limit", 0)?,
        consecutive_error_limit: limit("consecutive_error_limit", 4)?,
        initial_delay: duration("initial_delay", Duration::ZERO)?,
        timeout,
        file: loc.file.to_string(),
        line: node.line,
        name,
    })
}

/// A URL to measure: http or https, and no credentials in it (they would be printed and
/// recorded; a token belongs in a header from the environment).
pub(crate) fn check_url(loc: &Located, node: &Node, url: &str, what: &str) -> Result<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| loc.at(node, &format!("{what}: the URL must start with http:// or https://")))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(loc.at(
            node,
            &format!(
                "{what}: the URL holds credentials (`user:password@`); they would be shown in reports and records. Put them in a header from the environment instead: `headers: {{ Authorization: {{ env: VARIABLE }} }}`"
            ),
        ));
    }
    if authority.is_empty() {
        return Err(loc.at(node, &format!("{what}: the URL has no host")));
    }
    check_placeholders(loc, node, url, what, &[])
}

/// Every `{{ … }}` must be one cairn fills in (or a template argument, where `args` are known).
pub(crate) fn check_placeholders(loc: &Located, node: &Node, text: &str, what: &str, args: &[String]) -> Result<()> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return Err(loc.at(node, &format!("{what}: a `{{{{` is not closed by `}}}}`")));
        };
        let name = rest[start + 2..start + len].trim();
        let known =
            PLACEHOLDERS.contains(&name) || name.strip_prefix("args.").is_some_and(|a| args.iter().any(|x| x == a));
        if !known {
            return Err(loc.at(
                node,
                &format!(
                    "{what}: unknown placeholder `{{{{ {name} }}}}`{} (cairn fills in {})",
                    super::suggest(name, PLACEHOLDERS.iter().copied()),
                    PLACEHOLDERS.iter().map(|p| format!("{{{{ {p} }}}}")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        rest = &rest[start + len + 2..];
    }
    Ok(())
}

fn parse_http(loc: &Located, node: &Node, what: &str) -> Result<HttpProbe> {
    let map = loc.map(node, &format!("{what}: `http`"))?;
    loc.keys(
        map,
        &["url", "method", "headers", "body", "expect", "success", "failure", "json_path"],
        &format!("{what}: `http`"),
    )?;
    let url_node = find(map, "url").ok_or_else(|| loc.at(node, &format!("{what}: `http` needs a `url`")))?;
    let url = loc.string(url_node, &format!("{what}: `url`"))?;
    check_url(loc, url_node, &url, what)?;
    let method = match find(map, "method") {
        None => "GET".to_string(),
        Some(v) => {
            let m = loc.string(v, &format!("{what}: `method`"))?.to_ascii_uppercase();
            if !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&m.as_str()) {
                return Err(loc.at(v, &format!("{what}: `method` `{m}` is not an HTTP method")));
            }
            m
        }
    };
    let mut expect = Expect::default();
    if let Some(e) = find(map, "expect") {
        let emap = loc.map(e, &format!("{what}: `expect`"))?;
        loc.keys(emap, &["status", "body", "latency"], &format!("{what}: `expect`"))?;
        if let Some(s) = find(emap, "status") {
            let items: Vec<&Node> = match &s.value {
                NodeValue::Seq(items) => items.iter().collect(),
                _ => vec![s],
            };
            for item in items {
                match &item.value {
                    NodeValue::Number(n) if n.as_u64().is_some_and(|c| (100..=599).contains(&c)) => {
                        expect.status.push(n.as_u64().unwrap_or_default() as u16)
                    }
                    _ => {
                        return Err(
                            loc.at(item, &format!("{what}: `expect.status` must be HTTP status codes (100 to 599)"))
                        );
                    }
                }
            }
        }
        if let Some(b) = find(emap, "body") {
            let bmap = loc.map(b, &format!("{what}: `expect.body`"))?;
            loc.keys(bmap, &["regex", "pointer", "equals"], &format!("{what}: `expect.body`"))?;
            if let Some(r) = find(bmap, "regex") {
                let text = loc.string(r, &format!("{what}: `expect.body.regex`"))?;
                expect.body_regex = Some(regex::Regex::new(&text).map_err(|e| {
                    loc.at(r, &format!("{what}: `expect.body.regex` is not a valid regular expression: {e}"))
                })?);
            }
            match (find(bmap, "pointer"), find(bmap, "equals")) {
                (Some(p), Some(eq)) => {
                    let pointer = loc.string(p, &format!("{what}: `expect.body.pointer`"))?;
                    if !pointer.is_empty() && !pointer.starts_with('/') {
                        return Err(loc.at(
                            p,
                            &format!("{what}: `expect.body.pointer` must be a JSON pointer such as `/status`"),
                        ));
                    }
                    expect.pointer = Some((pointer, eq.to_json()));
                }
                (Some(n), None) | (None, Some(n)) => {
                    return Err(loc.at(n, &format!("{what}: `expect.body` takes `pointer` and `equals` together")));
                }
                (None, None) => {}
            }
        }
        if let Some(l) = find(emap, "latency") {
            expect.latency = Some(loc.duration(l, &format!("{what}: `expect.latency`"))?);
        }
    }
    Ok(HttpProbe {
        method,
        url,
        headers: match find(map, "headers") {
            Some(h) => loc.texts(h, &format!("{what}: `headers`"))?,
            None => Vec::new(),
        },
        body: find(map, "body").map(|b| loc.string(b, &format!("{what}: `body`"))).transpose()?,
        expect,
        json_path: find(map, "json_path").map(|j| loc.string(j, &format!("{what}: `json_path`"))).transpose()?,
        success: find(map, "success").map(|c| loc.condition(c, &format!("{what}: `success`"))).transpose()?,
        failure: find(map, "failure").map(|c| loc.condition(c, &format!("{what}: `failure`"))).transpose()?,
        non_2xx_is_error: false,
        insecure: false,
    })
}

fn parse_prometheus(loc: &Located, node: &Node, what: &str) -> Result<PrometheusProbe> {
    let map = loc.map(node, &format!("{what}: `prometheus`"))?;
    loc.keys(map, &["address", "query", "success", "failure", "headers"], &format!("{what}: `prometheus`"))?;
    let address_node =
        find(map, "address").ok_or_else(|| loc.at(node, &format!("{what}: `prometheus` needs an `address`")))?;
    let address = loc.string(address_node, &format!("{what}: `address`"))?;
    check_url(loc, address_node, &address, what)?;
    let query_node =
        find(map, "query").ok_or_else(|| loc.at(node, &format!("{what}: `prometheus` needs a `query`")))?;
    let query = loc.string(query_node, &format!("{what}: `query`"))?;
    check_placeholders(loc, query_node, &query, what, &[])?;
    let success = find(map, "success").map(|c| loc.condition(c, &format!("{what}: `success`"))).transpose()?;
    let failure = find(map, "failure").map(|c| loc.condition(c, &format!("{what}: `failure`"))).transpose()?;
    if success.is_none() && failure.is_none() {
        return Err(loc.at(
            node,
            &format!("{what}: `prometheus` needs `success` or `failure` (a condition over `result`, e.g. `result[0] >= 0.95`)"),
        ));
    }
    Ok(PrometheusProbe {
        address,
        query,
        headers: match find(map, "headers") {
            Some(h) => loc.texts(h, &format!("{what}: `headers`"))?,
            None => Vec::new(),
        },
        success,
        failure,
        empty_is_inconclusive: true,
    })
}

fn parse_command(loc: &Located, node: &Node, what: &str) -> Result<CommandProbe> {
    let argv_of = |n: &Node| -> Result<Vec<String>> {
        let NodeValue::Seq(items) = &n.value else {
            return Err(loc.at(n, &format!("{what}: `argv` must be a list: the program, then its arguments")));
        };
        let argv: Vec<String> =
            items.iter().map(|i| loc.string(i, &format!("{what}: an argument"))).collect::<Result<_>>()?;
        if argv.is_empty() || argv[0].is_empty() {
            return Err(loc.at(n, &format!("{what}: `argv` needs at least the program to run")));
        }
        for (arg, item) in argv.iter().zip(items) {
            check_placeholders(loc, item, arg, what, &[])?;
        }
        Ok(argv)
    };
    match &node.value {
        NodeValue::Seq(_) => Ok(CommandProbe { argv: argv_of(node)?, dir: None, env: Vec::new() }),
        _ => {
            let map = loc.map(node, &format!("{what}: `command`"))?;
            loc.keys(map, &["argv", "dir", "env"], &format!("{what}: `command`"))?;
            let argv =
                argv_of(find(map, "argv").ok_or_else(|| loc.at(node, &format!("{what}: `command` needs `argv`")))?)?;
            let dir = match find(map, "dir") {
                None => None,
                Some(d) => {
                    let text = loc.string(d, &format!("{what}: `dir`"))?;
                    Some(super::normalize_relative(&text).ok_or_else(|| {
                        loc.at(d, &format!("{what}: `dir` must be a directory inside the repository"))
                    })?)
                }
            };
            let env = match find(map, "env") {
                Some(e) => loc.texts(e, &format!("{what}: `env`"))?,
                None => Vec::new(),
            };
            if let Some((name, _)) = env.iter().find(|(k, _)| k.starts_with("CAIRN_")) {
                return Err(
                    loc.at(node, &format!("{what}: `env` cannot set `{name}`: cairn sets the CAIRN_ variables itself"))
                );
            }
            Ok(CommandProbe { argv, dir, env })
        }
    }
}

fn parse_analysis(loc: &Located, node: &Node, what: &str) -> Result<AnalysisRef> {
    let (template_node, map) = match &node.value {
        NodeValue::String(_) => (node, &[][..]),
        _ => {
            let map = loc.map(node, &format!("{what}: `analysis`"))?;
            loc.keys(map, &["template", "args", "address"], &format!("{what}: `analysis`"))?;
            (
                find(map, "template")
                    .ok_or_else(|| loc.at(node, &format!("{what}: `analysis` needs `template` (a file)")))?,
                map,
            )
        }
    };
    let text = loc.string(template_node, &format!("{what}: `template`"))?;
    let template = super::normalize_relative(&text)
        .ok_or_else(|| loc.at(template_node, &format!("{what}: `template` must be a file inside the repository")))?;
    let mut args = BTreeMap::new();
    if let Some(a) = find(map, "args") {
        for (name, value) in loc.texts(a, &format!("{what}: `args`"))? {
            args.insert(name, value);
        }
    }
    let address = match find(map, "address") {
        None => None,
        Some(a) => {
            let text = loc.string(a, &format!("{what}: `address`"))?;
            check_url(loc, a, &text, what)?;
            Some(text)
        }
    };
    Ok(AnalysisRef { template, args, address })
}
