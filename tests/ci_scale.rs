//! CI past one job: the pull-request report under GitHub's comment limit at any size, every
//! report from one check, a matrix of shards for the touched environments, and one shard's
//! environments applied from a saved plan.
mod common;

use std::collections::BTreeSet;

use common::Fixture;
use serde_json::Value;

/// `count` ConfigMaps in one file of staging's layer.
fn config_maps(count: usize, keys: usize) -> String {
    let mut docs = String::new();
    for i in 0..count {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many-{i:05}\n  namespace: shop\ndata:\n"
        ));
        for k in 0..keys {
            docs.push_str(&format!("  KEY_{k}: \"value {k} of {i}\"\n"));
        }
    }
    docs
}

/// A change adding `count` maps to staging and retiring one; `broken`: with a Deployment whose
/// replicas are not a number (a schema finding blocks it).
fn large_change(count: usize, broken: bool) -> Fixture {
    let f = Fixture::standard();
    // Something to delete, so the summary has a riskiest change to put first.
    f.write(
        "environments/staging/old.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: retired\n  namespace: shop\n",
    );
    f.commit("feat: a map to retire");
    f.ok(&["apply", "--env", "staging", "--rev", "HEAD"], 0);
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.remove("environments/staging/old.yaml");
    f.write("environments/staging/many.yaml", &config_maps(count, 3));
    if broken {
        f.write("environments/staging/broken.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\n  namespace: shop\nspec:\n  replicas: many\n");
    }
    f.commit("feat: many maps");
    f
}

fn assert_summarised(md: &str, count: usize, full_report: Option<&str>) {
    assert!(md.len() <= cairn::report::COMMENT_LIMIT, "{} characters", md.len());
    assert!(md.contains("it is summarised"), "{}", &md[..1000]);
    assert!(md.contains(&format!("| ConfigMap | {count} | 0 | 1 |")), "the kind table counts every object");
    assert!(md.contains("| staging | ") && md.contains(" | 0 | 1 | "), "the environments' table");
    // The riskiest change comes first, and the list says how much it left out.
    let first = md.find("- **").expect("changes listed by name");
    assert!(md[first..].starts_with("- **delete** `ConfigMap shop/retired`"), "{}", &md[first..first + 200]);
    assert!(md.contains("more changed object(s) in staging"), "the list says what it left out");
    assert!(!md.contains("<details>"), "no stub per object");
    match full_report {
        Some(path) => assert!(md.contains(&format!("The full report is in `{path}`")), "names the full report"),
        None => {
            assert!(!md.contains("full report is in"), "no full report was written, so none is named");
            assert!(md.contains("`cairn check --out PLAN` also writes the full report"));
        }
    }
}

#[test]
fn the_report_is_summarised_under_the_limit_at_3000_objects() {
    let f = large_change(3000, false);
    let md = f.ok(&["check", "--base", "main", "--head", "feature"], 0);
    assert!(md.starts_with("## cairn check: ready to merge"), "{}", &md[..300]);
    assert_summarised(&md, 3000, None);
    let plan = f.join("plan.json");
    let md = f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan.to_str().expect("path")], 0);
    let full = f.join("plan.md").display().to_string();
    assert_summarised(&md, 3000, Some(&full));
    let full_text = f.read("plan.md");
    assert_eq!(full_text.matches("<details>").count(), 3001, "the full report has every object");
}

#[test]
fn the_report_is_summarised_under_the_limit_at_30000_objects() {
    let f = large_change(30_000, true);
    let md = f.ok(&["check", "--base", "main", "--head", "feature"], 1);
    assert!(md.starts_with("## cairn check: blocked by findings"), "{}", &md[..300]);
    // The finding that blocks the change is shown, before the changes by name.
    let finding = md.find("| error | `schema/type` | `Deployment.apps shop/broken`").expect("the blocking finding");
    assert!(finding < md.find("- **delete**").expect("changes by name"));
    assert!(md.contains("| Deployment.apps | 1 | 0 | 0 |"), "the kind table");
}

#[test]
fn a_report_slightly_over_the_limit_leaves_out_the_largest_diffs_and_points_nowhere_without_out() {
    let f = Fixture::standard();
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write("environments/staging/big.yaml", &config_maps(300, 12));
    f.commit("feat: many maps");
    let md = f.ok(&["check", "--base", "main", "--head", "feature"], 0);
    assert!(md.len() <= cairn::report::COMMENT_LIMIT, "{} characters", md.len());
    assert!(md.contains("diff(s) were left out, largest first"), "{}", &md[..600]);
    assert_eq!(md.matches("<details>").count(), 303, "every object keeps its line (the 300 maps and the base)");
    assert!(md.contains("-line diff left out here._"), "a stub in place of each diff left out");
    assert!(md.contains("`cairn plan --env ENV` shows one environment's diffs"), "the note says how to see them");
    assert!(!md.contains("full report is in"), "no report was written, so none is named");
}

