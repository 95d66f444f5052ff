//! The module graph of `docs/architecture.md` holds: every module under `src/` imports only
//! modules of a lower layer, and every module is in the table.

use std::collections::BTreeMap;
use std::path::Path;

/// `module → layer`, from the table under "Which module may use which".
fn layers(doc: &str) -> BTreeMap<String, usize> {
    let section = doc.split("## Which module may use which").nth(1).expect("the layer section");
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(layer) = cells.first().and_then(|c| c.parse::<usize>().ok()) else { continue };
        for module in cells[1].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(out.insert(module.to_string(), layer).is_none(), "`{module}` is listed twice");
        }
    }
    assert!(out.len() > 10, "the layer table was not found: {out:?}");
    out
}

/// The top-level modules of `src/` (files and directories; not `lib` or `main`), each with the
/// other top-level modules its non-test code names as `crate::X` or `crate::{X, …}`.
fn imports(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let single = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").expect("regex");
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").expect("regex");
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let top = rel.components().next().expect("a component").as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        // Tests may reach anywhere; only the code that ships is held to the graph.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let entry = out.entry(top.clone()).or_default();
        let mut add = |name: &str| {
            let name = name.trim().split("::").next().unwrap_or_default().trim();
            if !name.is_empty() && name != top && name != "self" {
                entry.entry(name.to_string()).or_insert_with(|| rel.display().to_string());
            }
        };
        for m in single.captures_iter(code) {
            add(&m[1]);
        }
        for m in group.captures_iter(code) {
            m[1].split(',').for_each(&mut add);
        }
    }
    out
}

#[test]
fn modules_import_only_from_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let layers = layers(&doc);
    let graph = imports(&root.join("src"));
    let mut problems = Vec::new();
    for (module, uses) in &graph {
        let Some(&own) = layers.get(module) else {
            problems.push(format!("`{module}` is not in docs/architecture.md's layer table"));
            continue;
        };
        for (used, file) in uses {
            // Names that are not modules of this crate (re-exported types such as `crate::Error`).
            let Some(&theirs) = layers.get(used) else {
                assert!(!graph.contains_key(used), "`{used}` (used in {file}) is a module but not in the layer table");
                continue;
            };
            if theirs >= own {
                problems.push(format!(
                    "{file}: `{module}` (layer {own}) uses `{used}` (layer {theirs}); a module may use only lower layers"
                ));
            }
        }
    }
    for module in layers.keys() {
        if !graph.contains_key(module) {
            problems.push(format!("docs/architecture.md lists `{module}`, which is not a module under src/"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_parser_sees_grouped_imports_and_skips_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.rs"), "use crate::{b, c::D};\n#[cfg(test)]\nmod t { use crate::e; }\n")
        .expect("write");
    let graph = imports(dir.path());
    let uses: Vec<&String> = graph["a"].keys().collect();
    assert_eq!(uses, ["b", "c"]);
}
