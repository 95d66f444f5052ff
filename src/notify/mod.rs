//! Telling people about releases: the routes of `notifications:` pick the channels an event of
//! an environment goes to; each (channel, event) of a release is delivered once and recorded on
//! the release (`release::delivery`), so later runs send only what is missing. Messages come
//! from the release record (`message`), bodies are each receiver's own (`payload`), HTTP goes
//! through bounded retries (`http`), mail through SMTP (`email`).
//!
//! Secrets: every URL, token and password is read from the environment variables the channel
//! names, only here, and every error about a delivery is redacted of them before it is recorded
//! or shown.

pub mod email;
pub mod http;
pub mod message;
pub mod payload;

use std::path::Path;

use hmac::{KeyInit, Mac};
use serde::Serialize;

use crate::config::{Channel, ChannelKind, EventKind, Notifications};
use crate::error::{Error, Result};
use crate::release::Release;
use crate::release::delivery::{self, Delivery, DeliveryOutcome};
use crate::secrets::Redactor;
use message::Message;

/// What `notify` did with one (channel, event).
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub channel: String,
    #[serde(rename = "type")]
    pub channel_type: &'static str,
    pub event: EventKind,
    pub result: SentResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentResult {
    Delivered,
    /// An earlier run delivered it; nothing was sent.
    AlreadyDelivered,
    Failed,
}

impl SentResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SentResult::Delivered => "delivered",
            SentResult::AlreadyDelivered => "already delivered",
            SentResult::Failed => "failed",
        }
    }
}

impl Sent {
    pub fn of(channel: &Channel, delivery: &Delivery, result: SentResult) -> Sent {
        Sent {
            channel: channel.name.clone(),
            channel_type: channel.kind.type_name(),
            event: delivery.event,
            result,
            status: delivery.status,
            attempts: delivery.attempts,
            error: delivery.error.clone(),
            id: delivery.id.clone(),
        }
    }
}

/// A mail's two parts: the release notes as Markdown (text) and HTML.
pub struct MailBody {
    pub markdown: String,
    pub html: String,
}

/// What deliveries need besides the release: the environment's variables, the configuration
/// root (for a mail relay's CA file), the run's link, the mail body, who sends.
pub struct Outbox<'a> {
    pub var: &'a (dyn Fn(&str) -> Option<String> + Sync),
    pub root: &'a Path,
    pub link: Option<String>,
    pub mail: &'a dyn Fn(&Release) -> Result<MailBody>,
    pub actor: String,
}

/// The (event, channel) pairs the routes ask for about a release, in event order then channel
/// order.
pub fn wanted<'c>(notifications: &'c Notifications, release: &Release) -> Vec<(EventKind, &'c Channel)> {
    delivery::events_of(release)
        .into_iter()
        .flat_map(|event| notifications.channels_for(event, &release.environment).into_iter().map(move |c| (event, c)))
        .collect()
}

/// Every variable the channels need is set: checked before anything is sent, so a missing one
/// stops the run whole, naming the variable (never a value).
pub fn check_variables<'c>(
    channels: impl IntoIterator<Item = &'c Channel>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    for channel in channels {
        for name in channel.kind.variables() {
            if var(name).is_none_or(|v| v.is_empty()) {
                return Err(Error::Unset { channel: channel.name.clone(), variable: name.to_string() });
            }
        }
        if let ChannelKind::Github { repository: None, .. } = &channel.kind
            && var("GITHUB_REPOSITORY").is_none_or(|v| v.is_empty())
        {
            return Err(Error::Unset { channel: channel.name.clone(), variable: "GITHUB_REPOSITORY".to_string() });
        }
    }
    Ok(())
}

/// What a message is about: a release, or the head commit of a pull-request check.
#[derive(Clone, Copy)]
pub enum About<'a> {
    Release(&'a Release),
    Check { sha: &'a str },
}

impl About<'_> {
    fn sha(&self) -> Option<&str> {
        match self {
            About::Release(r) => r.sha(),
            About::Check { sha } => Some(sha),
        }
    }
}

