//! The pipeline, in one place: open the repository at a revision or the work tree, load the
//! configuration, render the selected environments, validate them, evaluate the bound policies
//! with the change context known at that step, plan against each target, and — for the commands
//! that write — pass the gate before anything is written. Commands call these functions and get
//! typed results back; none of them assembles the stages itself.
//!
//! Every write (`apply --env`, `apply --plan`, `rollback`) goes the same way: run the gate
//! (`gate::evaluate`), lock and plan each environment (`apply::prepare`), and only then write
//! (`apply::execute`, which needs what the gate cleared). Where a policy is bound, `apply --env`
//! and `rollback` lock and plan that environment first and hand the policy that very plan, so
//! what it judged is what is written. When the gate blocks, no object is written and no release
//! is recorded.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;

use crate::apply::{self, Applied, ApplyOptions, ApplyReport};
use crate::check::{self, SavedPlan};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::gate::{self, BreakGlass, Decision};
use crate::plan::{self, Plan};
use crate::policy::{self, Approval, Context, ObjectChange};
use crate::release::{self, Outcome, Release, ReleaseKind};
use crate::render::{self, ObjectId, Rendered};
use crate::repo::{Repo, Snapshot};
use crate::target::{self, Target};
use crate::validate::{self, Finding};

mod deliver;
mod notify;
mod promote;
mod rollout;
pub use deliver::{Aftermath, after_apply, plan_environments, verifies, verify};
pub use notify::{Notified, NotifySpec, after_apply as notify_after_apply, notifies_on_apply, notify, notify_check};
pub use promote::{PromoteSpec, Promoted, Promotion, SourceEvidence, promote};
pub use rollout::{RolloutAction, RolloutStatus, rollout_abort, rollout_resume, rollout_status};

/// What every command reads: the repository, one snapshot of it, its configuration, and the
/// rendered environments it selected.
pub struct Run {
    pub repo: Repo,
    pub snapshot: Snapshot,
    pub config: Config,
    pub rendered: Vec<Rendered>,
    /// The revision read (`None`: the work tree).
    pub rev: Option<String>,
}

impl Run {
    /// Ends the run's life with the process: see `leave_to_exit`.
    pub fn leave_to_exit(self) {
        leave_to_exit(self.rendered);
    }
}

/// For a command about to exit: freeing tens of thousands of rendered objects one by one costs
/// more (a third of `validate`'s time at 50,000 objects) than the operating system reclaiming the
/// memory at exit. Every value decrypted from a SOPS file is overwritten first, so no plaintext
/// outlives its use even in memory the process no longer frees. (Plans are masked in place
/// before they are shown, so they hold no plaintext by then.)
pub fn leave_to_exit(mut rendered: Vec<Rendered>) {
    for object in rendered.iter_mut().flat_map(|r| r.objects.iter_mut()) {
        crate::secrets::zeroize_at(&mut object.body, &object.secrets);
    }
    std::mem::forget(rendered);
}

/// Opens the repository, reads the snapshot (`rev`, or the work tree) and its configuration, and
/// renders the environments named (all when `envs` is empty).
pub fn load(repo_dir: &Path, envs: &[String], rev: Option<&str>) -> Result<Run> {
    let repo = Repo::open(repo_dir)?;
    load_from(repo, envs, rev)
}

fn load_from(repo: Repo, envs: &[String], rev: Option<&str>) -> Result<Run> {
    let snapshot = repo.snapshot(rev)?;
    tracing::debug!(source = %snapshot.source.label(), "snapshot opened");
    let config = Config::load(&snapshot)?;
    let environments = config.select(envs)?;
    let mut renderer = render::Renderer::new(&snapshot, &environments).with_capabilities(&target::capabilities);
    let mut rendered = Vec::new();
    for env in environments {
        tracing::info!(environment = %env.name, source = %snapshot.source.label(), "rendering");
        rendered.push(renderer.render(env)?);
    }
    drop(renderer);
    Ok(Run { repo, snapshot, config, rendered, rev: rev.map(str::to_string) })
}

/// The repository and the configuration of its work tree: what the commands that read release
/// records (history, notes, status, metrics) start from.
pub fn open_config(repo_dir: &Path) -> Result<(Repo, Config)> {
    let repo = Repo::open(repo_dir)?;
    let config = Config::load(&repo.snapshot(None)?)?;
    Ok((repo, config))
}

