//! The bodies each receiver expects: Slack's Block Kit, a Teams Adaptive Card, cairn's own JSON
//! for generic webhooks, and GitHub's commit-status and deployment requests.

use serde_json::{Value, json};

use super::message::Message;
use crate::config::EventKind;
use crate::release::Release;

/// Version of the generic webhook body; receivers check it.
pub const WEBHOOK_FORMAT: &str = "cairn.notification/v1";

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack incoming-webhook message: `text` for notifications and clients without blocks, then a
/// header, a section and a context block, and a button to the run when there is one.
pub fn slack(message: &Message) -> Value {
    let mut section = slack_escape(&message.summary);
    if let Some(detail) = &message.detail {
        section.push_str(&format!("\n{}", slack_escape(detail)));
    }
    let mut context = format!("{} · by {}", if message.good { ":white_check_mark:" } else { ":x:" }, message.actor);
    if let Some(commit) = &message.commit {
        context.push_str(&format!(" · `{}`", slack_escape(commit)));
    }
    // Slack caps a header's text at 150 characters.
    let header: String = message.title.chars().take(150).collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}),
    ];
    if let Some(link) = &message.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the run"}, "url": link}]
        }));
    }
    json!({"text": format!("{} — {}", message.title, message.summary), "blocks": blocks})
}

/// A Teams Workflows-webhook message: one Adaptive Card (schema 1.4) with the title, the line,
/// the facts and a link to the run.
pub fn teams(message: &Message) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": message.title, "weight": "Bolder", "size": "Medium", "wrap": true,
               "color": if message.good { "Good" } else { "Attention" }}),
        json!({"type": "TextBlock", "text": message.summary, "wrap": true}),
    ];
    if let Some(detail) = &message.detail {
        body.push(json!({"type": "TextBlock", "text": detail, "wrap": true, "isSubtle": true}));
    }
    let mut facts = vec![json!({"title": "Environment", "value": message.environment})];
    if let Some(release) = message.release {
        facts.push(json!({"title": "Release", "value": release.to_string()}));
    }
    facts.push(json!({"title": "Event", "value": message.event.as_str()}));
    facts.push(json!({"title": "By", "value": message.actor}));
    if let Some(commit) = &message.commit {
        facts.push(json!({"title": "Commit", "value": commit}));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = &message.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open the run", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]
    })
}

/// cairn's own body: the message, and the release's facts a program would act on.
pub fn webhook(message: &Message, id: &str, release: Option<&Release>) -> Value {
    let mut body = json!({
        "format": WEBHOOK_FORMAT,
        "id": id,
        "event": message.event.as_str(),
        "environment": message.environment,
        "title": message.title,
        "summary": message.summary,
        "actor": message.actor,
    });
    if let Some(detail) = &message.detail {
        body["detail"] = json!(detail);
    }
    if let Some(link) = &message.link {
        body["link"] = json!(link);
    }
    if let Some(r) = release {
        body["release"] = json!({
            "id": r.id,
            "kind": r.kind,
            "outcome": r.outcome.as_str(),
            "source": r.source,
            "commit": r.sha(),
            "rollback_to": r.rollback_to,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "summary": r.summary,
            "versions": r.versions,
            "drift": r.drift,
            "failed": r.objects.iter().filter(|o| o.error.is_some()).map(|o| &o.object).collect::<Vec<_>>(),
            "verification": r.verification.as_ref().map(|v| v.verdict.as_str()),
        });
    }
    body
}

/// GitHub's commit-status state and the status context for an event.
pub fn github_status(message: &Message) -> (&'static str, String) {
    let env = &message.environment;
    match message.event {
        EventKind::ReleaseSucceeded | EventKind::ReleaseRolledBack => ("success", format!("cairn/{env}")),
        EventKind::ReleaseFailed => ("failure", format!("cairn/{env}")),
        EventKind::VerificationFailed => ("failure", format!("cairn/{env}/verification")),
        EventKind::CheckBlocked => ("failure", format!("cairn/check/{env}")),
        EventKind::DriftDetected => ("failure", format!("cairn/{env}/drift")),
    }
}

/// GitHub's limit on a status description.
fn description(message: &Message) -> String {
    let text = format!("{} — {}", message.title, message.summary);
    if text.chars().count() <= 140 { text } else { format!("{}…", text.chars().take(139).collect::<String>()) }
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`
pub fn github_commit_status(message: &Message) -> Value {
    let (state, context) = github_status(message);
    let mut body = json!({"state": state, "context": context, "description": description(message)});
    if let Some(link) = &message.link {
        body["target_url"] = json!(link);
    }
    body
}

/// `POST /repos/{owner}/{repo}/deployments`: the environment at the release's commit, created
/// whatever the required contexts say (cairn reports on a deployment that already happened).
pub fn github_deployment(message: &Message, sha: &str) -> Value {
    json!({
        "ref": sha,
        "environment": message.environment,
        "description": description(message),
        "auto_merge": false,
        "required_contexts": [],
        "production_environment": message.environment == "production" || message.environment == "prod",
        "payload": {"cairn_release": message.release},
    })
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`
pub fn github_deployment_status(message: &Message) -> Value {
    let state = match message.event {
        EventKind::ReleaseSucceeded | EventKind::ReleaseRolledBack => "success",
        EventKind::ReleaseFailed | EventKind::VerificationFailed | EventKind::DriftDetected => "failure",
        EventKind::CheckBlocked => "error",
    };
    let mut body = json!({"state": state, "description": description(message), "auto_inactive": true});
    if let Some(link) = &message.link {
        body["log_url"] = json!(link);
    }
    body
}
