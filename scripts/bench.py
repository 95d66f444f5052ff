#!/usr/bin/env python3
"""Benchmark: render, plan and re-plan of a generated configuration repository.

Generates a git repository of OBJECTS objects over three environments (a shared base layer,
per-environment patches of every tenth object, and environment-only objects), then measures the
release binary: `render` of all environments, `plan` with nothing applied, and `plan` again after
`apply` (no changes). Each command runs RUNS times; the report gives median and min wall time,
objects per second and peak RSS (from wait4, per process).

Usage: scripts/bench.py [--objects 10000] [--runs 5] [--binary target/release/cairn] [--json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ENVIRONMENTS = ["dev", "staging", "production"]


def deployment(i):
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i:05d}
  namespace: team-{i % 20:02d}
  labels:
    app: app-{i:05d}
    team: team-{i % 20:02d}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-{i:05d}
  template:
    metadata:
      labels:
        app: app-{i:05d}
    spec:
      containers:
        - name: main
          image: registry.example.org/app-{i:05d}:1.{i % 7}.0
          ports:
            - containerPort: 8080
              protocol: TCP
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 500m, memory: 256Mi}}
"""


def service(i):
    return f"""apiVersion: v1
kind: Service
metadata:
  name: app-{i:05d}
  namespace: team-{i % 20:02d}
spec:
  selector:
    app: app-{i:05d}
  ports:
    - port: 80
      targetPort: 8080
      protocol: TCP
"""


def configmap(i):
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: app-{i:05d}-settings
  namespace: team-{i % 20:02d}
data:
  LOG_LEVEL: info
  FEATURE_X: "true"
  TIMEOUT_SECONDS: "30"
  ENDPOINT: https://api.example.org/v1/app-{i:05d}
"""


def generate(root, objects):
    """Writes the repository; returns the number of objects each environment renders."""
    per_env = objects // len(ENVIRONMENTS)
    base_count = per_env - 20  # each environment adds its own 20 namespaces
    kinds = [deployment, service, configmap]
    os.makedirs(os.path.join(root, "base"))
    docs = []
    for n in range(base_count):
        docs.append(kinds[n % 3](n // 3))
        if len(docs) == 10 or n == base_count - 1:
            with open(os.path.join(root, "base", f"objects-{n // 10:05d}.yaml"), "w") as f:
                f.write("---\n".join(docs))
            docs = []
    config = ["environments:"]
    for env in ENVIRONMENTS:
        d = os.path.join(root, "environments", env)
        os.makedirs(d)
        with open(os.path.join(d, "namespaces.yaml"), "w") as f:
            f.write("---\n".join(
                f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{t:02d}\n  labels:\n    env: {env}\n"
                for t in range(20)))
        with open(os.path.join(d, "patches.yaml"), "w") as f:
            f.write("---\n".join(
                f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:05d}\n  namespace: team-{i % 20:02d}\n"
                f"spec:\n  replicas: {1 + len(env) % 4}\n"
                for i in range(0, base_count // 3, 10)))
        config += [f"  {env}:", f"    layers: [base, environments/{env}]",
                   f"    target:\n      local: {{ path: .cairn/live/{env} }}"]
    with open(os.path.join(root, "cairn.yaml"), "w") as f:
        f.write("\n".join(config) + "\n")
    with open(os.path.join(root, ".gitignore"), "w") as f:
        f.write(".cairn/\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    subprocess.run(git + ["-C", root, "add", "-A"], check=True)
    subprocess.run(git + ["-C", root, "commit", "-q", "-m", "bench"], check=True)
    return per_env


def measure(cmd, env):
    """Runs cmd once; returns (seconds, peak RSS in MiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024.0, code


def drop_caches():
    """Drops the page cache for a cold run, when this machine allows it (root)."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def cold_and_warm(name, cmd, env, runs):
    """One cold run (page cache dropped if allowed), then `runs` warm runs. Returns
    (dropped, cold seconds, cold RSS MiB, warm times, warm peak RSS MiB); exits on a failure."""
    dropped = drop_caches()
    cold, cold_rss, code = measure(cmd, env)
    if code != 0:
        sys.exit(f"{name} exited {code}")
    times, rss = [], []
    for _ in range(runs):
        t, r, code = measure(cmd, env)
        if code != 0:
            sys.exit(f"{name} exited {code}")
        times.append(t)
        rss.append(r)
    return dropped, cold, cold_rss, times, max(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="target/release/cairn")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    root = tempfile.mkdtemp(prefix="cairn-bench-")
    try:
        per_env = generate(root, args.objects)
        total = per_env * len(ENVIRONMENTS)
        env = dict(os.environ, CAIRN_REPO=root, CAIRN_ACTOR="bench", NO_COLOR="1")
        env.pop("CAIRN_LOG", None)
        base = [binary]
        steps = [
            ("render", base + ["render"], None, 0),
            ("plan (nothing applied)", base + ["plan", "--no-diff"], None, 0),
            ("apply (create)", base + ["apply"] + sum((["--env", e] for e in ENVIRONMENTS), []), "fresh", 0),
            ("re-plan (no changes)", base + ["plan", "--detailed-exitcode"], None, 0),
        ]
        results = []
        for name, cmd, reset, expect in steps:
            times, rss = [], []
            for _ in range(args.runs):
                if reset == "fresh":
                    shutil.rmtree(os.path.join(root, ".cairn"), ignore_errors=True)
                elapsed, peak, code = measure(cmd, env)
                if code != expect:
                    sys.exit(f"{name}: exit code {code}, expected {expect}")
                times.append(elapsed)
                rss.append(peak)
            med = statistics.median(times)
            results.append({
                "step": name, "objects": total, "runs": args.runs,
                "median_s": round(med, 3), "min_s": round(min(times), 3),
                "objects_per_s": round(total / med), "peak_rss_mib": round(max(rss), 1),
            })
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(f"{total} objects over {len(ENVIRONMENTS)} environments ({per_env} each), {args.runs} runs, {os.cpu_count()} CPUs")
            print(f"{'step':<26} {'median':>8} {'min':>8} {'objects/s':>10} {'peak RSS':>10}")
            for r in results:
                print(f"{r['step']:<26} {r['median_s']:>7.3f}s {r['min_s']:>7.3f}s {r['objects_per_s']:>10} {r['peak_rss_mib']:>7.1f} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