/// The release records of one environment, oldest first, with its target.
pub fn releases(repo: &Repo, config: &Config, env: &str) -> Result<(Target, Vec<Release>)> {
    let target = target::open(repo.root(), config.environment(env)?)?;
    let releases = release::list(&target)?;
    Ok((target, releases))
}

/// The change a read-only command is told about: `--base` and `--approvals`.
#[derive(Debug, Clone, Default)]
pub struct ChangeSpec {
    pub base: Option<String>,
    pub approvals: Option<PathBuf>,
}

/// Schema validation and the bound policies over a loaded run (`cairn validate`).
pub fn validate(run: &Run, options: validate::Options, change: &ChangeSpec) -> Result<Vec<Finding>> {
    let mut findings = validate::validate(&run.snapshot, &run.config, &run.rendered, options)?;
    findings.extend(read_only_policies(run, change, None)?);
    validate::sort(&mut findings);
    Ok(findings)
}

/// Plans and findings of a loaded run (`cairn plan`).
pub struct Planned {
    pub plans: Vec<Plan>,
    pub findings: Vec<Finding>,
    /// The environments and objects validated.
    pub scope: validate::Scope,
}

/// Validates a loaded run, plans each environment against its target, and runs the policies
/// with the plans as the change (`cairn plan`). Where no policy judges the objects and no rollout
/// needs them, each environment's objects move from the run into its plan instead of being
/// copied (`run.rendered` keeps the others), so a plan of 10,000 environments holds each object
/// once.
pub fn plan(run: &mut Run, options: validate::Options, change: &ChangeSpec, prune: bool) -> Result<Planned> {
    let mut findings = validate::validate(&run.snapshot, &run.config, &run.rendered, options)?;
    let scope = validate::Scope::of(&run.rendered);
    let judged = !run.config.policies.is_empty();
    let mut plans = Vec::with_capacity(run.rendered.len());
    let rendered = std::mem::take(&mut run.rendered);
    for r in rendered {
        let environment = run.config.environment(&r.environment)?;
        let target = target::open(run.repo.root(), environment)?;
        let planned = if judged || plan::rollout::may_roll_out(&run.config, &r) {
            let mut planned = plan::plan(Cow::Borrowed(&r), &target, &run.snapshot.source, prune)?;
            planned.rollouts = plan::rollout::rollouts(&planned, &r, &run.config, environment, &target)?;
            run.rendered.push(r);
            planned
        } else {
            plan::plan(Cow::Owned(r), &target, &run.snapshot.source, prune)?
        };
        plans.push(planned);
    }
    findings.extend(read_only_policies(run, change, Some(check::policy_changes(&plans)))?);
    validate::sort(&mut findings);
    Ok(Planned { plans, findings, scope })
}

/// What `check` is asked about: the change `base..head`, which of its environments (empty: all
/// it touches), and the reviews file.
#[derive(Debug, Clone, Copy)]
pub struct CheckSpec<'a> {
    pub base: &'a str,
    pub head: &'a str,
    pub only: &'a [String],
    pub approvals: Option<&'a Path>,
}

