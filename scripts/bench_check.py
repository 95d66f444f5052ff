#!/usr/bin/env python3
"""Benchmark: `cairn check` of a change touching 3 environments of a 10,000-object repository.

Generates the repository of scripts/bench.py (three environments of 3,333 objects over a shared
base), applies all three environments to their local targets, then commits on a branch a change to
the base layer (it touches every environment) and times `cairn check --base main --head feature
--out plan.json`: cold (page cache dropped first, when allowed) and warm (median of RUNS), with
peak RSS per process.

Usage: scripts/bench_check.py [--objects 10000] [--runs 5] [--binary target/release/cairn]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ENVIRONMENTS, cold_and_warm, generate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="target/release/cairn")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    root = tempfile.mkdtemp(prefix="cairn-bench-check-")
    try:
        per_env = generate(root, args.objects)
        env = dict(os.environ, CAIRN_REPO=root, CAIRN_ACTOR="bench", NO_COLOR="1")
        apply = [binary, "apply"] + sum((["--env", e] for e in ENVIRONMENTS), []) + ["--rev", "main"]
        subprocess.run(apply, env=env, check=True, stdout=subprocess.DEVNULL)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", "-C", root]
        subprocess.run(git + ["checkout", "-q", "-b", "feature"], check=True)
        path = os.path.join(root, "base", "objects-00000.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("replicas: 2", "replicas: 3", 1))
        subprocess.run(git + ["commit", "-q", "-am", "feat: scale app-00000"], check=True)
        cmd = [binary, "check", "--base", "main", "--head", "feature", "--out", os.path.join(root, "plan.json")]
        dropped, cold, cold_rss, times, warm_rss = cold_and_warm("check", cmd, env, args.runs)
        total = per_env * len(ENVIRONMENTS)
        print(f"check of a change touching {len(ENVIRONMENTS)} environments, {total} objects, {os.cpu_count()} CPUs")
        label = "cold (page cache dropped)" if dropped else "cold (first run)"
        print(f"{label:<28} {cold:>7.3f}s {cold_rss:>7.1f} MiB")
        print(f"{'warm (median)':<28} {statistics.median(times):>7.3f}s {warm_rss:>7.1f} MiB")
        print(f"{'warm (best)':<28} {min(times):>7.3f}s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
