//! `cairn site`: the status site for people — its pages and their content, its refusals, that
//! no secret reaches it, and (in a real headless Chromium) that its index shows the matrix, every
//! link resolves and no page logs a console error.
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Fixture;

const PLAIN: &str = "site-hunter2-password";
const B64: &str = "c2l0ZS1odW50ZXIyLXBhc3N3b3Jk";

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n"
    )
}

/// Three environments and two workloads: all three applied at the first commit, then `web`
/// moves to 1.1.0 in dev and staging only.
fn three_environments() -> Fixture {
    let f = Fixture::new();
    let mut config = String::from("environments:\n");
    for env in ["dev", "staging", "production"] {
        config.push_str(&format!(
            "  {env}:\n    layers: [base]\n    target:\n      local: {{ path: .cairn/live/{env} }}\n"
        ));
    }
    f.write("cairn.yaml", &config);
    f.write(".gitignore", ".cairn/\nsite/\n");
    f.write("CODEOWNERS", "base/ @shop-team\n");
    f.write("base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    f.write("base/web.yaml", &deployment("web", "registry.example.org/web:1.0.0"));
    f.write("base/api.yaml", &deployment("api", "registry.example.org/api:2.0.0"));
    f.write(
        "base/secret.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ndata:\n  password: {B64}\nstringData:\n  token: {PLAIN}\n"),
    );
    f.commit("feat: web and api");
    f.ok(&["apply", "--env", "dev", "--env", "staging", "--env", "production", "--rev", "HEAD"], 0);
    f.write("base/web.yaml", &deployment("web", "registry.example.org/web:1.1.0"));
    f.commit("feat(web): 1.1.0");
    f.ok(&["apply", "--env", "dev", "--env", "staging", "--rev", "HEAD"], 0);
    f
}

fn pages(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).expect("under root").display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_site_shows_every_environment_side_by_side_with_history_notes_and_metrics() {
    let f = three_environments();
    let dir = f.join("site").display().to_string();
    let out = f.ok(&["site", "--out", &dir], 0);
    assert!(out.contains("Wrote the site (") && out.contains("index.html"), "{out}");
    let site = f.join("site");
    let written = pages(&site);
    for page in [
        "index.html",
        "metrics.html",
        "env/dev.html",
        "env/staging.html",
        "env/production.html",
        "env/dev/1.html",
        "env/dev/2.html",
        "env/production/1.html",
        ".cairn-site",
    ] {
        assert!(written.contains(page), "{page} missing from {written:?}");
    }
    let index = f.read("site/index.html");
    // The web row differs (production is behind); the api row does not.
    let web = index.lines().find(|l| l.contains("data-workload=\"Deployment.apps shop/web\"")).expect("web row");
    assert!(web.contains("class=\"differs\""), "{web}");
    assert!(
        web.contains("<td class=\"diff\" data-environment=\"production\">"),
        "production's cell is highlighted: {web}"
    );
    assert!(!web.contains("<td class=\"diff\" data-environment=\"staging\">"), "staging is as dev: {web}");
    assert!(
        web.contains("<code>1.1.0</code>") && web.contains("<code>1.0.0</code>") && web.contains("@shop-team"),
        "{web}"
    );
    let api = index.lines().find(|l| l.contains("data-workload=\"Deployment.apps shop/api\"")).expect("api row");
    assert!(!api.contains("class=\"differs\"") && !api.contains("class=\"diff\""), "{api}");
    assert!(index.contains("<b>staging</b> is 1 commit(s) ahead of <b>production</b>"), "{index}");
    assert!(index.contains("<b>dev</b> is 1 commit(s) ahead of <b>production</b>"), "{index}");
    assert!(
        !index.contains("ahead of <b>dev</b>") && !index.contains("ahead of <b>staging</b>"),
        "dev and staging run one commit: neither is ahead of the other"
    );
    // Dates for people: to the minute, no RFC 3339 with fractions of a second.
    let minute = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").expect("regex");
    let rfc3339 = regex::Regex::new(r"\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)").expect("regex");
    for page in ["index.html", "env/staging.html", "metrics.html"] {
        let text = f.read(&format!("site/{page}"));
        assert!(minute.is_match(&text), "{page} shows dates to the minute");
        assert!(!rfc3339.is_match(&text), "{page} shows a raw timestamp:\n{text}");
    }
    let staging = f.read("site/env/staging.html");
    assert!(staging.contains("<table id=\"releases\">") && staging.contains("href=\"staging/2.html\""), "{staging}");
    assert!(f.read("site/env/staging/2.html").contains("1.1.0"), "the notes of release 2 name the new version");
    assert!(f.read("site/metrics.html").contains("<svg"), "metrics with charts");
    // No page holds the secret, as plaintext or base64.
    for page in &written {
        let text = f.read(&format!("site/{page}"));
        assert!(!text.contains(PLAIN) && !text.contains(B64), "{page} shows the secret");
    }
    // Written again over itself: replaced whole.
    f.ok(&["site", "--out", &dir], 0);
    assert_eq!(pages(&site), written);
}

