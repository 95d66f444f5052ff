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
        let sops = std::env::var("CAIRN_TEST_SOPS").unwrap_or_else(|_| "sops".to_string());
        let ok = Command::new(&sops).arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "the real sops is needed (scripts/test.sh installs it; or set CAIRN_TEST_SOPS)");
        Tools { dir: tempfile::tempdir().expect("tempdir"), sops }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A key file from the real age-keygen; returns (file, public key).
    fn keygen(&self, name: &str) -> (std::path::PathBuf, String) {
        let file = self.path(name);
        let out = Command::new("age-keygen")
            .arg("-o")
            .arg(&file)
            .output()
            .expect("age-keygen (scripts/test.sh installs age)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&file).expect("key file");
        let public = text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("public key").to_string();
        (file, public)
    }

    /// Encrypts `plain` (written to `name`) with the real sops and extra arguments.
    fn encrypt(&self, name: &str, plain: &str, args: &[&str]) -> std::path::PathBuf {
        let file = self.path(name);
        std::fs::write(&file, plain).expect("write");
        let out = Command::new(&self.sops)
            .current_dir(self.dir.path())
            .args(["encrypt", "--in-place"])
            .args(args)
            .arg(&file)
            .output()
            .expect("run sops");
        assert!(out.status.success(), "sops: {}", String::from_utf8_lossy(&out.stderr));
        file
    }
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
        let out = assert_cmd::Command::cargo_bin("cairn")
            .expect("binary")
            .args(["secrets", "encrypt"])
            .arg(&file)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
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
    let out = assert_cmd::Command::cargo_bin("cairn")
        .expect("binary")
        .args(["secrets", "encrypt"])
        .arg(t.path("secret.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already encrypted"));
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
