//! Helm charts as layers, rendered by the real helm (scripts/test.sh installs it and names it in
//! CAIRN_TEST_HELM): output equal to `helm template`, later layers patching a chart, CRDs first,
//! the output cache (helm not run, counted by a wrapper), chart repositories served on loopback
//! with the lock file's guard, SOPS values never shown, and each bad input.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::{Fixture, b64, helm};
use serde_json::Value;

fn run_helm(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(helm()).args(args).current_dir(dir).output().expect("run helm");
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// YAML documents as JSON, read by PyYAML (not by cairn).
fn yaml_docs(text: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3");
    serde_json::from_slice(&out.stdout).expect("json")
}

const CONFIG: &str = "\
environments:
  staging:
    layers:
      - base
      - helm: { chart: charts/web, release: web, values: [environments/staging/values.yaml], set: { replicaCount: 3, podLabels: { tier: front } } }
      - environments/staging
    target:
      local: { path: .cairn/live/staging }
";

/// A repository with a chart made by `helm create`, a base layer and a staging layer that holds
/// the chart's values beside a patch.
fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write(".gitignore", ".cairn/\n.cache/\n");
    f.write("cairn.yaml", CONFIG);
    std::fs::create_dir_all(f.join("charts")).expect("mkdir");
    run_helm(&f.join("charts"), &["create", "web"]);
    f.write("base/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.25.0\"\nservice:\n  port: 8080\n");
    f.commit("feat: the web chart");
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));
    f
}

fn rendered(f: &Fixture) -> Vec<Value> {
    let out = f.json(&["render", "--env", "staging", "--format", "json"], 0);
    out[0]["objects"].as_array().expect("objects").iter().map(|o| o["body"].clone()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {objects:#?}"))
}

/// cairn's own labels, which every managed object gets (and which replace helm's
/// `app.kubernetes.io/managed-by: Helm`).
fn without_managed_labels(mut v: Value) -> Value {
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove("app.kubernetes.io/managed-by");
        labels.remove("cairn/environment");
    }
    v
}

#[test]
fn a_chart_renders_exactly_as_helm_template_does() {
    let f = fixture();
    // The same chart, values and settings, by hand.
    let by_hand = run_helm(
        f.path(),
        &[
            "template",
            "web",
            "charts/web",
            "--values",
            "environments/staging/values.yaml",
            "--set-json",
            "replicaCount=3",
            "--set-json",
            "podLabels={\"tier\":\"front\"}",
            "--include-crds",
            "--skip-tests",
            "--kube-version",
            "1.37.0",
        ],
    );
    let expected = yaml_docs(&by_hand);
    assert!(expected.len() >= 3, "{by_hand}");
    // A staging layer without the patch: the chart's output alone.
    let objects = rendered(&f);
    let from_chart: Vec<&Value> =
        objects.iter().filter(|o| o["metadata"]["labels"]["helm.sh/chart"].is_string()).collect();
    assert_eq!(from_chart.len(), expected.len(), "{objects:#?}");
    for doc in expected {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        let ours = without_managed_labels(find(&objects, &kind, &name).clone());
        assert_eq!(ours, without_managed_labels(doc), "{kind} {name}");
    }
    let deployment = find(&objects, "Deployment", "web");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["tier"], "front");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25.0");

    // The sources name the chart's templates in the repository, and the plan says which chart
    // and which helm made it.
    let json = f.json(&["render", "--env", "staging", "--format", "json"], 0);
    let sources: Vec<&str> = json[0]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["sources"][0]["file"].as_str())
        .collect();
    assert!(sources.contains(&"charts/web/templates/deployment.yaml"), "{sources:?}");
    let plan = f.json(&["plan", "--format", "json"], 0);
    let chart = &plan["plans"][0]["charts"][0];
    assert_eq!(chart["chart"], "web");
    assert_eq!(chart["version"], "0.1.0");
    assert!(chart["digest"].as_str().expect("digest").starts_with("sha256:"), "{chart}");
    assert!(chart["helm"].as_str().expect("helm").starts_with('v'), "{chart}");
    assert_eq!(chart["kube_version"], "1.37.0");
}

