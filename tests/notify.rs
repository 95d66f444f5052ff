//! Notifications (`cairn notify`, `apply --notify`) and the progress event stream (`--events`):
//! every channel against a loopback receiver that records what it got — HTTP servers for the
//! webhook, Slack, Teams and GitHub channels, a real SMTP server (aiosmtpd, STARTTLS) for mail —
//! with the payloads checked against the shapes each provider documents.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Fixture;
use common::http::Server;
use hmac::{KeyInit, Mac};
use serde_json::Value;

const HOOK_KEY: &str = "hook-key-61d0c3a9";
const SLACK_PATH: &str = "/services/T000/B000/slack-secret-path-5e1f";

/// The standard fixture with `notifications` (a YAML block, at the top level) in cairn.yaml.
fn with_notifications(notifications: &str) -> Fixture {
    let f = Fixture::standard();
    f.write("cairn.yaml", &format!("{}{notifications}", common::CONFIG));
    f.commit("ci: notifications");
    f
}

fn record(f: &Fixture, env: &str, id: u64) -> Value {
    serde_json::from_str(&f.read(&format!(".cairn/live/{env}/.cairn/releases/{id:06}.json"))).expect("record")
}

fn records_text(f: &Fixture, env: &str) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(f.join(&format!(".cairn/live/{env}/.cairn/releases"))).expect("releases") {
        all.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("read"));
    }
    all
}

fn body(r: &common::http::Request) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

const THREE_CHANNELS: &str = "\
notifications:
  channels:
    - { name: ops-hook, type: webhook, url_env: OPS_HOOK_URL, hmac_key_env: OPS_HOOK_KEY }
    - { name: team-chat, type: slack, url_env: SLACK_WEBHOOK_URL }
    - { name: teams-room, type: teams, url_env: TEAMS_WEBHOOK_URL }
  routes:
    - { events: [release.succeeded, release.failed], channels: [ops-hook, team-chat, teams-room], environments: [staging] }
";

#[test]
fn webhook_slack_and_teams_get_their_own_payloads_once() {
    let (hook, slack, teams) = (
        Server::start(|_| (200, "ok".into())),
        Server::start(|_| (200, "ok".into())),
        Server::start(|_| (202, "".into())),
    );
    let f = with_notifications(THREE_CHANNELS);
    f.set_env("OPS_HOOK_URL", &format!("{}/hook", hook.url));
    f.set_env("OPS_HOOK_KEY", HOOK_KEY);
    f.set_env("SLACK_WEBHOOK_URL", &format!("{}{SLACK_PATH}", slack.url));
    f.set_env("TEAMS_WEBHOOK_URL", &format!("{}/workflows/teams-secret-sig", teams.url));
    f.set_env("CAIRN_RUN_URL", "https://ci.example.org/runs/77");
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--notify"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // The generic webhook: cairn's body, signed as Flux's generic-hmac provider signs.
    let got = hook.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-signature"), Some(format!("sha256={}", hmac_hex(HOOK_KEY, r.body.as_bytes())).as_str()));
    assert_eq!(r.header("x-cairn-event"), Some("release.succeeded"));
    assert_eq!(r.header("x-cairn-delivery"), Some("staging-1-release.succeeded-ops-hook"));
    let b = body(r);
    assert_eq!(b["format"], "cairn.notification/v1");
    assert_eq!(b["event"], "release.succeeded");
    assert_eq!(b["environment"], "staging");
    assert_eq!(b["release"]["id"], 1);
    assert_eq!(b["release"]["outcome"], "succeeded");
    assert_eq!(b["actor"], "test-actor");
    assert_eq!(b["link"], "https://ci.example.org/runs/77");
    assert_eq!(b["title"], "staging: release 1 succeeded");
    assert!(b["summary"].as_str().expect("summary").contains("web 1.0.0 (new)"), "{b}");
    assert!(b["summary"].as_str().expect("summary").contains("3 created"), "{b}");

    // Slack: Block Kit with a fallback text; only documented block types.
    let got = slack.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, SLACK_PATH);
    let s = body(&got[0]);
    assert!(s["text"].as_str().expect("text").starts_with("staging: release 1 succeeded"), "{s}");
    let blocks = s["blocks"].as_array().expect("blocks");
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["header", "section", "context", "actions"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert_eq!(blocks[3]["elements"][0]["type"], "button");
    assert_eq!(blocks[3]["elements"][0]["url"], "https://ci.example.org/runs/77");

    // Teams: a message with one Adaptive Card attachment, schema version 1.4.
    let got = teams.requests();
    assert_eq!(got.len(), 1);
    let t = body(&got[0]);
    assert_eq!(t["type"], "message");
    let attachment = &t["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    let kinds: Vec<&str> =
        card["body"].as_array().expect("body").iter().map(|b| b["type"].as_str().expect("type")).collect();
    assert_eq!(kinds, ["TextBlock", "TextBlock", "FactSet"]);
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");

    // Recorded on the release, one entry per channel.
    let rec = record(&f, "staging", 1);
    let deliveries = rec["notifications"].as_array().expect("notifications");
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d["outcome"] == "delivered" && d["attempts"] == 1), "{deliveries:?}");
    assert_eq!(deliveries[2]["status"], 202);

    // Exactly once: a second run sends nothing.
    let again = f.json(&["notify", "--env", "staging", "--format", "json"], 0);
    let results: Vec<&str> =
        again["sent"].as_array().expect("sent").iter().map(|s| s["result"].as_str().expect("result")).collect();
    assert_eq!(results, ["already-delivered"; 3]);
    assert_eq!((hook.requests().len(), slack.requests().len(), teams.requests().len()), (1, 1, 1));
    let human = f.ok(&["notify", "--env", "staging"], 0);
    assert!(human.contains("release.succeeded → team-chat (slack): already delivered"), "{human}");

    // The URLs (credentials themselves) and the key never appear.
    let everything = format!("{out}{err}{again}{human}{}", records_text(&f, "staging"));
    for secret in [SLACK_PATH, "teams-secret-sig", HOOK_KEY, &hook.url, &slack.url] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
}

