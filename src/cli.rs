//! Command-line interface: clap definitions and the commands they run. Results go to the
//! writer given (stdout); logs and progress go to stderr.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{self, Applied, ApplyOptions};
use crate::check::{self, SavedPlan};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan;
use crate::policy;
use crate::release::{self, ReleaseKind};
use crate::render::{self, Rendered};
use crate::repo::{Repo, Snapshot};
use crate::report::{self, FindingsFormat, Format, NotesFormat, PeopleFormat, Style};
use crate::scaffold;
use crate::target;
use crate::validate;

/// A GitOps engine: render, validate, plan and apply per-environment configuration from git.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, max_term_width = 100)]
pub struct Cli {
    /// The configuration repository (a git work tree or a directory inside one).
    #[arg(long, global = true, value_name = "DIR", env = "CAIRN_REPO", default_value = ".")]
    pub repo: PathBuf,

    /// When to colour human output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "CAIRN_COLOR")]
    pub color: ColorChoice,

    /// More log output on stderr (-v: info, -vv: debug). `CAIRN_LOG` takes a tracing filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a small working configuration repository (git-initialised, two environments).
    Init {
        /// Where to create it; must not exist or be empty.
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the rendered objects of environments as a multi-document YAML stream.
    Render {
        #[command(flatten)]
        select: Select,
        /// `human` prints YAML; `json` prints the objects with their identities and sources.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Check rendered objects against JSON Schemas and built-in rules; exits 1 on any error finding.
    Validate {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        schema: SchemaArgs,
        #[command(flatten)]
        change: ChangeArgs,
        #[arg(long, value_enum, default_value_t = FindingsFormat::Human)]
        format: FindingsFormat,
    },
    /// Show what apply would change in each environment.
    Plan {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        schema: SchemaArgs,
        #[command(flatten)]
        change: ChangeArgs,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Exit 3 when the plan has changes (0 when it has none).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Keep objects cairn applied earlier and no longer renders.
        #[arg(long)]
        no_prune: bool,
        /// Leave out the unified YAML diffs (field changes are still listed).
        #[arg(long)]
        no_diff: bool,
    },
    /// Apply environments to their targets and record a release for each.
    Apply {
        /// Environment to apply (repeatable; required unless --plan gives them).
        #[arg(long = "env", value_name = "ENV", required_unless_present = "plan")]
        envs: Vec<String>,
        /// Apply exactly this commit instead of the working tree (with --plan: default HEAD).
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// Apply a plan saved by `cairn check --out`: refused (exit 1) when the revision renders
        /// differently or live state changed since the plan was made.
        #[arg(long, value_name = "FILE", conflicts_with = "envs")]
        plan: Option<PathBuf>,
        /// With --plan: plan afresh and apply even if the state moved.
        #[arg(long, requires = "plan")]
        replan: bool,
        /// Keep objects cairn applied earlier and no longer renders.
        #[arg(long)]
        no_prune: bool,
        /// Who is applying; defaults to CAIRN_ACTOR, GITHUB_ACTOR, then git's user.name.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// The pull-request step: touched environments rendered at the head, validated and planned
    /// against live state; exits 1 when a finding blocks the change.
    Check {
        #[arg(long, value_name = "REV")]
        base: String,
        #[arg(long, value_name = "REV", default_value = "HEAD")]
        head: String,
        /// Save the plan here for `cairn apply --plan` (and the full Markdown report beside it).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Who approved the change: GitHub's pull-request reviews JSON, or a list of logins.
        #[arg(long, value_name = "FILE")]
        approvals: Option<PathBuf>,
        #[command(flatten)]
        schema: SchemaArgs,
        /// Keep objects cairn applied earlier and no longer renders.
        #[arg(long)]
        no_prune: bool,
        #[arg(long, value_enum, default_value_t = CheckFormat::Markdown)]
        format: CheckFormat,
    },
    /// List the releases of an environment, newest first.
    History {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        /// Show at most this many releases.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Release notes for people: what changed, who wrote, approved and owns it, how to roll back.
    Notes {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        /// The release to describe (default: the latest).
        #[arg(long, value_name = "ID", conflicts_with_all = ["from", "to"])]
        release: Option<u64>,
        /// Describe the changes between two revisions instead of a release.
        #[arg(long, value_name = "REV", requires = "to")]
        from: Option<String>,
        #[arg(long, value_name = "REV", requires = "from")]
        to: Option<String>,
        /// Link commits to `<URL>/commit/<sha>`.
        #[arg(long, value_name = "URL")]
        repo_url: Option<String>,
        #[arg(long, value_enum, default_value_t = NotesFormat::Markdown)]
        format: NotesFormat,
    },
    /// What is in each environment: current release, workloads with versions and owners, drift.
    Status {
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
        #[arg(long, value_enum, default_value_t = PeopleFormat::Human)]
        format: PeopleFormat,
    },
    /// Return an environment to the state of an earlier release, and record it as a rollback.
    Rollback {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        /// The release to return to (default: the one before the current release).
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
        /// Who is rolling back; defaults to CAIRN_ACTOR, GITHUB_ACTOR, then git's user.name.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// DORA delivery metrics from release records and git.
    Metrics {
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
        /// Start of the window: a duration back from --until (`90d`, `12w`, `48h`) or a date/time.
        #[arg(long, value_name = "WHEN", default_value = "90d")]
        since: String,
        /// End of the window (RFC 3339 time or date); default now.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = PeopleFormat::Human)]
        format: PeopleFormat,
    },
    /// Work with SOPS-encrypted files (age keys).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Work with policy plugins.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List the paths changed between two revisions and the environments they touch.
    Changes {
        #[arg(long, value_name = "REV")]
        base: String,
        #[arg(long, value_name = "REV", default_value = "HEAD")]
        head: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run plugins against fixture inputs with expected decisions (every *.yaml suite in DIR);
    /// exits 1 when a case fails.
    Test {
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

/// The change policies judge: its base, and who approved it.
#[derive(Debug, Args, Clone, Default)]
pub struct ChangeArgs {
    /// The revision the change starts from: policies see the paths changed from REV to the
    /// revision checked, and the `Approved-by:` trailers of the commits between.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Who approved the change: GitHub's pull-request reviews JSON, or a list of logins.
    #[arg(long, value_name = "FILE")]
    pub approvals: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Encrypt a plaintext YAML or JSON file in place, for the recipients and rule of the first
    /// matching creation rule in the nearest `.sops.yaml`. The real `sops` reads the result.
    Encrypt { file: PathBuf },
    /// Re-encrypt a SOPS file in place with a new data key, keeping its recipients and rule.
    Rotate { file: PathBuf },
    /// Re-wrap a SOPS file's data key for the recipients its `.sops.yaml` creation rule lists now
    /// (values, MAC and `lastmodified` stay as they are).
    Updatekeys { file: PathBuf },
    /// Edit a SOPS file decrypted in $VISUAL or $EDITOR (`vi` when neither is set), then
    /// re-encrypt it with the same data key: values that did not change keep their ciphertext,
    /// so the git diff shows only what changed. The plaintext lives in a private directory in
    /// memory-backed storage where there is one, and is overwritten and removed afterwards.
    Edit { file: PathBuf },
    /// Decrypt a SOPS file and print it to stdout (explicitly: this prints secrets). Keys come
    /// from CAIRN_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and sops' default key file.
    Decrypt {
        /// SOPS-encrypted YAML or JSON files (several are decrypted in one process).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `yaml` (default) or `json`.
        #[arg(long, value_enum, default_value_t = SecretFormat::Yaml)]
        format: SecretFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecretFormat {
    Yaml,
    Json,
}

/// Output of `check`: the pull-request report, the saved plan as JSON, or the findings in a
/// code-scanning or CI format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Markdown,
    Human,
    Json,
    Sarif,
    Junit,
    Github,
}

/// How objects are written: conflicts with other field managers, and waiting for health.
#[derive(Debug, Args, Clone)]
pub struct WriteArgs {
    /// Kubernetes: take over fields another field manager owns instead of failing those objects.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Wait for applied Deployments, StatefulSets, DaemonSets, Jobs and CRDs to become healthy;
    /// an object still unhealthy after --timeout fails the release.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits: `90s`, `5m`, `1h`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// `90s`, `5m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration: use 90s, 5m or 1h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}` is not a duration: use 90s, 5m or 1h")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

impl WriteArgs {
    fn options(&self, prune: bool, actor: String, kind: ReleaseKind, rollback_to: Option<u64>) -> ApplyOptions {
        ApplyOptions {
            prune,
            actor,
            kind,
            rollback_to,
            force_conflicts: self.force_conflicts,
            wait: self.wait.then_some(self.timeout),
        }
    }
}

/// How strictly objects are checked against their schemas.
#[derive(Debug, Args, Clone, Copy)]
pub struct SchemaArgs {
    /// Reject properties a schema does not declare (misspelled or misplaced keys).
    #[arg(long)]
    pub strict: bool,
    /// An object whose kind has no schema is an error instead of a warning.
    #[arg(long)]
    pub require_schemas: bool,
}

impl From<SchemaArgs> for validate::Options {
    fn from(a: SchemaArgs) -> Self {
        validate::Options { strict: a.strict, require_schemas: a.require_schemas }
    }
}

/// Which environments, at which revision.
#[derive(Debug, Args)]
pub struct Select {
    /// Environment to work on (repeatable); all environments when absent.
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// Read this revision (branch, tag, sha, `HEAD~2`) instead of the working tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

/// What a command concluded, mapped to the exit code contract by the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// Findings, or an apply refused: exit 1.
    Findings,
    /// A failed apply of some objects: exit 2 after the report is printed.
    Failed,
    /// `plan --detailed-exitcode` with changes: exit 3.
    Changes,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Findings => 1,
            Status::Failed => 2,
            Status::Changes => 3,
        }
    }
}

impl Cli {
    fn style(&self) -> Style {
        let color = match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Style { color }
    }
}

/// Runs the parsed command, writing results to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Status> {
    let style = cli.style();
    match &cli.command {
        Command::Init { dir, format } => {
            let author = std::env::var("CAIRN_ACTOR").unwrap_or_else(|_| "cairn init".to_string());
            let made = scaffold::init(dir, (&author, "cairn@localhost"))?;
            match format {
                Format::Json => report_io(report::write_json(out, &made))?,
                _ => report_io(writeln!(
                    out,
                    "Created a configuration repository in {} (commit {}).\nNext: cd {} && cairn plan && cairn apply --env staging",
                    made.path,
                    &made.commit[..12.min(made.commit.len())],
                    made.path
                ))?,
            }
            Ok(Status::Success)
        }
        Command::Render { select, format } => {
            let loaded = load(&cli.repo, select)?;
            report_io(report::write_rendered(out, &loaded.rendered, *format))?;
            loaded.leave_to_exit();
            Ok(Status::Success)
        }
        Command::Validate { select, schema, change, format } => {
            let loaded = load(&cli.repo, select)?;
            let mut findings =
                validate::validate(&loaded.snapshot, &loaded.config, &loaded.rendered, (*schema).into())?;
            findings.extend(run_policies(&loaded, select, change, None)?);
            report_io(report::write_findings(out, &loaded.rendered, &findings, *format, style))?;
            loaded.leave_to_exit();
            Ok(if validate::has_errors(&findings) { Status::Findings } else { Status::Success })
        }
        Command::Plan { select, schema, change, format, detailed_exitcode, no_prune, no_diff } => {
            let loaded = load(&cli.repo, select)?;
            let mut plans = Vec::new();
            for r in &loaded.rendered {
                let env = loaded.config.environment(&r.environment)?;
                let target = target::open(loaded.repo.root(), env)?;
                plans.push(plan::plan(r, &target, &loaded.snapshot.source, !no_prune)?);
            }
            let mut findings =
                validate::validate(&loaded.snapshot, &loaded.config, &loaded.rendered, (*schema).into())?;
            findings.extend(run_policies(&loaded, select, change, Some(check::policy_changes(&plans)))?);
            report_io(report::write_plans_with_findings(
                out,
                &plans,
                &loaded.rendered,
                &findings,
                *format,
                style,
                !no_diff,
            ))?;
            let changed = plans.iter().any(plan::Plan::has_changes);
            loaded.leave_to_exit();
            std::mem::forget(plans);
            Ok(if validate::has_errors(&findings) {
                Status::Findings
            } else if *detailed_exitcode && changed {
                Status::Changes
            } else {
                Status::Success
            })
        }
        Command::Apply { envs, rev, plan, replan, no_prune, actor, write, format } => {
            if let Some(path) = plan {
                let saved = SavedRun { path, rev: rev.as_deref(), replan: *replan, write };
                return apply_saved_plan(cli, out, &saved, actor.clone(), *format, style);
            }
            let select = Select { envs: envs.clone(), rev: rev.clone() };
            let Loaded { repo, snapshot, config, rendered } = load(&cli.repo, &select)?;
            let findings = validate::validate(&snapshot, &config, &rendered, validate::Options::default())?;
            if validate::has_errors(&findings) {
                // Nothing is written when the configuration is invalid; the findings say why.
                let format = match format {
                    Format::Json => FindingsFormat::Json,
                    _ => FindingsFormat::Human,
                };
                report_io(report::write_findings(out, &rendered, &findings, format, style))?;
                return Ok(Status::Findings);
            }
            let actor = actor.clone().unwrap_or_else(|| resolve_actor(&repo));
            let options = write.options(!no_prune, actor, ReleaseKind::Apply, None);
            let mut reports = Vec::new();
            for r in &rendered {
                let env = config.environment(&r.environment)?;
                let target = target::open(repo.root(), env)?;
                let progress = progress_bar(&format!("applying {}", r.environment));
                reports.push(apply::apply(&target, r, &snapshot.source, &options, &progress)?);
            }
            report_io(report::write_apply(out, &reports, *format, style))?;
            Ok(if reports.iter().all(apply::ApplyReport::succeeded) { Status::Success } else { Status::Failed })
        }
        Command::Check { base, head, out: plan_out, approvals, schema, no_prune, format } => {
            let approvals = match approvals {
                Some(path) => check::read_approvals(path)?,
                None => Vec::new(),
            };
            let repo = Repo::open(&cli.repo)?;
            let (saved, rendered) = check::check(&repo, base, head, (*schema).into(), !no_prune, approvals)?;
            // What is written and shown never holds a secret value; `apply --plan` re-renders the
            // desired objects from git and compares digests, which masking leaves as they are.
            let masker = crate::secrets::Masker::new();
            let saved =
                SavedPlan { plans: saved.plans.iter().map(|p| report::mask::mask_plan(p, &masker)).collect(), ..saved };
            let full_report = report::check_markdown(&saved, None);
            if let Some(path) = plan_out {
                let report_path = path.with_extension("md");
                crate::target::local::write_json_atomically(path, &saved)?;
                crate::target::local::write_atomically(&report_path, full_report.as_bytes())?;
            }
            let full_name = plan_out.as_ref().map(|p| p.with_extension("md").display().to_string());
            match format {
                CheckFormat::Markdown => {
                    report_io(out.write_all(report::check_markdown(&saved, Some(full_name.as_deref())).as_bytes()))?
                }
                CheckFormat::Json => report_io(report::write_json(out, &saved))?,
                CheckFormat::Human => {
                    report_io(report::write_findings(out, &rendered, &saved.findings, FindingsFormat::Human, style))?;
                    report_io(report::write_plans(out, &saved.plans, Format::Human, style, true))?;
                }
                CheckFormat::Sarif => {
                    report_io(report::write_findings(out, &rendered, &saved.findings, FindingsFormat::Sarif, style))?
                }
                CheckFormat::Junit => {
                    report_io(report::write_findings(out, &rendered, &saved.findings, FindingsFormat::Junit, style))?
                }
                CheckFormat::Github => {
                    report_io(report::write_findings(out, &rendered, &saved.findings, FindingsFormat::Github, style))?
                }
            }
            Ok(if saved.blocked() { Status::Findings } else { Status::Success })
        }
        Command::History { env, limit, format } => {
            let repo = Repo::open(&cli.repo)?;
            let snapshot = repo.snapshot(None)?;
            let config = Config::load(&snapshot)?;
            let environment = config.environment(env)?;
            let target = target::open(repo.root(), environment)?;
            let mut releases = release::list(&target)?;
            if let Some(n) = limit {
                let skip = releases.len().saturating_sub(*n);
                releases.drain(..skip);
            }
            report_io(report::write_history(out, env, &releases, *format, style))?;
            Ok(Status::Success)
        }
        Command::Notes { env, release, from, to, repo_url, format } => {
            let repo = Repo::open(&cli.repo)?;
            let (_, target) = open_target(&repo, env)?;
            let releases = release::list(&target)?;
            let selection = match (from, to) {
                (Some(from), Some(to)) => release::notes::Selection::Range { from: from.clone(), to: to.clone() },
                _ => release::notes::Selection::Release(*release),
            };
            if releases.is_empty() && release.is_none() && from.is_none() {
                // Nothing has been released yet: say so; that is not an error.
                report_io(report::write_no_releases(out, env, *format))?;
                return Ok(Status::Success);
            }
            let notes = release::notes::build(&repo, env, &releases, &selection, repo_url.as_deref())?;
            report_io(report::write_notes(out, &notes, *format))?;
            Ok(Status::Success)
        }
        Command::Status { envs, format } => {
            let repo = Repo::open(&cli.repo)?;
            let config = Config::load(&repo.snapshot(None)?)?;
            let mut all = Vec::new();
            for env in config.select(envs)? {
                let target = target::open(repo.root(), env)?;
                let releases = release::list(&target)?;
                all.push(release::status::environment_status(&repo, &env.name, &target, &releases)?);
            }
            report_io(report::write_status(out, &all, *format, style))?;
            Ok(Status::Success)
        }
        Command::Rollback { env, to, actor, write, format } => {
            let repo = Repo::open(&cli.repo)?;
            let (_, target) = open_target(&repo, env)?;
            let releases = release::list(&target)?;
            let current =
                releases.iter().rev().find(|r| r.outcome == release::Outcome::Succeeded).ok_or_else(|| {
                    Error::Usage { message: format!("environment `{env}` has no succeeded release to roll back from") }
                })?;
            let goal =
                match to {
                    Some(id) => release::find(&releases, env, *id)?,
                    None => current.previous.and_then(|p| releases.iter().find(|r| r.id == p)).cloned().ok_or_else(
                        || Error::Usage {
                            message: format!(
                                "release {} is the first release of `{env}`; there is nothing earlier to roll back to",
                                current.id
                            ),
                        },
                    )?,
                };
            let sha = goal.sha().filter(|sha| repo.has_commit(sha)).ok_or_else(|| Error::Usage {
                message: format!(
                    "release {}'s commit is not in the repository (applied without commits, or history rewritten since); it cannot be restored",
                    goal.id
                ),
            })?;
            let snapshot = repo.snapshot(Some(sha))?;
            let config = Config::load(&snapshot)?;
            let environment = config.environment(env)?;
            let rendered = render::render(&snapshot, environment)?;
            let actor = actor.clone().unwrap_or_else(|| resolve_actor(&repo));
            let options = write.options(true, actor, ReleaseKind::Rollback, Some(goal.id));
            let progress = progress_bar(&format!("rolling back {env}"));
            let report = apply::apply(&target, &rendered, &snapshot.source, &options, &progress)?;
            let ok = report.succeeded();
            report_io(report::write_apply(out, std::slice::from_ref(&report), *format, style))?;
            Ok(if ok { Status::Success } else { Status::Failed })
        }
        Command::Metrics { envs, since, until, format } => {
            let repo = Repo::open(&cli.repo)?;
            let config = Config::load(&repo.snapshot(None)?)?;
            let until = match until {
                Some(text) => parse_time(text)?,
                None => jiff::Timestamp::now(),
            };
            let since = release::metrics::parse_since(since, until).ok_or_else(|| Error::Usage {
                message: format!(
                    "--since `{since}`: use a duration such as `90d`, `12w`, `48h`, or a date such as 2026-01-01"
                ),
            })?;
            let mut all = Vec::new();
            for env in config.select(envs)? {
                let target = target::open(repo.root(), env)?;
                let releases = release::list(&target)?;
                all.push(release::metrics::compute(&repo, &env.name, &releases, since, until)?);
            }
            report_io(report::write_metrics(out, &all, *format))?;
            Ok(Status::Success)
        }
        Command::Policy(PolicyCommand::Test { dir, format }) => {
            let results = crate::policy::test::run(dir)?;
            report_io(report::write_policy_tests(out, &results, *format, style))?;
            Ok(if results.iter().all(|r| r.passed) { Status::Success } else { Status::Findings })
        }
        Command::Secrets(SecretsCommand::Encrypt { file }) => {
            let recipients = crate::secrets::files::encrypt_file(file)?;
            report_io(writeln!(out, "{}: encrypted for {recipients}", file.display()))?;
            Ok(Status::Success)
        }
        Command::Secrets(SecretsCommand::Rotate { file }) => {
            let identities = crate::secrets::Identities::from_environment()?;
            let recipients = crate::secrets::files::rotate_file(file, &identities)?;
            report_io(writeln!(out, "{}: new data key, encrypted for {recipients}", file.display()))?;
            Ok(Status::Success)
        }
        Command::Secrets(SecretsCommand::Updatekeys { file }) => {
            let identities = crate::secrets::Identities::from_environment()?;
            let recipients = crate::secrets::files::updatekeys_file(file, &identities)?;
            report_io(writeln!(out, "{}: data key wrapped for {recipients}", file.display()))?;
            Ok(Status::Success)
        }
        Command::Secrets(SecretsCommand::Edit { file }) => {
            let identities = crate::secrets::Identities::from_environment()?;
            let outcome = crate::secrets::files::edit_file(file, &identities)?;
            let said = match outcome {
                crate::secrets::files::Edited::Changed => "re-encrypted (unchanged values keep their ciphertext)",
                crate::secrets::files::Edited::Unchanged => "no changes",
            };
            report_io(writeln!(out, "{}: {said}", file.display()))?;
            Ok(Status::Success)
        }
        Command::Secrets(SecretsCommand::Decrypt { files, format }) => {
            let identities = crate::secrets::Identities::from_environment()?;
            // Printing is what the user asked for; the plaintext stays wrapped until then.
            let mut plaintexts = Vec::new();
            for file in files {
                plaintexts.push((file.display().to_string(), crate::secrets::files::decrypt_file(file, &identities)?));
            }
            let decrypted: Vec<(String, Vec<serde_json::Value>)> = plaintexts
                .into_iter()
                .map(|(name, docs)| (name, docs.into_iter().map(crate::secrets::Plaintext::into_exposed).collect()))
                .collect();
            match format {
                SecretFormat::Json if decrypted.len() == 1 && decrypted[0].1.len() == 1 => {
                    report_io(report::write_json(out, &decrypted[0].1[0]))?
                }
                SecretFormat::Json if decrypted.len() == 1 => report_io(report::write_json(out, &decrypted[0].1))?,
                SecretFormat::Json => {
                    let map: serde_json::Map<String, serde_json::Value> = decrypted
                        .into_iter()
                        .map(|(name, docs)| {
                            let value =
                                if docs.len() == 1 { docs.into_iter().next().unwrap_or_default() } else { docs.into() };
                            (name, value)
                        })
                        .collect();
                    report_io(report::write_json(out, &map))?
                }
                SecretFormat::Yaml => {
                    let several = decrypted.len() > 1;
                    let mut first = true;
                    for (name, docs) in &decrypted {
                        for value in docs {
                            if !first {
                                report_io(writeln!(out, "---"))?;
                            }
                            first = false;
                            if several {
                                report_io(writeln!(out, "# {name}"))?;
                            }
                            report_io(out.write_all(crate::yaml::to_yaml(value).as_bytes()))?;
                        }
                    }
                }
            }
            Ok(Status::Success)
        }
        Command::Changes { base, head, format } => {
            let repo = Repo::open(&cli.repo)?;
            let changes = repo.changed_paths(base, head)?;
            let config = Config::load(&repo.snapshot(Some(head))?)?;
            let touched = check::touched_environments(&config, &changes.paths);
            match format {
                Format::Json => {
                    #[derive(serde::Serialize)]
                    struct Out<'a> {
                        base: &'a str,
                        head: &'a str,
                        paths: &'a [String],
                        environments: Vec<&'a str>,
                    }
                    report_io(report::write_json(
                        out,
                        &Out { base: &changes.base, head: &changes.head, paths: &changes.paths, environments: touched },
                    ))?;
                }
                _ => {
                    for path in &changes.paths {
                        report_io(writeln!(out, "{path}"))?;
                    }
                    report_io(writeln!(
                        out,
                        "{} path(s) changed; environments touched: {}",
                        changes.paths.len(),
                        if touched.is_empty() { "none".to_string() } else { touched.join(", ") }
                    ))?;
                }
            }
            Ok(Status::Success)
        }
    }
}

/// `apply --plan`: applies a saved plan environment by environment, each only while the revision
/// still renders what the plan showed and live state still hashes the same.
/// `apply --plan FILE [--rev REV] [--replan]` with how to write.
struct SavedRun<'a> {
    path: &'a Path,
    rev: Option<&'a str>,
    replan: bool,
    write: &'a WriteArgs,
}

fn apply_saved_plan(
    cli: &Cli,
    out: &mut dyn Write,
    run: &SavedRun,
    actor: Option<String>,
    format: Format,
    style: Style,
) -> Result<Status> {
    let SavedRun { path, rev, replan, write } = *run;
    let saved = SavedPlan::read(path)?;
    let repo = Repo::open(&cli.repo)?;
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
    if saved.blocked() {
        return Err(Error::Usage {
            message: format!("{}: the plan has blocking findings; fix them and check again", path.display()),
        });
    }
    let envs: Vec<String> = saved.plans.iter().map(|p| p.environment.clone()).collect();
    let Loaded { repo, snapshot, config, rendered } = load(&cli.repo, &Select { envs, rev: Some(rev.to_string()) })?;
    let findings = validate::validate(&snapshot, &config, &rendered, validate::Options::default())?;
    if validate::has_errors(&findings) {
        report_io(report::write_findings(out, &rendered, &findings, FindingsFormat::Human, style))?;
        return Ok(Status::Findings);
    }
    let actor = actor.unwrap_or_else(|| resolve_actor(&repo));
    let options = write.options(saved.plans.iter().all(|p| p.prune), actor, ReleaseKind::Apply, None);
    let mut results = Vec::new();
    for (r, planned) in rendered.iter().zip(&saved.plans) {
        let env = config.environment(&r.environment)?;
        let target = target::open(repo.root(), env)?;
        let progress = progress_bar(&format!("applying {}", r.environment));
        let expected = if replan { None } else { Some(planned) };
        let result = apply::apply_checked(&target, r, &snapshot.source, &options, &progress, expected)?;
        let refused = matches!(result, Applied::Refused { .. });
        results.push(result);
        if refused {
            // Later environments wait: the plan as a whole no longer holds.
            break;
        }
    }
    report_io(report::write_applied(out, &results, path, format, style))?;
    let refused = results.iter().any(|r| matches!(r, Applied::Refused { .. }));
    let failed = results.iter().any(|r| matches!(r, Applied::Applied(a) if !a.succeeded()));
    Ok(if refused {
        Status::Findings
    } else if failed {
        Status::Failed
    } else {
        Status::Success
    })
}

/// An environment's target, from the working tree's configuration.
fn open_target(repo: &Repo, env: &str) -> Result<(Config, target::Target)> {
    let config = Config::load(&repo.snapshot(None)?)?;
    let target = target::open(repo.root(), config.environment(env)?)?;
    Ok((config, target))
}

/// An RFC 3339 time, or a date (midnight UTC).
fn parse_time(text: &str) -> Result<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .ok_or_else(|| Error::Usage {
            message: format!("`{text}` is not a time: use RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)"),
        })
}

/// What a command reads: the repository, one snapshot of it, its configuration, and the
/// rendered environments it selected.
struct Loaded {
    repo: Repo,
    snapshot: Snapshot,
    config: Config,
    rendered: Vec<Rendered>,
}

impl Loaded {
    /// The process ends right after the command: freeing tens of thousands of rendered objects
    /// one by one costs more than the operating system reclaiming them at exit.
    fn leave_to_exit(self) {
        std::mem::forget(self.rendered);
    }
}

/// Opens the repository, reads the snapshot and its configuration, and renders the selected
/// environments.
fn load(repo_dir: &Path, select: &Select) -> Result<Loaded> {
    let repo = Repo::open(repo_dir)?;
    let snapshot = repo.snapshot(select.rev.as_deref())?;
    tracing::debug!(source = %snapshot.source.label(), "snapshot opened");
    let config = Config::load(&snapshot)?;
    let environments = config.select(&select.envs)?;
    let mut renderer = render::Renderer::new(&snapshot, &environments);
    let mut rendered = Vec::new();
    for env in environments {
        tracing::info!(environment = %env.name, source = %snapshot.source.label(), "rendering");
        rendered.push(renderer.render(env)?);
    }
    drop(renderer);
    Ok(Loaded { repo, snapshot, config, rendered })
}

/// What base → head does to each object of the rendered environments (rendered at the base).
fn rendered_changes(base: &[Rendered], head: &[Rendered]) -> BTreeMap<String, Vec<policy::ObjectChange>> {
    let mut out = BTreeMap::new();
    for h in head {
        let before: BTreeMap<&render::ObjectId, &serde_json::Value> = base
            .iter()
            .filter(|b| b.environment == h.environment)
            .flat_map(|b| b.objects.iter().map(|o| (&o.id, &o.body)))
            .collect();
        let mut changes = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
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
            changes.push(policy::ObjectChange {
                object: policy::ObjectRefOut::of(&o.id, Some(&o.body)),
                action,
                fields,
            });
        }
        for (id, body) in before.into_iter().filter(|(id, _)| !seen.contains(id)) {
            changes.push(policy::ObjectChange {
                object: policy::ObjectRefOut::of(id, Some(body)),
                action: "delete",
                fields: Vec::new(),
            });
        }
        out.insert(h.environment.clone(), changes);
    }
    out
}

/// Runs the bound policy plugins over the loaded environments. `changes` is the plan when one
/// was made; otherwise, with `--base`, what base → head does to each object.
fn run_policies(
    loaded: &Loaded,
    select: &Select,
    change: &ChangeArgs,
    changes: Option<BTreeMap<String, Vec<policy::ObjectChange>>>,
) -> Result<Vec<validate::Finding>> {
    let Some(policies) = policy::Policies::load(&loaded.snapshot, &loaded.config)? else {
        if change.approvals.is_some() || change.base.is_some() {
            tracing::info!("no policies are bound in cairn.yaml; --base and --approvals have nothing to inform");
        }
        return Ok(Vec::new());
    };
    let mut context = policy::Context { commit: loaded.snapshot.source.commit().cloned(), ..Default::default() };
    if let Some(path) = &change.approvals {
        context.approvals = policy::read_approvals(path)?;
    }
    let head = select.rev.as_deref().unwrap_or("HEAD");
    if let Some(base) = &change.base {
        loaded.repo.ensure_ancestor(base, head)?;
        context.changed_paths = Some(loaded.repo.changed_paths(base, head)?.paths);
        let trailers = policy::trailer_approvals(&loaded.repo.commits_between(Some(base), head)?);
        policy::add_approvals(&mut context.approvals, trailers);
    }
    context.changes = match (changes, &change.base) {
        (Some(changes), _) => changes,
        (None, Some(base)) => {
            let snapshot = loaded.repo.snapshot(Some(base))?;
            let base_rendered = match Config::load(&snapshot) {
                Ok(config) => {
                    let names: Vec<String> = loaded
                        .rendered
                        .iter()
                        .map(|r| r.environment.clone())
                        .filter(|n| config.environment(n).is_ok())
                        .collect();
                    let envs = if names.is_empty() { Vec::new() } else { config.select(&names)? };
                    let mut renderer = render::Renderer::new(&snapshot, &envs);
                    envs.iter().map(|e| renderer.render(e)).collect::<Result<Vec<_>>>()?
                }
                // A base without a usable cairn.yaml: everything at the head is new.
                Err(_) => Vec::new(),
            };
            rendered_changes(&base_rendered, &loaded.rendered)
        }
        (None, None) => BTreeMap::new(),
    };
    policies.evaluate(&loaded.snapshot, &loaded.config, &loaded.rendered, &context)
}

/// CAIRN_ACTOR, then GITHUB_ACTOR, then git's `user.name <user.email>`, then the login name.
fn resolve_actor(repo: &Repo) -> String {
    let from_env = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    from_env("CAIRN_ACTOR")
        .or_else(|| from_env("GITHUB_ACTOR"))
        .or_else(|| repo.configured_user())
        .or_else(|| from_env("USER"))
        .unwrap_or_else(|| "unknown".to_string())
}

/// A bar on stderr when it is a terminal; hidden otherwise so CI logs stay clean.
fn progress_bar(message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

/// Writing results failed: a closed pipe is not an error worth a message (the binary exits
/// quietly), anything else is reported.
fn report_io(result: std::io::Result<()>) -> Result<()> {
    result.map_err(|e| Error::io("<stdout>", "cannot write results", e))
}