#[test]
fn a_later_layer_patches_a_charts_deployment_by_container_name() {
    let f = fixture();
    f.write(
        "environments/staging/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env:\n            - name: MODE\n              value: staging\n",
    );
    f.commit("feat: staging mode");
    let objects = rendered(&f);
    let container = &find(&objects, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["env"][0]["value"], "staging");
    // The chart's ports and probes are kept: the patch merges into the container by name.
    assert_eq!(container["ports"][0]["containerPort"], 8080, "{container}");
    assert!(container["livenessProbe"].is_object(), "{container}");
    // The values file beside the patch is helm's, not a document of the layer.
    f.ok(&["validate"], 0);
    f.ok(&["apply", "--env", "staging"], 0);
    let dir = f.join(".cairn/live/staging/objects/Deployment.apps");
    let file = std::fs::read_dir(&dir)
        .expect("live Deployments")
        .flatten()
        .next()
        .expect("a namespace")
        .path()
        .join("web.json");
    let applied: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("live web")).expect("json");
    assert_eq!(applied["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"], "MODE");
}

/// A chart with a CRD in `crds/` and a custom resource of it in `templates/`.
fn with_crd(f: &Fixture, size: &str) {
    f.write(
        "charts/web/crds/widgets.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.org\nspec:\n  group: example.org\n  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec:\n              type: object\n              properties:\n                size: { type: integer }\n",
    );
    f.write(
        "charts/web/templates/widget.yaml",
        &format!("apiVersion: example.org/v1\nkind: Widget\nmetadata:\n  name: {{{{ .Release.Name }}}}-widget\nspec:\n  size: {size}\n"),
    );
    f.commit("feat: widgets");
}

