#!/usr/bin/env python3
"""Runs a GitLab CI pipeline's jobs on this machine, for the tests of examples/ci.

Not a general runner: it runs what examples/ci/gitlab-ci.yml uses and refuses anything else.

- Jobs run stage by stage (`stages:`, GitLab's defaults when absent); hidden jobs (`.name`) are
  templates; `extends` merges them in (nested maps merged, everything else replaced); `include:`
  takes `local:` files of the checkout and `artifact:` files of an earlier job (dynamic child
  pipelines); `rules: - if:` is evaluated over the variables (`==`, `!=`, `&&`, `||`, a bare
  `$VAR`).
- Variables: GitLab's predefined ones for the event (`CI_PIPELINE_SOURCE`, `CI_COMMIT_SHA`,
  `CI_COMMIT_BRANCH`, `CI_DEFAULT_BRANCH`, `CI_MERGE_REQUEST_TARGET_BRANCH_NAME`,
  `CI_API_V4_URL`, `CI_PROJECT_ID`, `CI_JOB_TOKEN`, `CI_JOB_NAME`, …), then the file's global
  `variables:`, then the job's, each value expanded (`$VAR`, `${VAR}`) as GitLab does.
- A job's `script:` entries run in one bash (`set -eo pipefail`) in a fresh clone of the origin
  repository at the pipeline's commit, after the artifacts of earlier stages of its pipeline are
  put there (GitLab's default); its `artifacts: paths` (globs) are kept, and `reports: junit`
  must be well-formed XML when the file exists.
- A `trigger:` job runs its child pipeline (`CI_PIPELINE_SOURCE=parent_pipeline`, the trigger
  job's variables passed down); `strategy: depend` makes the child's status the trigger job's.
- The project's generic package registry is reached only through `curl`, answered by
  tests/ci/gitlab-bin/curl from the state directory.
- The local targets' live state (`.cairn/` of the origin repository) is copied into each job's
  checkout and back after the job, standing in for a cluster every job reaches.

Prints a JSON summary of every job (pipeline, name, status, output tail). Exits 1 when a job
failed.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.dom.minidom

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STAGES = [".pre", "build", "test", "deploy", ".post"]
RESERVED = {"stages", "variables", "include", "default", "workflow", "image", "services", "before_script",
            "after_script", "cache"}


def expand(value, variables):
    def one(m):
        name = m.group(1) or m.group(2)
        return variables.get(name, "")
    previous = None
    while previous != value:
        previous, value = value, re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, value)
    return value


def rule_matches(expr, variables):
    def atom(text):
        text = text.strip()
        m = re.fullmatch(r'(\$\w+|"[^"]*"|\'[^\']*\')\s*(==|!=)\s*(\$\w+|"[^"]*"|\'[^\']*\')', text)
        if m:
            left, op, right = (value(m.group(1)), m.group(2), value(m.group(3)))
            return (left == right) == (op == "==")
        if re.fullmatch(r"\$\w+", text):
            return bool(variables.get(text[1:]))
        raise SystemExit(f"rules: cannot evaluate `{text}` here")

    def value(token):
        if token.startswith("$"):
            return variables.get(token[1:])
        return token[1:-1]

    return any(all(atom(a) for a in alt.split("&&")) for alt in expr.split("||"))


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Pipeline:
    def __init__(self, runner, config, variables, name):
        self.runner, self.config, self.variables, self.name = runner, config, variables, name
        self.artifacts = {}  # job -> directory

    def resolve(self, job_name, seen=()):
        job = self.config[job_name]
        if job_name in seen:
            raise SystemExit(f"extends cycle at {job_name}")
        parents = job.get("extends") or []
        parents = [parents] if isinstance(parents, str) else parents
        merged = {}
        for p in parents:
            if p not in self.config:
                raise SystemExit(f"{job_name} extends {p}, which no included file defines")
            merged = merge(merged, self.resolve(p, seen + (job_name,)))
        return merge(merged, {k: v for k, v in job.items() if k != "extends"})

    def run(self):
        stages = self.config.get("stages") or DEFAULT_STAGES
        jobs = [n for n in self.config if n not in RESERVED and not n.startswith(".")]
        status = "success"
        for stage in stages:
            for name in jobs:
                job = self.resolve(name)
                if job.get("stage", "test") != stage:
                    continue
                variables = dict(self.variables)
                for k, v in (self.config.get("variables") or {}).items():
                    variables[k] = expand(str(v), variables)
                for k, v in (job.get("variables") or {}).items():
                    variables[k] = expand(str(v), variables)
                variables["CI_JOB_NAME"] = name
                rules = job.get("rules")
                if rules is not None and not any("if" not in r or rule_matches(r["if"], variables) for r in rules):
                    continue
                result = self.run_trigger(name, job, variables) if "trigger" in job else self.run_script(name, job, variables)
                if result != "success":
                    status = "failed"
        return status

    def checkout(self):
        ws = tempfile.mkdtemp(prefix="ws-", dir=self.runner.state)
        shutil.rmtree(ws)
        subprocess.run(["git", "clone", "-q", self.runner.origin, ws], check=True)
        subprocess.run(["git", "-C", ws, "checkout", "-q", "--detach", self.variables["CI_COMMIT_SHA"]], check=True)
        live = os.path.join(self.runner.origin, ".cairn")
        if os.path.isdir(live):
            shutil.copytree(live, os.path.join(ws, ".cairn"))
        return ws

    def run_script(self, name, job, variables):
        ws = self.checkout()
        for src in self.artifacts.values():
            shutil.copytree(src, ws, dirs_exist_ok=True)
        script = "\n".join(["set -eo pipefail"] + [str(line) for line in job["script"]])
        env = dict(os.environ, **variables, CI="true", GITLAB_CI="true", CAIRN_ACTOR="ci-runner",
                   HARNESS_GITLAB_PACKAGES=os.path.join(self.runner.state, "packages"))
        # The example expects `cairn` on the runner's PATH.
        env["PATH"] = ":".join([os.path.join(HERE, "gitlab-bin"), self.runner.bin_dir, env["PATH"]])
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        status = "success" if proc.returncode == 0 else "failed"
        arts = job.get("artifacts") or {}
        if status == "success" or arts.get("when") in ("always", "on_failure"):
            kept = os.path.join(self.runner.state, "artifacts", self.name, name)
            os.makedirs(kept, exist_ok=True)
            for pattern in arts.get("paths") or []:
                for path in glob.glob(os.path.join(ws, pattern)):
                    if os.path.isdir(path):
                        shutil.copytree(path, os.path.join(kept, os.path.basename(path)), dirs_exist_ok=True)
                    else:
                        shutil.copy2(path, kept)
            junit = (arts.get("reports") or {}).get("junit")
            if junit and os.path.exists(os.path.join(ws, junit)):
                try:
                    xml.dom.minidom.parse(os.path.join(ws, junit))
                except Exception as e:  # noqa: BLE001 - any parse error fails the report
                    status = f"failed: junit report {junit} is not XML ({e})"
                # GitLab keeps the report with the job (for the merge request's test widget).
                shutil.copy2(os.path.join(ws, junit), kept)
            self.artifacts[name] = kept
        live = os.path.join(ws, ".cairn")
        if os.path.isdir(live):
            dest = os.path.join(self.runner.origin, ".cairn")
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(live, dest)
        self.runner.jobs.append({"pipeline": self.name, "job": name, "status": status,
                                 "variables": {k: v for k, v in variables.items() if k.startswith("CAIRN_")},
                                 "output": proc.stdout[-4000:]})
        return "success" if status == "success" else "failed"

    def run_trigger(self, name, job, variables):
        trigger = job["trigger"]
        config = {}
        ws = self.checkout()
        for item in trigger.get("include") or []:
            if "artifact" in item:
                path = os.path.join(self.artifacts.get(item["job"], "/nonexistent"), os.path.basename(item["artifact"]))
            elif "local" in item:
                path = os.path.join(ws, item["local"].lstrip("/"))
            else:
                raise SystemExit(f"{name}: include {item} is not supported here")
            if not os.path.exists(path):
                self.runner.jobs.append({"pipeline": self.name, "job": name, "status": f"failed: {path} missing"})
                return "failed"
            with open(path) as f:
                config = merge(config, yaml.safe_load(f) or {})
        child = self.runner.child(config, variables, f"{self.name}/{name}", ws)
        status = child.run()
        self.runner.jobs.append({"pipeline": self.name, "job": name, "status": f"triggered: {status}"})
        return status if trigger.get("strategy") == "depend" else "success"


class Runner:
    def __init__(self, args):
        self.args = args
        self.state = os.path.abspath(args.state)
        self.origin = os.path.abspath(args.origin)
        os.makedirs(self.state, exist_ok=True)
        self.jobs = []
        self.bin_dir = os.path.join(self.state, "bin")
        os.makedirs(self.bin_dir, exist_ok=True)
        shutil.copy2(args.cairn, os.path.join(self.bin_dir, "cairn"))

    def predefined(self):
        a = self.args
        v = {
            "CI_PIPELINE_SOURCE": a.event,
            "CI_COMMIT_SHA": a.sha,
            "CI_DEFAULT_BRANCH": "main",
            "CI_API_V4_URL": "https://gitlab.example.org/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_JOB_TOKEN": "job-token-of-the-run",
            "CI_PIPELINE_ID": str(a.pipeline_id),
        }
        if a.event == "merge_request_event":
            v["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = a.target_branch
            v["CI_MERGE_REQUEST_IID"] = str(a.mr)
        else:
            v["CI_COMMIT_BRANCH"] = a.branch
        return v

    def includes(self, config, ws):
        for item in config.pop("include", None) or []:
            item = {"local": item} if isinstance(item, str) else item
            if "local" not in item:
                raise SystemExit(f"include {item} is not supported here")
            with open(os.path.join(ws, item["local"].lstrip("/"))) as f:
                config = merge(yaml.safe_load(f) or {}, config)
        return config

    def child(self, config, variables, name, ws):
        config = self.includes(dict(config), ws)
        passed = dict(self.predefined(), **variables)
        passed["CI_PIPELINE_SOURCE"] = "parent_pipeline"
        passed.pop("CI_JOB_NAME", None)
        return Pipeline(self, config, passed, name)

    def run(self):
        with open(self.args.pipeline) as f:
            config = yaml.safe_load(f)
        ws = tempfile.mkdtemp(prefix="ws-root-", dir=self.state)
        shutil.rmtree(ws)
        subprocess.run(["git", "clone", "-q", self.origin, ws], check=True)
        subprocess.run(["git", "-C", ws, "checkout", "-q", "--detach", self.args.sha], check=True)
        config = self.includes(config, ws)
        status = Pipeline(self, config, self.predefined(), f"pipeline-{self.args.pipeline_id}").run()
        print(json.dumps({"status": status, "jobs": self.jobs}, indent=2))
        return 0 if status == "success" else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline", required=True, help="the .gitlab-ci.yml to run")
    ap.add_argument("--origin", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--cairn", required=True, help="the cairn binary under test")
    ap.add_argument("--event", choices=["merge_request_event", "push"], required=True)
    ap.add_argument("--sha", required=True)
    ap.add_argument("--branch", default="main")
    ap.add_argument("--target-branch", default="main")
    ap.add_argument("--mr", type=int, default=1)
    ap.add_argument("--pipeline-id", type=int, required=True)
    sys.exit(Runner(ap.parse_args()).run())


if __name__ == "__main__":
    main()