#[test]
fn a_5xx_is_retried_and_delivered_once_a_4xx_is_recorded_and_the_apply_still_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let flaky = Server::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 { (500, "busy".into()) } else { (200, "ok".into()) }
    });
    let refusing = Server::start(|_| (400, r#"{"error":"bad payload"}"#.into()));
    let f = with_notifications(
        "notifications:\n  channels:\n    - { name: flaky, type: webhook, url_env: FLAKY_URL }\n    - { name: refusing, type: webhook, url_env: REFUSING_URL }\n  routes:\n    - { events: [release.succeeded], channels: [flaky, refusing] }\n",
    );
    f.set_env("FLAKY_URL", &flaky.url);
    f.set_env("REFUSING_URL", &refusing.url);
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--notify"]);
    assert_eq!(code, 0, "a failed notification never fails the apply:\n{out}\n{err}");
    assert!(err.contains("notification `release.succeeded` of release 1 to `refusing` failed"), "{err}");
    assert_eq!(flaky.requests().len(), 2, "500 then 200: retried once");
    assert_eq!(refusing.requests().len(), 1, "a 400 is not retried");
    let rec = record(&f, "staging", 1);
    assert_eq!(rec["outcome"], "succeeded");
    let d = rec["notifications"].as_array().expect("notifications");
    assert_eq!(
        (d[0]["channel"].as_str(), d[0]["outcome"].as_str(), d[0]["attempts"].as_u64()),
        (Some("flaky"), Some("delivered"), Some(2))
    );
    assert_eq!(
        (d[1]["outcome"].as_str(), d[1]["status"].as_u64(), d[1]["attempts"].as_u64()),
        (Some("failed"), Some(400), Some(1))
    );
    assert!(d[1]["error"].as_str().expect("error").contains("refused it: 400"), "{d:?}");

    // The retried job: the refused one is tried again (and fails again: exit 2); the delivered one is not.
    let (code, out, _) = f.run(&["notify", "--env", "staging"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("release.succeeded → flaky (webhook): already delivered"), "{out}");
    assert!(out.contains("release.succeeded → refusing (webhook): failed, status 400"), "{out}");
    assert_eq!((flaky.requests().len(), refusing.requests().len()), (2, 2));
    refusing.answer(|_| (204, String::new()));
    let out = f.ok(&["notify", "--env", "staging"], 0);
    assert!(out.contains("refusing (webhook): delivered, status 204"), "{out}");
    assert_eq!(record(&f, "staging", 1)["notifications"][1]["attempts"], 3);
    f.ok(&["notify", "--env", "staging"], 0);
    assert_eq!((flaky.requests().len(), refusing.requests().len()), (2, 3), "nothing sent twice");
}

#[test]
fn a_hanging_receiver_times_out_and_a_tls_failure_is_not_retried() {
    // Accepts connections and never answers.
    let hanging = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_url = format!("http://{}", hanging.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hanging.incoming() {
            held.push(stream);
        }
    });
    // A real TLS server whose certificate no one vouches for.
    let tls = https_untrusted();
    let tls_url = format!("https://127.0.0.1:{}/hook", tls.port);
    let f = with_notifications(
        "notifications:\n  channels:\n    - { name: hanging, type: webhook, url_env: HANGING_URL, timeout: 300ms, retries: 1 }\n    - { name: tls, type: slack, url_env: TLS_URL }\n  routes:\n    - { events: [release.succeeded], channels: [hanging, tls] }\n",
    );
    f.set_env("HANGING_URL", &hanging_url);
    f.set_env("TLS_URL", &tls_url);
    f.ok(&["apply", "--env", "staging"], 0);
    let started = std::time::Instant::now();
    let v = f.json(&["notify", "--env", "staging", "--format", "json"], 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "bounded: {:?}", started.elapsed());
    let sent = v["sent"].as_array().expect("sent");
    assert_eq!(sent[0]["result"], "failed");
    assert_eq!(sent[0]["attempts"], 2);
    assert!(sent[0]["error"].as_str().expect("error").contains("no answer within 300ms"), "{v}");
    assert_eq!(sent[1]["result"], "failed");
    assert_eq!(sent[1]["attempts"], 1, "a TLS failure is not retried: {v}");
    assert!(sent[1]["error"].as_str().expect("error").contains("TLS"), "{v}");
    assert!(!v.to_string().contains(&tls.port.to_string()), "the receiver's address is not shown: {v}");
}

#[test]
fn an_unset_variable_stops_notify_naming_it() {
    let f = with_notifications(
        "notifications:\n  channels:\n    - { name: team-chat, type: slack, url_env: SLACK_WEBHOOK_URL }\n  routes:\n    - { events: [release.succeeded], channels: [team-chat] }\n",
    );
    f.ok(&["apply", "--env", "staging"], 0);
    let (code, out, err) = f.run(&["notify", "--env", "staging"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(
            "notification channel `team-chat` needs the environment variable `SLACK_WEBHOOK_URL`, which is not set"
        ),
        "{err}"
    );
    assert!(record(&f, "staging", 1).get("notifications").is_none(), "nothing attempted, nothing recorded");
}

#[test]
fn bad_notification_config_is_refused_with_file_line_and_nearest() {
    let f = Fixture::standard();
    let cases = [
        (
            "notifications:\n  channels:\n    - { name: chat, type: slak, url_env: SLACK_WEBHOOK_URL }\n",
            "cairn.yaml:12:",
            "unknown channel type `slak`; did you mean `slack`?",
        ),
        (
            "notifications:\n  channels:\n    - { name: chat, type: slack, url_env: SLACK_WEBHOOK_URL }\n  routes:\n    - { events: [release.succeded], channels: [chat] }\n",
            "cairn.yaml:14:",
            "unknown event `release.succeded`; did you mean `release.succeeded`?",
        ),
        (
            "notifications:\n  channels:\n    - { name: chat, type: slack, url_env: SLACK_WEBHOOK_URL }\n  routes:\n    - { events: [release.failed], channels: [chats] }\n",
            "cairn.yaml:14:",
            "no channel is named `chats`; did you mean `chat`?",
        ),
        (
            "notifications:\n  channels:\n    - { name: chat, type: slack, url: 'https://hooks.slack.com/services/x' }\n",
            "cairn.yaml:12:",
            "unknown key `url` in channel `chat` (valid keys: name, type, timeout, retries, url_env)",
        ),
        (
            "notifications:\n  channels:\n    - { name: chat, type: slack, url_env: 'https://hooks.slack.com/x' }\n",
            "cairn.yaml:12:",
            "`url_env` must name an environment variable",
        ),
        (
            "notifications:\n  channels:\n    - { name: mail, type: email, host: smtp.example.org, from: cairn@example.org, to: ops@example.org, tls: none, username_env: U, password_env: P }\n",
            "cairn.yaml:12:",
            "credentials are never sent without TLS",
        ),
    ];
    for (config, place, message) in cases {
        f.write("cairn.yaml", &format!("{}{config}", common::CONFIG));
        let (code, out, err) = f.run(&["validate"]);
        assert_eq!(code, 2, "{config}\n{out}{err}");
        assert!(err.contains(place) && err.contains(message), "{config}\nwanted {place} … {message}\ngot: {err}");
    }
}

#[test]
fn github_gets_a_commit_status_a_deployment_and_its_status() {
    let github = Server::start(|r| {
        if r.path.ends_with("/deployments") { (201, r#"{"id": 4242, "url": "x"}"#.into()) } else { (201, "{}".into()) }
    });
    let f = with_notifications(
        "notifications:\n  channels:\n    - { name: forge, type: github }\n  routes:\n    - { events: [release.succeeded, verification.failed], channels: [forge] }\n",
    );
    let sha = f.git(&["rev-parse", "HEAD"]);
    f.set_env("GITHUB_API_URL", &github.url);
    f.set_env("GITHUB_TOKEN", "ghs_token_8c1e44");
    f.set_env("GITHUB_REPOSITORY", "acme/shop-config");
    f.set_env("GITHUB_SERVER_URL", "https://github.com");
    f.set_env("GITHUB_RUN_ID", "991");
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--rev", "HEAD", "--notify"]);
    assert_eq!(code, 0, "{out}{err}");
    let got = github.requests();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            format!("/repos/acme/shop-config/statuses/{sha}").as_str(),
            "/repos/acme/shop-config/deployments",
            "/repos/acme/shop-config/deployments/4242/statuses"
        ]
    );
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("authorization"), Some("Bearer ghs_token_8c1e44"));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    }
    let status = body(&got[0]);
    assert_eq!(status["state"], "success");
    assert_eq!(status["context"], "cairn/staging");
    assert_eq!(status["target_url"], "https://github.com/acme/shop-config/actions/runs/991");
    assert!(status["description"].as_str().expect("description").chars().count() <= 140);
    let deployment = body(&got[1]);
    assert_eq!(deployment["ref"], sha.as_str());
    assert_eq!(deployment["environment"], "staging");
    assert_eq!(deployment["auto_merge"], false);
    assert_eq!(deployment["required_contexts"], serde_json::json!([]));
    let deployment_status = body(&got[2]);
    assert_eq!(deployment_status["state"], "success");
    assert_eq!(deployment_status["log_url"], "https://github.com/acme/shop-config/actions/runs/991");
    let rec = record(&f, "staging", 1);
    assert_eq!(rec["notifications"][0]["deployment"], 4242);
    assert!(!records_text(&f, "staging").contains("ghs_token_8c1e44"));
    assert!(!format!("{out}{err}").contains("ghs_token_8c1e44"));
}

