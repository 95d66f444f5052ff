//! `notifications:` — where the news of a release goes (channels) and which news goes where
//! (routes). Every URL, token and password is named by an environment variable; the file itself
//! never holds one, so it can be reviewed and published like the rest of the configuration.

use std::time::Duration;

use serde::Serialize;

use super::verify::Located;
use crate::error::Result;
use crate::yaml::{Key, Node, NodeValue};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Notifications {
    pub channels: Vec<Channel>,
    pub routes: Vec<Route>,
    /// Send what the routes ask for after every apply, as `apply --notify` does.
    pub notify_on_apply: bool,
}

impl Notifications {
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// The channels `event` of `environment` goes to, each once, in the order declared.
    pub fn channels_for(&self, event: EventKind, environment: &str) -> Vec<&Channel> {
        let mut out: Vec<&Channel> = Vec::new();
        for route in self.routes.iter().filter(|r| r.matches(event, environment)) {
            for name in &route.channels {
                if let Some(channel) = self.channel(name).filter(|c| !out.iter().any(|o| o.name == c.name)) {
                    out.push(channel);
                }
            }
        }
        out.sort_by_key(|c| self.channels.iter().position(|o| o.name == c.name));
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    pub name: String,
    #[serde(flatten)]
    pub kind: ChannelKind,
    /// How long one attempt may take (`timeout:`, default 10s).
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub timeout: Duration,
    /// Attempts after the first when the receiver fails in a way worth retrying (`retries:`,
    /// default 3): no answer, a 5xx or a 429.
    pub retries: u32,
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ChannelKind {
    /// A Slack incoming webhook: a Block Kit message.
    Slack { url_env: String },
    /// A Microsoft Teams Workflows webhook: an Adaptive Card.
    Teams { url_env: String },
    /// Any HTTP endpoint: cairn's own JSON, signed with HMAC-SHA256 when a key is named.
    Webhook { url_env: String, hmac_key_env: Option<String> },
    /// GitHub: a commit status for the release's commit, and a Deployment of the environment
    /// with its status.
    Github {
        token_env: String,
        /// `owner/name`; default: `GITHUB_REPOSITORY`.
        repository: Option<String>,
        /// Also create a Deployment and its status (default true).
        deployments: bool,
    },
    /// Mail over SMTP: the release notes as HTML with the Markdown as the text part.
    Email {
        host: String,
        port: u16,
        from: String,
        to: Vec<String>,
        tls: SmtpTls,
        username_env: Option<String>,
        password_env: Option<String>,
        /// A PEM file of the certificate authority that signed the server's certificate, for a
        /// relay with a private CA (relative to the configuration root).
        ca_file: Option<String>,
    },
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Teams { .. } => "teams",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Github { .. } => "github",
            ChannelKind::Email { .. } => "email",
        }
    }

    /// The environment variables the channel needs set, required ones first.
    pub fn variables(&self) -> Vec<&str> {
        match self {
            ChannelKind::Slack { url_env } | ChannelKind::Teams { url_env } => vec![url_env],
            ChannelKind::Webhook { url_env, hmac_key_env } => {
                std::iter::once(url_env.as_str()).chain(hmac_key_env.as_deref()).collect()
            }
            ChannelKind::Github { token_env, .. } => vec![token_env],
            ChannelKind::Email { username_env, password_env, .. } => {
                username_env.iter().chain(password_env).map(String::as_str).collect()
            }
        }
    }
}

/// How the mail channel protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; refused when the server does not offer it.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS at all: only for a relay on loopback, and never with credentials.
    None,
}

