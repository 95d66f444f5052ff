//! The progress event stream (`--events FILE`, `-` for stderr): one JSON object per line, written
//! as the work happens, for a chat bot or a CI log parser to follow. Each line names what
//! happened and to which object — never an object's body, so nothing decrypted can reach it.
//! `schemas/events.schema.json` is its contract.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::render::ObjectId;
use crate::target::Action;

/// Version of the line format; a consumer checks it once, on `started`.
pub const EVENTS_FORMAT: &str = "cairn.events/v1";

/// Where events go; off unless `--events` was given, and then cheap to call when off.
pub struct Events {
    sink: Option<Mutex<std::io::BufWriter<Box<dyn Write + Send>>>>,
    seq: AtomicU64,
    /// Set once writing failed: the stream stops, the work does not.
    broken: AtomicBool,
}

impl Events {
    pub fn off() -> Events {
        Events { sink: None, seq: AtomicU64::new(0), broken: AtomicBool::new(false) }
    }

    pub fn to_writer(writer: Box<dyn Write + Send>) -> Events {
        let sink = Mutex::new(std::io::BufWriter::new(writer));
        Events { sink: Some(sink), seq: AtomicU64::new(0), broken: AtomicBool::new(false) }
    }

    /// `-`: stderr; anything else: a file, created or truncated.
    pub fn open(spec: &Path) -> Result<Events> {
        if spec.as_os_str() == "-" {
            return Ok(Events::to_writer(Box::new(std::io::stderr())));
        }
        let file = std::fs::File::create(spec)
            .map_err(|e| Error::io(spec, "cannot create the event stream file (`--events`)", e))?;
        Ok(Events::to_writer(Box::new(file)))
    }

    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one line. A stream that cannot be written (a closed pipe, a full disk) is dropped
    /// with one warning: progress reporting never fails the work it reports on.
    ///
    /// Every line is flushed as it is written, except the per-object lines of a group: a group's
    /// objects finish together, and the next line (the next group, the wait, the end) flushes
    /// them, so a 10,000-object apply does not pay a write per object.
    pub fn emit(&self, event: &Event<'_>) {
        let Some(sink) = &self.sink else { return };
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        #[derive(Serialize)]
        struct Line<'a> {
            seq: u64,
            time: String,
            #[serde(flatten)]
            event: &'a Event<'a>,
        }
        let mut writer = match sink.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Numbered under the lock, so lines are in the order of their numbers.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // As release records write times: RFC 3339 UTC with milliseconds.
        let time = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let line = Line { seq, time, event };
        let written = serde_json::to_writer(&mut *writer, &line)
            .map_err(std::io::Error::other)
            .and_then(|()| writer.write_all(b"\n"))
            .and_then(|()| match event {
                Event::ObjectApplied { .. } | Event::ObjectFailed { .. } => Ok(()),
                _ => writer.flush(),
            });
        if let Err(e) = written {
            self.broken.store(true, Ordering::Relaxed);
            tracing::warn!("the event stream stopped: cannot write to it: {e}");
        }
    }
}

/// One thing that happened. The tag is the line's `event` field.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event<'a> {
    /// A command began.
    Started {
        format: &'static str,
        command: &'a str,
        environments: &'a [String],
    },
    /// An environment's apply began under its lock: its release and how many objects it writes.
    ApplyStarted {
        environment: &'a str,
        release: u64,
        objects: usize,
    },
    /// A group of objects with no order among them is being written.
    GroupStarted {
        environment: &'a str,
        group: usize,
        objects: usize,
    },
    ObjectApplied {
        environment: &'a str,
        object: &'a ObjectId,
        action: Action,
    },
    ObjectFailed {
        environment: &'a str,
        object: &'a ObjectId,
        action: Action,
        error: &'a str,
    },
    WaitingForHealth {
        environment: &'a str,
        objects: usize,
    },
    HealthChecked {
        environment: &'a str,
        unhealthy: usize,
    },
    /// An environment's apply ended; `outcome` as its release record says.
    ApplyFinished {
        environment: &'a str,
        release: u64,
        outcome: &'a str,
    },
    /// A Deployment's canary or blue/green rollout began (or was resumed at `phase`).
    RolloutStarted {
        environment: &'a str,
        workload: &'a ObjectId,
        strategy: &'a str,
        kind: &'a str,
        phase: usize,
    },
    /// One phase of a rollout finished: the replicas of each version after it.
    RolloutStep {
        environment: &'a str,
        workload: &'a ObjectId,
        phase: usize,
        what: &'a str,
        new: u32,
        old: u32,
    },
    /// A rollout ended: `succeeded` or `aborted` (with why).
    RolloutFinished {
        environment: &'a str,
        workload: &'a ObjectId,
        state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// The environment of `check` was rendered and planned.
    Planned {
        environment: &'a str,
        create: usize,
        update: usize,
        delete: usize,
        unchanged: usize,
    },
    VerificationStarted {
        environment: &'a str,
        release: u64,
        checks: usize,
    },
    /// One measurement of a check, as it is taken.
    Measurement {
        environment: &'a str,
        check: &'a str,
        phase: &'a str,
        value: Option<&'a str>,
    },
    VerificationFinished {
        environment: &'a str,
        release: u64,
        verdict: &'a str,
    },
    /// An automatic rollback after a failed verification.
    RollbackStarted {
        environment: &'a str,
        from_release: u64,
        to_release: Option<u64>,
    },
    /// A notification sent (or failed); `release` is absent for a check's `check.blocked`.
    Notified {
        environment: &'a str,
        release: Option<u64>,
        channel: &'a str,
        event_name: &'a str,
        outcome: &'a str,
    },
    /// The command ended: `succeeded`, `failed`, `blocked` (findings), `refused`, `unverified`.
    Finished {
        command: &'a str,
        outcome: &'a str,
    },
}