/// A server process the test started (stopped when dropped): aiosmtpd storing mail in a Maildir,
/// or Python's HTTPS server.
struct Served {
    child: Child,
    port: u16,
    maildir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate and key for 127.0.0.1, self-signed by the real openssl.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_for(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

/// Python's HTTPS server on loopback with a self-signed certificate cairn does not trust.
fn https_untrusted() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let port = free_port();
    let script = "import http.server, ssl, sys\nserver = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\nctx.load_cert_chain(sys.argv[2], sys.argv[3])\nserver.socket = ctx.wrap_socket(server.socket, server_side=True)\nserver.serve_forever()\n";
    let python = std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let child =
        Command::new(python).args(["-c", script, &port.to_string()]).arg(&cert).arg(&key).spawn().expect("python3");
    wait_for(port);
    Served { child, port, maildir: dir.path().join("none"), _dir: dir }
}

/// A real SMTP server (aiosmtpd) on loopback that requires STARTTLS, with a certificate made by
/// openssl for 127.0.0.1, storing what it receives in a Maildir.
fn smtp() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let port = free_port();
    let maildir = dir.path().join("mail");
    let python = std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "--tlscert"])
        .arg(&cert)
        .arg("--tlskey")
        .arg(&key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .expect("aiosmtpd (scripts/test.sh installs it)");
    wait_for(port);
    std::fs::copy(&cert, dir.path().join("ca.pem")).expect("copy");
    Served { child, port, maildir, _dir: dir }
}