/// The pull-request step (`cairn check`): the environments `base..head` touches (of `only`, when
/// it names some: one shard of a CI matrix), rendered at the head, validated, planned, and judged
/// by the policies with the change set and approvals.
pub fn check(
    repo_dir: &Path,
    change: &CheckSpec,
    options: validate::Options,
    prune: bool,
    events: &Events,
) -> Result<(SavedPlan, Vec<Rendered>)> {
    let CheckSpec { base, head, only, approvals } = *change;
    let repo = Repo::open(repo_dir)?;
    let mut approvals = match approvals {
        Some(path) => policy::read_approvals(path)?,
        None => Vec::new(),
    };
    repo.ensure_ancestor(base, head)?;
    let changes = repo.changed_paths(base, head)?;
    let snapshot = repo.snapshot(Some(head))?;
    let config = Config::load(&snapshot)?;
    // A shard names environments that exist, even where this change does not touch them.
    config.select(only)?;
    let touched: Vec<String> = check::touched_environments(&config, &changes.paths)
        .into_iter()
        .filter(|env| only.is_empty() || only.iter().any(|o| o == env))
        .map(str::to_string)
        .collect();
    let rendered = if touched.is_empty() {
        Vec::new()
    } else {
        let environments = config.select(&touched)?;
        let mut renderer = render::Renderer::new(&snapshot, &environments).with_capabilities(&target::capabilities);
        environments.iter().map(|env| renderer.render(env)).collect::<Result<Vec<_>>>()?
    };
    let mut plans = Vec::new();
    for r in &rendered {
        let environment = config.environment(&r.environment)?;
        let target = target::open(repo.root(), environment)?;
        let mut planned = plan::plan(Cow::Borrowed(r), &target, &snapshot.source, prune)?;
        planned.rollouts = plan::rollout::rollouts(&planned, r, &config, environment, &target)?;
        let s = planned.summary;
        events.emit(&crate::events::Event::Planned {
            environment: &r.environment,
            create: s.create,
            update: s.update,
            delete: s.delete,
            unchanged: s.unchanged,
        });
        plans.push(planned);
    }
    policy::add_approvals(&mut approvals, policy::trailer_approvals(&repo.commits_between(Some(base), head)?));
    let mut findings = validate::validate(&snapshot, &config, &rendered, options)?;
    if let Some(policies) = policy::Policies::load(&snapshot, &config)? {
        let context = Context {
            changed_paths: Some(changes.paths.clone()),
            commit: Some(repo.commit_info(head)?),
            approvals: approvals.clone(),
            changes: check::policy_changes(&plans),
        };
        findings.extend(policies.evaluate(&snapshot, &config, &rendered, &context)?);
    }
    validate::sort(&mut findings);
    let saved = SavedPlan {
        format: check::PLAN_FORMAT.to_string(),
        cairn_version: env!("CARGO_PKG_VERSION").to_string(),
        repository: repo.root_commit(head)?,
        base: repo.commit_info(base)?,
        head: repo.commit_info(head)?,
        changed_paths: changes.paths,
        plans,
        findings,
        approvals,
    };
    Ok((saved, rendered))
}

/// How a command that writes may write: what it prunes, who it is, what it is told about
/// approvals, and whether an operator broke the glass.
#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub prune: bool,
    /// Who writes; `None`: CAIRN_ACTOR, GITHUB_ACTOR, git's user, the login name.
    pub actor: Option<String>,
    pub force_conflicts: bool,
    pub wait: Option<Duration>,
    /// An approvals file (`--approvals`): GitHub's reviews JSON, or a list of logins.
    pub approvals: Option<PathBuf>,
    /// `--override-findings "REASON"`.
    pub override_reason: Option<String>,
    /// Skip the schema rules a run asks for (`--strict`, `--require-schemas` are read-only
    /// options; writes use the defaults, as `check` does unless told otherwise).
    pub schema: validate::Options,
}

/// How a run reports as it goes: a progress bar per environment (hidden off a terminal) and the
/// event stream (`--events`).
pub struct Watch<'a> {
    pub progress: &'a dyn Fn(&str) -> ProgressBar,
    pub events: &'a Events,
}

/// A write's answer: done, or stopped by the gate (nothing written, no release recorded).
#[derive(Debug)]
pub enum Gated<T> {
    Written { result: T, findings: Vec<Finding> },
    Blocked { rendered: Vec<Rendered>, findings: Vec<Finding> },
}

