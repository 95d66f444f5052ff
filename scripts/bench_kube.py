#!/usr/bin/env python3
"""Benchmark: planning 1,000 objects (ConfigMaps, Services, Deployments) against a real
kube-apiserver (scripts/kube-test.sh), side by side in one run with the anchor:

- `cairn plan` versus `kubectl diff --server-side` while nothing exists yet (every object a
  create, dry-run by the server), and
- the same after the objects were applied server-side as field manager `cairn` (a no-change
  re-plan), and
- `cairn apply` versus `kubectl apply --server-side` of the same objects: into an empty cluster
  (every object created; the objects are deleted again between runs, untimed) and again with
  nothing to change, and
- a re-plan after cairn's apply (its inventory lets unchanged objects skip the dry run).

Usage: scripts/bench_kube.py [--objects 1000] [--runs 3] [--binary target/release/cairn]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import configmap, deployment, service  # noqa: E402


def timed(cmd, env, runs):
    """Median and best wall time; `kubectl diff` exits 1 when there are differences."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return statistics.median(times), min(times)


def objects(n):
    """The workload of scripts/bench.py: Deployments, Services and ConfigMaps in 20 namespaces."""
    kinds = [deployment, service, configmap]
    return [kinds[i % 3](i // 3 * 3 + i % 3) for i in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default="target/release/cairn")
    args = ap.parse_args()
    cairn = os.path.abspath(args.binary)
    root = tempfile.mkdtemp(prefix="cairn-bench-kube-")
    cluster = os.path.join(root, "cluster")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([os.path.join(HERE, "kube-test.sh"), "start", cluster, str(port)], check=True)
    try:
        env = dict(os.environ, KUBECONFIG=os.path.join(cluster, "kubeconfig"))
        repo = os.path.join(root, "repo")
        os.makedirs(os.path.join(repo, "base"))
        with open(os.path.join(repo, "cairn.yaml"), "w") as f:
            f.write("environments:\n  bench:\n    layers: [base]\n    target:\n"
                    "      kubernetes: { context: admin, state_namespace: cairn-bench }\n")
        for i, doc in enumerate(objects(args.objects)):
            with open(os.path.join(repo, "base", f"o{i:04d}.yaml"), "w") as f:
                f.write(doc)
        git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
        subprocess.run(git + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "objects"], check=True)
        for t in range(20):
            subprocess.run(["kubectl", "create", "namespace", f"team-{t:02d}"], env=env, check=True, stdout=subprocess.DEVNULL)
        # What kubectl diffs is what cairn applies: the rendered objects (with cairn's labels).
        rendered = os.path.join(root, "rendered.yaml")
        with open(rendered, "w") as f:
            subprocess.run([cairn, "--repo", repo, "render", "--rev", "HEAD"], env=env, check=True, stdout=f)
        plan = [cairn, "--repo", repo, "plan", "--rev", "HEAD", "--format", "json", "--no-diff"]
        diff = ["kubectl", "diff", "--server-side", "--field-manager=cairn", "-f", rendered]

        create_cairn = timed(plan, env, args.runs)
        create_kubectl = timed(diff, env, args.runs)
        subprocess.run(["kubectl", "apply", "--server-side", "--field-manager=cairn", "-f", rendered],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        same_cairn = timed(plan, env, args.runs)
        same_kubectl = timed(diff, env, args.runs)

        apply = [cairn, "--repo", repo, "apply", "--env", "bench", "--rev", "HEAD", "--format", "json"]
        kubectl_apply = ["kubectl", "apply", "--server-side", "--field-manager=cairn", "-f", rendered]

        def clean():
            """Removes the benchmark's objects and cairn's records (untimed)."""
            for args_ in (["delete", "configmaps,services,deployments", "--all-namespaces",
                           "-l", "app.kubernetes.io/managed-by=cairn", "--wait=false"],
                          ["-n", "cairn-bench", "delete", "configmaps,leases,secrets", "--all", "--wait=false"]):
                subprocess.run(["kubectl"] + args_, env=env, check=True, stdout=subprocess.DEVNULL)

        def timed_fresh(cmd):
            times = []
            for _ in range(args.runs):
                clean()
                times.append(timed(cmd, env, 1)[0])
            return statistics.median(times), min(times)

        apply_cairn = timed_fresh(apply)
        apply_kubectl = timed_fresh(kubectl_apply)
        subprocess.run(apply, env=env, check=True, stdout=subprocess.DEVNULL)
        noop_cairn = timed(apply, env, args.runs)
        noop_kubectl = timed(kubectl_apply, env, args.runs)
        # After cairn's own apply its inventory knows what it left: no dry runs are needed.
        replan_cairn = timed(plan, env, args.runs)
        replan_kubectl = timed(diff, env, args.runs)

        print(f"{args.objects} objects against kube-apiserver on loopback, {os.cpu_count()} CPUs, medians of {args.runs}")
        print(f"  all creates:  cairn plan {create_cairn[0]:.2f}s   kubectl diff --server-side {create_kubectl[0]:.2f}s   "
              f"ratio {create_kubectl[0] / create_cairn[0]:.1f}x")
        print(f"  no changes:   cairn plan {same_cairn[0]:.2f}s   kubectl diff --server-side {same_kubectl[0]:.2f}s   "
              f"ratio {same_kubectl[0] / same_cairn[0]:.1f}x")
        print(f"  re-plan after cairn apply: cairn plan {replan_cairn[0]:.2f}s   kubectl diff --server-side "
              f"{replan_kubectl[0]:.2f}s   ratio {replan_kubectl[0] / replan_cairn[0]:.1f}x")
        print(f"  apply, all creates: cairn apply {apply_cairn[0]:.2f}s   kubectl apply --server-side "
              f"{apply_kubectl[0]:.2f}s   ratio {apply_kubectl[0] / apply_cairn[0]:.1f}x")
        print(f"  apply, no changes:  cairn apply {noop_cairn[0]:.2f}s   kubectl apply --server-side "
              f"{noop_kubectl[0]:.2f}s   ratio {noop_kubectl[0] / noop_cairn[0]:.1f}x")
    finally:
        subprocess.run([os.path.join(HERE, "kube-test.sh"), "stop", cluster])
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
