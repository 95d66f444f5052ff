#!/usr/bin/env python3
"""Rollout benchmark (docs/benchmarks.md, "Canary rollouts").

On a real API server started by scripts/kube-test.sh (no controllers run there, so this script
plays the Deployment controller: it writes each Deployment's status for its generation, as the
tests do), with a Deployment of 10 replicas:

1. Overhead per step: a canary of `weight: 10`, `weight: 50`, `weight: 100`; each phase's
   `overhead_ms` from the release record — cairn's own time in the phase (writes, reads, the
   record) without the wait for pods to become ready. Goal: under 200 ms per step.
2. Time to restore: a canary at 50% whose HTTP check (interval INTERVAL) starts failing; from
   the first failing measurement (its recorded time) to the rollout's end (stable scaled back,
   canary deleted, recorded). Goal: at most one check interval + 2 s. The time from the service
   starting to fail (this script's clock) is shown too.

Medians over --runs. With --target local the same flows run on the local target (simulated).

    scripts/bench_rollout.py [--cairn target/release/cairn] [--runs 5] [--interval-ms 1000] [--target kubernetes|local]
"""

import argparse
import http.server
import json
import os
import socket
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from bench_verify import HEALTHY, Handler, git, ts  # the same check server, record times and commits

FLIPPED = {"at": None}


