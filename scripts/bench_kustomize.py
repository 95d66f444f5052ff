#!/usr/bin/env python3
"""Benchmark: the native kustomize build of `cairn render` beside `kubectl kustomize`.

For each SIZE N, generates a git repository holding a kustomize tree: `k/base` with N realistic
Deployments (over 20 files), and `k/overlay` over it with the full set of transformations:
namespace, namePrefix, labels, images (new tags and one new name), a strategic-merge patch with a
target selector over every Deployment, a JSON 6902 patch over the Deployments named `app-1.*`,
replicas, and a configMapGenerator whose hashed, prefixed name every Deployment's volume and
envFrom get rewritten to. Two variants are measured: `overlay` (the layer `k/overlay`) and `bare`
(the layer `k/base` alone).

Per size and variant, `kubectl kustomize DIR` and `cairn render --env ENV` run alternately, each
with its stdout written to a file; the report gives the median wall and CPU (user + system) time,
the peak RSS (from wait4) of each, and the speed-up (kustomize / cairn, on median wall time).
Once per size and variant, both outputs are parsed and compared as sets of objects keyed by
(API group, kind, namespace, name), after removing the two labels cairn adds
(`app.kubernetes.io/managed-by`, `cairn/environment`); the script exits non-zero if any differ.

Goals (from the issue): with the overlay, >= 100x faster than kubectl kustomize at 1,000 objects
and >= 1,000x at 5,000, identical output, cost linear in objects, peak RSS under kustomize's.

kubectl kustomize on 5,000 Deployments with the overlay can take minutes per run, so it runs
once at sizes >= 5000 unless --kustomize-runs says otherwise.

Usage: scripts/bench_kustomize.py [--sizes 1000,5000] [--runs 3] [--kustomize-runs N]
                                  [--binary target/release/cairn] [--kubectl kubectl]
                                  [--keep DIR] [--skip-kustomize] [--variants overlay,bare]
                                  [--json]
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

import yaml

try:
    LOADER = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    LOADER = yaml.SafeLoader

FILES = 20  # the base's Deployments are split over this many files
CAIRN_LABELS = ("app.kubernetes.io/managed-by", "cairn/environment")
# variant -> (cairn environment, kustomization directory in the repository)
VARIANTS = {"overlay": ("prod", "k/overlay"), "bare": ("bare", "k/base")}
# (size, variant) -> least speed-up the issue asks for
GOALS = {(1000, "overlay"): 100, (5000, "overlay"): 1000}


def deployment(i):
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  labels:
    app: app-{i}
    tier: backend
  annotations:
    example.com/owner: team-{i % 20:02d}
spec:
  replicas: 2
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app: app-{i}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: app-{i}
        tier: backend
    spec:
      containers:
        - name: app
          image: registry.example.com/team/app-{i}:1.0.0
          imagePullPolicy: IfNotPresent
          args: ["--port=8080", "--config=/etc/app/settings"]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
            - name: metrics
              containerPort: 9090
              protocol: TCP
          env:
            - name: APP_NAME
              value: app-{i}
            - name: LOG_FORMAT
              value: json
            - name: CACHE_ENABLED
              value: "true"
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
          envFrom:
            - configMapRef:
                name: settings
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              cpu: 500m
              memory: 256Mi
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
            periodSeconds: 10
          readinessProbe:
            httpGet:
              path: /ready
              port: http
            periodSeconds: 5
            failureThreshold: 3
          volumeMounts:
            - name: settings
              mountPath: /etc/app
              readOnly: true
      volumes:
        - name: settings
          configMap:
            name: settings
"""