#[test]
fn crds_of_a_chart_are_validated_against_and_applied_first() {
    let f = fixture();
    with_crd(&f, "3");
    let plan = f.json(&["plan", "--format", "json"], 0);
    let order: Vec<String> = plan["plans"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["object"]["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    let crd = order.iter().position(|k| k == "CustomResourceDefinition").expect("the CRD is planned");
    let widget = order.iter().position(|k| k == "Widget").expect("the widget is planned");
    assert!(crd < widget && crd <= 1, "{order:?}");
    f.ok(&["apply", "--env", "staging"], 0);

    // The CRD's schema judges the chart's custom resource.
    with_crd(&f, "\"large\"");
    let (code, out, err) = f.run(&["validate", "--format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("web-widget") && out.contains("/spec/size"), "{out}");
}

/// A `CAIRN_HELM` that counts its calls in `count` and runs the real helm.
fn counting_helm(dir: &Path) -> (PathBuf, PathBuf) {
    let count = dir.join("helm-calls");
    let wrapper = dir.join("helm-wrapper");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n", count.display(), helm()))
        .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (wrapper, count)
}

fn calls(count: &Path) -> Vec<String> {
    std::fs::read_to_string(count).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn a_replan_with_nothing_changed_runs_no_helm() {
    let f = fixture();
    let tools = tempfile::tempdir().expect("tempdir");
    let (wrapper, count) = counting_helm(tools.path());
    f.set_env("CAIRN_HELM", wrapper.to_str().expect("path"));
    let first = f.ok(&["plan"], 0);
    assert_eq!(calls(&count), ["version", "template"], "{first}");
    let second = f.ok(&["plan"], 0);
    assert_eq!(calls(&count), ["version", "template"], "the second plan ran helm");
    assert_eq!(first, second.replace(", from the cache", ""));
    assert!(second.contains("from the cache"), "{second}");

    // A changed value, a changed template: helm runs again, once each.
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.26.0\"\n");
    f.commit("feat: nginx 1.26");
    assert!(f.ok(&["plan"], 0).contains("nginx:1.26.0"));
    f.write("charts/web/templates/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: {}\n");
    f.commit("feat: an extra map");
    assert!(f.ok(&["plan"], 0).contains("ConfigMap extra"));
    assert_eq!(calls(&count), ["version", "template", "template", "template"]);
}

#[test]
fn a_chart_version_bump_is_planned_against_the_local_target() {
    let f = fixture();
    f.ok(&["apply", "--env", "staging"], 0);
    let chart = f.read("charts/web/Chart.yaml").replace("version: 0.1.0", "version: 0.2.0");
    f.write("charts/web/Chart.yaml", &chart);
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.27.1\"\nservice:\n  port: 8080\n");
    f.commit("feat: web chart 0.2.0");
    let plan = f.json(&["plan", "--format", "json"], 0);
    let p = &plan["plans"][0];
    assert_eq!(p["charts"][0]["version"], "0.2.0");
    let updates: Vec<&str> = p["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "update")
        .filter_map(|c| c["object"]["kind"].as_str())
        .collect();
    // Every object carries the chart's version label; the Deployment also takes the new image.
    assert!(updates.contains(&"Deployment") && updates.contains(&"Service"), "{updates:?}");
    let human = f.ok(&["plan"], 0);
    assert!(human.contains("nginx:1.27.1") && human.contains("web-0.2.0"), "{human}");
    assert!(human.contains("chart web 0.2.0"), "{human}");
}

// --- chart repositories -------------------------------------------------------------------

/// A chart repository served on loopback by a real static HTTP server (python3 -m http.server)
/// from a directory holding `helm package` output and `helm repo index`'s index.yaml.
struct ChartRepo {
    dir: tempfile::TempDir,
    server: Child,
    url: String,
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl ChartRepo {
    fn start() -> ChartRepo {
        ChartRepo::start_at(free_port())
    }

    fn start_at(port: u16) -> ChartRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://127.0.0.1:{port}");
        let server = Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        ChartRepo { dir, server, url }
    }

    /// Packages a chart made by `helm create` (at `version`, with `note` in a ConfigMap) and
    /// indexes the repository.
    fn publish(&self, version: &str, note: &str) {
        let work = tempfile::tempdir().expect("tempdir");
        run_helm(work.path(), &["create", "ingress"]);
        let chart = work.path().join("ingress/Chart.yaml");
        let text = std::fs::read_to_string(&chart)
            .expect("Chart.yaml")
            .replace("version: 0.1.0", &format!("version: {version}"));
        std::fs::write(&chart, text).expect("write");
        std::fs::write(
            work.path().join("ingress/templates/note.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: note\ndata:\n  note: {note}\n"),
        )
        .expect("write");
        run_helm(work.path(), &["package", "ingress", "--destination", self.dir.path().to_str().expect("path")]);
        run_helm(self.dir.path(), &["repo", "index", ".", "--url", &self.url]);
    }
}

fn remote_fixture(repo: &ChartRepo) -> Fixture {
    let f = Fixture::new();
    f.write(".gitignore", ".cairn/\n.cache/\n");
    f.write(
        "cairn.yaml",
        &format!(
            "environments:\n  staging:\n    layers:\n      - helm: {{ chart: ingress, repo: '{}', version: 1.0.0, release: edge, namespace: edge }}\n    target:\n      local: {{ path: .cairn/live/staging }}\n",
            repo.url
        ),
    );
    f.commit("feat: the ingress chart");
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));
    f
}

#[test]
fn a_chart_from_a_chart_repository_is_pinned_and_guarded_by_the_lock_file() {
    let repo = ChartRepo::start();
    let port: u16 = repo.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    repo.publish("1.0.0", "first");
    let f = remote_fixture(&repo);

    // At a revision nothing is pinned yet: CI refuses to fetch what no one committed a pin for.
    let (code, _, err) = f.run(&["render", "--rev", "HEAD"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cairn.lock does not pin ingress 1.0.0"), "{err}");

    // In the work tree the chart is fetched and pinned.
    let objects = rendered(&f);
    assert_eq!(find(&objects, "ConfigMap", "note")["data"]["note"], "first");
    assert_eq!(find(&objects, "Deployment", "edge-ingress")["metadata"]["namespace"], "edge");
    let lock = f.read("cairn.lock");
    let package = std::fs::read(repo.dir.path().join("ingress-1.0.0.tgz")).expect("package");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&package))
    };
    assert!(lock.contains(&format!("sha256:{digest}")) && lock.contains("1.0.0"), "{lock}\n{digest}");
    f.commit("chore: pin the ingress chart");
    f.ok(&["render", "--rev", "HEAD"], 0);

    // The pinned package is in the cache: no network needed.
    drop(repo);
    f.ok(&["render", "--rev", "HEAD"], 0);

    // The same version republished at the same address with other contents is refused.
    let repo = ChartRepo::start_at(port);
    repo.publish("1.0.0", "tampered");
    std::fs::remove_dir_all(f.join(".cache/helm/charts")).expect("clear the package cache");
    let lock = f.read("cairn.lock");
    for args in [&["render"][..], &["render", "--rev", "HEAD"]] {
        let (code, _, err) = f.run(args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("the same version changed") && err.contains(&format!("sha256:{digest}")), "{err}");
    }
    assert_eq!(f.read("cairn.lock"), lock, "the lock file is left as it was");
}

#[test]
fn an_unreachable_chart_repository_is_named_once() {
    let port = free_port();
    let f = Fixture::new();
    f.write(
        "cairn.yaml",
        &format!("environments:\n  staging:\n    layers:\n      - helm: {{ chart: ingress, repo: 'http://127.0.0.1:{port}/charts', version: 1.0.0, release: edge }}\n    target:\n      local: {{ path: .cairn/live/staging }}\n"),
    );
    f.commit("feat: ingress");
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));
    let started = std::time::Instant::now();
    let (code, _, err) = f.run(&["render"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/charts/index.yaml")) && err.contains("does not retry"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(!err.contains("panicked"), "{err}");
}

// --- secrets ------------------------------------------------------------------------------

const DB_PASSWORD: &str = "pg-pass-5d1e0c77-correcthorse";

/// A chart whose staging values include a SOPS file (the password encrypted by the real sops),
/// the key in CAIRN_AGE_KEY_FILE, and a private directory of /dev/shm (CAIRN_SECRET_TMPDIR) for
/// the decrypted values, so a test sees what is left there by its own runs only.
fn secret_fixture() -> (Fixture, tempfile::TempDir, tempfile::TempDir) {
    let f = fixture();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: secrets\\.yaml$\n    encrypted_regex: ^password$\n    age: {public}\n"
        ),
    );
    f.write("environments/staging/secrets.yaml", &format!("database:\n  password: {DB_PASSWORD}\n  user: app\n"));
    common::sops_encrypt(f.path(), &f.join("environments/staging/secrets.yaml"), &[]);
    assert!(!f.read("environments/staging/secrets.yaml").contains(DB_PASSWORD));
    f.write(
        "cairn.yaml",
        &CONFIG.replace(
            "values: [environments/staging/values.yaml]",
            "values: [environments/staging/values.yaml, environments/staging/secrets.yaml]",
        ),
    );
    // The value flows through templates: into a Secret, a ConfigMap, an env var and a URL.
    f.write(
        "charts/web/templates/db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {{ .Values.database.password | quote }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db-url\ndata:\n  url: postgres://{{ .Values.database.user }}:{{ .Values.database.password }}@db:5432/app\n  encoded: {{ .Values.database.password | b64enc }}\n  user: {{ .Values.database.user }}\n",
    );
    f.commit("feat: the database password");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    let shm = tempfile::Builder::new().prefix("cairn-test-").tempdir_in("/dev/shm").expect("a directory in /dev/shm");
    f.set_env("CAIRN_SECRET_TMPDIR", shm.path().to_str().expect("path"));
    (f, keys, shm)
}