/// `cairn apply --env …`: each selected environment, at `rev` or the work tree, gated with the
/// change from the environment's current release to what is applied.
pub fn apply(
    repo_dir: &Path,
    envs: &[String],
    rev: Option<&str>,
    write: &WriteSpec,
    watch: &Watch,
) -> Result<Gated<Vec<ApplyReport>>> {
    let run = load(repo_dir, envs, rev)?;
    let actor = write.actor.clone().unwrap_or_else(|| resolve_actor(&run.repo));
    let glass = break_glass(write, &actor)?;
    let file_approvals = match &write.approvals {
        Some(path) => policy::read_approvals(path)?,
        None => Vec::new(),
    };
    let targets = open_targets(&run)?;
    let mut approvers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Run { repo, snapshot, config, rendered, rev } = run;
    let names: Vec<String> = rendered.iter().map(|r| r.environment.clone()).collect();
    let options = options(write, actor, ReleaseKind::Apply, None);
    // An environment a policy is bound to is locked and planned before its policies run, so they
    // judge exactly the plan that is then applied, with no window for live state to move in
    // between; the others are locked once the gate has passed. Either way every environment is
    // locked and planned before any is written, so a held lock anywhere stops the whole apply
    // before it starts. A blocked apply drops what it prepared, which releases the locks.
    let prepare = |target: &Target, r: &Rendered| -> Result<apply::Prepared> {
        match apply::prepare(target, r, &snapshot.source, &options, None)? {
            Ok(p) => with_rollouts(p, &config, r, target),
            // Without a saved plan there is nothing to compare with, so this cannot happen.
            Err(_) => {
                Err(Error::Usage { message: format!("apply of `{}` was refused without a saved plan", r.environment) })
            }
        }
    };
    let mut judged: BTreeMap<String, apply::Prepared> = BTreeMap::new();
    let decision = {
        let mut context_of = |r: &Rendered| -> Result<Context> {
            let prepared = prepare(target_of(&names, &targets, r)?, r)?;
            let mut context = apply_context(&repo, &snapshot, rev.as_deref(), prepared.history(), &file_approvals)?;
            context.changes = check::policy_changes(std::slice::from_ref(prepared.plan()));
            approvers.insert(r.environment.clone(), approval_names(Some(&context)));
            judged.insert(r.environment.clone(), prepared);
            Ok(context)
        };
        gate::evaluate(&snapshot, &config, rendered, write.schema, &mut context_of, glass.as_ref())?
    };
    let gated = match decision {
        Decision::Blocked { rendered, findings } => return Ok(Gated::Blocked { rendered, findings }),
        Decision::Cleared(g) => g,
    };
    let mut prepared = Vec::new();
    for (cleared, target) in gated.environments().zip(&targets) {
        let r = cleared.rendered();
        prepared.push(match judged.remove(&r.environment) {
            Some(p) => p,
            None => prepare(target, r)?,
        });
    }
    let mut reports = Vec::new();
    for ((cleared, prepared), target) in gated.environments().zip(prepared).zip(&targets) {
        let environment = &cleared.rendered().environment;
        let options = ApplyOptions {
            approvals: approvers.get(environment).cloned().unwrap_or_default(),
            drift: config.environment(environment)?.drift,
            ..options.clone()
        };
        let bar = (watch.progress)(&format!("applying {environment}"));
        let checks =
            rollout::EnvChecks::new(&repo, &snapshot, config.environment(environment)?, &options.actor, watch.events);
        let watching = apply::Watching { bar: &bar, events: watch.events, checks: Some(&checks) };
        reports.push(apply::execute(target, prepared, cleared, &snapshot.source, &options, &watching)?);
    }
    Ok(Gated::Written { result: reports, findings: gated.findings().to_vec() })
}

