#!/usr/bin/env python3
"""Verification benchmark (docs/benchmarks.md, "Verification and rollback").

1. Time to restore: a release whose HTTP check fails is applied with `apply --verify` and
   `on_failure: rollback`; measured from the first failing measurement (its recorded time) to
   the rollback release's end. Goal: at most one check interval + the rollback's own apply
   time + 1 s.
2. Overhead of `verify` beyond its checks: a passing check of COUNT measurements at INTERVAL;
   the process's wall time minus (COUNT - 1) x INTERVAL minus the measurements' own time. Goal:
   under 50 ms.

The local target, or with --target kubernetes a real API server started by
scripts/kube-test.sh (ConfigMaps only, so no controller is needed); a loopback HTTP server in this
script answers the check. Medians over --runs.

    scripts/bench_verify.py [--cairn target/release/cairn] [--runs 5] [--objects 200] [--target local|kubernetes]
"""

import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime

HEALTHY = {"ok": True}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if HEALTHY["ok"] else 503
        body = b"ok" if HEALTHY["ok"] else b"down"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.org",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.org")
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def make_repo(root, url, objects, interval_ms, target):
    os.makedirs(f"{root}/base")
    with open(f"{root}/cairn.yaml", "w") as f:
        f.write(
            f"environments:\n  staging:\n    layers: [base]\n    target:\n      {target}\n"
            "    on_failure: rollback\n    verify:\n"
            f"      - name: smoke\n        http: {{ url: '{url}/healthz' }}\n        interval: {interval_ms}ms\n        count: 3\n"
        )
    with open(f"{root}/.gitignore", "w") as f:
        f.write(".cairn/\n")
    write_objects(root, objects, "1.0.0")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")


def write_objects(root, objects, version):
    with open(f"{root}/base/app.yaml", "w") as f:
        for i in range(objects):
            f.write(
                f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: shop\ndata:\n  version: '{version}'\n"
            )


def run(cairn, repo, *args):
    started = time.perf_counter()
    p = subprocess.run([cairn, "--repo", repo, *args], capture_output=True, text=True,
                       env=dict(os.environ, CAIRN_ACTOR="bench"))
    return p, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cairn", default="target/release/cairn")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--target", choices=["local", "kubernetes"], default="local")
    args = parser.parse_args()
    cairn = os.path.abspath(args.cairn)
    here = os.path.dirname(os.path.abspath(__file__))
    cluster = None
    if args.target == "kubernetes":
        cluster = tempfile.mkdtemp(prefix="cairn-bench-kube-")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        subprocess.run([os.path.join(here, "kube-test.sh"), "start", cluster, str(port)], check=True)
        os.environ["KUBECONFIG"] = os.path.join(cluster, "kubeconfig")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    restore, rollback_apply, detect = [], [], []
    overhead_process, overhead_inside = [], []
    for run_index in range(args.runs):
        with tempfile.TemporaryDirectory() as root:
            if cluster:
                # A namespace per run: each run starts with nothing applied.
                target = f"kubernetes: {{ context: admin, namespace: bench-{run_index}, state_namespace: bench-{run_index}-state }}"
                with open(f"{root}/ns.yaml", "w") as f:
                    f.write(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{run_index}\n")
            else:
                target = "local: { path: .cairn/live/staging }"
            make_repo(root, url, args.objects, args.interval_ms, target)
            if cluster:
                os.rename(f"{root}/ns.yaml", f"{root}/base/ns.yaml")
                subprocess.run(["sed", "-i", f"s/namespace: shop/namespace: bench-{run_index}/", f"{root}/base/app.yaml"], check=True)
                git(root, "add", "-A")
                git(root, "commit", "-qm", "namespace")
            HEALTHY["ok"] = True
            p, _ = run(cairn, root, "apply", "--env", "staging", "--verify")
            assert p.returncode == 0, p.stderr
            # Overhead: a passing verification of 3 measurements.
            p, wall = run(cairn, root, "verify", "--env", "staging", "--format", "json")
            assert p.returncode == 0, p.stderr
            v = json.loads(p.stdout)
            measured = sum(m["elapsed_ms"] for c in v["checks"] for m in c["measurements"]) / 1000
            waits = 2 * args.interval_ms / 1000
            overhead_process.append(wall - waits - measured)
            overhead_inside.append(ts(v["finished_at"]) - ts(v["started_at"]) - waits - measured)
            # Restore: a failing release, rolled back.
            write_objects(root, args.objects, "2.0.0")
            if cluster:
                subprocess.run(["sed", "-i", f"s/namespace: shop/namespace: bench-{run_index}/", f"{root}/base/app.yaml"], check=True)
            git(root, "commit", "-qam", "second")
            HEALTHY["ok"] = False
            p, _ = run(cairn, root, "apply", "--env", "staging", "--verify", "--format", "json")
            assert p.returncode == 4, p.stderr
            reports = json.loads(p.stdout)
            failed = reports[0]["release"]["verification"]
            first_fail = min(ts(m["at"]) for c in failed["checks"] for m in c["measurements"] if m["phase"] == "failed")
            rollback = reports[1]["release"]
            assert rollback["kind"] == "rollback"
            restore.append(ts(rollback["finished_at"]) - first_fail)
            rollback_apply.append(ts(rollback["finished_at"]) - ts(rollback["started_at"]))
            detect.append(ts(rollback["started_at"]) - first_fail)
    server.shutdown()
    if cluster:
        subprocess.run([os.path.join(here, "kube-test.sh"), "stop", cluster])

    med = statistics.median
    interval = args.interval_ms / 1000
    budget = interval + med(rollback_apply) + 1
    print(f"target: {args.target}, objects: {args.objects}, check interval: {args.interval_ms} ms, runs: {args.runs}")
    print(f"first failing measurement -> restored: median {med(restore) * 1000:.0f} ms "
          f"(of which the rollback's apply {med(rollback_apply) * 1000:.0f} ms, "
          f"failure to rollback start {med(detect) * 1000:.0f} ms); "
          f"goal <= interval + rollback apply + 1 s = {budget * 1000:.0f} ms: "
          f"{'met' if med(restore) <= budget else 'NOT met'}")
    print(f"verify overhead beyond the checks: process median {med(overhead_process) * 1000:.1f} ms, "
          f"inside the verification median {med(overhead_inside) * 1000:.1f} ms; goal < 50 ms: "
          f"{'met' if med(overhead_process) < 0.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
