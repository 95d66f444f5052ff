//! docs/findings.md lists exactly the finding codes of the registry (src/validate/codes.rs) and
//! the rules the shipped plugins report (read from their sources): a code or a rule in one and
//! not the other fails here, as does a code spelled out as a string outside the registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cairn::validate::codes::{Code, Family, PolicyRule, policy_code};
use regex::Regex;

const DOCS: &str = "docs/findings.md";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every code the registry has, as the docs write it (`policy/<binding>/denied`).
fn registered() -> BTreeSet<String> {
    let mut codes: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
    codes.extend(Family::ALL.iter().map(|f| f.pattern().to_string()));
    codes.extend(PolicyRule::ALL.iter().map(|r| policy_code("<binding>", r.as_str())));
    codes
}

/// What a findings page lists: codes, and the rule ids under each shipped plugin's heading.
#[derive(Debug, Default)]
struct Documented {
    codes: BTreeSet<String>,
    rules: BTreeMap<String, BTreeSet<String>>,
}

/// Reads the first cell of every table row: a code, or under a `### `name` (shipped)` heading
/// a rule id of that plugin. A row whose first cell is not one backticked word is refused, so a
/// code cannot hide from this test behind other formatting.
fn parse_docs(text: &str) -> Result<Documented, String> {
    let shipped = Regex::new(r"^### `([a-z0-9-]+)` \(shipped\)\s*$").expect("valid regex");
    let separator = Regex::new(r"^\|(\s*:?-+:?\s*\|)+\s*$").expect("valid regex");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Documented::default();
    let mut plugin: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('#') {
            plugin = shipped.captures(line).map(|c| c[1].to_string());
            if let Some(name) = &plugin
                && out.rules.insert(name.clone(), BTreeSet::new()).is_some()
            {
                return Err(format!("{DOCS}:{}: plugin `{name}` has two sections", i + 1));
            }
            continue;
        }
        let is_header = lines.get(i + 1).is_some_and(|next| separator.is_match(next));
        if !line.starts_with('|') || separator.is_match(line) || is_header {
            continue;
        }
        let cell = line.trim_start_matches('|').split('|').next().unwrap_or_default().trim();
        let word = cell
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|w| !w.is_empty() && !w.contains('`') && !w.contains(' '))
            .ok_or_else(|| format!("{DOCS}:{}: the first cell `{cell}` is not one code in backticks", i + 1))?;
        let set = match &plugin {
            Some(name) => out.rules.entry(name.clone()).or_default(),
            None => &mut out.codes,
        };
        if !set.insert(word.to_string()) {
            return Err(format!("{DOCS}:{}: `{word}` is listed twice", i + 1));
        }
    }
    Ok(out)
}

fn documented() -> Documented {
    parse_docs(&read(&root().join(DOCS))).unwrap_or_else(|e| panic!("{e}"))
}

/// The `.rs` files under `dir`, with their text up to the first `#[cfg(test)]` (tests name rules
/// in assertions, not in what the code reports). `tests.rs` files are left out whole.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
                let text = read(&path);
                let end = text.find("#[cfg(test)]").unwrap_or(text.len());
                out.push((path, text[..end].to_string()));
            }
        }
    }
    out.sort();
    out
}