/// What cairn tells about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub enum EventKind {
    #[serde(rename = "release.succeeded")]
    ReleaseSucceeded,
    #[serde(rename = "release.failed")]
    ReleaseFailed,
    #[serde(rename = "release.rolled-back")]
    ReleaseRolledBack,
    #[serde(rename = "drift.detected")]
    DriftDetected,
    #[serde(rename = "verification.failed")]
    VerificationFailed,
    #[serde(rename = "check.blocked")]
    CheckBlocked,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::ReleaseSucceeded,
        EventKind::ReleaseFailed,
        EventKind::ReleaseRolledBack,
        EventKind::DriftDetected,
        EventKind::VerificationFailed,
        EventKind::CheckBlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ReleaseSucceeded => "release.succeeded",
            EventKind::ReleaseFailed => "release.failed",
            EventKind::ReleaseRolledBack => "release.rolled-back",
            EventKind::DriftDetected => "drift.detected",
            EventKind::VerificationFailed => "verification.failed",
            EventKind::CheckBlocked => "check.blocked",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub events: Vec<EventKind>,
    pub channels: Vec<String>,
    /// Every environment when absent.
    pub environments: Option<Vec<String>>,
    pub line: u64,
}

impl Route {
    pub fn matches(&self, event: EventKind, environment: &str) -> bool {
        self.events.contains(&event)
            && self.environments.as_ref().is_none_or(|envs| envs.iter().any(|e| e == environment))
    }
}

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

const TYPES: &[&str] = &["slack", "teams", "webhook", "github", "email"];
const COMMON_KEYS: &[&str] = &["name", "type", "timeout", "retries"];

/// `notifications:`, checked against the environments it names.
pub(crate) fn parse_notifications(loc: &Located, node: &Node, environments: &[&str]) -> Result<Notifications> {
    let what = "`notifications`";
    let map = loc.map(node, what)?;
    loc.keys(map, &["channels", "routes", "notify_on_apply"], what)?;
    let mut channels: Vec<Channel> = Vec::new();
    if let Some(list) = find(map, "channels") {
        for item in seq(loc, list, "`notifications.channels`")? {
            let channel = parse_channel(loc, item)?;
            if channels.iter().any(|c| c.name == channel.name) {
                return Err(loc.at(item, &format!("two channels are named `{}`; give each its own name", channel.name)));
            }
            channels.push(channel);
        }
    }
    let mut routes = Vec::new();
    if let Some(list) = find(map, "routes") {
        for item in seq(loc, list, "`notifications.routes`")? {
            routes.push(parse_route(loc, item, &channels, environments)?);
        }
    }
    let notify_on_apply = match find(map, "notify_on_apply") {
        None => false,
        Some(v) => match v.value {
            NodeValue::Bool(b) => b,
            _ => return Err(loc.at(v, "`notifications.notify_on_apply` must be true or false")),
        },
    };
    Ok(Notifications { channels, routes, notify_on_apply })
}

fn seq<'a>(loc: &Located, node: &'a Node, what: &str) -> Result<&'a [Node]> {
    match &node.value {
        NodeValue::Seq(items) => Ok(items),
        _ => Err(loc.at(node, &format!("{what} must be a list, found {}", node.kind_name()))),
    }
}