/// `cairn apply --plan FILE [--env ENV…]`: the environments of a saved plan (those of `only`,
/// when it names some; the others stay applicable later), at `rev` (default HEAD), each
/// applied only while the revision still renders what the plan showed and live state still
/// hashes the same — and only through the gate, with the change, plan and approvals the pull
/// request's check recorded.
pub fn apply_saved(
    repo_dir: &Path,
    path: &Path,
    only: &[String],
    rev: Option<&str>,
    replan: bool,
    write: &WriteSpec,
    watch: &Watch,
) -> Result<Gated<Vec<Applied>>> {
    let mut saved = SavedPlan::read(path)?;
    if let Some(missing) = only.iter().find(|env| !saved.plans.iter().any(|p| &p.environment == *env)) {
        let held: Vec<&str> = saved.plans.iter().map(|p| p.environment.as_str()).collect();
        return Err(Error::Usage {
            message: format!(
                "{}: the plan holds no environment `{missing}` (it holds {}); check the shard's environments, or check the change again",
                path.display(),
                if held.is_empty() { "none".to_string() } else { held.join(", ") }
            ),
        });
    }
    if !only.is_empty() {
        saved.plans.retain(|p| only.contains(&p.environment));
    }
    let repo = Repo::open(repo_dir)?;
    let rev = rev.unwrap_or("HEAD");
    let ours = repo.root_commit(rev)?;
    if ours != saved.repository {
        return Err(Error::Usage {
            message: format!(
                "{}: the plan was made for another repository (first commit {}, this one {})",
                path.display(),
                saved.repository,
                ours
            ),
        });
    }
    let actor = write.actor.clone().unwrap_or_else(|| resolve_actor(&repo));
    let glass = break_glass(write, &actor)?;
    let envs: Vec<String> = saved.plans.iter().map(|p| p.environment.clone()).collect();
    let run = load_from(repo, &envs, Some(rev))?;
    let targets = open_targets(&run)?;
    let mut approvals = saved.approvals.clone();
    if let Some(path) = &write.approvals {
        policy::add_approvals(&mut approvals, policy::read_approvals(path)?);
    }
    let trailers = policy::trailer_approvals(&run.repo.commits_between(Some(&saved.base.sha), rev)?);
    policy::add_approvals(&mut approvals, trailers);
    let context = Context {
        changed_paths: Some(saved.changed_paths.clone()),
        commit: run.snapshot.source.commit().cloned(),
        approvals,
        changes: check::policy_changes(&saved.plans),
    };
    let names = approval_names(Some(&context));
    let Run { repo, snapshot, config, rendered, .. } = run;
    let decision =
        gate::evaluate(&snapshot, &config, rendered, write.schema, &mut |_| Ok(context.clone()), glass.as_ref())?;
    let gated = match decision {
        Decision::Blocked { rendered, findings } => return Ok(Gated::Blocked { rendered, findings }),
        Decision::Cleared(g) => g,
    };
    let write = WriteSpec { prune: saved.plans.iter().all(|p| p.prune), ..write.clone() };
    let options = ApplyOptions { approvals: names, ..options(&write, actor, ReleaseKind::Apply, None) };
    let mut prepared = Vec::new();
    for ((cleared, planned), target) in gated.environments().zip(&saved.plans).zip(&targets) {
        let expected = if replan { None } else { Some(planned) };
        match apply::prepare(target, cleared.rendered(), &snapshot.source, &options, expected)? {
            Ok(p) => prepared.push(with_rollouts(p, &config, cleared.rendered(), target)?),
            // The plan as a whole no longer holds: nothing is written anywhere.
            Err(refused) => return Ok(Gated::Written { result: vec![refused], findings: gated.findings().to_vec() }),
        }
    }
    let mut results = Vec::new();
    for ((cleared, prepared), target) in gated.environments().zip(prepared).zip(&targets) {
        let bar = (watch.progress)(&format!("applying {}", cleared.rendered().environment));
        let options =
            ApplyOptions { drift: config.environment(&cleared.rendered().environment)?.drift, ..options.clone() };
        let environment = config.environment(&cleared.rendered().environment)?;
        let checks = rollout::EnvChecks::new(&repo, &snapshot, environment, &options.actor, watch.events);
        let watching = apply::Watching { bar: &bar, events: watch.events, checks: Some(&checks) };
        let report = apply::execute(target, prepared, cleared, &snapshot.source, &options, &watching)?;
        results.push(Applied::Applied(Box::new(report)));
    }
    Ok(Gated::Written { result: results, findings: gated.findings().to_vec() })
}