/// Splits what follows the bracket at `open` into its top-level comma-separated parts, up to the
/// matching closing bracket. String literals may hold brackets and commas.
fn parts(text: &str, open: usize) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = open + 1;
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => {
                out.push(text[start..i].trim().to_string());
                break;
            }
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                out.push(text[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The rule ids a plugin's sources report: string literals where a `Violation` gets its rule
/// (`Violation::on(object, "rule", …)`, `Violation { rule: "rule".into(), … }`), and the ids of
/// its `RULES` table where a rule comes from a loop over it. Any other way of naming a rule is
/// refused, so a new rule cannot slip past the docs unread.
fn rules_in_source(files: &[(PathBuf, String)]) -> Result<BTreeSet<String>, String> {
    let literal = Regex::new(r#"^"([^"\\]*)"(\.into\(\)|\.to_string\(\)|\.to_owned\(\))?$"#).expect("valid regex");
    let table_entry = Regex::new(r#"\(\s*"([^"]+)"\s*,"#).expect("valid regex");
    let table: Option<BTreeSet<String>> = files.iter().find_map(|(_, text)| {
        let start = text.find("const RULES")?;
        let end = start + text[start..].find("];")?;
        Some(table_entry.captures_iter(&text[start..end]).map(|c| c[1].to_string()).collect())
    });
    let on = Regex::new(r"Violation::on\s*\(").expect("valid regex");
    let made = Regex::new(r"\bViolation\s*\{").expect("valid regex");
    let assigned = Regex::new(r"\.rule\s*=[^=]").expect("valid regex");
    let mut rules = BTreeSet::new();
    for (path, text) in files {
        let at = |pos: usize| format!("{}:{}", path.display(), text[..pos].matches('\n').count() + 1);
        let mut read_rule = |expr: &str, pos: usize| -> Result<(), String> {
            if let Some(c) = literal.captures(expr) {
                rules.insert(c[1].to_string());
                return Ok(());
            }
            let name = expr.trim_start_matches(['*', '&']);
            let over_table = Regex::new(&format!(r"for\s*\(\s*{}\s*,[^)]*\)\s*in\s*&?RULES\b", regex::escape(name)))
                .expect("valid regex");
            match &table {
                Some(ids) if over_table.is_match(text) => {
                    rules.extend(ids.iter().cloned());
                    Ok(())
                }
                _ => Err(format!(
                    "{}: cannot read the rule id from `{expr}`: report a string literal or an id of RULES, or teach tests/finding_codes.rs the new form",
                    at(pos)
                )),
            }
        };
        for m in on.find_iter(text) {
            let args = parts(text, m.end() - 1);
            let rule = args.get(1).ok_or_else(|| format!("{}: `Violation::on` without a rule", at(m.start())))?;
            read_rule(rule, m.start())?;
        }
        for m in made.find_iter(text) {
            let fields = parts(text, m.end() - 1);
            let rule = fields
                .iter()
                .find_map(|f| f.strip_prefix("rule").map(str::trim_start).and_then(|f| f.strip_prefix(':')))
                .ok_or_else(|| format!("{}: a `Violation` without a `rule`", at(m.start())))?;
            read_rule(rule.trim(), m.start())?;
        }
        if let Some(m) = assigned.find(text) {
            return Err(format!(
                "{}: a rule assigned after the fact; set it where the Violation is made",
                at(m.start())
            ));
        }
    }
    Ok(rules)
}

fn differences(what: &str, code: &BTreeSet<String>, docs: &BTreeSet<String>) -> Option<String> {
    let undocumented: Vec<&String> = code.difference(docs).collect();
    let unknown: Vec<&String> = docs.difference(code).collect();
    (!undocumented.is_empty() || !unknown.is_empty())
        .then(|| format!("{what}: not in {DOCS}: {undocumented:?}; in {DOCS} but not in the code: {unknown:?}"))
}

#[test]
fn the_docs_list_every_registered_code_and_no_other() {
    let problem = differences("finding codes (src/validate/codes.rs)", &registered(), &documented().codes);
    assert!(problem.is_none(), "{}", problem.unwrap_or_default());
}

#[test]
fn the_docs_list_every_rule_of_the_shipped_plugins_and_no_other() {
    let docs = documented();
    let shipped: BTreeSet<String> = cairn::policy::BUILTIN.iter().map(|(name, _)| name.to_string()).collect();
    let sections: BTreeSet<String> = docs.rules.keys().cloned().collect();
    assert_eq!(shipped, sections, "every shipped plugin has one `### `name` (shipped)` section in {DOCS}");
    let id = Regex::new(r"^[a-z0-9][a-z0-9-]*$").expect("valid regex");
    let mut problems = Vec::new();
    for name in &shipped {
        let rules = rules_in_source(&sources(&root().join("plugins").join(name).join("src")))
            .unwrap_or_else(|e| panic!("plugin {name}: {e}"));
        assert!(!rules.is_empty(), "plugin {name}: no rules found in its source");
        for rule in &rules {
            assert!(id.is_match(rule), "plugin {name}: `{rule}` is not a stable rule id");
        }
        problems.extend(differences(&format!("rules of plugin {name}"), &rules, &docs.rules[name]));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A finding made from a string rather than the registry would not be checked against the docs.
#[test]
fn no_code_is_spelled_out_outside_the_registry() {
    let families: BTreeSet<String> =
        registered().iter().filter_map(|c| c.split('/').next()).map(regex::escape).collect();
    let spelled = Regex::new(&format!(r#""({})/"#, Vec::from_iter(families).join("|"))).expect("valid regex");
    let registry = root().join("src/validate/codes.rs");
    let mut found = Vec::new();
    for (path, text) in sources(&root().join("src")).iter().filter(|(p, _)| *p != registry) {
        for m in spelled.find_iter(text) {
            found.push(format!("{}:{}", path.display(), text[..m.start()].matches('\n').count() + 1));
        }
    }
    assert!(found.is_empty(), "finding codes written as strings; use validate::codes instead: {found:?}");
}

#[test]
fn a_table_row_that_is_not_a_code_is_refused() {
    let docs = "## Schema findings\n\n| code | what |\n|---|---|\n| `schema/type` | x |\n| schema/range | y |\n";
    let err = parse_docs(docs).expect_err("an unquoted code");
    assert!(err.contains(":6:"), "{err}");
    let docs = "### `compliance` (shipped)\n\n| rule | what |\n|---|---|\n| `privileged` | x |\n## Other\n\n| code |\n|---|\n| `schema/type` |\n";
    let parsed = parse_docs(docs).expect("valid page");
    assert_eq!(parsed.codes, BTreeSet::from(["schema/type".to_string()]));
    assert_eq!(parsed.rules["compliance"], BTreeSet::from(["privileged".to_string()]));
}

#[test]
fn a_rule_the_scanner_cannot_read_is_refused() {
    let file = |text: &str| vec![(PathBuf::from("plugins/x/src/main.rs"), text.to_string())];
    let read = rules_in_source(&file(
        "const RULES: &[(&str, Check)] = &[(\"a\", a), (\"b\", b)];\n\
         fn f() { for (id, check) in RULES { Violation::on(o, id, format!(\"{x}, (y)\")); }\n\
         Violation::on(o, \"c\", \"m\").at(p); Violation { rule: \"d\".into(), message: m, ..Violation::default() }; }",
    ))
    .expect("readable rules");
    assert_eq!(read, ["a", "b", "c", "d"].into_iter().map(String::from).collect());
    for unreadable in [
        "fn f() { Violation::on(o, &name, \"m\"); }",
        "fn f() { Violation { rule: format!(\"r-{n}\"), ..Violation::default() }; }",
        "fn f() { Violation { message: m, ..Violation::default() }; }",
        "fn f() { v.rule = name; }",
    ] {
        let err = rules_in_source(&file(unreadable)).expect_err(unreadable);
        assert!(err.starts_with("plugins/x/src/main.rs:1:"), "{err}");
    }
}