/// The one message in the Maildir, parsed by Python's own `email` package.
fn received_mail(maildir: &std::path::Path) -> Value {
    let script = r#"
import email, email.policy, json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False)
msgs = [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default) for k in box.keys()]
out = []
for m in msgs:
    parts = [(p.get_content_type(), p.get_content()) for p in m.walk() if not p.is_multipart()]
    out.append({"subject": m["subject"], "from": m["from"], "to": m["to"], "message_id": m["message-id"],
                "type": m.get_content_type(), "parts": parts})
print(json.dumps(out))
"#;
    let python = std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(python).args(["-c", script]).arg(maildir).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn mail_goes_over_starttls_with_the_release_notes_in_both_parts() {
    let server = smtp();
    let f = Fixture::standard();
    f.write("ops/smtp-ca.pem", &std::fs::read_to_string(server._dir.path().join("ca.pem")).expect("ca"));
    f.write(
        "cairn.yaml",
        &format!(
            "{}notifications:\n  channels:\n    - name: stakeholders\n      type: email\n      host: 127.0.0.1\n      port: {}\n      from: 'cairn <cairn@example.org>'\n      to: [ops@example.org, product@example.org]\n      ca_file: ops/smtp-ca.pem\n  routes:\n    - {{ events: [release.succeeded], channels: [stakeholders] }}\n",
            common::CONFIG,
            server.port
        ),
    );
    f.commit("ci: mail stakeholders");
    let (code, out, err) = f.run(&["apply", "--env", "staging", "--notify"]);
    assert_eq!(code, 0, "{out}{err}");
    let d = &record(&f, "staging", 1)["notifications"][0];
    assert_eq!(d["outcome"], "delivered", "{d}");
    assert_eq!(d["status"], 250);
    let mails = received_mail(&server.maildir);
    assert_eq!(mails.as_array().expect("mails").len(), 1, "{mails}");
    let m = &mails[0];
    assert_eq!(m["subject"], "[cairn] staging: release 1 succeeded");
    assert_eq!(m["message_id"], "<staging-1-release.succeeded-stakeholders@cairn>");
    assert_eq!(m["type"], "multipart/alternative");
    assert!(m["to"].as_str().expect("to").contains("product@example.org"));
    let parts = m["parts"].as_array().expect("parts");
    assert_eq!(parts[0][0], "text/plain");
    assert_eq!(parts[1][0], "text/html");
    let (text, html) = (parts[0][1].as_str().expect("text"), parts[1][1].as_str().expect("html"));
    assert!(text.contains("staging: release 1 succeeded") && text.contains("# "), "{text}");
    assert!(html.contains("<html") && html.contains("web"), "{html}");
    // Once: another run sends no second mail.
    f.ok(&["notify", "--env", "staging"], 0);
    assert_eq!(received_mail(&server.maildir).as_array().expect("mails").len(), 1);
}