/// A feature branch that changes both environments.
fn both_changed() -> Fixture {
    let f = Fixture::standard();
    f.ok(&["apply", "--env", "staging", "--env", "production", "--rev", "HEAD"], 0);
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write(
        "base/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\ndata:\n  A: \"1\"\n",
    );
    f.write("environments/staging/bad.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\n  namespace: shop\nspec:\n  replicas: many\n");
    f.commit("feat: extra map, a broken deployment");
    f
}

#[test]
fn one_check_writes_every_report_as_separate_runs_would() {
    let f = both_changed();
    let base = ["check", "--base", "main", "--head", "feature"];
    let dir = f.join("reports");
    let arg = |name: &str, format: &str| format!("{format}={}", dir.join(name).display());
    let reports = [arg("r.md", "markdown"), arg("r.sarif", "sarif"), arg("r.xml", "junit"), arg("r.json", "json")];
    let mut args: Vec<&str> = base.to_vec();
    for r in &reports {
        args.extend(["--report", r.as_str()]);
    }
    args.extend(["--report", "github"]);
    let stdout = f.ok(&args, 1);
    for (file, format) in [("r.md", "markdown"), ("r.sarif", "sarif"), ("r.xml", "junit"), ("r.json", "json")] {
        let separate = f.ok(&[&base[..], &["--format", format]].concat(), 1);
        assert_eq!(f.read(&format!("reports/{file}")), separate, "{format}");
    }
    assert_eq!(
        stdout,
        f.ok(&[&base[..], &["--format", "github"]].concat(), 1),
        "the report without a file is on stdout"
    );
    assert!(stdout.contains("::error"), "{stdout}");
}