fn left_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()
}

#[test]
fn sops_values_reach_helm_and_no_output() {
    let (f, _keys, shm) = secret_fixture();

    let forbidden = [DB_PASSWORD.to_string(), b64(DB_PASSWORD)];
    let base = f.git(&["rev-parse", "HEAD~1"]);
    let plan_file = f.join(".cairn/plan.json");
    let outputs = f.outputs_of(&[
        &["render"],
        &["render", "--format", "json"],
        &["plan"],
        &["plan", "--format", "json"],
        &["plan", "--format", "markdown"],
        &[
            "check",
            "--base",
            &base,
            "--head",
            "HEAD",
            "--out",
            plan_file.to_str().expect("path"),
            "--format",
            "markdown",
        ],
    ]);
    let saved = std::fs::read_to_string(&plan_file).expect("saved plan");
    for text in [&outputs, &saved] {
        for s in &forbidden {
            assert!(!text.contains(s.as_str()), "an output shows the secret ({s}):\n{text}");
        }
    }
    // The values did reach helm: the user name (not secret) is there, and the password's place
    // is masked.
    let json = f.json(&["render", "--format", "json"], 0);
    let url =
        json[0]["objects"].as_array().expect("objects").iter().find(|o| o["id"]["name"] == "db-url").expect("db-url");
    assert_eq!(url["body"]["data"]["user"], "app");
    assert!(url["body"]["data"]["url"].to_string().contains("secret"), "{url}");
    assert!(url["body"]["data"]["encoded"].to_string().contains("secret"), "{url}");

    // Applied with the plaintext, into the local target (which keeps it, as a cluster would).
    f.ok(&["apply", "--env", "staging"], 0);
    let live = read_tree(&f.join(".cairn/live/staging/objects"));
    assert!(live.contains(DB_PASSWORD), "the live Secret holds the real password");
    // Nothing of the plaintext is left behind: not in the cache, not in a temporary file.
    let cached = read_tree(&f.join(".cache"));
    assert!(!cached.contains(DB_PASSWORD) && !cached.contains(&b64(DB_PASSWORD)), "the cache holds the secret");
    assert!(left_in(shm.path()).is_empty(), "left behind: {:?}", left_in(shm.path()));
}

