//! What `init` made and what `changes` found.

use std::io::{self, Write};

use super::{Format, write_json};
use crate::repo::ChangeSet;
use crate::scaffold::Scaffolded;

/// `init`: where the repository was made and what to do next.
pub fn write_scaffolded(w: &mut dyn Write, made: &Scaffolded, format: Format) -> io::Result<()> {
    match format {
        Format::Json => write_json(w, made),
        Format::Human => writeln!(
            w,
            "Created a configuration repository in {} (commit {}).\nNext: cd {} && cairn plan && cairn apply --env staging",
            made.path,
            &made.commit[..12.min(made.commit.len())],
            made.path
        ),
        other => Err(other.unsupported("what `init` made")),
    }
}

/// `changes`: the paths changed between two revisions and the environments they touch.
pub fn write_changes(w: &mut dyn Write, changes: &ChangeSet, touched: &[&str], format: Format) -> io::Result<()> {
    match format {
        Format::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                base: &'a str,
                head: &'a str,
                paths: &'a [String],
                environments: &'a [&'a str],
            }
            write_json(
                w,
                &Out { base: &changes.base, head: &changes.head, paths: &changes.paths, environments: touched },
            )
        }
        Format::Human => {
            for path in &changes.paths {
                writeln!(w, "{path}")?;
            }
            writeln!(
                w,
                "{} path(s) changed; environments touched: {}",
                changes.paths.len(),
                if touched.is_empty() { "none".to_string() } else { touched.join(", ") }
            )
        }
        other => Err(other.unsupported("changed paths")),
    }
}

/// The shards of a change, for `changes --format github-matrix|gitlab-pipeline`.
pub struct Matrix<'a> {
    pub base: &'a str,
    pub head: &'a str,
    pub shards: &'a [crate::shard::Shard],
    /// gitlab-pipeline: the file defining the hidden job `.cairn-shard` every shard extends.
    pub job_template: &'a str,
}

/// `github-matrix`: `{"include": [shard, …]}` on one line (a step output must be one line).
/// `gitlab-pipeline`: a child pipeline with a job per shard that extends `.cairn-shard` with the
/// shard's variables (`CAIRN_SHARD`, `CAIRN_ENVIRONMENTS`, `CAIRN_ENV_ARGS`, `CAIRN_OBJECTS`), or
/// one job saying there is nothing to do (GitLab refuses a pipeline without jobs).
pub fn write_matrix(w: &mut dyn Write, matrix: &Matrix, format: Format) -> io::Result<()> {
    match format {
        Format::GithubMatrix => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                include: &'a [crate::shard::Shard],
            }
            serde_json::to_writer(&mut *w, &Out { include: matrix.shards })?;
            writeln!(w)
        }
        Format::GitlabPipeline => {
            // JSON strings are YAML strings: names and paths need no escaping rules of their own.
            let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
            writeln!(
                w,
                "# cairn changes --format gitlab-pipeline: one job per shard of {}..{}",
                matrix.base, matrix.head
            )?;
            if matrix.shards.is_empty() {
                writeln!(w, "cairn-nothing-to-check:")?;
                return writeln!(w, "  script:\n    - {}", quote("echo 'cairn: this change touches no environment'"));
            }
            writeln!(w, "include:\n  - local: {}", quote(matrix.job_template))?;
            for shard in matrix.shards {
                writeln!(w, "cairn-shard-{}:", shard.shard)?;
                writeln!(w, "  extends: .cairn-shard")?;
                writeln!(w, "  variables:")?;
                writeln!(w, "    CAIRN_SHARD: {}", quote(&shard.shard.to_string()))?;
                writeln!(w, "    CAIRN_ENVIRONMENTS: {}", quote(&shard.environments.join(" ")))?;
                writeln!(w, "    CAIRN_ENV_ARGS: {}", quote(&shard.env_args))?;
                writeln!(w, "    CAIRN_OBJECTS: {}", quote(&shard.objects.to_string()))?;
            }
            Ok(())
        }
        other => Err(other.unsupported("a CI matrix")),
    }
}
