//! `cairn promote`: a verified, soaked staging release's image promoted into production's own
//! overlay (a plain patch, and a kustomization's `images:`), committed on a new branch through
//! gix and checked with the real git; refusals before verification and before the soak time.

mod common;

use common::Fixture;
use serde_json::Value;

const PRODUCTION_PATCH: &str = "# Production runs more replicas than the base.\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web   # the storefront\n  namespace: shop\nspec:\n  replicas: 4\n  template:\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:1.0.0    # promoted from staging\n          resources: { limits: { memory: 512Mi } }\n";

fn config(production: &str) -> String {
    format!(
        "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    verify:\n      - {{ name: smoke, command: [sh, -c, 'exit 0'] }}\n  production:\n{production}"
    )
}

const PLAIN_PRODUCTION: &str = "    layers: [base, environments/production]\n    target:\n      local: { path: .cairn/live/production }\n    promotion: { from: staging, require: verified, soak: 1h }\n";

fn fixture() -> Fixture {
    let f = Fixture::standard();
    f.write("cairn.yaml", &config(PLAIN_PRODUCTION));
    f.write("environments/production/patch.yaml", PRODUCTION_PATCH);
    f.write(
        "environments/staging/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:2.0.0\n",
    );
    f.commit("feat: web 2.0.0 on staging");
    f
}

/// Moves a release's end back by `hours`, as if it had been current that long.
fn age(f: &Fixture, env: &str, id: u64, hours: i64) {
    let path = f.join(&format!(".cairn/live/{env}/.cairn/releases/{id:06}.json"));
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let end = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(hours)).expect("time");
    r["finished_at"] = Value::from(end.to_string());
    r["started_at"] = Value::from(end.to_string());
    std::fs::write(&path, serde_json::to_string_pretty(&r).expect("json")).expect("write");
}