#[test]
fn mail_to_a_server_without_starttls_is_refused() {
    // A plain SMTP server (no certificate: it offers no STARTTLS); cairn requires it by default.
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let python = std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir.path().join("mail"))
        .spawn()
        .expect("aiosmtpd");
    let server = Served { child, port, maildir: dir.path().join("mail"), _dir: dir };
    wait_for(port);
    let f = with_notifications(&format!(
        "notifications:\n  channels:\n    - {{ name: mail, type: email, host: 127.0.0.1, port: {}, from: cairn@example.org, to: ops@example.org, retries: 0 }}\n  routes:\n    - {{ events: [release.succeeded], channels: [mail] }}\n",
        server.port
    ));
    f.ok(&["apply", "--env", "staging"], 0);
    let v = f.json(&["notify", "--env", "staging", "--format", "json"], 2);
    assert_eq!(v["sent"][0]["result"], "failed", "{v}");
    assert_eq!(received_mail(&server.maildir).as_array().map_or(0, Vec::len), 0);
}

#[test]
fn the_event_stream_of_an_apply_follows_its_schema_in_order() {
    let server = Server::start(|_| (200, "ok".into()));
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers: [base, environments/staging]\n    target:\n      local: {{ path: .cairn/live/staging }}\n    verify:\n      - name: smoke\n        http: {{ url: '{}/healthz' }}\n        interval: 10ms\n        count: 2\n  production:\n    layers: [base, environments/production]\n    target:\n      local: {{ path: .cairn/live/production }}\nnotifications:\n  channels:\n    - {{ name: hook, type: webhook, url_env: HOOK_URL }}\n  routes:\n    - {{ events: [release.succeeded], channels: [hook] }}\n",
            server.url
        ),
    );
    f.commit("ci: verify and notify");
    f.set_env("HOOK_URL", &format!("{}/hook", server.url));
    let file = f.join("events.jsonl");
    let (code, out, err) =
        f.run(&["apply", "--env", "staging", "--verify", "--notify", "--events", file.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}{err}");
    let events = common::events_of(&std::fs::read_to_string(&file).expect("events"));
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().expect("event")).collect();
    assert_eq!(names.first(), Some(&"started"));
    assert_eq!(names.last(), Some(&"finished"));
    assert_eq!(events.last().expect("last")["outcome"], "succeeded");
    let order = |name: &str| names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no {name}: {names:?}"));
    assert!(order("apply-started") < order("group-started"));
    assert!(order("group-started") < order("object-applied"));
    assert!(order("object-applied") < order("apply-finished"));
    assert!(
        order("apply-finished") < order("waiting-for-health") || order("waiting-for-health") < order("apply-finished")
    );
    assert!(order("apply-finished") < order("verification-started"));
    assert!(order("verification-started") < order("measurement"));
    assert!(order("measurement") < order("verification-finished"));
    assert!(order("verification-finished") < order("notified"));
    assert_eq!(names.iter().filter(|n| **n == "object-applied").count(), 3, "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "measurement").count(), 2, "{names:?}");
    let applied: Vec<&Value> = events.iter().filter(|e| e["event"] == "object-applied").collect();
    assert!(applied.iter().all(|e| e.get("body").is_none() && e["action"] == "create"));

    // `-` is stderr, and stdout keeps only the results.
    f.write(
        "base/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\ndata:\n  A: b\n",
    );
    f.commit("feat: extra");
    let (code, out, err) = f.run(&["apply", "--env", "production", "--events", "-", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).expect("stdout is the JSON report alone");
    let lines: String = err.lines().filter(|l| l.starts_with('{')).map(|l| format!("{l}\n")).collect();
    let events = common::events_of(&lines);
    assert_eq!(events[0]["command"], "apply");
    assert_eq!(events[0]["environments"], serde_json::json!(["production"]));
}

#[test]
fn check_and_rollback_stream_events_too() {
    let f = Fixture::standard();
    let base = f.git(&["rev-parse", "HEAD"]);
    f.ok(&["apply", "--env", "staging"], 0);
    f.write(
        "environments/staging/patch.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  LOG_LEVEL: warn\n",
    );
    f.commit("fix: quieter staging");
    let file = f.join("check.jsonl");
    f.ok(&["check", "--base", &base, "--events", file.to_str().expect("path")], 0);
    let events = common::events_of(&std::fs::read_to_string(&file).expect("events"));
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().expect("event")).collect();
    assert_eq!(names, ["started", "planned", "finished"], "{events:?}");
    assert_eq!(events[1]["environment"], "staging");
    assert_eq!(events[1]["update"], 1);

    f.ok(&["apply", "--env", "staging"], 0);
    let file = f.join("rollback.jsonl");
    f.ok(&["rollback", "--env", "staging", "--events", file.to_str().expect("path")], 0);
    let events = common::events_of(&std::fs::read_to_string(&file).expect("events"));
    assert_eq!(events[0]["command"], "rollback");
    assert!(events.iter().any(|e| e["event"] == "object-applied" && e["action"] == "update"), "{events:?}");
    assert_eq!(events.last().expect("last")["outcome"], "succeeded");
}

