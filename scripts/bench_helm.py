#!/usr/bin/env python3
"""Chart layer benchmark (docs/benchmarks.md, "Helm charts").

One environment with 5 chart layers: four made by `helm create` (about ten templates each) and one
large generated chart of 300 templates (a Deployment, a Service and a ConfigMap per component,
with helpers, conditionals and range loops). Measured, side by side in one run:

1. helm by hand: `helm template` run once for each of the 5 charts, one after another, with the
   same values and flags cairn passes (the anchor: what a script or Argo CD's repo server pays).
2. cairn cold: `cairn render` with no cached output (helm runs for every chart; the charts of an
   environment render in parallel). The helm version, which cairn keeps per binary, stays
   cached, as it does on any machine after the first run. Goal: within 10% of (1).
3. cairn warm: `cairn render` and `cairn plan` again with nothing changed (helm not run; the
   cached, parsed output merged, and for `plan` validated and planned against the local target).
   Goal: at least 20x faster than cold.

The whole commands carry a fixed cost that no cache changes (process start, reading the
repository and cairn.yaml; for `plan` also schema validation), so the render stage alone is also
timed, from cairn's own log (`CAIRN_LOG=debug`: from "rendering" to "rendered environment"):
the part of the run that the chart layers and their cache are.

Medians over --runs, with the ratios.

    scripts/bench_helm.py [--cairn target/release/cairn] [--helm PATH] [--runs 5] [--components 100]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

COMPONENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "big.fullname" . }}-NAME
  labels:
    {{- include "big.labels" . | nindent 4 }}
    component: NAME
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: {{ include "big.fullname" . }}-NAME
  template:
    metadata:
      labels:
        app: {{ include "big.fullname" . }}-NAME
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}/NAME:{{ .Values.image.tag }}"
          {{- if .Values.resources }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          {{- end }}
          env:
            {{- range $k, $v := .Values.env }}
            - name: {{ $k }}
              value: {{ $v | quote }}
            {{- end }}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ include "big.fullname" . }}-NAME
  labels:
    {{- include "big.labels" . | nindent 4 }}
spec:
  selector:
    app: {{ include "big.fullname" . }}-NAME
  ports:
    - { name: http, port: 80, targetPort: 8080, protocol: TCP }
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "big.fullname" . }}-NAME
data:
  {{- range $i, $e := until 10 }}
  key-{{ $i }}: {{ printf "%s-%d" "NAME" $i | quote }}
  {{- end }}
"""


def run(cmd, cwd=None, env=None):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@example.org",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@example.org")
    run(["git", *args], cwd=repo, env=env)