#[test]
fn a_verified_soaked_image_is_promoted_into_the_overlay_on_a_new_branch() {
    let f = fixture();
    let head = f.git(&["rev-parse", "HEAD"]);

    let (code, out, _) = f.run(&["promote", "--to", "production"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("staging has no verified release to promote"), "{out}");
    f.ok(&["apply", "--env", "staging"], 0);
    let (code, out, _) = f.run(&["promote", "--to", "production"]);
    assert_eq!(code, 1);
    assert!(out.contains("was never verified; run `cairn verify --env staging`"), "{out}");
    f.ok(&["verify", "--env", "staging"], 0);
    let v = f.json(&["promote", "--to", "production", "--format", "json"], 1);
    assert_eq!(v["result"], "refused");
    assert!(v["reason"].as_str().expect("reason").contains("the soak time is 1h (promote again after"), "{v}");

    age(&f, "staging", 1, 2);
    let dry = f.ok(&["promote", "--to", "production", "--dry-run"], 0);
    assert!(dry.contains("production: would promote 1 value(s) from staging release 1"), "{dry}");
    assert!(dry.contains("-          image: example.org/web:1.0.0    # promoted from staging"), "{dry}");
    assert!(dry.contains("+          image: example.org/web:2.0.0    # promoted from staging"), "{dry}");
    assert_eq!(f.git(&["branch", "--list", "cairn/*"]), "", "a dry run commits nothing");

    let v = f.json(&["promote", "--to", "production", "--format", "json"], 0);
    assert_eq!(v["result"], "promoted");
    let branch = v["branch"].as_str().expect("branch").to_string();
    assert_eq!(branch, "cairn/promote-production-from-staging-1");
    assert_eq!(v["changes"][0]["old"], "example.org/web:1.0.0");
    assert_eq!(v["changes"][0]["new"], "example.org/web:2.0.0");
    assert_eq!(v["changes"][0]["file"], "environments/production/patch.yaml");
    assert_eq!(v["changes"][0]["line"], 13);
    assert_eq!(v["source"]["verdict"], "passed");

    // The commit, checked with git: only the image changed, byte for byte; nothing else moved.
    assert_eq!(f.git(&["rev-parse", "HEAD"]), head, "the current branch is untouched");
    assert_eq!(f.git(&["rev-parse", &format!("{branch}^")]), head);
    let committed = f.git(&["show", &format!("{branch}:environments/production/patch.yaml")]);
    assert_eq!(format!("{committed}\n"), PRODUCTION_PATCH.replace("web:1.0.0", "web:2.0.0"));
    assert_eq!(f.git(&["diff", "--name-only", &head, &branch]), "environments/production/patch.yaml");
    let message = f.git(&["log", "-1", "--format=%B", &branch]);
    assert!(message.starts_with("promote production: 1 value(s) from staging release 1"), "{message}");
    assert!(
        message
            .contains("Deployment.apps/shop/web container web image: example.org/web:1.0.0 -> example.org/web:2.0.0")
            || message.contains("container web image: example.org/web:1.0.0 -> example.org/web:2.0.0"),
        "{message}"
    );
    assert!(message.contains("Evidence: staging release 1") && message.contains("verification passed"), "{message}");
    f.git(&["fsck", "--no-progress"]);
    assert_eq!(f.read("environments/production/patch.yaml"), PRODUCTION_PATCH, "the work tree is untouched");

    // Again: the branch exists (exit 2); once merged there is nothing left to promote (exit 1).
    let (code, _, err) = f.run(&["promote", "--to", "production"]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    f.git(&["merge", "-q", "--ff-only", &branch]);
    let (code, out, _) = f.run(&["promote", "--to", "production"]);
    assert_eq!(code, 1);
    assert!(out.contains("nothing to promote"), "{out}");
}

#[test]
fn an_image_is_promoted_into_a_kustomization_images_entry() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &config("    layers: [overlays/production]\n    target:\n      local: { path: .cairn/live/production }\n    promotion: { from: staging, require: applied }\n"),
    );
    f.write("kbase/kustomization.yaml", "resources:\n  - app.yaml\n");
    f.write("kbase/app.yaml", &f.read("base/app.yaml"));
    let kustomization = "# production overlay\nresources:\n  - ../../kbase\nimages:\n  - name: example.org/web\n    newTag: \"1.0.0\"   # set by cairn promote\n";
    f.write("overlays/production/kustomization.yaml", kustomization);
    f.write(
        "environments/staging/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: example.org/web:2.1.0\n",
    );
    f.commit("feat: kustomize production");
    f.ok(&["apply", "--env", "staging"], 0);
    let v = f.json(&["promote", "--to", "production", "--format", "json"], 0);
    assert_eq!(v["changes"][0]["file"], "overlays/production/kustomization.yaml");
    let branch = v["branch"].as_str().expect("branch");
    let committed = f.git(&["show", &format!("{branch}:overlays/production/kustomization.yaml")]);
    assert_eq!(format!("{committed}\n"), kustomization.replace("\"1.0.0\"", "\"2.1.0\""));
    // The promoted branch renders the new image in production.
    let rendered = f.ok(&["render", "--env", "production", "--rev", branch], 0);
    assert!(rendered.contains("image: example.org/web:2.1.0"), "{rendered}");
}

#[test]
fn promotion_bad_input() {
    let f = fixture();
    let (code, _, err) = f.run(&["promote", "--to", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("environment `staging` has no `promotion` rule"), "{err}");

    f.write("cairn.yaml", &config(&PLAIN_PRODUCTION.replace("from: staging", "from: stagin")));
    f.commit("ci: typo");
    let (code, _, err) = f.run(&["promote", "--to", "production"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`promotion.from` names `stagin`, which is not an environment; did you mean `staging`?"),
        "{err}"
    );

    // The image comes from the shared base only: there is no production file to edit.
    f.write("cairn.yaml", &config(&PLAIN_PRODUCTION.replace("require: verified, soak: 1h", "require: applied")));
    f.write(
        "environments/production/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 4\n",
    );
    f.commit("ci: production without its own image");
    f.ok(&["apply", "--env", "staging"], 0);
    let (code, _, err) = f.run(&["promote", "--to", "production"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not set in any of production's own layers (it comes from base/app.yaml"), "{err}");
    assert_eq!(f.git(&["branch", "--list", "cairn/*"]), "");
}
