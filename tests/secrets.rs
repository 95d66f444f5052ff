//! SOPS files written by the real `sops` (age keys made by the real `age-keygen`) decrypt in
//! cairn; tampering and missing keys are refused without printing any secret. The tools are
//! installed by scripts/test.sh; CAIRN_TEST_SOPS names the sops binary (else `sops` on PATH).
mod common;

use std::process::Command;

use serde_json::{Value, json};

struct Tools {
    dir: tempfile::TempDir,
    sops: String,
}

impl Tools {
    fn new() -> Tools {
        Tools { dir: tempfile::tempdir().expect("tempdir"), sops: common::sops() }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A key file from the real age-keygen; returns (file, public key).
    fn keygen(&self, name: &str) -> (std::path::PathBuf, String) {
        common::age_keygen(&self.path(name))
    }

    /// Encrypts `plain` (written to `name`) with the real sops and extra arguments.
    fn encrypt(&self, name: &str, plain: &str, args: &[&str]) -> std::path::PathBuf {
        let file = self.path(name);
        std::fs::write(&file, plain).expect("write");
        common::sops_encrypt(self.dir.path(), &file, args);
        file
    }
}

/// Runs `cairn ARGS FILE` with extra environment variables; returns (exit code, stdout, stderr).
fn cairn_on(args: &[&str], file: &std::path::Path, env: &[(&str, &std::ffi::OsStr)]) -> (Option<i32>, String, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("cairn").expect("binary");
    cmd.args(args).arg(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cairn");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cairn_decrypt(file: &std::path::Path, key_files: &[&std::path::Path]) -> (i32, String, String) {
    let keys: Vec<String> = key_files.iter().map(|k| std::fs::read_to_string(k).expect("key")).collect();
    let out = assert_cmd::Command::cargo_bin("cairn")
        .expect("binary")
        .args(["secrets", "decrypt", "--format", "json"])
        .arg(file)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("CAIRN_AGE_KEY_FILE")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .env("SOPS_AGE_KEY", keys.join("\n"))
        .output()
        .expect("run cairn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
stringData:
  password: hunter2-plaintext
  port: 5432
  ratio: 1.5
  enabled: true
  hosts: [primary.db, replica.db]
  nested:
    deep: value
  empty: \"\"
";

fn expected() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
        "stringData": {"password": "hunter2-plaintext", "port": 5432, "ratio": 1.5, "enabled": true,
            "hosts": ["primary.db", "replica.db"], "nested": {"deep": "value"}, "empty": ""}})
}

#[test]
fn files_written_by_sops_decrypt_in_cairn() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let file = t.encrypt("secret.yaml", SECRET, &["--age", &public, "--encrypted-regex", "^(data|stringData)$"]);
    assert!(!std::fs::read_to_string(&file).expect("read").contains("hunter2"), "sops encrypted it");
    let (code, out, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());

