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