#[test]
fn a_render_stopped_while_helm_reads_decrypted_values_leaves_none_behind() {
    let (f, keys, shm) = secret_fixture();
    // A helm that shows it was handed the values file, then hangs.
    let tools = tempfile::tempdir().expect("tempdir");
    let started = tools.path().join("started");
    let wrapper = tools.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = version ] && exec '{}' \"$@\"\nls '{}'/* > '{}'\nsleep 60\n",
            helm(),
            shm.path().display(),
            started.display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"));
    command
        .args(["render"])
        .env("CAIRN_REPO", f.path())
        .env("HOME", f.path())
        .env("CAIRN_HELM", &wrapper)
        .env("CAIRN_CACHE_DIR", f.join(".cache"))
        .env("CAIRN_SECRET_TMPDIR", shm.path())
        .env("CAIRN_AGE_KEY_FILE", keys.path().join("key.txt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&started).unwrap_or_default().is_empty() {
        assert!(std::time::Instant::now() < deadline, "helm was not started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let handed = std::fs::read_to_string(&started).expect("started");
    assert!(handed.contains("values-"), "helm was handed the decrypted values: {handed}");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let out = child.wait_with_output().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(15), "ended by the signal: {:?}", out.status);
    assert!(left_in(shm.path()).is_empty(), "left behind: {:?}", left_in(shm.path()));
    // The hanging helm was stopped with it.
    let hanging = Command::new("pgrep").args(["-f", wrapper.to_str().expect("path")]).output().expect("pgrep");
    assert!(hanging.stdout.is_empty(), "helm still runs: {}", String::from_utf8_lossy(&hanging.stdout));
}

fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out += &read_tree(&path);
        } else {
            out += &String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default());
        }
    }
    out
}

// --- bad input ----------------------------------------------------------------------------

fn refused(f: &Fixture, args: &[&str], wanted: &[&str]) -> String {
    let (code, out, err) = f.run(args);
    assert_eq!(code, 2, "cairn {args:?}\nstdout:\n{out}\nstderr:\n{err}");
    for w in wanted {
        assert!(err.contains(w), "the message lacks `{w}`:\n{err}");
    }
    assert!(!err.contains("panicked") && out.is_empty(), "{out}{err}");
    err
}

#[test]
fn bad_charts_and_values_get_clear_errors() {
    let f = fixture();
    // A missing chart.
    f.write("cairn.yaml", &CONFIG.replace("chart: charts/web", "chart: charts/api"));
    f.commit("break: no such chart");
    refused(&f, &["render"], &["chart charts/api", "does not exist in the repository", "cairn.yaml:5"]);

    // A directory that is not a chart.
    f.write("charts/api/README.md", "not a chart\n");
    f.commit("break: not a chart");
    refused(&f, &["render"], &["chart charts/api", "no Chart.yaml"]);

    // Values that are not YAML: the file and the line.
    f.write("cairn.yaml", CONFIG);
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.25.0\"\n  bad: [unclosed\n");
    f.commit("break: values");
    refused(&f, &["render"], &["environments/staging/values.yaml:"]);

    // A template error: helm's message, with the template's path in the repository.
    f.write("environments/staging/values.yaml", "image:\n  tag: \"1.25.0\"\n");
    f.write(
        "charts/web/templates/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  x: {{ .Values.nothing.here }}\n",
    );
    f.commit("break: template");
    refused(&f, &["render"], &["helm template failed", "charts/web/templates/broken.yaml"]);

    // A chart that calls `lookup`.
    f.write(
        "charts/web/templates/broken.yaml",
        "{{- $existing := lookup \"v1\" \"Secret\" .Release.Namespace \"db\" }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n",
    );
    f.commit("break: lookup");
    refused(&f, &["render"], &["charts/web/templates/broken.yaml:1", "calls `lookup`"]);
    f.remove("charts/web/templates/broken.yaml");
    f.commit("fix");
    f.ok(&["render"], 0);
}

