//! `cairn policy test` results.

use std::io::{self, Write};

use super::{Format, Style, colors, markdown_cell, write_json};
use crate::policy::test::CaseResult;

pub fn write_policy_tests(w: &mut dyn Write, results: &[CaseResult], format: Format, style: Style) -> io::Result<()> {
    let failed = results.iter().filter(|r| !r.passed).count();
    match format {
        Format::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                passed: usize,
                failed: usize,
                cases: &'a [CaseResult],
            }
            write_json(w, &Out { passed: results.len() - failed, failed, cases: results })
        }
        Format::Human => {
            for r in results {
                let mark = if r.passed { style.paint(colors::GREEN, "ok  ") } else { style.paint(colors::RED, "FAIL") };
                writeln!(w, "{mark} {} :: {}", r.suite, r.name)?;
                for p in &r.problems {
                    writeln!(w, "       {p}")?;
                }
            }
            writeln!(w, "{} passed, {failed} failed", results.len() - failed)
        }
        Format::Markdown => {
            writeln!(w, "| result | suite | case | problems |\n|---|---|---|---|")?;
            for r in results {
                writeln!(
                    w,
                    "| {} | `{}` | {} | {} |",
                    if r.passed { "pass" } else { "**fail**" },
                    r.suite,
                    markdown_cell(&r.name),
                    markdown_cell(&r.problems.join("; "))
                )?;
            }
            writeln!(w, "\n{} passed, {failed} failed", results.len() - failed)
        }
        other => Err(other.unsupported("policy test results")),
    }
}
