//! SOPS files in the configuration repository go through the whole pipeline: decrypted for
//! validation, policies, plans and applies, and never shown — not the plaintext and not its
//! base64 — in any command's output, format, log, report, saved plan, release record or plugin
//! input. Files are encrypted by the real sops with a key from the real age-keygen.
mod common;

use common::{Fixture, b64};

const PASSWORD: &str = "db-pass-7f3c9e1a-hunter2";
const TOKEN: &str = "api-token-4b8d2f60-swordfish";
const API_KEY: &str = "stripe-key-9e7a5c31-opensesame";
const NEW_API_KEY: &str = "stripe-key-rotated-2d4f6a8c";

/// Every form of every secret value the test knows.
fn forbidden() -> Vec<String> {
    [PASSWORD, TOKEN, API_KEY, NEW_API_KEY].iter().flat_map(|s| [s.to_string(), b64(s)]).collect()
}

fn assert_clean(what: &str, text: &str) {
    for s in forbidden() {
        assert!(!text.contains(&s), "{what} shows a secret ({s}):\n{text}");
    }
}

/// A repository with an encrypted Secret and an encrypted value in a ConfigMap, and the key
/// (outside the repository) in CAIRN_AGE_KEY_FILE.
fn fixture() -> (Fixture, tempfile::TempDir, String) {
    let f = Fixture::standard();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(
        ".sops.yaml",
        &format!("creation_rules:\n  - age: {public}\n    encrypted_regex: ^(password|token|api_key)$\n"),
    );
    f.write(
        "base/db-secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: {PASSWORD}\ndata:\n  token: {}\n",
            b64(TOKEN)
        ),
    );
    f.write(
        "base/credentials.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: credentials\n  namespace: shop\ndata:\n  api_key: {API_KEY}\n  region: eu-west-1\n"
        ),
    );
    common::sops_encrypt(f.path(), &f.join("base/db-secret.yaml"), &[]);
    common::sops_encrypt(f.path(), &f.join("base/credentials.yaml"), &[]);
    assert_clean("the encrypted files", &(f.read("base/db-secret.yaml") + &f.read("base/credentials.yaml")));
    f.commit("feat: database and payment credentials");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    (f, keys, public)
}

fn live(f: &Fixture, rel: &str) -> serde_json::Value {
    serde_json::from_str(&f.read(&format!(".cairn/live/staging/objects/{rel}"))).expect("live object")
}

/// Every file under a directory, concatenated (release records, inventory).
fn read_tree(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out += &read_tree(&path);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out += &text;
        }
    }
    out
}

#[test]
fn decrypted_values_are_applied_and_never_shown() {
    let (f, _keys, _) = fixture();
    for format in ["human", "json"] {
        assert_clean("render", &f.ok(&["render", "--format", format], 0));
    }
    let rendered = f.json(&["render", "--env", "staging", "--format", "json"], 0);
    let objects = rendered[0]["objects"].as_array().expect("objects");
    let credentials = &objects.iter().find(|o| o["id"]["name"] == "credentials").expect("rendered")["body"];
    assert!(credentials["data"]["api_key"].as_str().expect("marker").starts_with("<secret: fp:"), "{credentials}");
    assert_eq!(credentials["data"]["region"], "eu-west-1", "values the rule leaves plain stay visible");
    for format in ["human", "json", "sarif", "junit", "github"] {
        let (_, out, err) = f.run(&["validate", "--format", format]);
        assert_clean("validate", &(out + &err));
    }
    for format in ["human", "json", "markdown"] {
        assert_clean("plan", &f.ok(&["plan", "--format", format], 0));
    }
    // Logs at the most verbose level.
    let out = f.cairn().args(["plan", "--env", "staging"]).env("CAIRN_LOG", "trace").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_clean("trace logs", &String::from_utf8_lossy(&out.stderr));

    assert_clean("apply", &f.ok(&["apply", "--env", "staging", "--format", "json"], 0));
    // The target gets the plaintext: it is what is applied.
    assert_eq!(live(&f, "Secret.core/shop/db.json")["stringData"]["password"], PASSWORD);
    assert_eq!(live(&f, "Secret.core/shop/db.json")["data"]["token"], b64(TOKEN));
    assert_eq!(live(&f, "ConfigMap.core/shop/credentials.json")["data"]["api_key"], API_KEY);
    assert!(!live(&f, "ConfigMap.core/shop/credentials.json").to_string().contains("sops"));
    let state = read_tree(&f.join(".cairn/live/staging/.cairn"));
    assert_clean("release records and inventory", &state);
    let dir = f.join(".cairn/live/staging/.cairn/releases");
    let first = std::fs::read_dir(&dir).expect("releases").flatten().next().expect("a record").path();
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(first).expect("read")).expect("json");
    for o in record["objects"].as_array().expect("objects") {
        let digest = o["digest"].as_str().expect("digest");
        let secret = o["object"]["kind"] == "Secret" || o["object"]["name"] == "credentials";
        assert_eq!(digest.starts_with("hmac-sha256:"), secret, "{o}");
    }
    assert_clean("history", &f.ok(&["history", "--env", "staging", "--format", "json"], 0));
    assert_clean("status", &f.ok(&["status", "--format", "json"], 0));
    assert_clean("notes", &f.ok(&["notes", "--env", "staging"], 0));
    let out = f.ok(&["plan", "--env", "staging", "--detailed-exitcode"], 0);
    assert!(out.contains("No changes."), "decrypting again gives the same objects: {out}");

    // A change of an encrypted value, made with `cairn secrets edit`, shows as changed.
    f.git(&["checkout", "-q", "-b", "feature"]);
    let editor = f.join("editor.sh");
    std::fs::write(&editor, format!("#!/bin/sh\nsed -i 's/{API_KEY}/{NEW_API_KEY}/' \"$1\"\n")).expect("write");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let before = f.read("base/credentials.yaml");
    let out = f
        .cairn()
        .args(["secrets", "edit"])
        .arg(f.join("base/credentials.yaml"))
        .env("EDITOR", &editor)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&editor).expect("remove");
    let after = f.read("base/credentials.yaml");
    assert_clean("the edited file", &after);
    let line = |t: &str, k: &str| t.lines().find(|l| l.trim_start().starts_with(k)).map(str::to_string);
    assert_eq!(line(&before, "region:"), line(&after, "region:"));
    f.commit("fix: rotate the payment key");

    let plan = f.ok(&["plan", "--env", "staging"], 0);
    assert_clean("plan of the change", &plan);
    assert!(plan.contains("/data/api_key: \"<secret: changed, fp:"), "{plan}");
    let saved = f.join("plan.json");
    let saved_arg = saved.to_str().expect("path");
    for format in ["markdown", "json", "sarif", "junit", "github", "human"] {
        let (code, out, err) =
            f.run(&["check", "--base", "main", "--head", "feature", "--out", saved_arg, "--format", format]);
        assert_eq!(code, 0, "{err}");
        assert_clean("check", &(out + &err));
    }
    assert_clean("saved plan", &f.read("plan.json"));
    assert_clean("full report", &f.read("plan.md"));
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
    assert_clean("apply --plan", &f.ok(&["apply", "--plan", saved_arg, "--format", "json"], 0));
    assert_eq!(live(&f, "ConfigMap.core/shop/credentials.json")["data"]["api_key"], NEW_API_KEY);
    assert_clean("notes of the change", &f.ok(&["notes", "--env", "staging", "--format", "json"], 0));
    assert_clean("state after the change", &read_tree(&f.join(".cairn/live/staging/.cairn")));

    // Once the object leaves git, the inventory still knows which live values are secret.
    f.remove("base/credentials.yaml");
    f.commit("chore: drop the payment credentials");
    let plan = f.ok(&["plan", "--env", "staging", "--format", "json"], 0);
    assert_clean("plan of a delete", &plan);
    assert!(plan.contains("<secret: fp:"), "{plan}");
}