    // Every value encrypted (the default rule), and a JSON file.
    let all = t.encrypt("all.yaml", SECRET, &["--age", &public]);
    let (code, out, err) = cairn_decrypt(&all, &[&key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());
    let json_file = t.encrypt("secret.json", &expected().to_string(), &["--age", &public]);
    let (code, out, err) = cairn_decrypt(&json_file, &[&key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());
}

#[test]
fn mac_only_encrypted_and_suffix_rules() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    std::fs::write(
        t.path(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: secret\\.yaml$\n    age: {public}\n    encrypted_regex: ^(password|deep)$\n    mac_only_encrypted: true\n"),
    )
    .expect("write .sops.yaml");
    let file = t.encrypt("secret.yaml", SECRET, &[]);
    assert!(std::fs::read_to_string(&file).expect("read").contains("mac_only_encrypted: true"));
    let (code, out, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());
    std::fs::remove_file(t.path(".sops.yaml")).expect("remove .sops.yaml");
    let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  token_unencrypted: visible\n  token: hidden-value\n";
    let file = t.encrypt("suffix.yaml", plain, &["--age", &public, "--unencrypted-suffix", "_unencrypted"]);
    let (code, out, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["stringData"],
        json!({"token_unencrypted": "visible", "token": "hidden-value"})
    );
}

#[test]
fn key_groups_need_the_threshold() {
    let t = Tools::new();
    let keys: Vec<_> = (0..3).map(|i| t.keygen(&format!("k{i}.txt"))).collect();
    let groups: String = keys.iter().map(|(_, public)| format!("      - age: [{public}]\n")).collect();
    std::fs::write(
        t.path(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: .*\n    shamir_threshold: 2\n    key_groups:\n{groups}"),
    )
    .expect("write .sops.yaml");
    let file = t.encrypt("grouped.yaml", SECRET, &[]);
    let (code, out, err) = cairn_decrypt(&file, &[&keys[0].0, &keys[2].0]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());
    let (code, _, err) = cairn_decrypt(&file, &[&keys[1].0]);
    assert_eq!(code, 2);
    assert!(err.contains("only 1 of the 2 key groups needed could be opened"), "{err}");
}

#[test]
fn tampering_and_wrong_keys_are_refused_without_leaking() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let (other, _) = t.keygen("other.txt");
    let file = t.encrypt("secret.yaml", SECRET, &["--age", &public, "--encrypted-regex", "^(data|stringData)$"]);

    let (code, out, err) = cairn_decrypt(&file, &[&other]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("no age key opens this file: it is encrypted for") && err.contains(&public), "{err}");

    // An unencrypted value edited by hand: the MAC no longer matches.
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("namespace: shop", "namespace: evil")).expect("write");
    let (code, out, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 2);
    assert!(out.is_empty() && err.contains("MAC mismatch"), "{err}");

    // A ciphertext moved to another key fails authentication (its path is its associated data).
    let moved = text.replace("    password: ENC", "    passw0rd: ENC");
    std::fs::write(&file, moved).expect("write");
    let (code, _, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 2);
    assert!(err.contains("/stringData/passw0rd") && err.contains("authentication failed"), "{err}");
    assert!(!err.contains("hunter2"), "no plaintext in errors: {err}");
}

#[test]
fn several_files_decrypt_in_one_call() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let a = t.encrypt("a.yaml", SECRET, &["--age", &public, "--encrypted-regex", "^(data|stringData)$"]);
    let b = t.encrypt("b.yaml", &SECRET.replace("name: db", "name: other"), &["--age", &public]);
    let out = assert_cmd::Command::cargo_bin("cairn")
        .expect("binary")
        .args(["secrets", "decrypt", "--format", "json"])
        .args([&a, &b])
        .env("SOPS_AGE_KEY_FILE", &key)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[a.display().to_string()], expected());
    assert_eq!(v[b.display().to_string()]["metadata"]["name"], "other");
}

#[test]
fn files_written_by_cairn_decrypt_with_sops() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    std::fs::write(
        t.path(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {public}\n    encrypted_regex: ^(data|stringData)$\n  - path_regex: \\.json$\n    age: [{public}]\n"),
    )
    .expect("write .sops.yaml");
    for (name, text) in [("secret.yaml", SECRET.to_string()), ("secret.json", expected().to_string())] {
        let file = t.path(name);
        std::fs::write(&file, &text).expect("write");
        let (code, _, err) = cairn_on(&["secrets", "encrypt"], &file, &[]);
        assert_eq!(code, Some(0), "{err}");
        let written = std::fs::read_to_string(&file).expect("read");
        assert!(!written.contains("hunter2"), "{name} holds no plaintext");
        let sops = Command::new(&t.sops)
            .args(["decrypt", "--output-type", "json"])
            .arg(&file)
            .env("SOPS_AGE_KEY_FILE", &key)
            .output()
            .expect("run sops");
        assert!(sops.status.success(), "sops cannot read {name}: {}", String::from_utf8_lossy(&sops.stderr));
        assert_eq!(serde_json::from_slice::<Value>(&sops.stdout).expect("json"), expected(), "{name}");
        // And cairn reads its own output.
        let (code, out, err) = cairn_decrypt(&file, &[&key]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());
    }
    // Encrypting twice is refused rather than double-encrypting.
    let (code, _, err) = cairn_on(&["secrets", "encrypt"], &t.path("secret.yaml"), &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already encrypted"), "{err}");
}

#[test]
fn rotate_and_updatekeys_keep_the_file_readable_by_sops() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let (second, second_public) = t.keygen("second.txt");
    let file = t.encrypt("secret.yaml", SECRET, &["--age", &public, "--encrypted-regex", "^(data|stringData)$"]);
    let before = std::fs::read_to_string(&file).expect("read");
    let run = |args: &[&str], keys: &std::path::Path| {
        let out = assert_cmd::Command::cargo_bin("cairn")
            .expect("binary")
            .args(args)
            .arg(&file)
            .env("SOPS_AGE_KEY_FILE", keys)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["secrets", "rotate"], &key);
    let rotated = std::fs::read_to_string(&file).expect("read");
    assert_ne!(before, rotated, "new data key, new ciphertexts");
    assert!(rotated.contains("encrypted_regex"), "the rule is kept");
    let (code, out, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());

    std::fs::write(t.path(".sops.yaml"), format!("creation_rules:\n  - age: {public},{second_public}\n"))
        .expect("write");
    run(&["secrets", "updatekeys"], &key);
    let sops = Command::new(&t.sops)
        .args(["decrypt", "--output-type", "json"])
        .arg(&file)
        .env("SOPS_AGE_KEY_FILE", &second)
        .output()
        .expect("sops");
    assert!(sops.status.success(), "the new recipient opens it with sops: {}", String::from_utf8_lossy(&sops.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&sops.stdout).expect("json"), expected());
}