#[test]
fn secret_values_never_reach_a_payload_a_mail_or_an_event() {
    const PASSWORD: &str = "db-pass-0b7e55d2-hunter2";
    const NEW_PASSWORD: &str = "db-pass-rotated-c3a1f09e";
    let forbidden: Vec<String> =
        [PASSWORD, NEW_PASSWORD].iter().flat_map(|s| [s.to_string(), common::b64(s)]).collect();
    let hook = Server::start(|_| (200, "ok".into()));
    let slack = Server::start(|_| (200, "ok".into()));
    let mail = smtp();
    let f = Fixture::standard();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(".sops.yaml", &format!("creation_rules:\n  - age: {public}\n    encrypted_regex: ^password$\n"));
    let secret = |password: &str| {
        f.write(
            "base/db-secret.yaml",
            &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: {password}\n"),
        );
        common::sops_encrypt(f.path(), &f.join("base/db-secret.yaml"), &[]);
    };
    secret(PASSWORD);
    f.write("ops/smtp-ca.pem", &std::fs::read_to_string(mail._dir.path().join("ca.pem")).expect("ca"));
    f.write(
        "cairn.yaml",
        &format!(
            "{}notifications:\n  notify_on_apply: true\n  channels:\n    - {{ name: hook, type: webhook, url_env: HOOK_URL }}\n    - {{ name: chat, type: slack, url_env: SLACK_URL }}\n    - {{ name: mail, type: email, host: 127.0.0.1, port: {}, from: cairn@example.org, to: ops@example.org, ca_file: ops/smtp-ca.pem }}\n  routes:\n    - {{ events: [release.succeeded, drift.detected], channels: [hook, chat, mail] }}\n",
            common::CONFIG,
            mail.port
        ),
    );
    f.commit("feat: database secret, notifications");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    f.set_env("HOOK_URL", &hook.url);
    f.set_env("SLACK_URL", &slack.url);
    let events = f.join("events.jsonl");
    let mut outputs = String::new();
    for password in [None, Some(NEW_PASSWORD)] {
        if let Some(p) = password {
            secret(p);
            f.commit("fix: rotate the database password");
        }
        // notify_on_apply: true sends without --notify.
        let (code, out, err) = f.run(&["apply", "--env", "staging", "--events", events.to_str().expect("path")]);
        assert_eq!(code, 0, "{out}{err}");
        outputs.push_str(&out);
        outputs.push_str(&err);
        outputs.push_str(&std::fs::read_to_string(&events).expect("events"));
        common::events_of(&std::fs::read_to_string(&events).expect("events"));
    }
    assert_eq!(hook.requests().len(), 2, "one per release");
    assert_eq!(slack.requests().len(), 2);
    let second = body(&hook.requests()[1]);
    assert!(second["summary"].as_str().expect("summary").contains("1 updated"), "{second}");
    let mails = received_mail(&mail.maildir);
    assert_eq!(mails.as_array().expect("mails").len(), 2, "{mails}");
    let everything = format!(
        "{outputs}{mails}{}{}{}",
        hook.requests().iter().map(|r| r.body.clone()).collect::<String>(),
        slack.requests().iter().map(|r| r.body.clone()).collect::<String>(),
        records_text(&f, "staging")
    );
    for s in &forbidden {
        assert!(!everything.contains(s.as_str()), "a secret value leaked ({s})");
    }
}

