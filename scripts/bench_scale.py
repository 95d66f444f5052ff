#!/usr/bin/env python3
"""Benchmark: cairn on repositories of many environments (CI past one job).

For each SIZE N, generates a git repository of N environments × 20 objects: a shared base layer
(a Namespace) and per environment its own layer of 19 objects (Deployments, Services and
ConfigMaps), each environment on its own local target. On a branch, one environment's layer
changes (one Deployment scaled). Measured with the release binary, median of RUNS, with peak RSS
(from wait4):

- `check --base main --head feature --out plan.json`: the change touching one environment;
- `changes --base main --head feature --format github-matrix`: the matrix of that change, and of
  a change to `cairn.yaml` (it touches every environment);
- `plan --no-diff`: the full plan of every environment (N × 20 objects, nothing applied);
- `site --out DIR`: the status site, after one environment in a hundred was applied.

Goals (from the issue), at 10,000 environments on this 2-core machine: check of a change touching
one environment < 0.3 s with peak RSS within 1.5× of the 100-environment repository's; the matrix
< 0.5 s; the full plan of 200,000 objects < 15 s and < 1.5 GB; the site < 10 s.

With `--baseline BIN`, every step is also run with that build, alternating with the measured
one (ABAB…), so the machine's noise falls on both alike; the table then shows both and the ratio.

Usage: scripts/bench_scale.py [--sizes 100,1000,10000] [--runs 5] [--plan-runs 3]
                              [--binary target/release/cairn] [--baseline BIN] [--json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import measure  # noqa: E402

OBJECTS = 20  # per environment, the base's Namespace included


def environment_objects(e):
    docs = []
    for i in range(6):
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: shop
  labels: {{app: app-{i}, env: env-{e}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}}}
    spec:
      containers:
        - name: app
          image: registry.example.org/app-{i}:1.{e % 50}.0
          ports: [{{containerPort: 8080}}]
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
""")
        docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: app-{i}
  namespace: shop
spec:
  selector: {{app: app-{i}}}
  ports: [{{port: 80, targetPort: 8080}}]
""")
    for i in range(OBJECTS - 1 - 12):
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{i}
  namespace: shop
data:
  ENVIRONMENT: env-{e}
  LEVEL: "{i}"
""")
    return "---\n".join(docs)


def generate(root, n):
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", "-C", root]
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    os.makedirs(os.path.join(root, "base"))
    with open(os.path.join(root, "base", "namespace.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
    lines = ["environments:"]
    for e in range(n):
        name = f"env-{e:05d}"
        lines.append(f"  {name}:\n    layers: [base, environments/{name}]\n"
                     f"    target: {{ local: {{ path: .cairn/live/{name} }} }}")
        d = os.path.join(root, "environments", name)
        os.makedirs(d)
        with open(os.path.join(d, "objects.yaml"), "w") as f:
            f.write(environment_objects(e))
    with open(os.path.join(root, "cairn.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, ".gitignore"), "w") as f:
        f.write(".cairn/\n")
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "bench"], check=True)
    # One environment changes on `feature`; `cairn.yaml` changes on `config` (touches all).
    subprocess.run(git + ["checkout", "-q", "-b", "feature"], check=True)
    path = os.path.join(root, "environments", f"env-{n // 2:05d}", "objects.yaml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("replicas: 2", "replicas: 3", 1))
    subprocess.run(git + ["commit", "-q", "-am", "feat: scale one app"], check=True)
    subprocess.run(git + ["checkout", "-q", "-b", "config", "main"], check=True)
    with open(os.path.join(root, "cairn.yaml"), "a") as f:
        f.write("# touched\n")
    subprocess.run(git + ["commit", "-q", "-am", "chore: touch the config"], check=True)
    subprocess.run(git + ["checkout", "-q", "main"], check=True)


def run(name, cmd, env, runs, baseline=None, expect=(0,)):
    """Median and minimum wall time and peak RSS of `cmd`; with `baseline`, the same command with
    that binary in place of the first word, runs alternating."""
    binaries = [cmd[0]] + ([baseline] if baseline else [])
    times = {b: [] for b in binaries}
    rss = {b: [] for b in binaries}
    for _ in range(runs):
        for b in binaries:
            t, r, code = measure([b] + cmd[1:], env)
            if code not in expect:
                sys.exit(f"{name}: {b} {' '.join(cmd[1:])} exited {code}")
            times[b].append(t)
            rss[b].append(r)
    out = {"name": name, "median_s": statistics.median(times[cmd[0]]), "min_s": min(times[cmd[0]]),
           "peak_rss_mib": max(rss[cmd[0]])}
    if baseline:
        out["baseline"] = {"median_s": statistics.median(times[baseline]), "min_s": min(times[baseline]),
                           "peak_rss_mib": max(rss[baseline])}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--plan-runs", type=int, default=3)
    ap.add_argument("--binary", default="target/release/cairn")
    ap.add_argument("--baseline", help="another build to run beside it, alternating")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        root = tempfile.mkdtemp(prefix=f"cairn-bench-scale-{n}-")
        try:
            generate(root, n)
            env = dict(os.environ, CAIRN_REPO=root, CAIRN_ACTOR="bench", NO_COLOR="1")
            env.pop("CAIRN_LOG", None)
            plan_out = os.path.join(root, "plan.json")
            steps = [
                ("check (1 environment touched)",
                 [binary, "check", "--base", "main", "--head", "feature", "--out", plan_out], args.runs),
                ("changes github-matrix (1 touched)",
                 [binary, "changes", "--base", "main", "--head", "feature", "--format", "github-matrix"], args.runs),
                ("changes github-matrix (all touched)",
                 [binary, "changes", "--base", "main", "--head", "config", "--format", "github-matrix"], args.runs),
                (f"plan --no-diff ({n * OBJECTS} objects)", [binary, "plan", "--no-diff"], args.plan_runs),
            ]
            for name, cmd, runs in steps:
                r = run(name, cmd, env, runs, baseline)
                r["environments"] = n
                results.append(r)
            # The site reads every environment's records: one in a hundred has releases (applying
            # all of them would measure the local target's fsyncs, not the site).
            released = [f"env-{e:05d}" for e in range(0, n, 100)]
            for i in range(0, len(released), 50):
                apply = [binary, "apply", "--rev", "main"] + sum((["--env", e] for e in released[i:i + 50]), [])
                subprocess.run(apply, env=env, check=True, stdout=subprocess.DEVNULL)
            site = os.path.join(root, "site-out")
            r = run(f"site ({len(released)} with releases)", [binary, "site", "--out", site], env, args.runs, baseline)
            r["environments"] = n
            results.append(r)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'environments':>12}  {'step':<40} {'median':>9} {'min':>9} {'peak RSS':>10}"
          + (f" {'baseline':>9} {'its RSS':>10} {'time ratio':>10}" if baseline else ""))
    for r in results:
        line = (f"{r['environments']:>12}  {r['name']:<40} {r['median_s']:>8.3f}s {r['min_s']:>8.3f}s "
                f"{r['peak_rss_mib']:>7.1f} MiB")
        if "baseline" in r:
            b = r["baseline"]
            line += f" {b['median_s']:>8.3f}s {b['peak_rss_mib']:>7.1f} MiB {r['median_s'] / b['median_s']:>9.2f}x"
        print(line)


if __name__ == "__main__":
    main()