fn parse_channel(loc: &Located, node: &Node) -> Result<Channel> {
    let map = loc.map(node, "a notification channel")?;
    let name = match find(map, "name") {
        Some(v) => loc.string(v, "a channel's `name`")?,
        None => return Err(loc.at(node, "a notification channel needs `name`")),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(loc.at(node, &format!("channel name `{name}` is not valid: use letters, digits, `-` and `_`")));
    }
    let what = format!("channel `{name}`");
    let type_node =
        find(map, "type").ok_or_else(|| loc.at(node, &format!("{what} needs `type` (one of {})", TYPES.join(", "))))?;
    let type_name = loc.string(type_node, &format!("{what}: `type`"))?;
    let own: &[&str] = match type_name.as_str() {
        "slack" | "teams" => &["url_env"],
        "webhook" => &["url_env", "hmac_key_env"],
        "github" => &["token_env", "repository", "deployments"],
        "email" => &["host", "port", "from", "to", "tls", "username_env", "password_env", "ca_file"],
        other => {
            return Err(loc.at(
                type_node,
                &format!(
                    "{what}: unknown channel type `{other}`{} (valid types: {})",
                    super::suggest(other, TYPES.iter().copied()),
                    TYPES.join(", ")
                ),
            ));
        }
    };
    let allowed: Vec<&str> = COMMON_KEYS.iter().chain(own).copied().collect();
    loc.keys(map, &allowed, &what)?;
    let variable = |key: &str| -> Result<Option<String>> {
        find(map, key).map(|v| loc.variable(v, &format!("{what}: `{key}`"))).transpose()
    };
    let required = |key: &str, example: &str| -> Result<String> {
        variable(key)?.ok_or_else(|| {
            loc.at(
                node,
                &format!("{what} needs `{key}`: the environment variable that holds it, such as `{key}: {example}`"),
            )
        })
    };
    let text = |key: &str| -> Result<Option<String>> {
        find(map, key).map(|v| loc.string(v, &format!("{what}: `{key}`"))).transpose()
    };
    let kind = match type_name.as_str() {
        "slack" => ChannelKind::Slack { url_env: required("url_env", "SLACK_WEBHOOK_URL")? },
        "teams" => ChannelKind::Teams { url_env: required("url_env", "TEAMS_WEBHOOK_URL")? },
        "webhook" => ChannelKind::Webhook {
            url_env: required("url_env", "OPS_HOOK_URL")?,
            hmac_key_env: variable("hmac_key_env")?,
        },
        "github" => {
            let repository = text("repository")?;
            if let Some(r) = &repository {
                let parts: Vec<&str> = r.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(loc.at(
                        find(map, "repository").unwrap_or(node),
                        &format!("{what}: `repository` must be `owner/name`, found `{r}`"),
                    ));
                }
            }
            let deployments = match find(map, "deployments") {
                None => true,
                Some(v) => match v.value {
                    NodeValue::Bool(b) => b,
                    _ => return Err(loc.at(v, &format!("{what}: `deployments` must be true or false"))),
                },
            };
            ChannelKind::Github {
                token_env: variable("token_env")?.unwrap_or_else(|| "GITHUB_TOKEN".to_string()),
                repository,
                deployments,
            }
        }
        _ => parse_email(loc, node, map, &what)?,
    };
    let timeout = match find(map, "timeout") {
        None => Duration::from_secs(10),
        Some(v) => loc.duration(v, &format!("{what}: `timeout`"))?,
    };
    if timeout.is_zero() {
        return Err(loc.at(find(map, "timeout").unwrap_or(node), &format!("{what}: `timeout` must be above zero")));
    }
    let retries = match find(map, "retries") {
        None => 3,
        Some(v) => loc.whole(v, &format!("{what}: `retries`"), 10)?,
    };
    Ok(Channel { name, kind, timeout, retries, line: node.line })
}