class Api:
    """The API server as the administrator, for playing the Deployment controller."""

    def __init__(self, cluster):
        with open(os.path.join(cluster, "kubeconfig")) as f:
            self.server = next(l.split("server: ", 1)[1].strip() for l in f if "server: " in l)
        with open(os.path.join(cluster, "pki/tokens.csv")) as f:
            self.token = f.readline().split(",")[0]
        self.ssl = ssl.create_default_context(cafile=os.path.join(cluster, "pki/ca.crt"))

    def call(self, method, path, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
            return json.loads(r.read() or b"{}")


def play_controller(api, namespace, stop):
    while not stop.is_set():
        try:
            items = api.call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments").get("items", [])
            for d in items:
                gen = d["metadata"].get("generation", 0)
                if d.get("status", {}).get("observedGeneration") != gen:
                    n = d["spec"].get("replicas", 1)
                    api.call("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{d['metadata']['name']}/status",
                             {"status": {"observedGeneration": gen, "replicas": n, "updatedReplicas": n,
                                         "readyReplicas": n, "availableReplicas": n}},
                             "application/merge-patch+json")
        except Exception:  # the namespace may not exist yet
            pass
        time.sleep(0.02)


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: NS
spec:
  replicas: 10
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: example.org/web:VERSION
"""


def make_repo(root, url, interval_ms, target, namespace, steps):
    os.makedirs(f"{root}/base")
    with open(f"{root}/cairn.yaml", "w") as f:
        f.write(
            f"environments:\n  staging:\n    layers: [base]\n    target:\n      {target}\n    verify:\n"
            f"      - name: smoke\n        http: {{ url: '{url}/healthz' }}\n        interval: {interval_ms}ms\n        count: 3\n"
            "strategies:\n  - name: web\n    select: { kind: Deployment, name: web }\n    canary:\n      steps:\n"
            + "".join(f"        - {s}\n" for s in steps)
        )
    with open(f"{root}/.gitignore", "w") as f:
        f.write(".cairn/\n")
    write_objects(root, namespace, "1.0.0")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")


def write_objects(root, namespace, version):
    with open(f"{root}/base/app.yaml", "w") as f:
        f.write(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n")
        f.write(DEPLOYMENT.replace("NS", namespace).replace("VERSION", version))


def run(cairn, repo, *args):
    started = time.perf_counter()
    p = subprocess.run([cairn, "--repo", repo, *args], capture_output=True, text=True,
                       env=dict(os.environ, CAIRN_ACTOR="bench"))
    return p, time.perf_counter() - started


def latest_rollout(cairn, root):
    p, _ = run(cairn, root, "rollout", "status", "--env", "staging", "--format", "json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["rollouts"][0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cairn", default="target/release/cairn")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--target", choices=["local", "kubernetes"], default="kubernetes")
    args = parser.parse_args()
    cairn = os.path.abspath(args.cairn)
    here = os.path.dirname(os.path.abspath(__file__))
    cluster, api = None, None
    if args.target == "kubernetes":
        cluster = tempfile.mkdtemp(prefix="cairn-bench-rollout-")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        subprocess.run([os.path.join(here, "kube-test.sh"), "start", cluster, str(port)], check=True)
        os.environ["KUBECONFIG"] = os.path.join(cluster, "kubeconfig")
        api = Api(cluster)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    overheads, step_walls, walls, restore, since_flip = [], [], [], [], []
    for i in range(args.runs):
        for flow in ("steps", "restore"):
            ns = f"bench-{flow}-{i}"
            if cluster:
                target = f"kubernetes: {{ context: admin, namespace: {ns}, state_namespace: {ns}-state }}"
            else:
                target = "local: { path: .cairn/live/staging }"
            steps = ["weight: 10", "weight: 50", "weight: 100"] if flow == "steps" else ["weight: 50", "verify: [smoke]", "weight: 100"]
            stop = threading.Event()
            if api:
                threading.Thread(target=play_controller, args=(api, ns, stop), daemon=True).start()
            with tempfile.TemporaryDirectory() as root:
                make_repo(root, url, args.interval_ms, target, ns, steps)
                HEALTHY["ok"] = True
                p, _ = run(cairn, root, "apply", "--env", "staging")
                assert p.returncode == 0, p.stderr
                write_objects(root, ns, "2.0.0")
                git(root, "commit", "-qam", "second")
                if flow == "steps":
                    p, wall = run(cairn, root, "apply", "--env", "staging")
                    assert p.returncode == 0, p.stderr
                    rollout = latest_rollout(cairn, root)
                    assert rollout["state"] == "succeeded", rollout
                    overheads.extend(s["overhead_ms"] for s in rollout["steps"])
                    step_walls.extend(ts(s["finished_at"]) - ts(s["started_at"]) for s in rollout["steps"])
                    walls.append(wall)
                else:
                    # The service starts failing once the canary runs at 50%.
                    def flip():
                        deadline = time.time() + 60
                        while time.time() < deadline:
                            live = os.path.join(root, ".cairn/live/staging/objects/Deployment.apps", ns, "web-canary.json")
                            if (api and _replicas(api, ns, "web-canary") == 5) or (not api and os.path.exists(live)):
                                break
                            time.sleep(0.01)
                        HEALTHY["ok"] = False
                        FLIPPED["at"] = time.time()
                    flipper = threading.Thread(target=flip)
                    flipper.start()
                    p, _ = run(cairn, root, "apply", "--env", "staging")
                    flipper.join()
                    assert p.returncode == 2, p.stderr
                    rollout = latest_rollout(cairn, root)
                    assert rollout["state"] == "aborted", rollout
                    verify = next(s for s in rollout["steps"] if s.get("verification"))
                    first_fail = min(ts(m["at"]) for c in verify["verification"]["checks"]
                                     for m in c["measurements"] if m["phase"] == "failed")
                    restore.append(ts(rollout["finished_at"]) - first_fail)
                    since_flip.append(ts(rollout["finished_at"]) - FLIPPED["at"])
            stop.set()
    server.shutdown()
    if cluster:
        subprocess.run([os.path.join(here, "kube-test.sh"), "stop", cluster])

    med = statistics.median
    interval = args.interval_ms / 1000
    print(f"target: {args.target}, replicas: 10, check interval: {args.interval_ms} ms, runs: {args.runs}")
    print(f"cairn's overhead per step (weights 10/50/100 and the release, {len(overheads)} steps): "
          f"median {med(overheads):.0f} ms, max {max(overheads):.0f} ms; goal < 200 ms: "
          f"{'met' if med(overheads) < 200 else 'NOT met'}")
    print(f"each step from start to end, with the wait for the (simulated) controller: median {med(step_walls) * 1000:.0f} ms; "
          f"the whole apply of the rollout: median {med(walls):.2f} s")
    budget = interval + 2
    print(f"first failing measurement -> stable restored: median {med(restore) * 1000:.0f} ms, max {max(restore) * 1000:.0f} ms "
          f"(service failing -> restored: median {med(since_flip) * 1000:.0f} ms); goal <= interval + 2 s = {budget * 1000:.0f} ms: "
          f"{'met' if med(restore) <= budget else 'NOT met'}")


def _replicas(api, ns, name):
    try:
        return api.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")["spec"].get("replicas")
    except Exception:
        return None


if __name__ == "__main__":
    main()