#[test]
fn bad_report_arguments_are_refused_before_any_work_and_write_nothing() {
    let f = both_changed();
    let base = ["check", "--base", "main", "--head", "feature"];
    let (code, _, err) = f.run(&[&base[..], &["--report", "yaml"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`yaml` is not a report format of check") && err.contains("markdown"), "{err}");

    let (code, _, err) = f.run(&[&base[..], &["--report", "sarif="]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`sarif=` names no file"), "{err}");

    f.write("a-file", "x");
    let md = f.join("ok.md").display().to_string();
    let bad = format!("sarif={}", f.join("a-file/inside.sarif").display());
    let (code, _, err) = f.run(&[&base[..], &["--report", &format!("markdown={md}"), "--report", &bad]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be written") && err.contains("a-file"), "{err}");
    assert!(!f.join("ok.md").exists(), "no report is written when one cannot be");

    let (code, _, err) = f.run(&[&base[..], &["--report", "markdown", "--report", "sarif"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("would all go to stdout"), "{err}");

    let (code, _, err) =
        f.run(&[&base[..], &["--report", &format!("markdown={md}"), "--report", &format!("json={md}")]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already written by another report"), "{err}");

    let (code, _, err) = f.run(&[&base[..], &["--report", "markdown", "--format", "json"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

/// 300 environments of 1 to 30 objects each over a shared base; the change touches the 40
/// environments `env-100` … `env-139`.
fn many_environments() -> Fixture {
    let f = Fixture::new();
    let mut config = String::from("environments:\n");
    for i in 0..300 {
        config.push_str(&format!(
            "  env-{i:03}:\n    layers: [base, environments/env-{i:03}]\n    target: {{ local: {{ path: .cairn/live/env-{i:03} }} }}\n"
        ));
        f.write(&format!("environments/env-{i:03}/maps.yaml"), &config_maps(1 + (i * 7) % 30, 1));
    }
    f.write("cairn.yaml", &config);
    f.write(".gitignore", ".cairn/\n");
    f.write("base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    f.commit("feat: 300 environments");
    f.git(&["checkout", "-q", "-b", "feature"]);
    for i in 100..140 {
        let path = format!("environments/env-{i:03}/maps.yaml");
        f.write(
            &path,
            &(f.read(&path) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added\n  namespace: shop\n"),
        );
    }
    f.commit("feat: a map in 40 environments");
    f
}

#[test]
fn a_change_touching_every_environment_counts_every_layer_once() {
    // Over 64 environments the estimate reads every layer file in one parallel walk, at the
    // revision; the counts must be those of each environment's own files plus the base.
    let f = many_environments();
    f.git(&["checkout", "-q", "-b", "config", "main"]);
    f.write("cairn.yaml", &(f.read("cairn.yaml") + "# touched\n"));
    f.commit("chore: touch the configuration");
    let matrix = f.json(&["changes", "--base", "main", "--head", "config", "--format", "github-matrix"], 0);
    let shards = matrix["include"].as_array().expect("include");
    let environments: usize = shards.iter().map(|s| s["environments"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(environments, 300);
    let total: u64 = shards.iter().map(|s| s["objects"].as_u64().expect("objects")).sum();
    assert_eq!(total, (0..300u64).map(|i| 1 + 1 + (i * 7) % 30).sum::<u64>());
}

#[test]
fn the_matrix_balances_whole_environments_over_capped_shards_stably() {
    let f = many_environments();
    let args = ["changes", "--base", "main", "--head", "feature", "--format", "github-matrix", "--max-jobs", "8"];
    let out = f.ok(&args, 0);
    assert_eq!(out.lines().count(), 1, "one line, for a step output");
    let matrix: Value = serde_json::from_str(&out).expect("json");
    let shards = matrix["include"].as_array().expect("include");
    assert_eq!(shards.len(), 8);
    let mut seen = BTreeSet::new();
    let mut loads = Vec::new();
    for (k, shard) in shards.iter().enumerate() {
        assert_eq!(shard["shard"], k + 1);
        let envs: Vec<&str> =
            shard["environments"].as_array().expect("envs").iter().filter_map(Value::as_str).collect();
        let args: Vec<String> = envs.iter().map(|e| format!("--env {e}")).collect();
        assert_eq!(shard["env_args"], args.join(" "));
        for e in envs {
            assert!(seen.insert(e.to_string()), "{e} is in two shards");
        }
        loads.push(shard["objects"].as_u64().expect("objects"));
    }
    let expected: BTreeSet<String> = (100..140).map(|i| format!("env-{i:03}")).collect();
    assert_eq!(seen, expected, "exactly the touched environments");
    // Each environment has its own documents plus the base's Namespace: 1 + its maps.
    let total: u64 = (100..140u64).map(|i| 1 + 1 + (i * 7) % 30 + 1).sum();
    assert_eq!(loads.iter().sum::<u64>(), total);
    let (max, min) = (loads.iter().max().expect("loads"), loads.iter().min().expect("loads"));
    assert!(max - min <= 32, "balanced: {loads:?}");
    assert_eq!(f.ok(&args, 0), out, "the same change gives the same matrix");

    let all = f.json(&["changes", "--base", "main", "--head", "feature", "--format", "github-matrix"], 0);
    assert_eq!(all["include"].as_array().map(Vec::len), Some(40), "one shard per environment under the cap");

    for bad in ["0", "257"] {
        let (code, _, err) =
            f.run(&["changes", "--base", "main", "--head", "feature", "--format", "github-matrix", "--max-jobs", bad]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("give 1 to 256"), "{err}");
    }
}

#[test]
fn the_gitlab_pipeline_has_a_job_per_shard() {
    let f = many_environments();
    let out =
        f.ok(&["changes", "--base", "main", "--head", "feature", "--format", "gitlab-pipeline", "--max-jobs", "4"], 0);
    let pipeline: Value = serde_saphyr::from_str(&out).expect("yaml");
    assert_eq!(pipeline["include"][0]["local"], ".gitlab/cairn-shard.yml");
    for k in 1..=4 {
        let job = &pipeline[format!("cairn-shard-{k}")];
        assert_eq!(job["extends"], ".cairn-shard", "{out}");
        assert_eq!(job["variables"]["CAIRN_SHARD"], k.to_string());
        assert!(job["variables"]["CAIRN_ENV_ARGS"].as_str().expect("args").starts_with("--env env-1"), "{out}");
    }
    let none = f.ok(&["changes", "--base", "main", "--head", "main", "--format", "gitlab-pipeline"], 0);
    let pipeline: Value = serde_saphyr::from_str(&none).expect("yaml");
    assert!(pipeline["cairn-nothing-to-check"]["script"].is_array(), "{none}");
}

#[test]
fn check_and_apply_take_one_shard_of_environments() {
    let f = both_changed();
    f.remove("environments/staging/bad.yaml");
    f.commit("fix: no broken deployment");
    let md = f.ok(&["check", "--base", "main", "--head", "feature", "--env", "staging"], 0);
    assert!(md.contains("| staging |") && !md.contains("| production |"), "{md}");
    let (code, _, err) = f.run(&["check", "--base", "main", "--head", "feature", "--env", "nowhere"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nowhere"), "{err}");

    let plan = f.join("plan.json");
    let plan_arg = plan.to_str().expect("path");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan_arg], 0);
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
    let production = ".cairn/live/production/objects/ConfigMap.core/shop/extra.json";
    let staging = ".cairn/live/staging/objects/ConfigMap.core/shop/extra.json";

    let (code, _, err) = f.run(&["apply", "--plan", plan_arg, "--env", "qa"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the plan holds no environment `qa`") && err.contains("staging, production"), "{err}");

    let out = f.ok(&["apply", "--plan", plan_arg, "--env", "staging"], 0);
    assert!(out.contains("staging: release 2 succeeded") && !out.contains("production"), "{out}");
    assert!(f.join(staging).exists());
    assert!(!f.join(production).exists(), "production is untouched");
    let history = f.json(&["history", "--env", "production", "--format", "json"], 0);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "no release in production");

    // The plan's other environment is still applicable.
    let out = f.ok(&["apply", "--plan", plan_arg, "--env", "production"], 0);
    assert!(out.contains("production: release 2 succeeded"), "{out}");
    assert!(f.join(production).exists());
}