fn parse_email(loc: &Located, node: &Node, map: &[(Key, Node)], what: &str) -> Result<ChannelKind> {
    let text = |key: &str| -> Result<Option<String>> {
        find(map, key).map(|v| loc.string(v, &format!("{what}: `{key}`"))).transpose()
    };
    let host = text("host")?.ok_or_else(|| loc.at(node, &format!("{what} needs `host` (the SMTP relay)")))?;
    let tls = match find(map, "tls") {
        None => SmtpTls::Starttls,
        Some(v) => match v.as_str() {
            Some("starttls") => SmtpTls::Starttls,
            Some("implicit") => SmtpTls::Implicit,
            Some("none") => SmtpTls::None,
            _ => {
                return Err(loc.at(v, &format!("{what}: `tls` must be `starttls` (the default), `implicit` or `none`")));
            }
        },
    };
    let port = match find(map, "port") {
        Some(v) => {
            let port = loc.whole(v, &format!("{what}: `port`"), 65535)?;
            u16::try_from(port).unwrap_or(u16::MAX)
        }
        None if tls == SmtpTls::Implicit => 465,
        None => 587,
    };
    let mailbox = |key: &str, v: &Node| -> Result<String> {
        let address = loc.string(v, &format!("{what}: `{key}`"))?;
        let bare = address.rsplit_once('<').map_or(address.as_str(), |(_, a)| a.trim_end_matches('>'));
        if !bare.contains('@') || bare.starts_with('@') || bare.ends_with('@') {
            return Err(loc.at(v, &format!("{what}: `{key}` must be a mail address, found `{address}`")));
        }
        Ok(address)
    };
    let from = match find(map, "from") {
        Some(v) => mailbox("from", v)?,
        None => return Err(loc.at(node, &format!("{what} needs `from` (the sender's address)"))),
    };
    let to = match find(map, "to") {
        None => return Err(loc.at(node, &format!("{what} needs `to` (one address or a list)"))),
        Some(v) => match &v.value {
            NodeValue::Seq(items) if !items.is_empty() => {
                items.iter().map(|i| mailbox("to", i)).collect::<Result<Vec<_>>>()?
            }
            NodeValue::Seq(_) => return Err(loc.at(v, &format!("{what}: `to` is empty"))),
            _ => vec![mailbox("to", v)?],
        },
    };
    let variable = |key: &str| -> Result<Option<String>> {
        find(map, key).map(|v| loc.variable(v, &format!("{what}: `{key}`"))).transpose()
    };
    let (username_env, password_env) = (variable("username_env")?, variable("password_env")?);
    if username_env.is_some() != password_env.is_some() {
        return Err(loc.at(node, &format!("{what}: give both `username_env` and `password_env`, or neither")));
    }
    if tls == SmtpTls::None && username_env.is_some() {
        return Err(loc.at(
            node,
            &format!("{what}: credentials are never sent without TLS; use `tls: starttls` or `tls: implicit`"),
        ));
    }
    let ca_file = match find(map, "ca_file") {
        None => None,
        Some(v) => {
            let path = loc.string(v, &format!("{what}: `ca_file`"))?;
            Some(super::normalize_relative(&path).ok_or_else(|| {
                loc.at(v, &format!("{what}: `ca_file` must be a relative path inside the repository"))
            })?)
        }
    };
    Ok(ChannelKind::Email { host, port, from, to, tls, username_env, password_env, ca_file })
}

fn parse_route(loc: &Located, node: &Node, channels: &[Channel], environments: &[&str]) -> Result<Route> {
    let what = "a notification route";
    let map = loc.map(node, what)?;
    loc.keys(map, &["events", "channels", "environments"], what)?;
    let names = |key: &str| -> Result<Vec<(String, &Node)>> {
        let Some(v) = find(map, key) else {
            return Err(loc.at(node, &format!("{what} needs `{key}` (a list)")));
        };
        let items: Vec<&Node> = match &v.value {
            NodeValue::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        if items.is_empty() {
            return Err(loc.at(v, &format!("{what}: `{key}` is empty")));
        }
        items.into_iter().map(|i| Ok((loc.string(i, &format!("{what}: `{key}`"))?, i))).collect()
    };
    let mut events = Vec::new();
    for (name, at) in names("events")? {
        let event = EventKind::parse(&name).ok_or_else(|| {
            let all: Vec<&str> = EventKind::ALL.iter().map(|e| e.as_str()).collect();
            loc.at(
                at,
                &format!(
                    "{what}: unknown event `{name}`{} (events: {})",
                    super::suggest(&name, all.iter().copied()),
                    all.join(", ")
                ),
            )
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    let mut wanted = Vec::new();
    for (name, at) in names("channels")? {
        if !channels.iter().any(|c| c.name == name) {
            return Err(loc.at(
                at,
                &format!(
                    "{what}: no channel is named `{name}`{} (channels: {}); declare it under `notifications.channels`",
                    super::suggest(&name, channels.iter().map(|c| c.name.as_str())),
                    if channels.is_empty() {
                        "none".to_string()
                    } else {
                        channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
        wanted.push(name);
    }
    let envs = match find(map, "environments") {
        None => None,
        Some(_) => {
            let mut out = Vec::new();
            for (name, at) in names("environments")? {
                if !environments.contains(&name.as_str()) {
                    return Err(loc.at(
                        at,
                        &format!(
                            "{what}: `{name}` is not an environment{}",
                            super::suggest(&name, environments.iter().copied())
                        ),
                    ));
                }
                out.push(name);
            }
            Some(out)
        }
    };
    Ok(Route { events, channels: wanted, environments: envs, line: node.line })
}
