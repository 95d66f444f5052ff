//! `cairn notify` and `apply --notify`: what the routes ask for about a release, minus what its
//! record says was delivered, sent and recorded one delivery at a time under the environment's
//! lock — so two jobs notifying at once, or a retried job, deliver each (channel, event) once.
//! Reads records and the work tree's `cairn.yaml` only: nothing is rendered or planned.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{open_config, releases, resolve_actor};
use crate::config::{Config, EventKind};
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::notify::{self, Outbox, Sent, SentResult};
use crate::release::{self, Outcome, Release};
use crate::repo::Repo;
use crate::target::{Holder, Lock, Target};

/// How long `notify` waits for an environment's lock held by another job (an apply, or a
/// notify of the same release) before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// What was sent about one release.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notified {
    pub environment: String,
    pub release: u64,
    /// The events the release has to tell, whether or not a route asks for them.
    pub events: Vec<EventKind>,
    pub sent: Vec<Sent>,
}

impl Notified {
    pub fn failed(&self) -> bool {
        self.sent.iter().any(|s| s.result == SentResult::Failed)
    }
}

/// Where the pieces a delivery needs from outside come from.
pub struct NotifySpec<'a> {
    pub actor: Option<String>,
    pub var: &'a (dyn Fn(&str) -> Option<String> + Sync),
    pub mail: &'a dyn Fn(&Repo, &Config, &Release) -> Result<notify::MailBody>,
}

/// `cairn notify --env ENV [--release ID]`: the release given, or the environment's latest
/// finished one.
pub fn notify(repo_dir: &Path, env: &str, id: Option<u64>, spec: &NotifySpec, events: &Events) -> Result<Notified> {
    let (repo, config) = open_config(repo_dir)?;
    config.environment(env)?;
    let (target, history) = releases(&repo, &config, env)?;
    let subject = match id {
        Some(id) => release::find(&history, env, id)?,
        None => history.iter().rev().find(|r| r.outcome != Outcome::InProgress).cloned().ok_or_else(|| {
            Error::Usage { message: format!("environment `{env}` has no finished release to tell about yet") }
        })?,
    };
    if subject.outcome == Outcome::InProgress {
        return Err(Error::Usage {
            message: format!("release {} of `{env}` is still in progress; notify once it has finished", subject.id),
        });
    }
    send(&repo, &config, &target, subject.id, spec, events)
}

/// After an apply: each release of the run, told about as the routes say. A failure to notify
/// is logged, never an error of the apply.
pub fn after_apply(repo_dir: &Path, releases: &[(String, u64)], spec: &NotifySpec, events: &Events) -> Vec<Notified> {
    let mut out = Vec::new();
    let opened = open_config(repo_dir);
    let (repo, config) = match opened {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("notifications were not sent: {e}");
            return out;
        }
    };
    for (env, id) in releases {
        let sent = super::releases(&repo, &config, env)
            .and_then(|(target, _)| send(&repo, &config, &target, *id, spec, events));
        match sent {
            Ok(n) => {
                for failed in n.sent.iter().filter(|s| s.result == SentResult::Failed) {
                    tracing::error!(
                        "notification `{}` of release {} to `{}` failed: {}",
                        failed.event,
                        id,
                        failed.channel,
                        failed.error.as_deref().unwrap_or("no reason given")
                    );
                }
                out.push(n);
            }
            Err(e) => tracing::error!("notifications about release {id} of `{env}` were not sent: {e}"),
        }
    }
    out
}

/// Whether applies notify without being told: `notifications.notify_on_apply`.
pub fn notifies_on_apply(repo_dir: &Path) -> Result<bool> {
    let (_, config) = open_config(repo_dir)?;
    Ok(config.notifications.notify_on_apply)
}

