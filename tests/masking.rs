//! Kubernetes Secret values never reach an output: not in render, plan, apply or check, in any
//! format, neither as plaintext nor as base64; changes still show as changed.
mod common;

use common::Fixture;

const PLAIN_OLD: &str = "old-hunter2-password";
const PLAIN_NEW: &str = "new-correct-horse-battery";
const B64_OLD: &str = "b2xkLWh1bnRlcjItcGFzc3dvcmQ=";
const B64_NEW: &str = "bmV3LWNvcnJlY3QtaG9yc2UtYmF0dGVyeQ==";

fn secret(b64: &str, plain: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ndata:\n  password: {b64}\n  same: c2FtZQ==\nstringData:\n  token: {plain}\n"
    )
}

fn assert_clean(what: &str, text: &str) {
    for s in [PLAIN_OLD, PLAIN_NEW, B64_OLD, B64_NEW, "c2FtZQ=="] {
        assert!(!text.contains(s), "{what} shows a secret ({s}):\n{text}");
    }
}

#[test]
fn secret_values_are_masked_in_every_output() {
    let f = Fixture::standard();
    f.write("base/secret.yaml", &secret(B64_OLD, PLAIN_OLD));
    f.commit("feat: a secret");
    for format in ["human", "json"] {
        assert_clean("render", &f.ok(&["render", "--format", format], 0));
    }
    for format in ["human", "json", "markdown"] {
        assert_clean("plan", &f.ok(&["plan", "--format", format], 0));
    }
    let applied = f.ok(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_clean("apply", &applied);
    // The target itself holds the real value: it is what gets applied.
    assert!(f.read(".cairn/live/staging/objects/Secret.core/shop/db.json").contains(B64_OLD));

    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write("base/secret.yaml", &secret(B64_NEW, PLAIN_NEW));
    f.commit("fix: rotate the password");
    let plan = f.ok(&["plan", "--env", "staging"], 0);
    assert_clean("plan of a change", &plan);
    assert!(plan.contains("/data/password: \"<secret: changed, fp:"), "the change is visible: {plan}");
    assert!(
        plan.contains("-  password: \"<secret: changed, fp:") && plan.contains("+  password: \"<secret: changed, fp:"),
        "{plan}"
    );
    assert!(
        !plan.lines().any(|l| l.trim_start().starts_with("-  same:") || l.trim_start().starts_with("+  same:")),
        "an unchanged value is not a diff line: {plan}"
    );
    assert!(plan.contains("same: \"<secret: unchanged, fp:"), "{plan}");
    let json = f.ok(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_clean("plan json", &json);
    let saved = f.join("plan.json");
    let report = f.ok(&["check", "--base", "main", "--head", "feature", "--out", saved.to_str().expect("path")], 0);
    assert_clean("check report", &report);
    assert_clean("saved plan", &f.read("plan.json"));
    assert_clean("full report", &f.read("plan.md"));
    assert_clean("check json", &f.ok(&["check", "--base", "main", "--head", "feature", "--format", "json"], 0));
    // The masked saved plan still applies on merge: digests are kept.
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge"]);
    let out = f.ok(&["apply", "--plan", saved.to_str().expect("path"), "--format", "json"], 0);
    assert_clean("apply --plan", &out);
    assert!(f.read(".cairn/live/staging/objects/Secret.core/shop/db.json").contains(B64_NEW));
}