/// The real sops decrypts `file` as JSON with these key files.
fn sops_decrypt(t: &Tools, file: &std::path::Path, keys: &[&std::path::Path]) -> std::process::Output {
    let keys: Vec<String> = keys.iter().map(|k| std::fs::read_to_string(k).expect("key")).collect();
    Command::new(&t.sops)
        .args(["decrypt", "--output-type", "json"])
        .arg(file)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .env("SOPS_AGE_KEY", keys.join("\n"))
        .output()
        .expect("run sops")
}

#[test]
fn key_groups_written_by_cairn_open_with_sops_at_the_threshold() {
    let t = Tools::new();
    let keys: Vec<_> = (0..3).map(|i| t.keygen(&format!("k{i}.txt"))).collect();
    let groups: String = keys.iter().map(|(_, public)| format!("      - age: [{public}]\n")).collect();
    std::fs::write(
        t.path(".sops.yaml"),
        format!("creation_rules:\n  - shamir_threshold: 2\n    encrypted_regex: ^(data|stringData)$\n    key_groups:\n{groups}"),
    )
    .expect("write .sops.yaml");
    let file = t.path("grouped.yaml");
    std::fs::write(&file, SECRET).expect("write");
    let (code, out, err) = cairn_on(&["secrets", "encrypt"], &file, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 of the key groups"), "{out}");
    let written = std::fs::read_to_string(&file).expect("read");
    assert!(written.contains("key_groups:") && written.contains("shamir_threshold: 2"), "{written}");

    for pair in [[0, 1], [1, 2], [0, 2]] {
        let sops = sops_decrypt(&t, &file, &[&keys[pair[0]].0, &keys[pair[1]].0]);
        assert!(sops.status.success(), "sops with keys {pair:?}: {}", String::from_utf8_lossy(&sops.stderr));
        assert_eq!(serde_json::from_slice::<Value>(&sops.stdout).expect("json"), expected());
    }
    let sops = sops_decrypt(&t, &file, &[&keys[2].0]);
    assert!(!sops.status.success(), "one group is below the threshold");
    let (code, out, err) = cairn_decrypt(&file, &[&keys[1].0, &keys[2].0]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());

    // A threshold above the number of groups is refused at the rule.
    std::fs::write(
        t.path(".sops.yaml"),
        format!("creation_rules:\n  - shamir_threshold: 4\n    key_groups:\n{groups}"),
    )
    .expect("write");
    std::fs::write(t.path("more.yaml"), SECRET).expect("write");
    let (code, _, err) = cairn_on(&["secrets", "encrypt"], &t.path("more.yaml"), &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`shamir_threshold` must be a number from 1 to"), "{err}");
}

#[test]
fn edit_keeps_unchanged_ciphertext_and_leaves_no_plaintext_behind() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let file = t.encrypt("secret.yaml", SECRET, &["--age", &public, "--encrypted-regex", "^(data|stringData)$"]);
    let before = std::fs::read_to_string(&file).expect("read");
    // The "editor" changes one value and records where it was given the plaintext.
    let seen = t.path("seen-path");
    let editor = t.path("editor.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\necho \"$1\" > '{}'\nsed -i 's/hunter2-plaintext/correct-horse-battery/' \"$1\"\n",
            seen.display()
        ),
    )
    .expect("write editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let edit = |editor: &std::path::Path| {
        let env = [("SOPS_AGE_KEY_FILE", key.as_os_str()), ("EDITOR", editor.as_os_str()), ("VISUAL", "".as_ref())];
        cairn_on(&["secrets", "edit"], &file, &env)
    };
    let (code, _, err) = edit(&editor);
    assert_eq!(code, Some(0), "{err}");
    let after = std::fs::read_to_string(&file).expect("read");
    assert!(!after.contains("correct-horse") && !after.contains("hunter2"), "{after}");

    // Only the edited value's ciphertext changed; every other line is byte-identical.
    let enc = |text: &str, key: &str| -> String {
        text.lines().find(|l| l.trim_start().starts_with(&format!("{key}: ENC["))).expect(key).to_string()
    };
    assert_ne!(enc(&before, "password"), enc(&after, "password"));
    for unchanged in ["port", "ratio", "enabled", "deep"] {
        assert_eq!(enc(&before, unchanged), enc(&after, unchanged), "{unchanged} keeps its ciphertext");
    }
    let list =
        |text: &str| -> Vec<String> { text.lines().filter(|l| l.contains("- ENC[")).map(str::to_string).collect() };
    assert_eq!(list(&before), list(&after), "list items keep their ciphertext");
    let data_key = |text: &str| -> String {
        text.lines().skip_while(|l| !l.contains("-----BEGIN AGE")).take(3).map(str::trim).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(data_key(&before), data_key(&after), "same data key, same recipients");

    // The real sops reads the result, MAC included.
    let sops = sops_decrypt(&t, &file, &[&key]);
    assert!(sops.status.success(), "{}", String::from_utf8_lossy(&sops.stderr));
    let mut want = expected();
    want["stringData"]["password"] = json!("correct-horse-battery");
    assert_eq!(serde_json::from_slice::<Value>(&sops.stdout).expect("json"), want);

    // The plaintext the editor saw is gone, with its private directory.
    let path = std::path::PathBuf::from(std::fs::read_to_string(&seen).expect("seen").trim());
    assert!(path.file_name().is_some_and(|n| n == "secret.yaml"), "{path:?}");
    assert!(!path.exists() && !path.parent().expect("dir").exists(), "{path:?} was left behind");

    // An editor that changes nothing leaves the file as it was; a failing editor changes nothing.
    std::fs::write(&editor, "#!/bin/sh\ntrue\n").expect("write");
    let unchanged = std::fs::read_to_string(&file).expect("read");
    for (script, code) in [("#!/bin/sh\ntrue\n", 0), ("#!/bin/sh\nexit 3\n", 2)] {
        std::fs::write(&editor, script).expect("write");
        let (got, _, err) = edit(&editor);
        assert_eq!(got, Some(code), "{err}");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), unchanged);
    }
}