#[test]
fn a_directory_that_is_not_a_site_is_refused_and_left_alone() {
    let f = three_environments();
    f.write("docs-dir/keep.txt", "mine");
    let docs = f.join("docs-dir").display().to_string();
    let (code, out, err) = f.run(&["site", "--out", &docs]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("docs-dir") && err.contains("not made by cairn"), "{err}");
    assert_eq!(f.read("docs-dir/keep.txt"), "mine");
    assert_eq!(pages(&f.join("docs-dir")).len(), 1, "nothing written into it");
    let site = f.join("site").display().to_string();
    let (code, _, err) = f.run(&["site", "--out", &site, "--since", "soon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since `soon`"), "{err}");
    assert!(!f.join("site").exists());
}

fn chromium() -> String {
    std::env::var("CAIRN_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// Loads a page in headless Chromium: its DOM after load, and what the browser logged.
fn load(page: &Path) -> (String, String) {
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", page.parent().expect("dir").join("../.chromium-profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (scripts/test.sh installs Debian's chromium)");
    assert!(output.status.success(), "chromium {}: {}", page.display(), String::from_utf8_lossy(&output.stderr));
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn in_a_real_browser_the_index_shows_the_matrix_and_every_link_resolves() {
    let f = three_environments();
    let dir = f.join("site").display().to_string();
    f.ok(&["site", "--out", &dir], 0);
    let root = f.join("site").canonicalize().expect("site");
    let (dom, log) = load(&root.join("index.html"));
    // The DOM as the browser built it: two workload rows, a cell per environment in each.
    let row = regex::Regex::new(r#"<tr[^>]*data-workload="([^"]+)"[^>]*>(.*?)</tr>"#).expect("regex");
    let rows: Vec<(String, String)> = row.captures_iter(&dom).map(|c| (c[1].to_string(), c[2].to_string())).collect();
    assert_eq!(rows.len(), 2, "{dom}");
    for (_, cells) in &rows {
        assert_eq!(cells.matches("data-environment=").count(), 3, "{cells}");
    }
    let web = &rows.iter().find(|(w, _)| w == "Deployment.apps shop/web").expect("web").1;
    assert!(web.contains(r#"<td class="diff" data-environment="production">"#), "{web}");
    assert!(!log.contains("CONSOLE"), "the index logged to the console:\n{log}");

    // Every page reachable from the index loads without a console message, and every link in it
    // names a file of the site (no page links outside it: the site is self-contained).
    // Links and any asset a page loads (the console does not report a missing file).
    let href = regex::Regex::new(r##"(?:href|src)="([^"#]+)""##).expect("regex");
    let mut seen = BTreeSet::new();
    let mut queue = vec![root.join("index.html")];
    while let Some(page) = queue.pop() {
        if !seen.insert(page.clone()) {
            continue;
        }
        let (dom, log) = if page.ends_with("index.html") { (dom.clone(), log.clone()) } else { load(&page) };
        assert!(!log.contains("CONSOLE"), "{} logged to the console:\n{log}", page.display());
        for link in href.captures_iter(&dom) {
            let target: PathBuf = page.parent().expect("dir").join(&link[1]);
            let target =
                target.canonicalize().unwrap_or_else(|_| panic!("{}: broken link {}", page.display(), &link[1]));
            assert!(target.starts_with(&root), "{}: {} leaves the site", page.display(), &link[1]);
            queue.push(target);
        }
    }
    assert!(seen.len() >= 8, "followed {seen:?}");

    // A picture for people, under target/.
    let shot = PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/../site-index.png"));
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900"])
        .arg(format!("--user-data-dir={}", root.join("../.chromium-profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", root.join("index.html").display()))
        .output()
        .expect("chromium");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "a screenshot at {}", shot.display());
}
