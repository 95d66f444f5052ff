//! Validation findings for people (terminal, Markdown), machines (JSON), code scanning (SARIF
//! 2.1.0), test dashboards (JUnit XML) and GitHub Actions (workflow-command annotations).

use std::collections::BTreeMap;
use std::io::{self, Write};

use quick_xml::escape::escape;
use serde::Serialize;
use serde_json::json;

use super::{Format, Style, colors, markdown_cell, write_json};
use crate::render::{ObjectId, Rendered};
use crate::validate::{Finding, Level, Scope};

/// Writes findings. `rendered` gives the objects checked (JUnit has one test case per object).
pub fn write_findings(
    w: &mut dyn Write,
    rendered: &[Rendered],
    findings: &[Finding],
    format: Format,
    style: Style,
) -> io::Result<()> {
    if format == Format::Junit {
        return write_junit(w, rendered, findings);
    }
    write_findings_in(w, &Scope::of(rendered), findings, format, style)
}

/// Writes findings in any format but JUnit (which needs every object checked), counting the
/// objects of `scope`.
pub(super) fn write_findings_in(
    w: &mut dyn Write,
    scope: &Scope,
    findings: &[Finding],
    format: Format,
    style: Style,
) -> io::Result<()> {
    let errors = findings.iter().filter(|f| f.severity == Level::Error).count();
    let warnings = findings.len() - errors;
    let environments: Vec<&str> = scope.environments.iter().map(String::as_str).collect();
    let objects = scope.objects;
    match format {
        Format::Json => {
            #[derive(Serialize)]
            struct Out<'a> {
                environments: &'a [&'a str],
                objects: usize,
                errors: usize,
                warnings: usize,
                findings: &'a [Finding],
            }
            write_json(w, &Out { environments: &environments, objects, errors, warnings, findings })
        }
        Format::Human => {
            let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
            for f in findings {
                by_file.entry(f.file.as_str()).or_default().push(f);
            }
            for (file, list) in by_file {
                writeln!(w, "{}", style.paint(colors::BOLD, if file.is_empty() { "(no source)" } else { file }))?;
                for f in list {
                    let level = match f.severity {
                        Level::Error => style.paint(colors::RED, "error"),
                        Level::Warning => style.paint(colors::YELLOW, "warning"),
                    };
                    writeln!(
                        w,
                        "  {}:{} {level} [{}] {} ({}): {}",
                        f.line,
                        f.column,
                        f.code,
                        f.subject(),
                        f.environment,
                        f.message
                    )?;
                    if let Some(excerpt) = &f.excerpt {
                        writeln!(w, "    {} | {}", style.paint(colors::DIM, &format!("{:>4}", f.line)), excerpt)?;
                        let pad = " ".repeat(f.column.saturating_sub(1) as usize);
                        writeln!(w, "    {} | {pad}{}", " ".repeat(4), style.paint(colors::RED, "^"))?;
                    }
                }
            }
            writeln!(
                w,
                "{objects} object(s) in {} environment(s) checked: {errors} error(s), {warnings} warning(s).",
                environments.len()
            )
        }
        Format::Markdown => {
            writeln!(w, "### Validation: {errors} error(s), {warnings} warning(s) in {objects} object(s)\n")?;
            if findings.is_empty() {
                return writeln!(w, "No findings in {}.", environments.join(", "));
            }
            writeln!(w, "| severity | code | environment | object | location | message |")?;
            writeln!(w, "|---|---|---|---|---|---|")?;
            for f in findings {
                writeln!(
                    w,
                    "| {} | `{}` | {} | `{}` | `{}:{}:{}` | {} |",
                    level_name(f.severity),
                    f.code,
                    f.environment,
                    f.subject(),
                    f.file,
                    f.line,
                    f.column,
                    markdown_cell(&f.message)
                )?;
            }
            Ok(())
        }
        Format::Sarif => write_json(w, &sarif(findings)),
        Format::Junit => Err(format.unsupported("findings without their objects")),
        Format::Github => {
            for f in findings {
                let command = match f.severity {
                    Level::Error => "error",
                    Level::Warning => "warning",
                };
                writeln!(
                    w,
                    "::{command} file={},line={},col={},title={}::{}",
                    github_property(&f.file),
                    f.line,
                    f.column,
                    github_property(&f.code),
                    github_data(&format!("{} ({}): {}", f.subject(), f.environment, f.message))
                )?;
            }
            Ok(())
        }
        other => Err(other.unsupported("findings")),
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

