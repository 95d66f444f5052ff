//! A real Kubernetes API server for tests (etcd and kube-apiserver built from Debian's packages,
//! started on loopback by scripts/kube-test.sh; never a hand-written fake).

use std::path::PathBuf;
use std::process::Command;

/// The entry for `kind`/`name` in a list of objects of a JSON report (a plan's `changes`, a
/// release's `objects`).
pub fn entry<'a>(list: &'a serde_json::Value, kind: &str, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|c| c["object"]["kind"] == kind && c["object"]["name"] == name)
        .unwrap_or_else(|| panic!("no entry for {kind} {name}: {list:#}"))
}

/// A CustomResourceDefinition of namespaced `Widget`s, and one Widget in namespace `shop`.
pub const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.org\nspec:\n  group: example.org\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec:\n              type: object\n              properties:\n                size: {type: integer}\n";
pub const WIDGET: &str =
    "apiVersion: example.org/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\nspec:\n  size: 3\n";

/// A port for the API whose two successors (etcd's) are free too, never handed out twice by
/// this process (tests of one binary start their servers in parallel).
fn free_ports() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if port > 65000 || taken.iter().any(|t| t.abs_diff(port) < 3) {
            continue;
        }
        if (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            taken.push(port);
            return port;
        }
    }
}

/// A running API server; stopped when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_ports();
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kube-test.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .expect("run scripts/kube-test.sh (scripts/test.sh installs the API server)");
        assert!(out.status.success(), "the API server did not start: {}", String::from_utf8_lossy(&out.stderr));
        Cluster { dir }
    }

    /// Runs kubectl and returns its exit code, stdout and stderr.
    pub fn kubectl_status(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("kubectl").args(args).env("KUBECONFIG", self.kubeconfig()).output().expect("kubectl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A raw request to the API as the administrator (for what kubectl 1.20 cannot do, such as
    /// writing a status subresource the way a controller does).
    pub fn request(&self, method: &str, path: &str, content_type: &str, body: &str) -> String {
        let tokens = std::fs::read_to_string(self.dir.path().join("pki/tokens.csv")).expect("tokens");
        let token = tokens.lines().next().and_then(|l| l.split(',').next()).expect("admin token");
        let config = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let server = config.lines().find_map(|l| l.trim().strip_prefix("server: ")).expect("server").to_string();
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(self.dir.path().join("pki/ca.crt"))
            .args(["-X", method, "-H", &format!("Authorization: Bearer {token}"), "-H"])
            .arg(format!("Content-Type: {content_type}"))
            .args(["--data-binary", body, &format!("{server}{path}")])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{method} {path}: {text} {}", String::from_utf8_lossy(&out.stderr));
        text
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kube-test.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