#[test]
fn a_missing_or_hanging_helm_is_reported() {
    let f = fixture();
    f.set_env("CAIRN_HELM", "/nonexistent/helm");
    refused(&f, &["render"], &["CAIRN_HELM", "install helm"]);

    let tools = tempfile::tempdir().expect("tempdir");
    let hanging = tools.path().join("helm");
    std::fs::write(&hanging, "#!/bin/sh\n[ \"$1\" = version ] && { echo v9.9.9; exit 0; }\nsleep 60\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hanging, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    f.set_env("CAIRN_HELM", hanging.to_str().expect("path"));
    f.write("cairn.yaml", &CONFIG.replace("release: web,", "release: web, timeout: 1s,"));
    f.commit("feat: a short timeout");
    let started = std::time::Instant::now();
    refused(&f, &["render"], &["did not finish within 1s"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn bad_chart_layers_in_cairn_yaml_are_refused_with_their_line() {
    let f = fixture();
    for (layer, wanted) in [
        ("- helm: { chart: ingress, repo: 'https://charts.example.org', release: edge }", "needs `version`"),
        ("- helm: { chart: charts/web }", "needs `release`"),
        ("- helm: { chart: charts/web, release: Web_1 }", "not a valid release name"),
        ("- helm: { chart: charts/web, release: web, version: 1.0.0 }", "`version` is for a chart from `repo`"),
        ("- helm: { chart: ingress, repo: 'oci://ghcr.io/x', version: 1.0.0, release: edge }", "OCI registries"),
        ("- helm: { chart: charts/web, release: web, valus: [] }", "did you mean `values`"),
        ("- helm: { chart: ../outside, release: web }", "inside the repository"),
    ] {
        f.write(
            "cairn.yaml",
            &format!("environments:\n  staging:\n    layers:\n      {layer}\n    target:\n      local: {{ path: .cairn/live/staging }}\n"),
        );
        let err = refused(&f, &["render"], &[wanted, "cairn.yaml:4"]);
        assert!(!err.contains("schemas/cairn.schema.json"), "{err}");
    }
}

// --- the example --------------------------------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

#[test]
fn the_example_renders_both_environments_and_shows_no_secret() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let f = Fixture::new();
    copy_dir(&root.join("helm-platform"), f.path());
    f.write(".gitignore", ".cairn/\n.cache/\n");
    f.commit("feat: the platform");
    let key = std::fs::read_to_string(root.join("shop/keys/example-only.agekey")).expect("key");
    f.set_env("SOPS_AGE_KEY", &key);
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));
    const TOKEN: &str = "prod-upstream-token-7c41e9";
    let outputs = f.outputs_of(&[&["plan"], &["plan", "--format", "json"], &["render", "--format", "json"]]);
    assert!(!outputs.contains(TOKEN) && !outputs.contains(&b64(TOKEN)), "{outputs}");
    let production = f.json(&["render", "--env", "production", "--format", "json"], 0);
    let objects: Vec<Value> =
        production[0]["objects"].as_array().expect("objects").iter().map(|o| o["body"].clone()).collect();
    let container = &find(&objects, "Deployment", "edge")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.org/platform/edge:2.11.0");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi", "the patch is merged");
    assert_eq!(container["ports"][1]["name"], "metrics", "the chart's ports are kept");
    assert_eq!(find(&objects, "Deployment", "edge")["spec"]["replicas"], 3);
    f.ok(&["apply", "--env", "production"], 0);
    f.ok(&["apply", "--env", "staging"], 0);
    assert!(f.ok(&["plan"], 0).contains("0 to create, 0 to update, 0 to delete"));
}