/// `cairn rollback`: the desired state of an earlier release (default: the one before the
/// current release), rendered from its commit, gated like any apply, and recorded as a rollback.
/// The change policies see is the paths that differ between the current release's commit and the
/// restored one; the approvals are those recorded on the restored release, plus `--approvals`.
pub fn rollback(
    repo_dir: &Path,
    env: &str,
    to: Option<u64>,
    write: &WriteSpec,
    watch: &Watch,
    cause: Option<crate::release::verification::RollbackCause>,
) -> Result<Gated<ApplyReport>> {
    let (repo, config) = open_config(repo_dir)?;
    let (_, releases) = releases(&repo, &config, env)?;
    let current = releases.iter().rev().find(|r| r.outcome == Outcome::Succeeded).ok_or_else(|| Error::Usage {
        message: format!("environment `{env}` has no succeeded release to roll back from"),
    })?;
    let goal = match to {
        Some(id) => release::find(&releases, env, id)?,
        None => {
            current.previous.and_then(|p| releases.iter().find(|r| r.id == p)).cloned().ok_or_else(|| Error::Usage {
                message: format!(
                    "release {} is the first release of `{env}`; there is nothing earlier to roll back to",
                    current.id
                ),
            })?
        }
    };
    let sha = goal.sha().filter(|sha| repo.has_commit(sha)).map(str::to_string).ok_or_else(|| Error::Usage {
        message: format!(
            "release {}'s commit is not in the repository (applied without commits, or history rewritten since); it cannot be restored",
            goal.id
        ),
    })?;
    let changed_paths = match current.sha().filter(|s| repo.has_commit(s)) {
        Some(now) => repo.changed_paths(now, &sha)?.paths,
        None => all_paths(&repo.snapshot(Some(&sha))?)?,
    };
    let actor = write.actor.clone().unwrap_or_else(|| resolve_actor(&repo));
    let glass = break_glass(write, &actor)?;
    let mut approvals: Vec<Approval> = goal
        .approvals
        .iter()
        .map(|by| Approval {
            by: by.clone(),
            at: goal.finished_at.clone(),
            commit_id: None,
            source: Some(format!("release {}", goal.id)),
        })
        .collect();
    if let Some(path) = &write.approvals {
        let file = policy::read_approvals(path)?;
        // The reviews file is the fresher source: it wins over what the release recorded.
        let recorded = std::mem::replace(&mut approvals, file);
        policy::add_approvals(&mut approvals, recorded);
    }
    // The environment is rendered exactly as the restored release's commit configures it.
    let run = load_from(repo, &[env.to_string()], Some(&sha))?;
    let targets = open_targets(&run)?;
    let Some(target) = targets.first() else {
        return Err(Error::Usage { message: format!("environment `{env}` is not configured at {sha}") });
    };
    let mut context = Context {
        changed_paths: Some(changed_paths),
        commit: run.snapshot.source.commit().cloned(),
        approvals,
        changes: BTreeMap::new(),
    };
    let names = approval_names(Some(&context));
    let Run { snapshot, config, rendered, .. } = run;
    let options = ApplyOptions {
        approvals: names,
        drift: config.environment(env)?.drift,
        cause,
        ..options(write, actor, ReleaseKind::Rollback, Some(goal.id))
    };
    // As in `apply`: with a policy bound, locked and planned first so it judges what is written.
    let mut judged = None;
    let mut context_of = |r: &Rendered| -> Result<Context> {
        let prepared = prepare_rollback(target, r, &snapshot, &options, env)?;
        context.changes = check::policy_changes(std::slice::from_ref(prepared.plan()));
        judged = Some(prepared);
        Ok(context.clone())
    };
    let decision = gate::evaluate(&snapshot, &config, rendered, write.schema, &mut context_of, glass.as_ref())?;
    let gated = match decision {
        Decision::Blocked { rendered, findings } => return Ok(Gated::Blocked { rendered, findings }),
        Decision::Cleared(g) => g,
    };
    let Some(cleared) = gated.environments().next() else {
        return Err(Error::Usage { message: format!("environment `{env}` rendered nothing to roll back") });
    };
    let prepared = match judged {
        Some(p) => p,
        None => prepare_rollback(target, cleared.rendered(), &snapshot, &options, env)?,
    };
    let bar = (watch.progress)(&format!("rolling back {env}"));
    // A rollback is written at once: the version it restores was proven before.
    let watching = apply::Watching { bar: &bar, events: watch.events, checks: None };
    let report = apply::execute(target, prepared, cleared, &snapshot.source, &options, &watching)?;
    Ok(Gated::Written { result: report, findings: gated.findings().to_vec() })
}

fn prepare_rollback(
    target: &Target,
    r: &Rendered,
    snapshot: &Snapshot,
    options: &ApplyOptions,
    env: &str,
) -> Result<apply::Prepared> {
    match apply::prepare(target, r, &snapshot.source, options, None)? {
        Ok(p) => Ok(p),
        Err(_) => Err(Error::Usage { message: format!("rollback of `{env}` was refused") }),
    }
}