fn send(
    repo: &Repo,
    config: &Config,
    target: &Target,
    id: u64,
    spec: &NotifySpec,
    events: &Events,
) -> Result<Notified> {
    let read = |target: &Target| -> Result<Release> {
        release::read(target, id)?
            .ok_or_else(|| Error::Usage { message: format!("release {id} disappeared from its environment's records") })
    };
    let subject = read(target)?;
    let env = subject.environment.clone();
    let wanted = notify::wanted(&config.notifications, &subject);
    let pending = |r: &Release| -> Vec<(EventKind, &crate::config::Channel)> {
        wanted
            .iter()
            .filter(|(event, channel)| {
                !release::delivery::recorded(r, *event, &channel.name).is_some_and(|d| d.delivered())
            })
            .copied()
            .collect()
    };
    let mut notified = Notified {
        environment: env.clone(),
        release: id,
        events: release::delivery::events_of(&subject),
        sent: Vec::new(),
    };
    // Nothing to send: no lock, no write — the common case of a re-run.
    if pending(&subject).is_empty() {
        notified.sent = already(&wanted, &subject);
        return Ok(notified);
    }
    notify::check_variables(pending(&subject).iter().map(|(_, c)| *c), spec.var)?;
    let actor = spec.actor.clone().unwrap_or_else(|| resolve_actor(repo));
    let lock = lock_waiting(target, &actor)?;
    // Read again under the lock: another job may have delivered some meanwhile.
    let mut record = read(target)?;
    let todo = pending(&record);
    let mail = |r: &Release| (spec.mail)(repo, config, r);
    let outbox = Outbox {
        var: spec.var,
        root: repo.root(),
        link: notify::message::run_link(&|k| (spec.var)(k)),
        mail: &mail,
        actor: actor.clone(),
    };
    for (event, channel) in &todo {
        let delivery = notify::deliver(&outbox, channel, *event, &record);
        events.emit(&Event::Notified {
            environment: &env,
            release: Some(id),
            channel: &channel.name,
            event_name: event.as_str(),
            outcome: delivery.outcome.as_str(),
        });
        release::delivery::record(&mut record, delivery);
        // Recorded at once: a run killed after this delivery does not send it again.
        release::write(target, &lock, &record)?;
    }
    drop(lock);
    notified.sent = wanted
        .iter()
        .filter_map(|(event, channel)| {
            let d = release::delivery::recorded(&record, *event, &channel.name)?;
            let sent_now = todo.iter().any(|(e, c)| e == event && c.name == channel.name);
            let result = match (d.delivered(), sent_now) {
                (true, true) => SentResult::Delivered,
                (true, false) => SentResult::AlreadyDelivered,
                (false, _) => SentResult::Failed,
            };
            Some(Sent::of(channel, d, result))
        })
        .collect();
    Ok(notified)
}

fn already(wanted: &[(EventKind, &crate::config::Channel)], release: &Release) -> Vec<Sent> {
    wanted
        .iter()
        .filter_map(|(event, channel)| {
            release::delivery::recorded(release, *event, &channel.name)
                .map(|d| Sent::of(channel, d, SentResult::AlreadyDelivered))
        })
        .collect()
}

fn lock_waiting(target: &Target, actor: &str) -> Result<Lock> {
    let start = Instant::now();
    loop {
        match target.lock(&Holder::current(actor)) {
            Err(Error::Locked { .. }) if start.elapsed() < LOCK_WAIT => std::thread::sleep(Duration::from_millis(250)),
            other => return other,
        }
    }
}

/// `check --notify`: for each environment whose findings block the change, `check.blocked` to the
/// channels its routes name. A check makes no release, so there is no record to keep a delivery
/// on: a re-run of the same check sends again. Each request carries the stable id
/// `check-<env>-<sha>-<channel>` for receivers that drop duplicates, and a GitHub commit status is
/// replaced, not repeated. Returns (environment, what was sent).
pub fn notify_check(
    repo_dir: &Path,
    saved: &crate::check::SavedPlan,
    spec: &NotifySpec,
    events: &Events,
) -> Result<Vec<(String, Sent)>> {
    let (repo, config) = open_config(repo_dir)?;
    let mut blocking: Vec<&str> = Vec::new();
    for f in saved.findings.iter().filter(|f| f.severity == crate::validate::Level::Error) {
        if !blocking.contains(&f.environment.as_str()) {
            blocking.push(&f.environment);
        }
    }
    let wanted: Vec<(&str, &crate::config::Channel)> = blocking
        .iter()
        .flat_map(|env| {
            config.notifications.channels_for(EventKind::CheckBlocked, env).into_iter().map(move |c| (*env, c))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    notify::check_variables(wanted.iter().map(|(_, c)| *c), spec.var)?;
    let actor = spec.actor.clone().unwrap_or_else(|| resolve_actor(&repo));
    let no_mail = |_: &Release| -> Result<notify::MailBody> {
        Err(Error::Usage { message: "a check has no release notes".to_string() })
    };
    let outbox = Outbox {
        var: spec.var,
        root: repo.root(),
        link: notify::message::run_link(&|k| (spec.var)(k)),
        mail: &no_mail,
        actor: actor.clone(),
    };
    let head = &saved.head;
    let mut out = Vec::new();
    for (env, channel) in wanted {
        let findings: Vec<&crate::validate::Finding> = saved
            .findings
            .iter()
            .filter(|f| f.environment == env && f.severity == crate::validate::Level::Error)
            .collect();
        let message = notify::message::of_check(env, head, &findings, &actor, outbox.link.clone());
        let id = format!("check-{env}-{}-{}", head.short_sha(), channel.name);
        let attempt = notify::send(&outbox, channel, &message, &id, notify::About::Check { sha: &head.sha });
        let result = if attempt.error.is_none() { SentResult::Delivered } else { SentResult::Failed };
        events.emit(&Event::Notified {
            environment: env,
            release: None,
            channel: &channel.name,
            event_name: EventKind::CheckBlocked.as_str(),
            outcome: if result == SentResult::Delivered { "delivered" } else { "failed" },
        });
        out.push((
            env.to_string(),
            Sent {
                channel: channel.name.clone(),
                channel_type: channel.kind.type_name(),
                event: EventKind::CheckBlocked,
                result,
                status: attempt.status,
                attempts: attempt.attempts,
                error: attempt.error,
                id,
            },
        ));
    }
    Ok(out)
}