def make_repo(root, helm, components):
    os.makedirs(os.path.join(root, "charts"))
    names = ["ingress", "certs", "metrics", "logs"]
    for name in names:
        run([helm, "create", name], cwd=os.path.join(root, "charts"))
    big = os.path.join(root, "charts", "big")
    os.makedirs(os.path.join(big, "templates"))
    with open(os.path.join(big, "Chart.yaml"), "w") as f:
        f.write("apiVersion: v2\nname: big\nversion: 1.0.0\nappVersion: \"1.0\"\n")
    with open(os.path.join(big, "values.yaml"), "w") as f:
        f.write("replicas: 2\nimage: {repository: registry.example.org/big, tag: '1.0'}\n"
                "resources: {requests: {cpu: 10m, memory: 16Mi}}\nenv: {MODE: prod, LOG: info}\ncomponents: {}\n")
    with open(os.path.join(big, "templates", "_helpers.tpl"), "w") as f:
        f.write('{{- define "big.fullname" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}\n'
                '{{- define "big.labels" -}}\nhelm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n'
                'app.kubernetes.io/instance: {{ .Release.Name }}\n{{- end -}}\n')
    for i in range(components):
        n = f"c{i:03d}"
        for kind, text in (("deployment", COMPONENT), ("service", SERVICE), ("configmap", CONFIGMAP)):
            with open(os.path.join(big, "templates", f"{n}-{kind}.yaml"), "w") as f:
                f.write(text.replace("NAME", n))
    os.makedirs(os.path.join(root, "values"))
    layers = []
    for name in names + ["big"]:
        with open(os.path.join(root, "values", f"{name}.yaml"), "w") as f:
            f.write("podLabels: {team: platform}\n" if name != "big" else "replicas: 3\n")
        layers.append(f"      - helm: {{ chart: charts/{name}, release: {name}, values: [values/{name}.yaml] }}\n")
    with open(os.path.join(root, "cairn.yaml"), "w") as f:
        f.write("environments:\n  platform:\n    layers:\n" + "".join(layers)
                + "    target:\n      local: { path: .cairn/live/platform }\n")
    with open(os.path.join(root, ".gitignore"), "w") as f:
        f.write(".cairn/\n.cache/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "charts")
    return names + ["big"]


def timed(cmd, cwd=None, env=None):
    start = time.perf_counter()
    run(cmd, cwd=cwd, env=env)
    return time.perf_counter() - start


def stamp(line):
    # 2026-12-03T14:08:25.233770Z ...
    t = line.split()[0].rstrip("Z").split("T")[1]
    h, m, sec = t.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def render_stage(cairn, env):
    """Seconds from cairn's "rendering" log line to its "rendered environment" line."""
    out = subprocess.run([cairn, "render"], env=dict(env, CAIRN_LOG="debug"), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    lines = out.stderr.splitlines()
    start = next(stamp(l) for l in lines if " rendering " in l)
    end = next(stamp(l) for l in lines if "rendered environment" in l)
    return end - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cairn", default="target/release/cairn")
    p.add_argument("--helm", default=os.environ.get("CAIRN_TEST_HELM") or shutil.which("helm") or "helm")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--components", type=int, default=100, help="components of the large chart (3 templates each)")
    a = p.parse_args()
    cairn = os.path.abspath(a.cairn)
    helm = os.path.abspath(a.helm)
    with tempfile.TemporaryDirectory() as tmp:
        repo = os.path.join(tmp, "repo")
        charts = make_repo(repo, helm, a.components)
        templates = sum(len(os.listdir(os.path.join(repo, "charts", c, "templates"))) for c in charts)
        cache = os.path.join(repo, ".cache")
        renders = os.path.join(cache, "helm", "renders")
        env = dict(os.environ, CAIRN_HELM=helm, CAIRN_CACHE_DIR=cache, CAIRN_REPO=repo)
        version = run([helm, "version", "--short"]).strip()
        by_hand, cold_render, cold_plan, warm_render, warm_plan, cold_stage, warm_stage = [], [], [], [], [], [], []
        for _ in range(a.runs):
            start = time.perf_counter()
            for c in charts:
                run([helm, "template", c, f"charts/{c}", "--values", f"values/{c}.yaml", "--include-crds",
                     "--skip-tests", "--kube-version", "1.37.0"], cwd=repo)
            by_hand.append(time.perf_counter() - start)
            shutil.rmtree(renders, ignore_errors=True)
            cold_render.append(timed([cairn, "render", "--format", "json"], env=env))
            shutil.rmtree(renders, ignore_errors=True)
            cold_plan.append(timed([cairn, "plan"], env=env))
            warm_plan.append(timed([cairn, "plan"], env=env))
            warm_render.append(timed([cairn, "render", "--format", "json"], env=env))
            warm_stage.append(render_stage(cairn, env))
            shutil.rmtree(renders, ignore_errors=True)
            cold_stage.append(render_stage(cairn, env))
        objects = run([cairn, "render"], env=env).count("\napiVersion:") + 1
        med = statistics.median
        print(f"5 charts, {templates} templates, {objects} objects; {version}; medians of {a.runs} runs")
        print(f"  helm template by hand, 5 charts one after another: {med(by_hand) * 1000:8.0f} ms")
        print(f"  cairn render, cold (helm runs, charts in parallel): {med(cold_render) * 1000:8.0f} ms"
              f"   ratio to helm by hand: {med(cold_render) / med(by_hand):.2f} (goal <= 1.10)")
        print(f"  cairn render, warm (nothing changed, helm not run): {med(warm_render) * 1000:8.0f} ms"
              f"   cold/warm: {med(cold_render) / med(warm_render):.1f}x (goal >= 20x)")
        print(f"  cairn plan, cold:                                  {med(cold_plan) * 1000:8.0f} ms")
        print(f"  cairn plan, warm:                                  {med(warm_plan) * 1000:8.0f} ms"
              f"   cold/warm: {med(cold_plan) / med(warm_plan):.1f}x")
        print(f"  render stage (cairn's log), cold:                  {med(cold_stage) * 1000:8.1f} ms")
        print(f"  render stage (cairn's log), warm:                  {med(warm_stage) * 1000:8.1f} ms"
              f"   cold/warm: {med(cold_stage) / med(warm_stage):.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