#[test]
fn policy_plugins_see_markers_not_decrypted_values() {
    let (f, _keys, _) = fixture();
    let echo = wat::parse_str(common::ECHO_PLUGIN_WAT).expect("valid WAT");
    std::fs::create_dir_all(f.join("plugins")).expect("mkdir");
    std::fs::write(f.join("plugins/echo.wasm"), echo).expect("write");
    f.write("cairn.yaml", &format!("{}policies:\n  - name: echo\n    plugin: plugins/echo.wasm\n", common::CONFIG));
    f.commit("an echo policy");
    let (code, _, err) = f.run(&["validate", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains(r#""name":"credentials""#) && err.contains("api_key"), "the plugin saw the objects: {err}");
    assert!(err.contains("eu-west-1") && err.contains("<secret:"), "{err}");
    assert_clean("plugin input", &err);
}

#[test]
fn tampered_or_unopenable_files_stop_everything_without_a_trace_of_plaintext() {
    let (f, _keys, public) = fixture();
    f.ok(&["apply", "--env", "staging"], 0);
    let live_before = read_tree(&f.join(".cairn/live/staging/objects"));

    // A plain value edited by hand breaks the MAC.
    let text = f.read("base/credentials.yaml");
    f.write("base/credentials.yaml", &text.replace("region: eu-west-1", "region: us-east-1"));
    f.commit("edit by hand");
    for args in [&["plan", "--env", "staging"][..], &["apply", "--env", "staging"], &["validate"], &["render"]] {
        let (code, out, err) = f.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("base/credentials.yaml") && err.contains("MAC mismatch"), "{args:?}: {err}");
        assert_clean("MAC error", &(out + &err));
    }
    assert_eq!(read_tree(&f.join(".cairn/live/staging/objects")), live_before, "nothing was applied");
    f.write("base/credentials.yaml", &text);
    f.commit("restore");

    // A malformed ENC value.
    let broken = text.replacen("ENC[AES256_GCM,data:", "ENC[AES256_GCM,dta:", 1);
    f.write("base/credentials.yaml", &broken);
    f.commit("damaged");
    let (code, _, err) = f.run(&["plan", "--env", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("base/credentials.yaml") && err.contains("missing `data`"), "{err}");
    f.write("base/credentials.yaml", &text);
    f.commit("restore again");

    // No key that opens the file: its recipients and every place cairn looked are named.
    let other = tempfile::tempdir().expect("tempdir");
    let (other_key, _) = common::age_keygen(&other.path().join("other.txt"));
    let out = f
        .cairn()
        .args(["plan", "--env", "staging"])
        .env("CAIRN_AGE_KEY_FILE", &other_key)
        .env("SOPS_AGE_KEY", "")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&public) && err.contains("CAIRN_AGE_KEY_FILE"), "{err}");
    let out = f.cairn().args(["plan", "--env", "staging"]).env_remove("CAIRN_AGE_KEY_FILE").output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no age key was found") && err.contains("SOPS_AGE_KEY_FILE"), "{err}");

    // Notes and status need no keys: they never show a value.
    let out = f.cairn().args(["status"]).env_remove("CAIRN_AGE_KEY_FILE").output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