/// SARIF 2.1.0, one run, one rule per finding code.
fn sarif(findings: &[Finding]) -> serde_json::Value {
    let mut codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    let rules: Vec<serde_json::Value> = codes
        .iter()
        .map(|code| {
            json!({
                "id": code,
                "shortDescription": {"text": code},
                "help": {"text": "See docs/findings.md in the cairn documentation for what the code means and what to do."},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.code,
                "ruleIndex": codes.iter().position(|c| *c == f.code).unwrap_or(0),
                "level": level_name(f.severity),
                "message": {"text": format!("{} ({}): {}", f.subject(), f.environment, f.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.line.max(1), "startColumn": f.column.max(1)}
                    },
                    "logicalLocations": [{"fullyQualifiedName": f.subject(), "kind": "object"}]
                }],
                "properties": {"environment": f.environment, "pointer": f.pointer, "schemaPath": f.schema_path}
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "cairn",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules
            }},
            "results": results
        }]
    })
}

/// JUnit XML: a suite per environment, a test case per object, a failure per error finding
/// (warnings go to the case's system-out).
fn write_junit(w: &mut dyn Write, rendered: &[Rendered], findings: &[Finding]) -> io::Result<()> {
    let mut by_object: BTreeMap<(&str, Option<&ObjectId>), Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_object.entry((f.environment.as_str(), f.object.as_ref())).or_default().push(f);
    }
    // Each object is a test case, and so is the change as a whole when a finding is about it.
    let cases = |env: &Rendered| -> Vec<(String, String, Option<ObjectId>)> {
        let mut list: Vec<(String, String, Option<ObjectId>)> = env
            .objects
            .iter()
            .map(|o| {
                (o.id.to_string(), o.sources.last().map(|s| s.file.clone()).unwrap_or_default(), Some(o.id.clone()))
            })
            .collect();
        if by_object.contains_key(&(env.environment.as_str(), None)) {
            list.push(("the change".to_string(), String::new(), None));
        }
        list
    };
    let failing = |env: &str, id: Option<&ObjectId>| {
        by_object.get(&(env, id)).is_some_and(|list| list.iter().any(|f| f.severity == Level::Error))
    };
    let total: usize = rendered.iter().map(|r| cases(r).len()).sum();
    let failures: usize =
        rendered.iter().map(|r| cases(r).iter().filter(|c| failing(&r.environment, c.2.as_ref())).count()).sum();
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(w, r#"<testsuites name="cairn validate" tests="{total}" failures="{failures}">"#)?;
    for env in rendered {
        let env_cases = cases(env);
        let env_failures = env_cases.iter().filter(|c| failing(&env.environment, c.2.as_ref())).count();
        writeln!(
            w,
            r#"  <testsuite name="{}" tests="{}" failures="{env_failures}">"#,
            escape(env.environment.as_str()),
            env_cases.len()
        )?;
        for (name, file, id) in &env_cases {
            let list = by_object.get(&(env.environment.as_str(), id.as_ref())).cloned().unwrap_or_default();
            write!(
                w,
                r#"    <testcase classname="{}" name="{}" file="{}""#,
                escape(env.environment.as_str()),
                escape(name.as_str()),
                escape(file.as_str())
            )?;
            if list.is_empty() {
                writeln!(w, "/>")?;
                continue;
            }
            writeln!(w, ">")?;
            for f in list.iter().filter(|f| f.severity == Level::Error) {
                let text = format!("{}:{}:{}: {} (at {})", f.file, f.line, f.column, f.message, f.pointer);
                writeln!(
                    w,
                    r#"      <failure type="{}" message="{}">{}</failure>"#,
                    escape(f.code.as_str()),
                    escape(f.message.as_str()),
                    escape(text.as_str())
                )?;
            }
            let warnings: Vec<String> = list
                .iter()
                .filter(|f| f.severity == Level::Warning)
                .map(|f| format!("warning [{}] {}:{}:{}: {}", f.code, f.file, f.line, f.column, f.message))
                .collect();
            if !warnings.is_empty() {
                writeln!(w, "      <system-out>{}</system-out>", escape(warnings.join("\n").as_str()))?;
            }
            writeln!(w, "    </testcase>")?;
        }
        writeln!(w, "  </testsuite>")?;
    }
    writeln!(w, "</testsuites>")
}

/// Escapes the message of a workflow command (`%`, CR, LF).
fn github_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command property (also `:` and `,`).
fn github_property(s: &str) -> String {
    github_data(s).replace(':', "%3A").replace(',', "%2C")
}