#[test]
fn a_blocked_check_tells_its_routes_by_finding_code_and_never_quotes_a_value() {
    let hook = Server::start(|_| (200, "ok".into()));
    let github = Server::start(|_| (201, "{}".into()));
    let f = with_notifications(
        "notifications:\n  channels:\n    - { name: hook, type: webhook, url_env: HOOK_URL }\n    - { name: forge, type: github, repository: acme/shop-config }\n  routes:\n    - { events: [check.blocked], channels: [hook, forge], environments: [staging] }\n",
    );
    let base = f.git(&["rev-parse", "HEAD"]);
    f.write(
        "environments/staging/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: many-replicas-please\n",
    );
    let head = f.commit("feat: more replicas");
    f.set_env("HOOK_URL", &hook.url);
    f.set_env("GITHUB_API_URL", &github.url);
    f.set_env("GITHUB_TOKEN", "ghs_check_token_0d9e");
    let file = f.join("events.jsonl");
    let (code, out, err) = f.run(&["check", "--base", &base, "--notify", "--events", file.to_str().expect("path")]);
    assert_eq!(code, 1, "the check blocks:\n{out}\n{err}");
    let got = hook.requests();
    assert_eq!(got.len(), 1, "{err}");
    let b = body(&got[0]);
    assert_eq!(b["event"], "check.blocked");
    assert_eq!(b["environment"], "staging");
    assert_eq!(b["title"], format!("staging: change {} blocked by 1 finding", &head[..12]));
    assert!(b["summary"].as_str().expect("summary").starts_with("schema/"), "{b}");
    assert_eq!(got[0].header("x-cairn-delivery"), Some(format!("check-staging-{}-hook", &head[..12]).as_str()));
    assert!(!got[0].body.contains("many-replicas-please"), "a finding's message may quote a value: {}", got[0].body);
    let status = github.requests();
    assert_eq!(status.len(), 1, "a commit status only; no deployment for a check");
    assert_eq!(status[0].path, format!("/repos/acme/shop-config/statuses/{head}"));
    let s = body(&status[0]);
    assert_eq!((s["state"].as_str(), s["context"].as_str()), (Some("failure"), Some("cairn/check/staging")));
    let events = common::events_of(&std::fs::read_to_string(&file).expect("events"));
    let notified: Vec<&Value> = events.iter().filter(|e| e["event"] == "notified").collect();
    assert_eq!(notified.len(), 2);
    assert!(notified.iter().all(|e| e["release"].is_null() && e["event_name"] == "check.blocked"));
    assert_eq!(events.last().expect("last")["outcome"], "blocked");
}

