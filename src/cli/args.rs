//! The command line: every clap type in one place. Commands live one per file beside this one.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::pipeline::{ChangeSpec, WriteSpec};
use crate::report::{Format, Style};
use crate::validate;

// The formats each command writes, in the order `--help` lists them. A command offers a format
// only where its writer has an output of its own for it (docs/formats.md says what each prints).
const INIT_FORMATS: &[Format] = &[Format::Human, Format::Json];
const RENDER_FORMATS: &[Format] = &[Format::Human, Format::Json];
const VALIDATE_FORMATS: &[Format] =
    &[Format::Human, Format::Json, Format::Markdown, Format::Sarif, Format::Junit, Format::Github];
const PLAN_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::Markdown];
const APPLY_FORMATS: &[Format] = &[Format::Human, Format::Json];
const CHECK_FORMATS: &[Format] =
    &[Format::Markdown, Format::Human, Format::Json, Format::Sarif, Format::Junit, Format::Github];
const HISTORY_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::Markdown];
const NOTES_FORMATS: &[Format] = &[Format::Markdown, Format::Html, Format::Json];
const STATUS_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::Markdown, Format::Html];
const VERIFY_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::Markdown];
const NOTIFY_FORMATS: &[Format] = &[Format::Human, Format::Json];
const PROMOTE_FORMATS: &[Format] = &[Format::Human, Format::Json];
const ROLLBACK_FORMATS: &[Format] = &[Format::Human, Format::Json];
const METRICS_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::Markdown, Format::Html];
const POLICY_TEST_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::Markdown];
const SITE_FORMATS: &[Format] = &[Format::Human, Format::Json];
const CHANGES_FORMATS: &[Format] = &[Format::Human, Format::Json, Format::GithubMatrix, Format::GitlabPipeline];
const ROLLOUT_FORMATS: &[Format] = &[Format::Human, Format::Json];
const DECRYPT_FORMATS: &[Format] = &[Format::Yaml, Format::Json];

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
        /// `plain`: a base and per-environment directories of YAML; `kustomize`: a kustomize base
        /// with an overlay per environment (examples/kustomize-shop).
        #[arg(long, value_enum, default_value_t = crate::scaffold::Layout::Plain)]
        layout: crate::scaffold::Layout,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(INIT_FORMATS))]
        format: Format,
    },
    /// Print the rendered objects of environments as a multi-document YAML stream.
    Render {
        #[command(flatten)]
        select: Select,
        /// `human` prints YAML; `json` prints the objects with their identities and sources.
        #[arg(long, default_value_t = Format::Human, value_parser = formats(RENDER_FORMATS))]
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
        #[arg(long, default_value_t = Format::Human, value_parser = formats(VALIDATE_FORMATS))]
        format: Format,
    },
    /// Show what apply would change in each environment.
    Plan {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        schema: SchemaArgs,
        #[command(flatten)]
        change: ChangeArgs,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(PLAN_FORMATS))]
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
        /// Environment to apply (repeatable; required unless --plan gives them). With --plan:
        /// only these environments of the plan (one job of a CI matrix).
        #[arg(long = "env", value_name = "ENV", required_unless_present = "plan")]
        envs: Vec<String>,
        /// Apply exactly this commit instead of the working tree (with --plan: default HEAD).
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// Apply a plan saved by `cairn check --out`: refused (exit 1) when the revision renders
        /// differently or live state changed since the plan was made.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// With --plan: plan afresh and apply even if the state moved.
        #[arg(long, requires = "plan")]
        replan: bool,
        /// After applying (and waiting for health: --verify implies --wait), run the
        /// environment's `verify:` checks and record the result; a failed verification exits 4,
        /// and with `on_failure: rollback` puts the previous verified release back first.
        #[arg(long)]
        verify: bool,
        /// Keep objects cairn applied earlier and no longer renders.
        #[arg(long)]
        no_prune: bool,
        /// Who is applying; defaults to CAIRN_ACTOR, GITHUB_ACTOR, then git's user.name.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(APPLY_FORMATS))]
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
        /// Check only these of the touched environments (repeatable): one shard of a CI matrix
        /// (`cairn changes --format github-matrix`).
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
        /// Write a report (repeatable): `FORMAT=FILE` to a file, `FORMAT` alone to stdout. One
        /// check renders and plans once and writes every report; replaces --format.
        #[arg(long = "report", value_name = "FORMAT[=FILE]", value_parser = parse_report, conflicts_with = "format")]
        reports: Vec<ReportTarget>,
        /// Write progress events as JSON Lines to FILE (`-`: stderr).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// When the check blocks, send `check.blocked` to the channels the `notifications:` routes
        /// name for each blocked environment (logged on stderr; never changes the exit code).
        #[arg(long)]
        notify: bool,
        #[arg(long, default_value_t = Format::Markdown, value_parser = formats(CHECK_FORMATS))]
        format: Format,
    },
    /// List the releases of an environment, newest first.
    History {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        /// Show at most this many releases.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(HISTORY_FORMATS))]
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
        #[arg(long, default_value_t = Format::Markdown, value_parser = formats(NOTES_FORMATS))]
        format: Format,
    },
    /// What is in each environment: current release, workloads with versions and owners, drift.
    Status {
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(STATUS_FORMATS))]
        format: Format,
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
        #[arg(long, default_value_t = Format::Human, value_parser = formats(ROLLBACK_FORMATS))]
        format: Format,
    },
    /// Canary and blue/green rollouts: where one stands, and what to do with one whose job was
    /// killed (docs/progressive.md).
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Run an environment's `verify:` checks against its current release (or --release), show
    /// each measurement as it is taken, and record the verification on the release. Exits 4
    /// when it does not pass.
    Verify {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        /// The release to verify (default: the environment's current release).
        #[arg(long, value_name = "ID")]
        release: Option<u64>,
        /// Who is verifying; defaults to CAIRN_ACTOR, GITHUB_ACTOR, then git's user.name.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Write each measurement as a JSON Lines event to FILE (`-`: stderr).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(VERIFY_FORMATS))]
        format: Format,
    },
    /// Send what the `notifications:` routes ask for about a release (default: the environment's
    /// latest finished one). Each (channel, event) is delivered once: what the release's record
    /// says was delivered is not sent again. Exit 2 when a delivery failed (it is recorded, and
    /// the next run tries it again).
    Notify {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        #[arg(long, value_name = "ID")]
        release: Option<u64>,
        /// Who is sending; defaults to CAIRN_ACTOR, GITHUB_ACTOR, then git's user.name.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(NOTIFY_FORMATS))]
        format: Format,
    },
    /// Promote the source environment's newest verified, soaked release into ENV (its
    /// `promotion:` rule): edit ENV's own layer files minimally and commit the edit on a new
    /// branch, or only show it with --dry-run. Exit 1 (with why) when there is nothing to promote.
    Promote {
        #[arg(long, value_name = "ENV")]
        to: String,
        /// Show the edit as a diff; commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// The branch to commit on (default: cairn/promote-TO-from-FROM-RELEASE); must not exist.
        #[arg(long, value_name = "NAME")]
        branch: Option<String>,
        /// Who promotes, when git has no identity configured for the commit.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(PROMOTE_FORMATS))]
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
        #[arg(long, default_value_t = Format::Human, value_parser = formats(METRICS_FORMATS))]
        format: Format,
    },
    /// Work with SOPS-encrypted files (age keys).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Work with policy plugins.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Write the status site: every environment side by side (versions, owners, drift, who is
    /// ahead), each one's release history and notes, and the delivery metrics; static HTML.
    Site {
        /// The directory to write; it must be new, empty, or a site cairn wrote before.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
        /// The delivery metrics' window: a duration (`90d`, `12w`, `48h`) or a date.
        #[arg(long, value_name = "WHEN", default_value = "90d")]
        since: String,
        /// Link commits to `<URL>/commit/<sha>`.
        #[arg(long, value_name = "URL")]
        repo_url: Option<String>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(SITE_FORMATS))]
        format: Format,
    },
    /// List the paths changed between two revisions and the environments they touch.
    Changes {
        #[arg(long, value_name = "REV")]
        base: String,
        #[arg(long, value_name = "REV", default_value = "HEAD")]
        head: String,
        /// github-matrix, gitlab-pipeline: at most this many shards (1 to 256).
        #[arg(long, value_name = "N", default_value_t = crate::shard::MAX_JOBS)]
        max_jobs: usize,
        /// gitlab-pipeline: the repository file defining the hidden job `.cairn-shard` that each
        /// shard's job extends (included by the child pipeline).
        #[arg(long, value_name = "FILE", default_value = ".gitlab/cairn-shard.yml")]
        job_template: String,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(CHANGES_FORMATS))]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// The newest rollouts of an environment: strategy, state, phase, replicas of each version,
    /// and each verify step's checks.
    Status {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(ROLLOUT_FORMATS))]
        format: Format,
    },
    /// Undo a rollout whose job was killed: Services back on the old pods, the Deployment's
    /// replicas as they were, the temporary Deployment deleted. Takes the environment's lock, so
    /// it never runs under a live rollout.
    Abort {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(ROLLOUT_FORMATS))]
        format: Format,
    },
    /// Continue a rollout whose job was killed, from the phase it stood at: an apply of the
    /// release's commit, through the gate like any apply.
    Resume {
        #[arg(long = "env", value_name = "ENV")]
        env: String,
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(APPLY_FORMATS))]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run plugins against fixture inputs with expected decisions (every *.yaml suite in DIR);
    /// exits 1 when a case fails.
    Test {
        dir: PathBuf,
        #[arg(long, default_value_t = Format::Human, value_parser = formats(POLICY_TEST_FORMATS))]
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

impl From<&ChangeArgs> for ChangeSpec {
    fn from(a: &ChangeArgs) -> Self {
        ChangeSpec { base: a.base.clone(), approvals: a.approvals.clone() }
    }
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
        #[arg(long, default_value_t = Format::Yaml, value_parser = formats(DECRYPT_FORMATS))]
        format: Format,
    },
}