OVERLAY = """resources:
  - ../base
namespace: prod
namePrefix: prod-
labels:
  - pairs:
      team: shop
    includeSelectors: false
images:
{images}
patches:
  - target:
      kind: Deployment
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: any
      spec:
        template:
          spec:
            containers:
              - name: app
                env:
                  - name: ENVIRONMENT
                    value: prod
                resources:
                  limits:
                    ephemeral-storage: 1Gi
  - target:
      kind: Deployment
      name: "app-1.*"
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/imagePullPolicy
        value: Always
      - op: add
        path: /metadata/annotations/example.com~1tier
        value: gold
replicas:
  - name: app-{replicas}
    count: 5
configMapGenerator:
  - name: settings
    literals:
      - LOG_LEVEL=info
      - FEATURE_FLAGS=checkout,search
      - TIMEOUT_SECONDS=30
"""


def generate(root, n):
    """Writes the repository of the kustomize tree over n Deployments and commits it."""
    base = os.path.join(root, "k", "base")
    overlay = os.path.join(root, "k", "overlay")
    os.makedirs(base)
    os.makedirs(overlay)
    files = min(FILES, n)
    names = []
    for f in range(files):
        name = f"deployments-{f:02d}.yaml"
        with open(os.path.join(base, name), "w") as out:
            out.write("---\n".join(deployment(i) for i in range(1, n + 1) if i % files == f))
        names.append(name)
    with open(os.path.join(base, "kustomization.yaml"), "w") as out:
        out.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
        out.write("".join(f"  - {name}\n" for name in names))
    images = [f"  - name: registry.example.com/team/app-{i}\n    newTag: 2.0.0" for i in range(1, min(10, n) + 1)]
    if n >= 11:
        images.append("  - name: registry.example.com/team/app-11\n"
                      "    newName: mirror.example.com/shop/app-11\n    newTag: 1.0.1")
    with open(os.path.join(overlay, "kustomization.yaml"), "w") as out:
        out.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
        out.write(OVERLAY.format(images="\n".join(images), replicas=min(5, n)))
    config = ["environments:"]
    for env, layer in VARIANTS.values():
        config += [f"  {env}:", f"    layers: [{layer}]", f"    target:\n      local: {{ path: .cairn/live/{env} }}"]
    with open(os.path.join(root, "cairn.yaml"), "w") as out:
        out.write("\n".join(config) + "\n")
    with open(os.path.join(root, ".gitignore"), "w") as out:
        out.write(".cairn/\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    subprocess.run(git + ["-C", root, "add", "-A"], check=True)
    subprocess.run(git + ["-C", root, "commit", "-q", "-m", "bench"], check=True)


def measure(cmd, env, out_path, err_path):
    """Runs cmd once with stdout and stderr to files; returns
    (wall seconds, CPU seconds (user + system), peak RSS MiB, exit code)."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped by wait4; tell Popen
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, code


def identity(obj):
    """(API group, kind, namespace, name) of an object."""
    api = str(obj.get("apiVersion", ""))
    meta = obj.get("metadata") or {}
    return (api.split("/")[0] if "/" in api else "", obj.get("kind", ""),
            meta.get("namespace") or "", meta.get("name", ""))


def load(path, strip_cairn):
    """Parses a multi-document YAML stream; returns ({identity: object}, [duplicate identities])."""
    with open(path, "rb") as f:
        docs = [d for d in yaml.load_all(f, Loader=LOADER) if d is not None]
    objects, duplicates = {}, []
    for obj in docs:
        if strip_cairn:
            meta = obj.get("metadata") or {}
            labels = meta.get("labels")
            if isinstance(labels, dict):
                for label in CAIRN_LABELS:
                    labels.pop(label, None)
                if not labels:
                    del meta["labels"]
        key = identity(obj)
        if key in objects:
            duplicates.append(key)
        objects[key] = obj
    return objects, duplicates


def differences(a, b, path="", limit=10):
    """Paths (JSON pointer style) where a and b differ, at most `limit`."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}/{k}"
            if k not in a:
                out.append(f"{p}: only in cairn: {json.dumps(b[k], sort_keys=True, default=str)[:200]}")
            elif k not in b:
                out.append(f"{p}: only in kustomize: {json.dumps(a[k], sort_keys=True, default=str)[:200]}")
            elif a[k] != b[k]:
                out += differences(a[k], b[k], p, limit - len(out))
            if len(out) >= limit:
                break
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                out += differences(x, y, f"{path}/{i}", limit - len(out))
            if len(out) >= limit:
                break
    elif a != b:
        out.append(f"{path or '/'}: kustomize {json.dumps(a, sort_keys=True, default=str)[:200]}"
                   f" != cairn {json.dumps(b, sort_keys=True, default=str)[:200]}")
    return out[:limit]


def compare(kustomize_out, cairn_out):
    """Compares the two outputs; returns a dict with `identical` and, if not, what differs."""
    k, k_dup = load(kustomize_out, strip_cairn=False)
    c, c_dup = load(cairn_out, strip_cairn=True)
    only_k = sorted(set(k) - set(c))
    only_c = sorted(set(c) - set(k))
    differ = sorted(key for key in set(k) & set(c) if k[key] != c[key])
    result = {"identical": not (only_k or only_c or differ or k_dup or c_dup),
              "objects_kustomize": len(k), "objects_cairn": len(c)}
    if not result["identical"]:
        result.update({
            "only_in_kustomize": [list(x) for x in only_k[:10]], "only_in_kustomize_count": len(only_k),
            "only_in_cairn": [list(x) for x in only_c[:10]], "only_in_cairn_count": len(only_c),
            "differing_count": len(differ),
            "duplicates_kustomize": [list(x) for x in k_dup[:10]],
            "duplicates_cairn": [list(x) for x in c_dup[:10]],
        })
        if differ:
            result["first_differing"] = list(differ[0])
            result["first_differences"] = differences(k[differ[0]], c[differ[0]])
    return result


def tail(path, lines=20):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def median(xs):
    return round(statistics.median(xs), 4) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,5000", help="numbers of Deployments, comma separated")
    ap.add_argument("--runs", type=int, default=3, help="runs of cairn (and of kustomize, see below)")
    ap.add_argument("--kustomize-runs", type=int,
                    help="runs of kubectl kustomize (default: 1 at sizes >= 5000, else --runs)")
    ap.add_argument("--binary", default="target/release/cairn")
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--keep", metavar="DIR", help="generate the trees under DIR and keep them")
    ap.add_argument("--skip-kustomize", action="store_true", help="time cairn only (no output check)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="which trees to time, comma separated (default: overlay,bare)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    variants = {v: VARIANTS[v] for v in args.variants.split(",") if v.strip()}
    if not variants or any(v.strip() not in VARIANTS for v in args.variants.split(",")):
        sys.exit(f"--variants: choose from {', '.join(VARIANTS)}")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no cairn binary at {binary}")
    kubectl = None
    kustomize_version = None
    if not args.skip_kustomize:
        kubectl = shutil.which(args.kubectl)
        if not kubectl:
            sys.exit(f"no kubectl at {args.kubectl} (use --kubectl PATH or --skip-kustomize)")
        version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
        for line in version.stdout.splitlines():
            if line.startswith("Kustomize Version:"):
                kustomize_version = line.split(":", 1)[1].strip()
    if args.keep:
        top = os.path.abspath(args.keep)
        os.makedirs(top, exist_ok=True)
    else:
        top = tempfile.mkdtemp(prefix="cairn-bench-kustomize-")
    env = dict(os.environ, CAIRN_ACTOR="bench", NO_COLOR="1")
    env.pop("CAIRN_LOG", None)
    results = []
    try:
        for n in sizes:
            root = os.path.join(top, f"deployments-{n}")
            if os.path.exists(root):
                shutil.rmtree(root)
            generate(root, n)
            outputs = os.path.join(top, f"outputs-{n}")
            os.makedirs(outputs, exist_ok=True)
            k_runs = 0 if args.skip_kustomize else (
                args.kustomize_runs if args.kustomize_runs is not None else (1 if n >= 5000 else args.runs))
            for variant, (env_name, directory) in variants.items():
                tools = {
                    "cairn": ([binary, "--repo", root, "render", "--env", env_name, "--format", "human"], args.runs),
                    "kustomize": ([kubectl, "kustomize", os.path.join(root, directory)], k_runs),
                }
                samples = {tool: {"wall": [], "cpu": [], "rss": []} for tool in tools}
                # Alternate the tools, flipping who goes first each round, until both have their runs.
                for i in range(max(args.runs, k_runs)):
                    order = ["kustomize", "cairn"] if i % 2 == 0 else ["cairn", "kustomize"]
                    for tool in order:
                        cmd, runs = tools[tool]
                        if i >= runs:
                            continue
                        out = os.path.join(outputs, f"{variant}-{tool}.yaml")
                        err = os.path.join(outputs, f"{variant}-{tool}.stderr")
                        wall, cpu, rss, code = measure(cmd, env, out, err)
                        if code != 0:
                            sys.exit(f"{tool} ({n} Deployments, {variant}) exited {code}:\n{tail(err)}")
                        samples[tool]["wall"].append(wall)
                        samples[tool]["cpu"].append(cpu)
                        samples[tool]["rss"].append(rss)
                r = {"deployments": n, "variant": variant, "cairn_runs": args.runs, "kustomize_runs": k_runs}
                for tool, s in samples.items():
                    r[f"{tool}_median_s"] = median(s["wall"])
                    r[f"{tool}_min_s"] = round(min(s["wall"]), 4) if s["wall"] else None
                    r[f"{tool}_median_cpu_s"] = median(s["cpu"])
                    r[f"{tool}_peak_rss_mib"] = round(max(s["rss"]), 1) if s["rss"] else None
                r["cairn_us_per_object"] = round(r["cairn_median_s"] / n * 1e6, 1)
                goal = GOALS.get((n, variant))
                r["goal_speedup"] = goal
                if k_runs:
                    r["speedup"] = round(r["kustomize_median_s"] / r["cairn_median_s"], 1)
                    r["speedup_cpu"] = round(r["kustomize_median_cpu_s"] / max(r["cairn_median_cpu_s"], 1e-6), 1)
                    r["rss_below_kustomize"] = r["cairn_peak_rss_mib"] < r["kustomize_peak_rss_mib"]
                    r["goal_met"] = None if goal is None else (r["speedup"] >= goal and r["rss_below_kustomize"])
                    r["check"] = compare(os.path.join(outputs, f"{variant}-kustomize.yaml"),
                                         os.path.join(outputs, f"{variant}-cairn.yaml"))
                    r["identical"] = r["check"]["identical"]
                    if r["goal_met"] is not None and not r["identical"]:
                        r["goal_met"] = False
                results.append(r)
                if not args.json:
                    line = f"{n} Deployments, {variant}: cairn {r['cairn_median_s']:.3f}s"
                    if k_runs:
                        line += (f", kustomize {r['kustomize_median_s']:.3f}s; identical: "
                                 f"{'yes' if r['identical'] else 'no'}")
                    print(line, file=sys.stderr, flush=True)
        linearity = []
        for variant in variants:
            rows = [r for r in results if r["variant"] == variant]
            for a, b in zip(rows, rows[1:]):
                linearity.append({
                    "variant": variant, "from": a["deployments"], "to": b["deployments"],
                    "objects_ratio": round(b["deployments"] / a["deployments"], 2),
                    "cairn_time_ratio": round(b["cairn_median_s"] / a["cairn_median_s"], 2),
                    "cairn_cpu_ratio": round(b["cairn_median_cpu_s"] / max(a["cairn_median_cpu_s"], 1e-6), 2),
                    "cairn_marginal_us_per_object": round(
                        (b["cairn_median_s"] - a["cairn_median_s"]) / (b["deployments"] - a["deployments"]) * 1e6, 1),
                })
        all_identical = all(r.get("identical", True) for r in results)
        if args.json:
            print(json.dumps({"kustomize_version": kustomize_version, "cpus": os.cpu_count(),
                              "results": results, "linearity": linearity,
                              "identical": all_identical}, indent=2))
        else:
            report(results, linearity, args, kustomize_version)
        if not all_identical:
            sys.exit(1)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


def report(results, linearity, args, kustomize_version):
    def num(v, fmt, unit=""):
        return "-" if v is None else format(v, fmt) + unit

    print(f"cairn render vs kubectl kustomize (kustomize {kustomize_version or '-'}), "
          f"{args.runs} cairn runs, {os.cpu_count()} CPUs; median wall time, peak RSS")
    print(f"{'size':>6} {'variant':<8} {'kustomize':>10} {'cairn':>9} {'speed-up':>9} {'CPU s-up':>9}"
          f" {'kust. RSS':>10} {'cairn RSS':>10} {'identical':>9} {'goal':>12}")
    for r in results:
        if r.get("speedup") is None:
            goal = "-"
        elif r["goal_speedup"] is None:
            goal = "-"
        else:
            goal = f">={r['goal_speedup']}x " + ("met" if r["goal_met"] else "NOT met")
        identical = "-" if "identical" not in r else ("yes" if r["identical"] else "no")
        print(f"{r['deployments']:>6} {r['variant']:<8} {num(r['kustomize_median_s'], '.3f', 's'):>10}"
              f" {r['cairn_median_s']:>8.3f}s {num(r.get('speedup'), '.1f', 'x'):>9} {num(r.get('speedup_cpu'), '.1f', 'x'):>9}"
              f" {num(r['kustomize_peak_rss_mib'], '.1f', ' MiB'):>10} {r['cairn_peak_rss_mib']:>6.1f} MiB"
              f" {identical:>9} {goal:>12}")
    if any(r["goal_speedup"] and r.get("speedup") is not None for r in results):
        print("goal: with the overlay, >=100x at 1000 and >=1000x at 5000, identical output, "
              "cairn's peak RSS below kustomize's")
    for r in results:
        check = r.get("check")
        if check and not check["identical"]:
            print(f"\n{r['deployments']} Deployments, {r['variant']}: outputs differ "
                  f"(kustomize {check['objects_kustomize']} objects, cairn {check['objects_cairn']})")
            if check["only_in_kustomize_count"]:
                print(f"  only in kustomize ({check['only_in_kustomize_count']}): {check['only_in_kustomize']}")
            if check["only_in_cairn_count"]:
                print(f"  only in cairn ({check['only_in_cairn_count']}): {check['only_in_cairn']}")
            if check["duplicates_kustomize"] or check["duplicates_cairn"]:
                print(f"  duplicates: kustomize {check['duplicates_kustomize']}, cairn {check['duplicates_cairn']}")
            if check["differing_count"]:
                print(f"  {check['differing_count']} objects differ; first {tuple(check['first_differing'])}:")
                for d in check["first_differences"]:
                    print(f"    {d}")
    print("\ncairn cost per object (median wall time / Deployments):")
    for r in results:
        print(f"  {r['variant']:<8} {r['deployments']:>6}: {r['cairn_us_per_object']} us/object")
    if linearity:
        print("cairn linearity (wall time ratio vs objects ratio; marginal cost per added object):")
        for l in linearity:
            print(f"  {l['variant']:<8} {l['from']} -> {l['to']}: objects x{l['objects_ratio']}, "
                  f"wall x{l['cairn_time_ratio']}, CPU x{l['cairn_cpu_ratio']}, "
                  f"{l['cairn_marginal_us_per_object']} us/object")


if __name__ == "__main__":
    main()