#[test]
fn key_files_open_to_others_and_key_commands() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let file = t.encrypt("secret.yaml", SECRET, &["--age", &public]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = assert_cmd::Command::cargo_bin("cairn").expect("binary");
        cmd.args(["secrets", "decrypt", "--format", "json"]).arg(&file).env("HOME", "/nonexistent");
        for var in ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "CAIRN_AGE_KEY_FILE", "XDG_CONFIG_HOME"] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let key_path = key.display().to_string();
    let (code, out, err) = run(&[("CAIRN_AGE_KEY_FILE", &key_path)]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert!(err.contains("open to other users (mode 0644)") && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A key file with no usable key, and a damaged key line.
    let empty = t.path("empty.txt");
    std::fs::write(&empty, "# nothing here\n").expect("write");
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, _, err) = run(&[("SOPS_AGE_KEY_FILE", &empty.display().to_string())]);
    assert_eq!(code, Some(2));
    assert!(err.contains(&public) && err.contains("SOPS_AGE_KEY_FILE") && err.contains("0 key(s)"), "{err}");
    let (code, _, err) = run(&[("SOPS_AGE_KEY", "AGE-SECRET-KEY-1NOTAKEY")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("looks like an age key but is not a valid one"), "{err}");
    assert!(!err.contains("NOTAKEY"), "the key text is not repeated: {err}");

    // SOPS_AGE_KEY_CMD: the key comes from a command, as sops reads it.
    let command = format!("cat '{key_path}'");
    let (code, out, err) = run(&[("SOPS_AGE_KEY_CMD", &command)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), expected());
    let (code, _, err) = run(&[("SOPS_AGE_KEY_CMD", "echo not-a-key")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("printed no age key") && !err.contains("not-a-key"), "{err}");
}

#[test]
fn unknown_value_types_and_files_without_age_entries_are_refused() {
    let t = Tools::new();
    let (key, public) = t.keygen("key.txt");
    let file = t.encrypt("secret.yaml", SECRET, &["--age", &public, "--encrypted-regex", "^(data|stringData)$"]);
    let text = std::fs::read_to_string(&file).expect("read");
    // The type is not authenticated, so a changed one decrypts and must be refused by name.
    let line = text.lines().find(|l| l.trim_start().starts_with("password: ENC[")).expect("password line");
    std::fs::write(&file, text.replace(line, &line.replace("type:str]", "type:blob]"))).expect("write");
    let (code, out, err) = cairn_decrypt(&file, &[&key]);
    assert_eq!(code, 2);
    assert!(
        out.is_empty() && err.contains("/stringData/password") && err.contains("unknown value type `blob`"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let pgp_only = t.path("pgp.yaml");
    std::fs::write(
        &pgp_only,
        "a: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\nsops:\n    pgp:\n        - fp: 85D77543B3D624B63CEA9E6DBC17301B491B3F21\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\n    version: 3.9.0\n",
    )
    .expect("write");
    let (code, _, err) = cairn_decrypt(&pgp_only, &[&key]);
    assert_eq!(code, 2);
    assert!(err.contains("pgp.yaml") && err.contains("no age recipients (only age is supported)"), "{err}");
}
