#!/usr/bin/env python3
"""Benchmark: the cost of the gate on `apply`.

Every write passes the gate: schema validation and every bound policy, with the change as a plan
shows it. This measures `apply` of scripts/bench.py's workload (OBJECTS objects over three
environments, fresh targets each run) with the shipped `compliance` plugin bound to every
environment (as warnings, so the apply goes through), against the same apply with no policy
bound — both with this build, and, with `--baseline BINARY`, with an earlier build (whose apply
did not run policies) in the same run. The bound and unbound runs use two copies of the workload
and alternate in ABBA order, so the machine's noise (apply is bound by fsync) hits both alike.

The added cost of the policy gate is (apply with the policy bound) / (apply with none) - 1, on
the median wall time and on the median CPU time (user + system) of the runs.

Usage: scripts/bench_gate.py [--objects 10000] [--runs 5] [--binary target/release/cairn]
                             [--baseline /path/to/older/cairn] [--json]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the workload generator and the timer)

POLICY = """policies:
  - name: baseline
    plugin: compliance
    severity: warning
"""


def with_policy(root, bound):
    """Binds the compliance policy (or removes it) and commits, so every binary reads the same."""
    path = os.path.join(root, "cairn.yaml")
    text = open(path).read().split("policies:\n")[0]
    with open(path, "w") as f:
        f.write(text + (POLICY if bound else ""))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", "-C", root]
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-am", "policy" if bound else "no policy"], check=True)


def measure(cmd, env):
    """Runs cmd once; returns (wall seconds, CPU seconds (user + system), exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="target/release/cairn")
    ap.add_argument("--baseline", help="an earlier cairn binary to compare with, in the same run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binaries = [("this build", os.path.abspath(args.binary))]
    if args.baseline:
        binaries.append(("baseline", os.path.abspath(args.baseline)))
    root = tempfile.mkdtemp(prefix="cairn-bench-gate-")
    try:
        per_env = bench.generate(root, args.objects)
        total = per_env * len(bench.ENVIRONMENTS)
        # Two copies of one repository, one with the policy bound, so the two kinds of run can
        # alternate: the machine's noise (apply is bound by fsync) then hits both alike.
        roots = {False: root, True: root + "-policy"}
        shutil.copytree(root, roots[True], symlinks=True)
        with_policy(roots[False], False)
        with_policy(roots[True], True)
        apply = ["apply", "--rev", "HEAD"] + sum((["--env", e] for e in bench.ENVIRONMENTS), [])

        def run(name, binary, bound):
            env = dict(os.environ, CAIRN_REPO=roots[bound], CAIRN_ACTOR="bench", NO_COLOR="1",
                       CAIRN_CACHE_DIR=os.path.join(root, ".plugin-cache"))
            env.pop("CAIRN_LOG", None)
            shutil.rmtree(os.path.join(roots[bound], ".cairn"), ignore_errors=True)
            elapsed, cpu, code = measure([binary] + apply, env)
            if code != 0:
                sys.exit(f"{name} apply (policy bound: {bound}) exited {code}")
            return elapsed, cpu

        # One unmeasured run compiles the plugin into the cache, as any second run finds it.
        run(*binaries[0], True)
        times = {(name, bound): [] for name, _ in binaries for bound in (False, True)}
        cpus = {key: [] for key in times}
        for i in range(args.runs):
            # ABBA: the order flips every round so neither kind always runs first.
            order = (False, True) if i % 2 == 0 else (True, False)
            for bound in order:
                for name, binary in binaries:
                    elapsed, cpu = run(name, binary, bound)
                    times[(name, bound)].append(elapsed)
                    cpus[(name, bound)].append(cpu)
        results = []
        for (name, bound), t in times.items():
            results.append({"binary": name, "policy_bound": bound, "objects": total, "runs": args.runs,
                            "median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                            "median_cpu_s": round(statistics.median(cpus[(name, bound)]), 3)})
        med = {(r["binary"], r["policy_bound"]): r["median_s"] for r in results}
        cpu = {(r["binary"], r["policy_bound"]): r["median_cpu_s"] for r in results}
        gate = med[("this build", True)] / med[("this build", False)] - 1
        gate_cpu = cpu[("this build", True)] / cpu[("this build", False)] - 1
        summary = {"policy_gate_added_cost": round(gate, 3), "policy_gate_added_cpu": round(gate_cpu, 3)}
        if args.baseline:
            summary["this_build_vs_baseline_no_policy"] = round(med[("this build", False)] / med[("baseline", False)], 3)
            summary["this_build_vs_baseline_policy_bound"] = round(med[("this build", True)] / med[("baseline", True)], 3)
        if args.json:
            print(json.dumps({"results": results, "summary": summary}, indent=2))
            return
        print(f"apply of {total} objects over {len(bench.ENVIRONMENTS)} environments, {args.runs} runs each, {os.cpu_count()} CPUs")
        print(f"{'binary':<12} {'policy bound':<13} {'median':>8} {'min':>8} {'CPU':>8}")
        for r in results:
            print(f"{r['binary']:<12} {str(r['policy_bound']).lower():<13} {r['median_s']:>7.3f}s {r['min_s']:>7.3f}s"
                  f" {r['median_cpu_s']:>7.3f}s")
        print(f"added cost of the policy gate on apply (this build): {gate * 100:+.1f}% wall, "
              f"{gate_cpu * 100:+.1f}% CPU (goal: under +10%)")
        if args.baseline:
            print(f"this build / baseline, no policy: {summary['this_build_vs_baseline_no_policy']:.3f}; "
                  f"policy bound: {summary['this_build_vs_baseline_policy_bound']:.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root + "-policy", ignore_errors=True)


if __name__ == "__main__":
    main()