/// A prepared plan with the rollouts its Deployments go through; an impossible one (an unknown
/// Service, a weight the replicas cannot honour) stops the apply before anything is written.
fn with_rollouts(
    mut prepared: apply::Prepared,
    config: &Config,
    r: &Rendered,
    target: &Target,
) -> Result<apply::Prepared> {
    let environment = config.environment(&r.environment)?;
    let rollouts = plan::rollout::rollouts(prepared.plan(), r, config, environment, target)?;
    prepared.set_rollouts(rollouts);
    Ok(prepared)
}

/// The target of a rendered environment: `targets` are in the order of `names`.
fn target_of<'t>(names: &[String], targets: &'t [Target], r: &Rendered) -> Result<&'t Target> {
    names
        .iter()
        .position(|n| *n == r.environment)
        .and_then(|i| targets.get(i))
        .ok_or_else(|| Error::Usage { message: format!("internal: no target for environment `{}`", r.environment) })
}

fn open_targets(run: &Run) -> Result<Vec<Target>> {
    run.rendered.iter().map(|r| target::open(run.repo.root(), run.config.environment(&r.environment)?)).collect()
}

fn break_glass(write: &WriteSpec, actor: &str) -> Result<Option<BreakGlass>> {
    write
        .override_reason
        .as_deref()
        .map(|reason| BreakGlass::new(reason, actor).map_err(|message| Error::Usage { message }))
        .transpose()
}

fn options(write: &WriteSpec, actor: String, kind: ReleaseKind, rollback_to: Option<u64>) -> ApplyOptions {
    ApplyOptions {
        prune: write.prune,
        actor,
        kind,
        rollback_to,
        force_conflicts: write.force_conflicts,
        wait: write.wait,
        approvals: Vec::new(),
        drift: crate::config::DriftPolicy::default(),
        cause: None,
    }
}

fn approval_names(context: Option<&Context>) -> Vec<String> {
    context.map(|c| c.approvals.iter().map(|a| a.by.clone()).collect()).unwrap_or_default()
}

/// The change a direct apply brings to one environment: from the commit of its current release
/// to the revision applied (with the work tree's uncommitted edits), its `Approved-by:` trailers,
/// and the approvals file. An environment never released — or whose release commit is not in this
/// history — receives everything, so every path counts as changed.
fn apply_context(
    repo: &Repo,
    snapshot: &Snapshot,
    rev: Option<&str>,
    released: &[Release],
    file_approvals: &[Approval],
) -> Result<Context> {
    let head_commit = snapshot.source.commit().cloned();
    let head = match (rev, &head_commit) {
        (Some(rev), _) => Some(rev.to_string()),
        (None, Some(c)) => Some(c.sha.clone()),
        (None, None) => None,
    };
    let base = released
        .iter()
        .rev()
        .find(|r| r.outcome == Outcome::Succeeded)
        .and_then(Release::sha)
        .filter(|sha| repo.has_commit(sha))
        .map(str::to_string);
    let base = match (&base, &head) {
        (Some(b), Some(h)) if repo.ensure_ancestor(b, h).is_ok() => Some(b.clone()),
        (Some(b), _) => {
            tracing::info!(commit = %b, "the current release's commit is not in the history applied; every path counts as changed");
            None
        }
        _ => None,
    };
    let mut changed: BTreeSet<String> = match (&base, &head) {
        (Some(b), Some(h)) => repo.changed_paths(b, h)?.paths.into_iter().collect(),
        _ => all_paths(snapshot)?.into_iter().collect(),
    };
    if rev.is_none() && base.is_some() {
        match repo.dirty_paths() {
            Some(dirty) => changed.extend(dirty),
            None => changed.extend(all_paths(snapshot)?),
        }
    }
    let mut approvals = file_approvals.to_vec();
    if let Some(h) = &head {
        policy::add_approvals(&mut approvals, policy::trailer_approvals(&repo.commits_reachable(base.as_deref(), h)?));
    }
    Ok(Context {
        changed_paths: Some(changed.into_iter().collect()),
        commit: head_commit,
        approvals,
        changes: BTreeMap::new(),
    })
}

/// Every file of a snapshot (relative to the configuration root).
fn all_paths(snapshot: &Snapshot) -> Result<Vec<String>> {
    snapshot.files_under("")
}