/// `--format` taking only `allowed`: `--help` lists them, and clap rejects any other name with its
/// usage error (exit 2) before the command runs.
fn formats(allowed: &'static [Format]) -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(allowed.iter().map(|f| PossibleValue::new(f.as_str())))
        .map(|name| name.parse::<Format>().expect("clap passes only the names of the formats allowed"))
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
    /// Who approved what is written, for the bound policies (the approvals plugin): GitHub's
    /// pull-request reviews JSON, or a list of logins. `Approved-by:` trailers count too.
    #[arg(long, value_name = "FILE")]
    pub approvals: Option<PathBuf>,
    /// Break glass: write even though schema or policy findings are errors. The release records
    /// the reason, who forced it and the findings passed; `history`, `notes` and `status` show it.
    #[arg(long, value_name = "REASON")]
    pub override_findings: Option<String>,
    /// Write progress events as JSON Lines to FILE (`-`: stderr) as the work happens
    /// (schemas/events.schema.json).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// After writing (and verifying), send what the `notifications:` routes ask for about each
    /// release; a failed notification is logged and recorded, and never fails the write.
    #[arg(long)]
    pub notify: bool,
}

/// `90s`, `5m`, `1h`, `1h30m`, or plain seconds: the grammar of [`crate::duration`].
/// One `--report FORMAT[=FILE]` of `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTarget {
    pub format: Format,
    /// `None`: stdout.
    pub file: Option<PathBuf>,
}

