#!/usr/bin/env python3
"""Benchmark: `cairn validate` of 50,000 typical objects in one environment.

Generates a git repository whose one environment renders OBJECTS objects: Deployments, Services,
ConfigMaps, one CustomResourceDefinition and custom resources of it (about a tenth), ten objects a
file. Measures the release binary's `validate` (bundled Kubernetes schemas, the CRD's schema, and
built-in checks): cold (the page cache dropped first, when this machine allows it) and warm
(median of RUNS), with objects per second and peak RSS per process (wait4).

Usage: scripts/bench_validate.py [--objects 50000] [--runs 5] [--binary target/release/cairn] [--strict]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import cold_and_warm, configmap, deployment, service  # noqa: E402

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.example.org
spec:
  group: example.org
  names: {kind: Backup, plural: backups, singular: backup}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [schedule]
              properties:
                schedule: {type: string}
                keep: {type: integer, minimum: 1}
                target: {type: string}
"""


def backup(i):
    return f"""apiVersion: example.org/v1
kind: Backup
metadata:
  name: backup-{i:05d}
  namespace: team-{i % 20:02d}
spec:
  schedule: "0 {i % 24} * * *"
  keep: {1 + i % 10}
  target: app-{i:05d}
"""


def generate(root, objects):
    layer = os.path.join(root, "base")
    os.makedirs(layer)
    kinds = [deployment, service, configmap, deployment, service, configmap, deployment, service, configmap, backup]
    docs = [CRD]
    for n in range(objects - 1):
        docs.append(kinds[n % len(kinds)](n))
    for start in range(0, len(docs), 10):
        with open(os.path.join(layer, f"objects-{start // 10:05d}.yaml"), "w") as f:
            f.write("---\n".join(docs[start:start + 10]))
    with open(os.path.join(root, "cairn.yaml"), "w") as f:
        f.write("environments:\n  production:\n    layers: [base]\n    target:\n      local: { path: .cairn/live/production }\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", "-C", root]
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "bench"], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="target/release/cairn")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    root = tempfile.mkdtemp(prefix="cairn-bench-validate-")
    try:
        generate(root, args.objects)
        env = dict(os.environ, CAIRN_REPO=root, NO_COLOR="1")
        cmd = [binary, "validate", "--format", "json"] + (["--strict"] if args.strict else [])
        dropped, cold, cold_rss, times, warm_rss = cold_and_warm("validate", cmd, env, args.runs)
        med = statistics.median(times)
        print(f"{args.objects} objects in one environment, {args.runs} warm runs, {os.cpu_count()} CPUs"
              + (", --strict" if args.strict else ""))
        print(f"{'run':<28} {'wall':>8} {'objects/s':>10} {'peak RSS':>10}")
        label = "cold (page cache dropped)" if dropped else "cold (first run; cache kept)"
        print(f"{label:<28} {cold:>7.3f}s {args.objects / cold:>10.0f} {cold_rss:>7.1f} MiB")
        print(f"{'warm (median)':<28} {med:>7.3f}s {args.objects / med:>10.0f} {warm_rss:>7.1f} MiB")
        print(f"{'warm (best)':<28} {min(times):>7.3f}s {args.objects / min(times):>10.0f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
