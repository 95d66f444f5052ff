#!/usr/bin/env python3
"""Runs a GitHub Actions workflow's jobs on this machine, for the tests of examples/ci.

Not a general runner: it runs what the example and action.yml use, and refuses anything else, so
an example that grows a step this cannot run fails its test instead of passing untested.

- Events: `pull_request`, `push`, and `issue_comment` on a pull request (the comment's body,
  author association and login from the arguments).
- Jobs run in `needs` order; `if:` conditions, `strategy.matrix` (a list, or `include` from
  `fromJSON(...)`), job and step outputs, and `${{ }}` expressions over the github, env, matrix,
  needs, steps, inputs, runner and secrets contexts (with fromJSON, toJSON, join, format,
  contains, startsWith, always, success, failure) are evaluated as GitHub does.
- `run:` steps run in bash (`--noprofile --norc -eo pipefail`, GitHub's default) with the
  variables a runner sets (`GITHUB_*`, `RUNNER_*`, `CI`) and its command files (`GITHUB_OUTPUT`,
  `GITHUB_ENV`, `GITHUB_PATH`, `GITHUB_STEP_SUMMARY`). A `run:` script holding `${{` is refused:
  the examples promise to pass values through `env:` only.
- `uses:` steps: the repository's own action (action.yml, any `uses:` naming `--action-ref`)
  runs its composite steps; `actions/checkout` clones the origin repository at the event's
  commit into a fresh workspace; `actions/upload-artifact` / `download-artifact` (with `run-id`
  for another run's) keep artifacts in the state directory, per run; `actions/cache` restores a
  path that exists (the tests put the binary under test in the tool cache, as a warm cache
  would); `github/codeql-action/upload-sarif` checks the file is SARIF 2.1.0 and keeps it.
- GitHub's REST API is reached only through `gh api`, answered by tests/ci/gh from the state
  directory's gh.json (pull requests of commits, workflow runs, issue comments).
- The local targets' live state (`.cairn/` of the origin repository) is copied into each job's
  workspace after checkout and back after the job, standing in for a cluster every job reaches.

Prints a JSON summary: per job and matrix entry, each step's name, outcome and output tail.
Exits 1 when a job failed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- expressions

TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|('(?:[^']|'')*')|([A-Za-z_][A-Za-z0-9_-]*)|(==|!=|&&|\|\||[!.\[\](),<>*]))")


def tokenize(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read expression at {text[pos:]!r}")
        num, string, ident, op = m.groups()
        if num is not None:
            out.append(("lit", float(num) if "." in num else int(num)))
        elif string is not None:
            out.append(("lit", string[1:-1].replace("''", "'")))
        elif ident is not None:
            out.append(("id", ident))
        else:
            out.append(("op", op))
        pos = m.end()
    return out


def to_string(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "")


def loose_equal(a, b):
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, str):
        return to_string(a) == b
    if isinstance(b, (int, float)) and isinstance(a, str):
        return to_string(b) == a
    return a == b


class Evaluator:
    def __init__(self, tokens, ctx):
        self.t, self.i, self.ctx = tokens, 0, ctx

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            raise ValueError(f"expected {value or kind}, found {tok}")
        self.i += 1
        return tok

    def parse(self):
        v = self.or_()
        if self.i != len(self.t):
            raise ValueError(f"unexpected {self.peek()}")
        return v

    def or_(self):
        v = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            r = self.and_()
            v = v if truthy(v) else r
        return v

    def and_(self):
        v = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            r = self.cmp()
            v = r if truthy(v) else v
        return v

    def cmp(self):
        v = self.unary()
        if self.peek() in (("op", "=="), ("op", "!=")):
            op = self.take()[1]
            r = self.unary()
            eq = loose_equal(v, r)
            return eq if op == "==" else not eq
        return v

    def unary(self):
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self):
        v = self.primary()
        while True:
            if self.peek() == ("op", "."):
                self.take()
                name = self.take("id")[1]
                v = lookup(v, name)
            elif self.peek() == ("op", "["):
                self.take()
                key = self.or_()
                self.take("op", "]")
                v = lookup(v, key)
            else:
                return v

    def primary(self):
        kind, value = self.take()
        if kind == "lit":
            return value
        if kind == "op" and value == "(":
            v = self.or_()
            self.take("op", ")")
            return v
        if kind == "id":
            if value in ("true", "false"):
                return value == "true"
            if value == "null":
                return None
            if self.peek() == ("op", "("):
                self.take()
                args = []
                while self.peek() != ("op", ")"):
                    args.append(self.or_())
                    if self.peek() == ("op", ","):
                        self.take()
                self.take("op", ")")
                return call(value, args, self.ctx)
            return self.ctx.get(value)
        raise ValueError(f"unexpected {value!r}")


def lookup(v, key):
    if isinstance(v, dict):
        return v.get(key)
    if isinstance(v, list) and isinstance(key, int):
        return v[key] if 0 <= key < len(v) else None
    return None


def call(name, args, ctx):
    status = ctx.get("__status", "success")
    if name == "fromJSON":
        return json.loads(args[0])
    if name == "toJSON":
        return json.dumps(args[0])
    if name == "join":
        return (args[1] if len(args) > 1 else ",").join(to_string(a) for a in args[0]) if isinstance(args[0], list) else to_string(args[0])
    if name == "format":
        text = args[0]
        for k, a in enumerate(args[1:]):
            text = text.replace("{" + str(k) + "}", to_string(a))
        return text
    if name == "contains":
        return args[1] in args[0] if isinstance(args[0], list) else to_string(args[1]).lower() in to_string(args[0]).lower()
    if name == "startsWith":
        return to_string(args[0]).lower().startswith(to_string(args[1]).lower())
    if name == "always":
        return True
    if name == "success":
        return status == "success"
    if name == "failure":
        return status == "failure"
    raise ValueError(f"function {name}() is not supported here")


def evaluate(expr, ctx):
    return Evaluator(tokenize(expr), ctx).parse()


WHOLE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.S)
PART = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(value, ctx):
    if isinstance(value, dict):
        return {k: interpolate(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, ctx) for v in value]
    if not isinstance(value, str):
        return value
    m = WHOLE.match(value)
    if m and "${{" not in m.group(1):
        return evaluate(m.group(1), ctx)
    return PART.sub(lambda m: to_string(evaluate(m.group(1), ctx)), value)


def condition(text, ctx, implicit_success=True):
    if text is None:
        return ctx.get("__status", "success") == "success" if implicit_success else True
    if isinstance(text, bool):
        return text
    m = WHOLE.match(str(text))
    expr = m.group(1) if m else str(text)
    if implicit_success and not re.search(r"\b(always|failure|success|cancelled)\s*\(", expr):
        expr = f"success() && ({expr})"
    return truthy(evaluate(expr, ctx))


# ---------------------------------------------------------------- runner


class Runner:
    def __init__(self, args):
        self.args = args
        self.state = os.path.abspath(args.state)
        self.origin = os.path.abspath(args.origin)
        os.makedirs(self.state, exist_ok=True)
        self.artifacts = os.path.join(self.state, "artifacts")
        self.tool_cache = os.path.join(self.state, "tool-cache")
        self.action_dir = os.path.dirname(os.path.abspath(args.action))
        with open(args.action) as f:
            self.action = yaml.safe_load(f)
        with open(args.workflow) as f:
            self.workflow = yaml.safe_load(f)
        self.summary = []
        # A warm cache of the action's install: the binary under test, under its version.
        bin_dir = os.path.join(self.tool_cache, "cairn", args.action_version, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        shutil.copy2(args.cairn, os.path.join(bin_dir, "cairn"))

    def github(self, job):
        event = {}
        if self.args.event == "pull_request":
            event = {"pull_request": {"number": self.args.pr, "head": {"sha": self.args.sha}}}
        elif self.args.event == "issue_comment":
            event = {
                "action": "created",
                "issue": {"number": self.args.pr, "pull_request": {"url": f"https://api.github.com/repos/{self.args.repository}/pulls/{self.args.pr}"}},
                "comment": {
                    "id": self.args.comment_id,
                    "body": self.args.comment_body,
                    "author_association": self.args.comment_association,
                    "user": {"login": self.args.commenter},
                },
            }
        return {
            "event_name": self.args.event,
            "sha": self.args.sha,
            "ref": self.args.ref,
            "base_ref": self.args.base_ref if self.args.event == "pull_request" else "",
            "repository": self.args.repository,
            "server_url": "https://github.com",
            "workflow": self.workflow.get("name", "workflow"),
            "job": job,
            "run_id": str(self.args.run_id),
            "token": "token-of-the-run",
            "event": event,
            "action_ref": "",
            "action_repository": "",
        }

    def run(self):
        jobs = self.workflow["jobs"]
        done, results = set(), {}
        while len(done) < len(jobs):
            ready = [j for j in jobs if j not in done and all(n in done for n in listify(jobs[j].get("needs")))]
            if not ready:
                sys.exit("a cycle in `needs`")
            for name in ready:
                results[name] = self.run_job(name, jobs[name], results)
                done.add(name)
        failed = any(r["result"] == "failure" for r in results.values())
        print(json.dumps({"jobs": results, "summary": self.summary}, indent=2))
        return 1 if failed else 0

    def run_job(self, name, job, results):
        needs = {n: {"result": results[n]["result"], "outputs": results[n]["outputs"]} for n in listify(job.get("needs"))}
        ctx = {
            "github": self.github(name),
            "needs": needs,
            "secrets": {},
            "vars": {},
            "env": dict(self.workflow.get("env") or {}),
            "runner": {"os": "Linux", "arch": "X64", "temp": "", "tool_cache": self.tool_cache},
        }
        ctx["env"] = {k: to_string(v) for k, v in interpolate(ctx["env"], ctx).items()}
        if any(r["result"] != "success" for r in needs.values()) and "always()" not in str(job.get("if", "")):
            return {"result": "skipped", "outputs": {}, "runs": []}
        if not condition(job.get("if"), ctx):
            return {"result": "skipped", "outputs": {}, "runs": []}
        matrix = (job.get("strategy") or {}).get("matrix")
        combos = [None]
        if matrix is not None:
            matrix = interpolate(matrix, ctx)
            combos = expand_matrix(matrix)
        runs, outputs, result = [], {}, "success"
        for combo in combos:
            jctx = dict(ctx, matrix=combo or {})
            jctx["env"] = dict(ctx["env"], **{k: to_string(v) for k, v in interpolate(job.get("env") or {}, jctx).items()})
            steps, ok, step_ctx = self.run_steps(name, job["steps"], jctx)
            runs.append({"matrix": combo, "steps": steps, "result": "success" if ok else "failure"})
            if not ok:
                result = "failure"
            for key, value in (job.get("outputs") or {}).items():
                outputs[key] = to_string(interpolate(value, dict(jctx, steps=step_ctx)))
        return {"result": result, "outputs": outputs, "runs": runs}

    def run_steps(self, job, steps, ctx, workspace=None, inputs=None, action_path=None):
        """Runs a job's (or a composite action's) steps; returns (records, ok, steps context)."""
        if workspace is None:
            workspace = tempfile.mkdtemp(prefix=f"ws-{job}-", dir=self.state)
            ctx = dict(ctx, __workspace=workspace, __files=self.command_files(workspace))
        step_ctx, records, status = {}, [], "success"
        for k, step in enumerate(steps):
            sid = step.get("id", f"__step{k}")
            sctx = dict(ctx, steps=step_ctx, __status=status)
            if inputs is not None:
                sctx["inputs"] = inputs
            name = step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0]
            if not condition(step.get("if"), sctx):
                records.append({"name": to_string(interpolate(name, sctx)), "outcome": "skipped"})
                step_ctx[sid] = {"outputs": {}, "outcome": "skipped"}
                continue
            env = dict(ctx["env"], **{k: to_string(v) for k, v in interpolate(step.get("env") or {}, sctx).items()})
            if "run" in step:
                if "${{" in step["run"]:
                    raise SystemExit(f"step {name!r}: a `run:` script holds `${{{{`; pass values through `env:`")
                code, out, outputs = self.shell(step["run"], env, ctx, action_path)
            else:
                code, out, outputs = self.uses(step["uses"], interpolate(step.get("with") or {}, sctx), env, sctx)
            outcome = "success" if code == 0 else "failure"
            if code != 0 and not step.get("continue-on-error"):
                status = "failure"
            records.append({"name": to_string(interpolate(name, sctx)), "outcome": outcome, "code": code, "output": out[-4000:]})
            step_ctx[sid] = {"outputs": outputs, "outcome": outcome}
        if inputs is None:
            self.finish_job(ctx)
        return records, status == "success", step_ctx

    def command_files(self, workspace):
        d = tempfile.mkdtemp(prefix="files-", dir=self.state)
        files = {n: os.path.join(d, n) for n in ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        for p in files.values():
            open(p, "w").close()
        files["RUNNER_TEMP"] = tempfile.mkdtemp(prefix="temp-", dir=self.state)
        return files

    def base_env(self, ctx, action_path):
        files = ctx["__files"]
        g = ctx["github"]
        path = os.environ["PATH"]
        with open(files["GITHUB_PATH"]) as f:
            added = [line.strip() for line in f if line.strip()]
        path = ":".join(list(reversed(added)) + [os.path.join(HERE, "bin"), path])
        env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", "/root"),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": ctx["__workspace"],
            "GITHUB_SHA": g["sha"],
            "GITHUB_REF": g["ref"],
            "GITHUB_EVENT_NAME": g["event_name"],
            "GITHUB_BASE_REF": g["base_ref"],
            "GITHUB_REPOSITORY": g["repository"],
            "GITHUB_SERVER_URL": g["server_url"],
            "GITHUB_WORKFLOW": g["workflow"],
            "GITHUB_JOB": g["job"],
            "GITHUB_RUN_ID": g["run_id"],
            "GITHUB_ENV": files["GITHUB_ENV"],
            "GITHUB_PATH": files["GITHUB_PATH"],
            "GITHUB_STEP_SUMMARY": files["GITHUB_STEP_SUMMARY"],
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": files["RUNNER_TEMP"],
            "RUNNER_TOOL_CACHE": self.tool_cache,
            "HARNESS_GH_STATE": os.path.join(self.state, "gh.json"),
            "CAIRN_ACTOR": "ci-runner",
        }
        if action_path:
            env["GITHUB_ACTION_PATH"] = action_path
        with open(files["GITHUB_ENV"]) as f:
            env.update(parse_command_file(f.read()))
        return env

    def shell(self, script, env, ctx, action_path):
        outputs_file = tempfile.mktemp(prefix="output-", dir=self.state)
        open(outputs_file, "w").close()
        full_env = dict(self.base_env(ctx, action_path), **env, GITHUB_OUTPUT=outputs_file)
        with tempfile.NamedTemporaryFile("w", suffix=".sh", dir=self.state, delete=False) as f:
            f.write(script)
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", f.name], cwd=ctx["__workspace"],
                              env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open(outputs_file) as f:
            outputs = parse_command_file(f.read())
        return proc.returncode, proc.stdout, outputs

    def uses(self, ref, inputs, env, ctx):
        workspace = ctx["__workspace"]
        name = ref.split("@")[0]
        if ref == self.args.action_ref or ref == "./":
            return self.composite(inputs, env, ctx)
        if name == "actions/checkout":
            shutil.rmtree(workspace)
            subprocess.run(["git", "clone", "-q", self.origin, workspace], check=True)
            commit = to_string(inputs.get("ref")) or ctx["github"]["sha"]
            subprocess.run(["git", "-C", workspace, "checkout", "-q", "--detach", commit], check=True)
            live = os.path.join(self.origin, ".cairn")
            if os.path.isdir(live):
                shutil.copytree(live, os.path.join(workspace, ".cairn"))
            return 0, f"checked out {commit}", {}
        if name == "actions/cache":
            hit = all(os.path.exists(p) for p in to_string(inputs["path"]).split())
            return 0, "", {"cache-hit": "true" if hit else "false"}
        if name == "actions/upload-artifact":
            run_dir = os.path.join(self.artifacts, str(ctx["github"]["run_id"]), inputs["name"])
            if os.path.exists(run_dir):
                return 1, f"an artifact named {inputs['name']} already exists in this run", {}
            os.makedirs(run_dir)
            for p in to_string(inputs["path"]).split():
                src = os.path.join(workspace, p)
                if os.path.isdir(src):
                    shutil.copytree(src, run_dir, dirs_exist_ok=True)
                elif os.path.isfile(src):
                    shutil.copy2(src, run_dir)
                else:
                    return 1, f"no files were found at {p}", {}
            return 0, f"uploaded {inputs['name']}", {}
        if name == "actions/download-artifact":
            run = to_string(inputs.get("run-id")) or str(ctx["github"]["run_id"])
            src = os.path.join(self.artifacts, run, inputs["name"])
            if not os.path.isdir(src):
                return 1, f"artifact {inputs['name']} not found in run {run}", {}
            dest = os.path.join(workspace, to_string(inputs.get("path")) or ".")
            shutil.copytree(src, dest, dirs_exist_ok=True)
            return 0, f"downloaded {inputs['name']}", {}
        if name == "actions/upload-pages-artifact":
            src = os.path.join(workspace, to_string(inputs.get("path")) or "_site")
            if not os.path.isfile(os.path.join(src, "index.html")):
                return 1, f"{src} holds no index.html to publish", {}
            dest = os.path.join(self.artifacts, str(ctx["github"]["run_id"]), "github-pages")
            shutil.copytree(src, dest)
            return 0, "uploaded the pages artifact", {}
        if name == "actions/deploy-pages":
            src = os.path.join(self.artifacts, str(ctx["github"]["run_id"]), "github-pages")
            if not os.path.isdir(src):
                return 1, "no github-pages artifact in this run", {}
            self.summary.append({"pages": sorted(os.listdir(src))})
            return 0, "deployed", {"page_url": "https://example.github.io/config/"}
        if name == "github/codeql-action/upload-sarif":
            path = os.path.join(workspace, inputs["sarif_file"])
            try:
                with open(path) as f:
                    sarif = json.load(f)
            except (OSError, ValueError) as e:
                return 1, f"not a SARIF file: {e}", {}
            if sarif.get("version") != "2.1.0":
                return 1, "not SARIF 2.1.0", {}
            self.summary.append({"sarif": inputs.get("category"), "results": sum(len(r.get("results", [])) for r in sarif["runs"])})
            return 0, "uploaded SARIF", {}
        return 1, f"`uses: {ref}` is not something this runner can run", {}

    def composite(self, inputs, env, ctx):
        declared = self.action.get("inputs") or {}
        unknown = set(inputs) - set(declared)
        if unknown:
            return 1, f"unknown inputs {sorted(unknown)}", {}
        given = {}
        github = dict(ctx["github"], action_ref=self.args.action_version, action_repository=self.args.repository_of_action)
        actx = dict(ctx, github=github)
        for key, spec in declared.items():
            given[key] = to_string(inputs[key]) if key in inputs else to_string(interpolate(spec.get("default", ""), actx))
        records, ok, step_ctx = self.run_steps("action", self.action["runs"]["steps"], dict(actx, env=env),
                                               workspace=ctx["__workspace"], inputs=given, action_path=self.action_dir)
        outputs = {k: to_string(interpolate(v["value"], dict(actx, steps=step_ctx))) for k, v in (self.action.get("outputs") or {}).items()}
        out = "\n".join(f"[{r['outcome']}] {r['name']}\n{r.get('output', '')}" for r in records)
        return (0 if ok else 1), out, outputs

    def finish_job(self, ctx):
        live = os.path.join(ctx["__workspace"], ".cairn")
        if os.path.isdir(live):
            dest = os.path.join(self.origin, ".cairn")
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(live, dest)
        with open(ctx["__files"]["GITHUB_STEP_SUMMARY"]) as f:
            text = f.read()
        if text:
            self.summary.append({"job": ctx["github"]["job"], "step_summary": text})


def parse_command_file(text):
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            i += 1
            value = []
            while i < len(lines) and lines[i] != delim:
                value.append(lines[i])
                i += 1
            out[key] = "\n".join(value)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


def listify(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def expand_matrix(matrix):
    if isinstance(matrix, str):
        matrix = json.loads(matrix)
    include = matrix.get("include") or []
    dims = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    combos = [{}]
    for key, values in dims.items():
        combos = [dict(c, **{key: v}) for c in combos for v in values]
    if not dims:
        combos = []
    combos.extend(include)
    return combos


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflow", required=True)
    ap.add_argument("--action", required=True, help="the repository's action.yml")
    ap.add_argument("--action-ref", default="OWNER/cairn@v0.1.0", help="how the workflow names the action")
    ap.add_argument("--action-version", default="v0.1.0")
    ap.add_argument("--repository-of-action", default="OWNER/cairn")
    ap.add_argument("--origin", required=True, help="the configuration repository (a git work tree)")
    ap.add_argument("--state", required=True, help="where artifacts, gh.json and workspaces live")
    ap.add_argument("--cairn", required=True, help="the cairn binary under test")
    ap.add_argument("--event", choices=["pull_request", "push", "issue_comment"], required=True)
    ap.add_argument("--sha", required=True)
    ap.add_argument("--ref", default="refs/heads/main")
    ap.add_argument("--base-ref", default="main")
    ap.add_argument("--pr", type=int, default=1)
    ap.add_argument("--run-id", type=int, required=True)
    ap.add_argument("--repository", default="example/config")
    ap.add_argument("--comment-body", default="", help="issue_comment: the comment's text")
    ap.add_argument("--comment-association", default="MEMBER", help="issue_comment: the author's association")
    ap.add_argument("--commenter", default="octo", help="issue_comment: the author's login")
    ap.add_argument("--comment-id", type=int, default=555, help="issue_comment: the comment's id")
    sys.exit(Runner(ap.parse_args()).run())


if __name__ == "__main__":
    main()