/// What base → head does to each object of the rendered environments (rendered at the base).
fn rendered_changes(base: &[Rendered], head: &[Rendered]) -> BTreeMap<String, Vec<ObjectChange>> {
    let mut out = BTreeMap::new();
    for h in head {
        let before: BTreeMap<&ObjectId, &serde_json::Value> = base
            .iter()
            .filter(|b| b.environment == h.environment)
            .flat_map(|b| b.objects.iter().map(|o| (&o.id, &o.body)))
            .collect();
        let mut changes = Vec::new();
        let mut seen = BTreeSet::new();
        for o in &h.objects {
            seen.insert(&o.id);
            let (action, fields) = match before.get(&o.id) {
                None => ("create", Vec::new()),
                Some(old) if **old == o.body => ("unchanged", Vec::new()),
                Some(old) => {
                    let mut found = Vec::new();
                    plan::diff_fields(old, &o.body, &mut String::new(), &mut found);
                    ("update", found.into_iter().map(|f| f.pointer).collect())
                }
            };
            changes.push(ObjectChange { object: policy::ObjectRefOut::of(&o.id, Some(&o.body)), action, fields });
        }
        for (id, body) in before.into_iter().filter(|(id, _)| !seen.contains(id)) {
            changes.push(ObjectChange {
                object: policy::ObjectRefOut::of(id, Some(body)),
                action: "delete",
                fields: Vec::new(),
            });
        }
        out.insert(h.environment.clone(), changes);
    }
    out
}

/// The bound policies for a command that does not write: `changes` is the plan when one was made;
/// otherwise, with `--base`, what base → head does to each object.
fn read_only_policies(
    run: &Run,
    change: &ChangeSpec,
    changes: Option<BTreeMap<String, Vec<ObjectChange>>>,
) -> Result<Vec<Finding>> {
    let Some(policies) = policy::Policies::load(&run.snapshot, &run.config)? else {
        if change.approvals.is_some() || change.base.is_some() {
            tracing::info!("no policies are bound in cairn.yaml; --base and --approvals have nothing to inform");
        }
        return Ok(Vec::new());
    };
    let mut context = Context { commit: run.snapshot.source.commit().cloned(), ..Default::default() };
    if let Some(path) = &change.approvals {
        context.approvals = policy::read_approvals(path)?;
    }
    let head = run.rev.as_deref().unwrap_or("HEAD");
    if let Some(base) = &change.base {
        run.repo.ensure_ancestor(base, head)?;
        context.changed_paths = Some(run.repo.changed_paths(base, head)?.paths);
        let trailers = policy::trailer_approvals(&run.repo.commits_between(Some(base), head)?);
        policy::add_approvals(&mut context.approvals, trailers);
    }
    context.changes = match (changes, &change.base) {
        (Some(changes), _) => changes,
        (None, Some(base)) => {
            let snapshot = run.repo.snapshot(Some(base))?;
            let base_rendered = match Config::load(&snapshot) {
                Ok(config) => {
                    let names: Vec<String> = run
                        .rendered
                        .iter()
                        .map(|r| r.environment.clone())
                        .filter(|n| config.environment(n).is_ok())
                        .collect();
                    let envs = if names.is_empty() { Vec::new() } else { config.select(&names)? };
                    let mut renderer = render::Renderer::new(&snapshot, &envs).with_capabilities(&target::capabilities);
                    envs.iter().map(|e| renderer.render(e)).collect::<Result<Vec<_>>>()?
                }
                // A base without a usable cairn.yaml: everything at the head is new.
                Err(_) => Vec::new(),
            };
            rendered_changes(&base_rendered, &run.rendered)
        }
        (None, None) => BTreeMap::new(),
    };
    policies.evaluate(&run.snapshot, &run.config, &run.rendered, &context)
}

/// CAIRN_ACTOR, then GITHUB_ACTOR, then git's `user.name <user.email>`, then the login name.
pub fn resolve_actor(repo: &Repo) -> String {
    let from_env = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    from_env("CAIRN_ACTOR")
        .or_else(|| from_env("GITHUB_ACTOR"))
        .or_else(|| repo.configured_user())
        .or_else(|| from_env("USER"))
        .unwrap_or_else(|| "unknown".to_string())
}