/// Sends one event of a release to one channel, retrying as the channel allows, and returns the
/// entry to record. Never fails: a failed delivery is a recorded outcome.
pub fn deliver(outbox: &Outbox, channel: &Channel, event: EventKind, release: &Release) -> Delivery {
    let previous = delivery::recorded(release, event, &channel.name);
    let id = delivery::delivery_id(release, event, &channel.name);
    let message = message::of_release(release, event, outbox.link.clone());
    let attempt = send(outbox, channel, &message, &id, About::Release(release));
    Delivery {
        channel: channel.name.clone(),
        event,
        id,
        at: crate::release::now(),
        outcome: if attempt.error.is_none() { DeliveryOutcome::Delivered } else { DeliveryOutcome::Failed },
        status: attempt.status,
        attempts: previous.map_or(0, |p| p.attempts) + attempt.attempts,
        error: attempt.error,
        actor: outbox.actor.clone(),
        deployment: attempt.deployment.or(previous.and_then(|p| p.deployment)),
    }
}

/// Sends one message to one channel. Errors are redacted of every value of the channel's
/// variables before they leave.
pub fn send(outbox: &Outbox, channel: &Channel, message: &Message, id: &str, about: About) -> Attempt {
    let mut redact = Redactor::default();
    for name in channel.kind.variables() {
        if let Some(value) = (outbox.var)(name) {
            redact.add(&value);
        }
    }
    let release = match about {
        About::Release(r) => Some(r),
        About::Check { .. } => None,
    };
    match &channel.kind {
        ChannelKind::Slack { url_env } => {
            post_json(outbox, channel, url_env, &payload::slack(message), id, None, &redact)
        }
        ChannelKind::Teams { url_env } => {
            post_json(outbox, channel, url_env, &payload::teams(message), id, None, &redact)
        }
        ChannelKind::Webhook { url_env, hmac_key_env } => {
            let body = payload::webhook(message, id, release);
            let key = hmac_key_env.as_deref().and_then(|k| (outbox.var)(k));
            post_json(outbox, channel, url_env, &body, id, key.as_deref(), &redact)
        }
        ChannelKind::Github { token_env, repository, deployments } => {
            let known = release
                .and_then(|r| r.notifications.iter().filter(|d| d.channel == channel.name).find_map(|d| d.deployment));
            let github = Github { outbox, channel, token_env, repository: repository.as_deref(), redact: &redact };
            github.send(message, about, *deployments && release.is_some(), known, id)
        }
        ChannelKind::Email { .. } => {
            let body = match release {
                Some(r) => (outbox.mail)(r),
                None => {
                    let text = message::plain(message);
                    let html = format!("<html><body><pre>{}</pre></body></html>", html_escape(&text));
                    Ok(MailBody { markdown: text, html })
                }
            };
            match body {
                Ok(body) => email::send(outbox, channel, message, &body, id, &redact),
                Err(e) => {
                    Attempt::failed(redact.clean(&format!("the release notes for the mail could not be made: {e}")))
                }
            }
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How one delivery went, before it is recorded.
#[derive(Debug, Default)]
pub struct Attempt {
    pub status: Option<u16>,
    pub attempts: u32,
    pub error: Option<String>,
    pub deployment: Option<u64>,
}

impl Attempt {
    fn failed(error: String) -> Attempt {
        Attempt { status: None, attempts: 0, error: Some(error), deployment: None }
    }

    fn from(posted: http::Posted) -> Attempt {
        Attempt { status: posted.status, attempts: posted.attempts, error: posted.error, deployment: None }
    }
}

/// `sha256=<hex>` of the body: Flux's `generic-hmac` signature, so receivers written for it
/// verify cairn's deliveries unchanged.
pub fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn post_json(
    outbox: &Outbox,
    channel: &Channel,
    url_env: &str,
    body: &serde_json::Value,
    id: &str,
    hmac_key: Option<&str>,
    redact: &Redactor,
) -> Attempt {
    let Some(url) = (outbox.var)(url_env) else {
        return Attempt::failed(format!("the environment variable `{url_env}` is not set"));
    };
    let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
    let mut headers = vec![("Content-Type", "application/json".to_string()), ("X-Cairn-Delivery", id.to_string())];
    if let Some(event) = body.get("event").and_then(serde_json::Value::as_str) {
        headers.push(("X-Cairn-Event", event.to_string()));
    }
    if let Some(key) = hmac_key {
        headers.push(("X-Signature", signature(key, &bytes)));
    }
    let request = http::Request { url: &url, headers, body: bytes, timeout: channel.timeout, retries: channel.retries };
    Attempt::from(http::post(&request, redact))
}

/// The GitHub channel: a commit status, and for release events a Deployment with its status.
struct Github<'a> {
    outbox: &'a Outbox<'a>,
    channel: &'a Channel,
    token_env: &'a str,
    repository: Option<&'a str>,
    redact: &'a Redactor,
}

impl Github<'_> {
    fn send(&self, message: &Message, about: About, deployments: bool, known: Option<u64>, id: &str) -> Attempt {
        let Some(sha) = about.sha() else {
            return Attempt::failed(
                "the release was applied from a working tree without a commit; GitHub statuses need one".to_string(),
            );
        };
        let var = self.outbox.var;
        let Some(repository) = self.repository.map(str::to_string).or_else(|| var("GITHUB_REPOSITORY")) else {
            return Attempt::failed(
                "no repository: set `repository:` on the channel, or GITHUB_REPOSITORY".to_string(),
            );
        };
        let api = var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_string());
        let api = api.trim_end_matches('/');
        let mut attempt = Attempt::default();
        let status =
            self.post(&format!("{api}/repos/{repository}/statuses/{sha}"), &payload::github_commit_status(message), id);
        attempt.attempts += status.attempts;
        attempt.status = status.status;
        if !status.ok() {
            attempt.error = status.error;
            return attempt;
        }
        let release_event = matches!(
            message.event,
            EventKind::ReleaseSucceeded | EventKind::ReleaseFailed | EventKind::ReleaseRolledBack
        );
        let verification = message.event == EventKind::VerificationFailed;
        if !deployments || !(release_event || (verification && known.is_some())) {
            return attempt;
        }
        let deployment = match known {
            Some(d) => d,
            None => {
                let created = self.post(
                    &format!("{api}/repos/{repository}/deployments"),
                    &payload::github_deployment(message, sha),
                    id,
                );
                attempt.attempts += created.attempts;
                attempt.status = created.status;
                if !created.ok() {
                    attempt.error = created.error;
                    return attempt;
                }
                match serde_json::from_str::<serde_json::Value>(&created.body).ok().and_then(|v| v.get("id")?.as_u64())
                {
                    Some(d) => d,
                    None => {
                        attempt.error = Some("GitHub created the deployment but its answer has no `id`".to_string());
                        return attempt;
                    }
                }
            }
        };
        attempt.deployment = Some(deployment);
        let posted = self.post(
            &format!("{api}/repos/{repository}/deployments/{deployment}/statuses"),
            &payload::github_deployment_status(message),
            id,
        );
        attempt.attempts += posted.attempts;
        attempt.status = posted.status;
        attempt.error = posted.error;
        attempt
    }

    fn post(&self, url: &str, body: &serde_json::Value, id: &str) -> http::Posted {
        let token = (self.outbox.var)(self.token_env).unwrap_or_default();
        let request = http::Request {
            url,
            headers: vec![
                ("Content-Type", "application/json".to_string()),
                ("Accept", "application/vnd.github+json".to_string()),
                ("X-GitHub-Api-Version", "2022-11-28".to_string()),
                ("Authorization", format!("Bearer {token}")),
                ("X-Cairn-Delivery", id.to_string()),
            ],
            body: serde_json::to_vec(body).expect("a JSON value serializes"),
            timeout: self.channel.timeout,
            retries: self.channel.retries,
        };
        http::post(&request, self.redact)
    }
}
