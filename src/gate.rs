//! The gate every write to a target passes: schema validation and every bound policy whose
//! environment matches, run over exactly the objects that will be written, with the change
//! context known at that moment. A write needs a [`Cleared`] environment, and the only way to get
//! one is [`evaluate`]: it comes from a run whose findings had no error, or from a recorded
//! break-glass override. Nothing else in the crate can build one, so a command cannot skip the
//! checks by accident.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::Result;
use crate::policy::{Context, Policies};
use crate::render::{ObjectId, Rendered};
use crate::repo::Snapshot;
use crate::validate::{self, Finding, Level};

/// An operator's decision to write past error findings (`--override-findings "REASON"`).
#[derive(Debug, Clone)]
pub struct BreakGlass {
    pub reason: String,
    pub actor: String,
}

impl BreakGlass {
    /// Refuses an empty or blank reason: an override must say why, for whoever reads the record.
    pub fn new(reason: &str, actor: &str) -> std::result::Result<BreakGlass, String> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(
                "--override-findings needs a reason, e.g. --override-findings \"INC-1234: payment outage\"".into()
            );
        }
        Ok(BreakGlass { reason: reason.to_string(), actor: actor.to_string() })
    }
}

/// What a release record keeps of an override: who, why, and which error findings it passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub reason: String,
    pub actor: String,
    pub findings: Vec<OverriddenFinding>,
}

/// One error finding an override passed. The message is the finding's own, already masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverriddenFinding {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectId>,
    pub message: String,
}

/// The environments a run may write, with the findings that let them through.
#[derive(Debug)]
pub struct Gated {
    rendered: Vec<Rendered>,
    findings: Vec<Finding>,
    overrides: Vec<Option<Override>>,
}

/// One environment that passed the gate (or was let through by an override): what an apply
/// accepts.
#[derive(Debug, Clone, Copy)]
pub struct Cleared<'a> {
    rendered: &'a Rendered,
    overridden: Option<&'a Override>,
}

impl<'a> Cleared<'a> {
    pub fn rendered(&self) -> &'a Rendered {
        self.rendered
    }

    /// The override that let this environment through, when it had error findings.
    pub fn overridden(&self) -> Option<&'a Override> {
        self.overridden
    }
}

impl Gated {
    pub fn rendered(&self) -> &[Rendered] {
        &self.rendered
    }

    /// Every finding of the run (warnings, and with an override the errors it passed).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The environments in the order they were rendered.
    pub fn environments(&self) -> impl Iterator<Item = Cleared<'_>> {
        self.rendered.iter().zip(&self.overrides).map(|(rendered, o)| Cleared { rendered, overridden: o.as_ref() })
    }

    /// Whether any environment went through on an override.
    pub fn forced(&self) -> bool {
        self.overrides.iter().any(Option::is_some)
    }
}

/// The gate's answer.
#[derive(Debug)]
pub enum Decision {
    /// The writes may proceed.
    Cleared(Gated),
    /// Error findings and no override: nothing may be written.
    Blocked { rendered: Vec<Rendered>, findings: Vec<Finding> },
}

/// Runs schema validation and the bound policies over the rendered environments, each with the
/// change context `context_of` gives it, and decides whether they may be written. A policy that
/// cannot be loaded or run is an error (the caller writes nothing), never a pass.
pub fn evaluate(
    snapshot: &Snapshot,
    config: &Config,
    rendered: Vec<Rendered>,
    options: validate::Options,
    context_of: &mut dyn FnMut(&Rendered) -> Result<Context>,
    break_glass: Option<&BreakGlass>,
) -> Result<Decision> {
    let mut findings = validate::validate(snapshot, config, &rendered, options)?;
    if let Some(policies) = Policies::load(snapshot, config)? {
        let mut contexts = Vec::new();
        for env in &rendered {
            if policies.bindings().any(|b| b.applies_to(&env.environment)) {
                contexts.push((env, context_of(env)?));
            }
        }
        let each: Vec<(&Rendered, &Context)> = contexts.iter().map(|(env, context)| (*env, context)).collect();
        findings.extend(policies.evaluate_each(snapshot, config, &each)?);
    }
    validate::sort(&mut findings);
    if !validate::has_errors(&findings) {
        let overrides = rendered.iter().map(|_| None).collect();
        return Ok(Decision::Cleared(Gated { rendered, findings, overrides }));
    }
    let Some(glass) = break_glass else {
        return Ok(Decision::Blocked { rendered, findings });
    };
    let overrides = rendered
        .iter()
        .map(|env| {
            let passed: Vec<OverriddenFinding> = findings
                .iter()
                .filter(|f| {
                    f.severity == Level::Error && (f.environment == env.environment || f.environment.is_empty())
                })
                .map(|f| OverriddenFinding {
                    code: f.code.clone(),
                    object: f.object.clone(),
                    message: f.message.clone(),
                })
                .collect();
            (!passed.is_empty()).then(|| Override {
                reason: glass.reason.clone(),
                actor: glass.actor.clone(),
                findings: passed,
            })
        })
        .collect::<Vec<_>>();
    for (env, o) in rendered.iter().zip(&overrides) {
        if let Some(o) = o {
            tracing::warn!(
                environment = %env.environment,
                findings = o.findings.len(),
                reason = %o.reason,
                "error findings overridden; the release records the override"
            );
        }
    }
    Ok(Decision::Cleared(Gated { rendered, findings, overrides }))
}