fn parse_report(text: &str) -> std::result::Result<ReportTarget, String> {
    let (name, file) = match text.split_once('=') {
        Some((name, "")) => {
            return Err(format!("`{name}=` names no file: write `{name}=FILE`, or `{name}` for stdout"));
        }
        Some((name, file)) => (name, Some(PathBuf::from(file))),
        None => (text, None),
    };
    let known: Vec<&str> = CHECK_FORMATS.iter().map(|f| f.as_str()).collect();
    match name.parse::<Format>() {
        Ok(format) if CHECK_FORMATS.contains(&format) => Ok(ReportTarget { format, file }),
        _ => Err(format!("`{name}` is not a report format of check; use one of {}", known.join(", "))),
    }
}

fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    crate::duration::parse(text).map_err(|e| format!("`{}` is not a duration: use 90s, 5m or 1h ({e})", text.trim()))
}

impl WriteArgs {
    /// How the pipeline may write, from these flags.
    pub fn spec(&self, prune: bool, actor: Option<String>) -> WriteSpec {
        WriteSpec {
            prune,
            actor,
            force_conflicts: self.force_conflicts,
            wait: self.wait.then_some(self.timeout),
            approvals: self.approvals.clone(),
            override_reason: self.override_findings.clone(),
            schema: validate::Options::default(),
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

impl Cli {
    pub(crate) fn style(&self) -> Style {
        let color = match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Style { color }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::report;

    const PLAIN: Style = Style { color: false };

    /// `write` has an output for every format in `offered` and refuses every other one, as
    /// InvalidInput and before writing anything.
    fn writes_exactly(what: &str, offered: &[Format], write: impl Fn(&mut Vec<u8>, Format) -> io::Result<()>) {
        for &format in Format::ALL {
            let mut out = Vec::new();
            let result = write(&mut out, format);
            if offered.contains(&format) {
                assert!(result.is_ok(), "{what} --format {format}: {result:?}");
            } else {
                let e = result.expect_err(&format!("{what} is not offered as {format}"));
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{what} --format {format}: {e}");
                assert!(e.to_string().contains(format.as_str()), "the error names the format: {e}");
                assert!(out.is_empty(), "{what} --format {format} wrote before refusing");
            }
        }
    }

    #[test]
    fn each_command_offers_exactly_the_formats_its_writers_have() {
        use crate::secrets::Masked;
        let made = crate::scaffold::Scaffolded { path: "repo".into(), files: Vec::new(), commit: "0".repeat(40) };
        writes_exactly("init", INIT_FORMATS, |w, f| report::write_scaffolded(w, &made, f));
        writes_exactly("render", RENDER_FORMATS, |w, f| report::write_rendered(w, &Masked::each(&[]), f));
        writes_exactly("validate", VALIDATE_FORMATS, |w, f| report::write_findings(w, &[], &[], f, PLAIN));
        writes_exactly("plan", PLAN_FORMATS, |w, f| {
            report::write_plans_with_findings(w, &Masked::each(&[]), &Default::default(), &[], f, PLAIN, true)
        });
        for (what, offered) in [("apply", APPLY_FORMATS), ("rollback", ROLLBACK_FORMATS)] {
            writes_exactly(what, offered, |w, f| report::write_apply(w, &Masked::each(&[]), f, PLAIN));
            writes_exactly(what, offered, |w, f| report::write_blocked(w, &[], &[], f, PLAIN));
        }
        writes_exactly("apply --plan", APPLY_FORMATS, |w, f| {
            report::write_applied(w, &Masked::each(&[]), std::path::Path::new("plan.json"), f, PLAIN)
        });
        let commit = serde_json::json!({
            "sha": "0".repeat(40),
            "author": {"name": "a", "email": "a@example.org", "time": "2026-01-01T00:00:00Z"},
            "committer": {"name": "a", "email": "a@example.org", "time": "2026-01-01T00:00:00Z"},
            "subject": "s", "body": "", "trailers": []
        });
        let saved: crate::check::SavedPlan = serde_json::from_value(serde_json::json!({
            "format": "cairn-plan/v1", "cairn_version": "0", "repository": "0".repeat(40),
            "base": commit, "head": commit, "changed_paths": [], "plans": [], "findings": []
        }))
        .expect("a saved plan");
        let saved = Masked::new(&saved);
        writes_exactly("check", CHECK_FORMATS, |w, f| report::write_check(w, &saved, &[], f, None, PLAIN));
        writes_exactly("history", HISTORY_FORMATS, |w, f| report::write_history(w, "staging", &[], f, PLAIN));
        writes_exactly("notes", NOTES_FORMATS, |w, f| report::write_no_releases(w, "staging", f));
        writes_exactly("status", STATUS_FORMATS, |w, f| report::write_status(w, &[], f, PLAIN));
        let notified = crate::pipeline::Notified {
            environment: "staging".to_string(),
            release: 1,
            events: Vec::new(),
            sent: Vec::new(),
        };
        writes_exactly("notify", NOTIFY_FORMATS, |w, f| report::write_notified(w, &notified, f, PLAIN));
        writes_exactly("metrics", METRICS_FORMATS, |w, f| report::write_metrics(w, &[], f));
        writes_exactly("policy test", POLICY_TEST_FORMATS, |w, f| report::write_policy_tests(w, &[], f, PLAIN));
        let changes = crate::repo::ChangeSet::default();
        // `changes` has two writers: the list, and the matrix of shards.
        let matrix_formats = [Format::GithubMatrix, Format::GitlabPipeline];
        let (matrix, list): (Vec<Format>, Vec<Format>) =
            CHANGES_FORMATS.iter().partition(|f| matrix_formats.contains(f));
        assert_eq!(matrix, matrix_formats);
        writes_exactly("changes", &list, |w, f| report::write_changes(w, &changes, &[], f));
        let shards = report::Matrix { base: "a", head: "b", shards: &[], job_template: "t.yml" };
        writes_exactly("changes (matrix)", &matrix, |w, f| report::write_matrix(w, &shards, f));
        writes_exactly("site", SITE_FORMATS, |w, f| {
            report::write_site_written(w, std::path::Path::new("site"), &[], f)
        });
        writes_exactly("secrets decrypt", DECRYPT_FORMATS, |w, f| report::write_decrypted(w, Vec::new(), f));
    }
}
