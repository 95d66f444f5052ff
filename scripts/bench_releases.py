#!/usr/bin/env python3
"""Benchmark: release notes and delivery metrics over a long history, beside git-cliff.

Generates a configuration repository with COMMITS commits (one an hour; conventional and other
subjects, some with Approved-by trailers; each bumps an image tag or changes a setting) and
RELEASES release records of its `production` environment (one every COMMITS/RELEASES commits,
with some failed releases and rollbacks), then times, each RUNS times (median and min):

  cairn notes   --env production                      (the latest release)
  cairn notes   --env production --from FIRST --to LAST   (the full range)
  cairn metrics --env production --since ... --until ...  (all releases)
  git-cliff     FIRST..LAST                             (a changelog of the same range)

git-cliff is installed with `cargo install git-cliff --locked` into CAIRN_TOOLS (default
/opt/cairn-tools) when absent.

Usage: scripts/bench_releases.py [--commits 10000] [--releases 500] [--runs 5]
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
from bench import measure  # noqa: E402

START = 1767225600  # 2026-01-01T00:00:00Z
APPS = 50
KINDS = ["feat", "fix", "chore", "docs", "perf", "refactor", None]


def deployment(i, version):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:02d}\n  namespace: shop\n"
            f"spec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: app-{i:02d}}}\n  template:\n"
            f"    metadata:\n      labels: {{app: app-{i:02d}}}\n    spec:\n      containers:\n"
            f"        - name: main\n          image: registry.example.org/app-{i:02d}:1.{version}.0\n")


def settings(level):
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  LEVEL: \"{level}\"\n"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def generate(root, commits, releases):
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    versions = [0] * APPS
    stream = []
    info = []  # (time, subject, body, trailers)

    def blob(path, text):
        data = text.encode()
        stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")

    for n in range(commits):
        ts = START + n * 3600
        kind = KINDS[n % len(KINDS)]
        if n == 0:
            subject, body, trailers = "chore: initial configuration", "", []
        else:
            app = n % APPS
            what = f"bump app-{app:02d}" if n % 5 else "tune the log level"
            subject = f"{kind}(app-{app:02d}): {what}" if kind else f"Update app-{app:02d} by hand"
            trailers = [("Approved-by", f"Reviewer {n % 7} <reviewer{n % 7}@example.org>")] if n % 3 == 0 else []
            body = ""
        message = subject + ("\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers) if trailers else "") + "\n"
        msg = message.encode()
        who = f"Author {n % 11} <author{n % 11}@example.org> {ts} +0000"
        stream.append(f"commit refs/heads/main\nmark :{n + 1}\nauthor {who}\ncommitter {who}\ndata {len(msg)}\n".encode() + msg + b"\n")
        if n > 0:
            stream.append(f"from :{n}\n".encode())
        if n == 0:
            blob("cairn.yaml", "environments:\n  production:\n    layers: [base]\n    target:\n      local: { path: .cairn/live/production }\n")
            blob(".gitignore", ".cairn/\n")
            blob("CODEOWNERS", "* @platform\n/base/app-0* @team-a\n/base/app-1* @team-b\n")
            for i in range(APPS):
                blob(f"base/app-{i:02d}.yaml", deployment(i, 0))
            blob("base/settings.yaml", settings(0))
        elif n % 5:
            app = n % APPS
            versions[app] += 1
            blob(f"base/app-{app:02d}.yaml", deployment(app, versions[app]))
        else:
            blob("base/settings.yaml", settings(n))
        stream.append(b"\n")
        info.append((ts, subject, body, trailers))
    subprocess.run(["git", "-C", root, "fast-import", "--quiet"], input=b"".join(stream), check=True)
    subprocess.run(["git", "-C", root, "checkout", "-q", "-f", "main"], check=True)
    shas = subprocess.run(["git", "-C", root, "rev-list", "--reverse", "main"], check=True,
                          capture_output=True, text=True).stdout.split()

    # Release records, as `cairn apply` writes them.
    rel_dir = os.path.join(root, ".cairn", "live", "production", ".cairn", "releases")
    os.makedirs(rel_dir)
    every = commits // releases
    last_ok = None
    for r in range(1, releases + 1):
        idx = min(r * every, commits) - 1
        ts, subject, body, trailers = info[idx]
        finished = ts + 1800
        rollback = r % 50 == 0 and last_ok is not None
        failed = r % 23 == 0
        sha = shas[idx]
        who = {"name": f"Author {idx % 11}", "email": f"author{idx % 11}@example.org", "time": iso(ts)}
        record = {
            "id": r,
            "kind": "rollback" if rollback else "apply",
            "environment": "production",
            "commit": {"sha": sha, "author": who, "committer": who, "subject": subject, "body": body,
                       "trailers": [{"key": k, "value": v} for k, v in trailers]},
            "source": sha[:12],
            "previous": last_ok,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished - 60)),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
            "actor": "release-bot",
            "approvals": [v for k, v in trailers if k == "Approved-by"],
            "target": "local:.cairn/live/production",
            "prune": True,
            "summary": {"create": 0, "update": 1, "delete": 0, "unchanged": APPS},
            "objects": [],
            "outcome": "failed" if failed else "succeeded",
        }
        if rollback:
            record["rollback_to"] = last_ok - 1 if last_ok > 1 else last_ok
        with open(os.path.join(rel_dir, f"{r:06d}.json"), "w") as f:
            json.dump(record, f)
        if not failed:
            last_ok = r
    return shas


def git_cliff():
    tools = os.environ.get("CAIRN_TOOLS", "/opt/cairn-tools")
    binary = os.path.join(tools, "bin", "git-cliff")
    if not os.path.exists(binary):
        print(f"installing git-cliff into {tools} (once)", file=sys.stderr)
        subprocess.run(["cargo", "install", "git-cliff", "--locked", "--root", tools], check=True)
    return binary


def timed(name, cmd, env, runs, cwd=None, expect=0):
    times, rss = [], []
    for _ in range(runs):
        if cwd:
            start = time.perf_counter()
            p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed, peak, code = time.perf_counter() - start, 0.0, p.returncode
        else:
            elapsed, peak, code = measure(cmd, env)
        if code != expect:
            sys.exit(f"{name}: exit code {code}")
        times.append(elapsed)
        rss.append(peak)
    return {"step": name, "median_s": statistics.median(times), "min_s": min(times), "peak_rss_mib": max(rss)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=10000)
    ap.add_argument("--releases", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="target/release/cairn")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    cliff = git_cliff()
    root = tempfile.mkdtemp(prefix="cairn-bench-releases-")
    try:
        shas = generate(root, args.commits, args.releases)
        env = dict(os.environ, CAIRN_REPO=root, NO_COLOR="1")
        first, last = shas[0], shas[-1]
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + args.commits * 3600 + 86400))
        results = [
            timed("notes (latest release)", [binary, "notes", "--env", "production"], env, args.runs),
            timed("notes (full range)", [binary, "notes", "--env", "production", "--from", first, "--to", last], env, args.runs),
            timed("git-cliff (full range)", [cliff, f"{first}..{last}", "-o", "-"], env, args.runs, cwd=root),
            timed("metrics (all releases)", [binary, "metrics", "--env", "production", "--since", "2026-01-01", "--until", until], env, args.runs),
        ]
        print(f"{args.commits} commits, {args.releases} releases, {args.runs} runs, {os.cpu_count()} CPUs")
        print(f"{'step':<26} {'median':>8} {'min':>8} {'peak RSS':>10}")
        for r in results:
            rss = f"{r['peak_rss_mib']:.1f} MiB" if r["peak_rss_mib"] else "-"
            print(f"{r['step']:<26} {r['median_s']:>7.3f}s {r['min_s']:>7.3f}s {rss:>10}")
        cairn_full = results[1]["median_s"]
        cliff_full = results[2]["median_s"]
        print(f"full-range notes / git-cliff: {cairn_full / cliff_full:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