#[test]
fn apply_of_a_saved_plan_streams_events_and_notifies() {
    let hook = Server::start(|_| (200, "ok".into()));
    let f = with_notifications(
        "notifications:\n  channels:\n    - { name: hook, type: webhook, url_env: HOOK_URL }\n  routes:\n    - { events: [release.succeeded], channels: [hook], environments: [production] }\n",
    );
    f.set_env("HOOK_URL", &hook.url);
    f.git(&["checkout", "-q", "-b", "feature"]);
    f.write(
        "environments/production/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 6\n",
    );
    f.commit("feat: more production replicas");
    let plan = f.join("plan.json");
    f.ok(&["check", "--base", "main", "--head", "feature", "--out", plan.to_str().expect("path")], 0);
    f.git(&["checkout", "-q", "main"]);
    f.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
    let file = f.join("events.jsonl");
    let (code, out, err) =
        f.run(&["apply", "--plan", plan.to_str().expect("path"), "--notify", "--events", file.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}{err}");
    let events = common::events_of(&std::fs::read_to_string(&file).expect("events"));
    assert_eq!(events[0]["command"], "apply --plan");
    assert_eq!(events[0]["environments"], serde_json::json!(["production"]));
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().expect("event")).collect();
    assert!(names.contains(&"apply-finished") && names.contains(&"notified"), "{names:?}");
    assert_eq!(events.last().expect("last")["command"], "apply --plan");
    assert_eq!(events.last().expect("last")["outcome"], "succeeded");
    assert_eq!(hook.requests().len(), 1);
    assert_eq!(body(&hook.requests()[0])["environment"], "production");
}