// --- kustomize's helmCharts ---------------------------------------------------------------

/// `kubectl kustomize --enable-helm` with the real helm: the reference for `helmCharts`. The
/// kustomize inside kubectl 1.32 (v5.5) asks `helm version -c` (a flag helm 4 dropped) and
/// accepts only a 3.x answer, though the `helm template` it then runs works the same with helm
/// 4; a wrapper answers that one question and hands every other call to the real helm as it is,
/// so both sides render with the same helm.
fn kustomize_with_helm(dir: &Path) -> Vec<Value> {
    let kubectl = std::env::var("CAIRN_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    let tools = tempfile::tempdir().expect("tempdir");
    let wrapper = tools.path().join("helm");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\n[ \"$1\" = version ] && {{ echo v3.19.0; exit 0; }}\nexec '{}' \"$@\"\n", helm()),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new(kubectl)
        .args(["kustomize", "--enable-helm", "--helm-kube-version", "1.37.0", "--helm-command"])
        .arg(&wrapper)
        .arg(dir)
        .output()
        .expect("kubectl kustomize");
    assert!(out.status.success(), "kubectl kustomize --enable-helm: {}", String::from_utf8_lossy(&out.stderr));
    yaml_docs(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn helm_charts_in_a_kustomization_build_as_kustomize_enable_helm_does() {
    let f = Fixture::new();
    f.write(".gitignore", ".cairn/\n.cache/\n");
    f.write(
        "cairn.yaml",
        "environments:\n  staging:\n    layers: [deploy/staging]\n    target:\n      local: { path: .cairn/live/staging }\n",
    );
    std::fs::create_dir_all(f.join("deploy/base/charts")).expect("mkdir");
    run_helm(&f.join("deploy/base/charts"), &["create", "web"]);
    f.write(
        "deploy/base/kustomization.yaml",
        "helmGlobals:\n  chartHome: charts\nhelmCharts:\n  - name: web\n    releaseName: shop\n    namespace: shop\n    includeCRDs: true\n    skipTests: true\n    valuesFile: values.yaml\n    valuesInline:\n      replicaCount: 2\n      image: { tag: \"1.25.0\" }\n    additionalValuesFiles: [more-values.yaml]\nresources: [namespace.yaml]\nconfigMapGenerator:\n  - name: settings\n    literals: [MODE=base]\n",
    );
    f.write("deploy/base/values.yaml", "replicaCount: 5\nservice: { port: 8080 }\npodLabels: { tier: front }\n");
    f.write("deploy/base/more-values.yaml", "podAnnotations: { team: shop }\n");
    f.write("deploy/base/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    // The overlay's transformers work on the chart's output: a namespace, a prefix, labels and a
    // patch of the chart's Deployment by container name.
    f.write(
        "deploy/staging/kustomization.yaml",
        "resources: [../base]\nnamespace: shop\nnamePrefix: staging-\nlabels:\n  - pairs: { env: staging }\n    includeSelectors: false\npatches:\n  - patch: |\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata: { name: shop-web }\n      spec:\n        template:\n          spec:\n            containers:\n              - name: web\n                env: [{ name: MODE, value: staging }]\n",
    );
    f.commit("feat: the web chart through kustomize");
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));

    let expected = kustomize_with_helm(&f.join("deploy/staging"));
    let rendered = f.json(&["render", "--env", "staging", "--format", "json"], 0);
    let ours = common::kustomize::cairn_objects(&rendered);
    // helm's `app.kubernetes.io/managed-by: Helm` is replaced by cairn's label on every object.
    let strip = |v: &Value| without_managed_labels(v.clone());
    let ours: Vec<Value> = ours.iter().map(strip).collect();
    let expected: Vec<Value> = expected.iter().map(strip).collect();
    common::kustomize::assert_same_objects("helmCharts", &ours, &expected);
    let deployment = find(&ours, "Deployment", "staging-shop-web");
    assert_eq!(deployment["spec"]["replicas"], 2, "valuesInline wins over valuesFile");
    assert_eq!(deployment["spec"]["template"]["metadata"]["annotations"]["team"], "shop");
    // The chart is recorded in the plan like a chart layer's.
    let plan = f.json(&["plan", "--format", "json"], 0);
    assert_eq!(plan["plans"][0]["charts"][0]["chart"], "web", "{:#}", plan["plans"][0]["charts"]);
}

#[test]
fn sops_values_of_a_kustomization_chart_are_masked_through_its_transformers() {
    let f = Fixture::new();
    f.write(".gitignore", ".cairn/\n.cache/\n");
    f.write(
        "cairn.yaml",
        "environments:\n  staging:\n    layers: [deploy]\n    target:\n      local: { path: .cairn/live/staging }\n",
    );
    std::fs::create_dir_all(f.join("deploy/charts")).expect("mkdir");
    run_helm(&f.join("deploy/charts"), &["create", "web"]);
    f.write(
        "deploy/charts/web/templates/db.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\ndata:\n  url: postgres://app:{{ .Values.database.password }}@db/app\n",
    );
    f.write(
        "deploy/kustomization.yaml",
        "namePrefix: staging-\nhelmCharts:\n  - { name: web, releaseName: web, additionalValuesFiles: [secrets.yaml] }\n",
    );
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(".sops.yaml", &format!("creation_rules:\n  - path_regex: secrets\\.yaml$\n    age: {public}\n"));
    f.write("deploy/secrets.yaml", &format!("database:\n  password: {DB_PASSWORD}\n"));
    common::sops_encrypt(f.path(), &f.join("deploy/secrets.yaml"), &[]);
    f.commit("feat: the database through kustomize");
    f.set_env("CAIRN_HELM", &helm());
    f.set_env("CAIRN_CACHE_DIR", f.join(".cache").to_str().expect("path"));
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    let shm = tempfile::Builder::new().prefix("cairn-test-").tempdir_in("/dev/shm").expect("a directory in /dev/shm");
    f.set_env("CAIRN_SECRET_TMPDIR", shm.path().to_str().expect("path"));

    let outputs = f.outputs_of(&[&["render"], &["render", "--format", "json"], &["plan", "--format", "json"]]);
    assert!(!outputs.contains(DB_PASSWORD) && !outputs.contains(&b64(DB_PASSWORD)), "{outputs}");
    let json = f.json(&["render", "--format", "json"], 0);
    let db =
        json[0]["objects"].as_array().expect("objects").iter().find(|o| o["id"]["name"] == "staging-db").expect("db");
    assert!(db["body"]["data"]["url"].to_string().contains("secret"), "{db}");
    f.ok(&["apply", "--env", "staging"], 0);
    assert!(read_tree(&f.join(".cairn/live/staging/objects")).contains(DB_PASSWORD), "applied with the real value");
    assert!(left_in(shm.path()).is_empty());
}

#[test]
fn a_packaged_chart_in_the_repository_renders_as_its_directory_does() {
    let f = fixture();
    let from_directory = rendered(&f);
    run_helm(&f.join("charts"), &["package", "web"]);
    std::fs::remove_dir_all(f.join("charts/web")).expect("remove the directory");
    f.write("cairn.yaml", &CONFIG.replace("chart: charts/web", "chart: charts/web-0.1.0.tgz"));
    f.commit("chore: the chart as a package");
    let from_package = rendered(&f);
    assert_eq!(from_package, from_directory);
    let plan = f.json(&["plan", "--format", "json"], 0);
    let package = std::fs::read(f.join("charts/web-0.1.0.tgz")).expect("package");
    let digest = {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&package)))
    };
    assert_eq!(plan["plans"][0]["charts"][0]["digest"], digest.as_str());

    // A packaged chart whose template calls `lookup` is refused too, naming the file inside it.
    let work = tempfile::tempdir().expect("tempdir");
    run_helm(work.path(), &["create", "web"]);
    std::fs::write(
        work.path().join("web/templates/peek.yaml"),
        "{{- $s := lookup \"v1\" \"Secret\" \"shop\" \"db\" }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: peek\n",
    )
    .expect("write");
    run_helm(work.path(), &["package", "web", "--destination", f.join("charts").to_str().expect("path")]);
    f.commit("break: a package that looks up");
    refused(&f, &["render"], &["charts/web-0.1.0.tgz/templates/peek.yaml:1", "calls `lookup`"]);
}
