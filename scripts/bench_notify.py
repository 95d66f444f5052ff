#!/usr/bin/env python3
"""Notification and event-stream benchmark (docs/benchmarks.md, "Notifications").

1. `cairn notify` for a release with 10 channels, 9 of them already delivered: each run starts
   from the record with 9 deliveries and sends the 10th to a loopback webhook. Goal: < 100 ms
   (it must not render or plan). Also the run with all 10 delivered (nothing to send).
2. Event stream overhead: `apply` of OBJECTS ConfigMaps to a fresh local target, with and without
   `--events FILE`, interleaved. Goal: < 5 % more wall time.

Medians over --runs; the machine is shared, so both sides run in one loop.

    scripts/bench_notify.py [--cairn target/release/cairn] [--runs 9] [--objects 10000] [--apply-runs 7]
"""

import argparse
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.org",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.org")
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def repo_with(root, objects, channels):
    os.makedirs(f"{root}/base")
    config = ("environments:\n  staging:\n    layers: [base]\n    target:\n      local: { path: .cairn/live/staging }\n")
    if channels:
        config += "notifications:\n  channels:\n"
        for i in range(channels):
            config += f"    - {{ name: hook-{i}, type: webhook, url_env: HOOK_URL }}\n"
        config += "  routes:\n    - { events: [release.succeeded], channels: [" + ", ".join(f"hook-{i}" for i in range(channels)) + "] }\n"
    with open(f"{root}/cairn.yaml", "w") as f:
        f.write(config)
    with open(f"{root}/.gitignore", "w") as f:
        f.write(".cairn/\n")
    with open(f"{root}/base/objects.yaml", "w") as f:
        for i in range(objects):
            f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: bench\ndata:\n  KEY: value-{i}\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bench")


def timed(argv, env):
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cairn", default="target/release/cairn")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--apply-runs", type=int, default=7, help="pairs of applies for the overhead")
    args = parser.parse_args()
    cairn = os.path.abspath(args.cairn)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    env = dict(os.environ, HOOK_URL=url, CAIRN_ACTOR="bench", NO_COLOR="1")
    results = {}

    with tempfile.TemporaryDirectory() as tmp:
        # 1. notify with 9 of 10 delivered.
        root = f"{tmp}/notify"
        repo_with(root, 50, 10)
        subprocess.run([cairn, "--repo", root, "apply", "--env", "staging"], env=env, check=True, capture_output=True)
        record = f"{root}/.cairn/live/staging/.cairn/releases/000001.json"
        subprocess.run([cairn, "--repo", root, "notify", "--env", "staging"], env=env, check=True, capture_output=True)
        with open(record) as f:
            full = json.load(f)
        nine = dict(full, notifications=full["notifications"][:9])
        one, none = [], []
        for _ in range(args.runs):
            with open(record, "w") as f:
                json.dump(nine, f)
            one.append(timed([cairn, "--repo", root, "notify", "--env", "staging"], env))
            none.append(timed([cairn, "--repo", root, "notify", "--env", "staging"], env))
        with open(record) as f:
            assert len(json.load(f)["notifications"]) == 10
        results["notify_9_of_10_delivered_ms"] = round(statistics.median(one) * 1000, 1)
        results["notify_all_delivered_ms"] = round(statistics.median(none) * 1000, 1)

        # 2. the event stream's overhead on a large apply.
        root = f"{tmp}/apply"
        repo_with(root, args.objects, 0)
        plain, streamed = [], []
        for _ in range(args.apply_runs):
            for side, out in (("plain", plain), ("events", streamed)):
                shutil.rmtree(f"{root}/.cairn", ignore_errors=True)
                argv = [cairn, "--repo", root, "apply", "--env", "staging"]
                if side == "events":
                    argv += ["--events", f"{tmp}/events.jsonl"]
                out.append(timed(argv, env))
        with open(f"{tmp}/events.jsonl") as f:
            lines = sum(1 for _ in f)
        p, s = statistics.median(plain), statistics.median(streamed)
        results["apply_objects"] = args.objects
        results["apply_median_s"] = round(p, 3)
        results["apply_with_events_median_s"] = round(s, 3)
        results["event_lines"] = lines
        results["event_stream_overhead_percent"] = round((s / p - 1) * 100, 2)
        # Pairwise: each with-events apply against the plain one run just before it.
        pairs = [b / a - 1 for a, b in zip(plain, streamed)]
        results["event_stream_overhead_pairwise_median_percent"] = round(statistics.median(pairs) * 100, 2)
    server.shutdown()
    results["runs"] = args.runs
    results["goals"] = {"notify_ms": "< 100", "event_stream_overhead_percent": "< 5"}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
