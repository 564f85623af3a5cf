"""Runs action.yml's composite steps here, as a GitHub runner would, for
scripts/try-action.sh: `${{ ... }}` expressions (context lookups, string literals,
`==`/`!=` (case-insensitive, as GitHub compares strings), `&&`, `||`, `!`, parentheses,
`success()`, `always()`, `failure()`) are evaluated in `env:`, `with:` and `if:`; each
`run:` gets its own GITHUB_OUTPUT, GITHUB_ENV and GITHUB_PATH files, whose lines take
effect for the later steps and are appended to the job's files (the caller's
GITHUB_ENV / GITHUB_PATH), as a runner does for the steps after the action. After a
failed step only the steps whose `if:` calls always() or failure() run.

`uses: actions/cache/restore@v4` and `actions/cache/save@v4` are simulated with a
directory: $WPKG_TRY_CACHE/KEY (restore copies it to `path`, save copies `path` to it);
without WPKG_TRY_CACHE every restore misses and save does nothing.

    python3 run_local.py ACTION_YML INPUTS_JSON  -> prints the action's outputs as JSON
                                                    (exit 1 when a step failed)

Context: github.{actor,token,repository,ref_name,action_ref,workflow_ref} come from
GITHUB_ACTOR, GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_REF_NAME, GITHUB_ACTION_REF,
GITHUB_WORKFLOW_REF; runner.{temp,os,arch} from RUNNER_TEMP, RUNNER_OS, RUNNER_ARCH;
env.* from the environment.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

action = yaml.safe_load(open(sys.argv[1]))
given = json.loads(sys.argv[2])
ctx = {
    "github": {
        "actor": os.environ.get("GITHUB_ACTOR", ""),
        "token": os.environ.get("GITHUB_TOKEN", ""),
        "repository": os.environ.get("GITHUB_REPOSITORY", ""),
        "ref_name": os.environ.get("GITHUB_REF_NAME", ""),
        "action_ref": os.environ.get("GITHUB_ACTION_REF", ""),
        "workflow_ref": os.environ.get("GITHUB_WORKFLOW_REF", ""),
    },
    "runner": {
        "temp": os.environ["RUNNER_TEMP"],
        "os": os.environ.get("RUNNER_OS", "Linux"),
        "arch": os.environ.get("RUNNER_ARCH", "X64"),
    },
    "steps": {},
}
state = {"failed": False}

TOKEN = re.compile(
    r"\s*(?:(\|\||&&|==|!=|!|\(|\))|'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_.-]*)(\(\))?)"
)


def lookup(path):
    if path == "env" or path.startswith("env."):
        return os.environ.get(path[4:], "")
    v = ctx
    for p in path.split("."):
        v = v.get(p, "") if isinstance(v, dict) else ""
    return v if isinstance(v, str) else ("" if v is None else str(v))


def evaluate(expr):
    """Evaluates one expression; returns a str or a bool."""
    toks = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            sys.exit(f"run_local: cannot parse expression: {expr!r}")
        pos = m.end()
        op, lit, ident, call = m.groups()
        if op:
            toks.append(("op", op))
        elif lit is not None:
            toks.append(("val", lit.replace("''", "'")))
        elif call:
            fns = {
                "always": True,
                "success": not state["failed"],
                "failure": state["failed"],
                "cancelled": False,
            }
            if ident not in fns:
                sys.exit(f"run_local: unknown function {ident}()")
            toks.append(("val", fns[ident]))
        elif ident in ("true", "false"):
            toks.append(("val", ident == "true"))
        else:
            toks.append(("val", lookup(ident)))
    i = [0]

    def peek():
        return toks[i[0]] if i[0] < len(toks) else ("end", None)

    def take():
        t = peek()
        i[0] += 1
        return t

    def truthy(v):
        return v if isinstance(v, bool) else v != ""

    def text(v):
        return ("true" if v else "false") if isinstance(v, bool) else v.lower()

    def primary():
        kind, v = take()
        if kind == "op" and v == "(":
            r = disj()
            if take() != ("op", ")"):
                sys.exit(f"run_local: missing ) in {expr!r}")
            return r
        if kind == "op" and v == "!":
            return not truthy(primary())
        if kind != "val":
            sys.exit(f"run_local: unexpected {v!r} in {expr!r}")
        return v

    def cmp():
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            op = take()[1]
            right = primary()
            left = (text(left) == text(right)) == (op == "==")
        return left

    def conj():
        left = cmp()
        while peek() == ("op", "&&"):
            take()
            right = cmp()
            left = right if truthy(left) else left
        return left

    def disj():
        left = conj()
        while peek() == ("op", "||"):
            take()
            right = conj()
            left = left if truthy(left) else right
        return left

    r = disj()
    if peek()[0] != "end":
        sys.exit(f"run_local: trailing tokens in {expr!r}")
    return r


def subst(text):
    def one(m):
        v = evaluate(m.group(1))
        return ("true" if v else "false") if isinstance(v, bool) else v
    return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))


def condition(cond):
    if cond is None:
        return not state["failed"]
    cond = str(cond).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", cond, re.S)
    if m:
        cond = m.group(1)
    if not re.search(r"\b(always|success|failure|cancelled)\(\)", cond):
        cond = f"success() && ({cond})"
    v = evaluate(cond)
    return v if isinstance(v, bool) else v != ""


def read_env_file(path):
    """GITHUB_ENV syntax: NAME=VALUE lines and NAME<<DELIMITER heredocs."""
    out = {}
    lines = open(path).read().split("\n")
    k = 0
    while k < len(lines):
        line = lines[k]
        k += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            value = []
            while k < len(lines) and lines[k] != delim:
                value.append(lines[k])
                k += 1
            k += 1
            out[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def cache_dir(key):
    root = os.environ.get("WPKG_TRY_CACHE")
    if not root:
        return None
    if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
        sys.exit(f"run_local: odd cache key {key!r}")
    return os.path.join(root, key)


def uses(sid, step):
    name = step["uses"]
    w = {k: subst(v) for k, v in (step.get("with") or {}).items()}
    if name.startswith("actions/cache/restore@"):
        d = cache_dir(w["key"])
        if d and os.path.isdir(d):
            shutil.copytree(d, w["path"].strip(), dirs_exist_ok=True)
            print(f"== step {sid}: {name} simulated: hit {w['key']}", file=sys.stderr)
            return {"cache-hit": "true", "cache-primary-key": w["key"],
                    "cache-matched-key": w["key"]}
        print(f"== step {sid}: {name} simulated: miss {w['key']}", file=sys.stderr)
        return {"cache-hit": "false", "cache-primary-key": w["key"]}
    if name.startswith("actions/cache/save@"):
        d = cache_dir(w["key"])
        if d and not os.path.exists(d):
            shutil.copytree(w["path"].strip(), d)
            print(f"== step {sid}: {name} simulated: saved {w['key']}", file=sys.stderr)
        else:
            print(f"== step {sid}: {name} simulated: not saved", file=sys.stderr)
        return {}
    sys.exit(f"run_local: step {sid}: cannot simulate `uses: {name}`")


inputs = {}
ctx["inputs"] = inputs
for name, spec in action.get("inputs", {}).items():
    inputs[name] = given.get(name, subst(spec.get("default", "")))
unknown = set(given) - set(inputs)
if unknown:
    sys.exit(f"unknown inputs: {sorted(unknown)}")

job_env = os.environ.get("GITHUB_ENV")
job_path = os.environ.get("GITHUB_PATH")
failed_step = None
for step in action["runs"]["steps"]:
    sid = step.get("id", "")
    if not condition(step.get("if")):
        print(f"== step {sid}: skipped (if: {step.get('if', 'success()')})", file=sys.stderr)
        ctx["steps"][sid] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
        continue
    if "uses" in step:
        ctx["steps"][sid] = {"outputs": uses(sid, step), "outcome": "success",
                             "conclusion": "success"}
        continue
    run = step["run"]
    if "${{" in run:
        sys.exit(f"step {sid}: `${{{{ }}}}` inside run: is not allowed")
    env = dict(os.environ)
    for k, v in (step.get("env") or {}).items():
        env[k] = subst(v)
    files = {}
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH"):
        with tempfile.NamedTemporaryFile("r", dir=os.environ["RUNNER_TEMP"], delete=False) as f:
            files[var] = env[var] = f.name
    print(f"== step {sid}: {run}", file=sys.stderr)
    r = subprocess.run(["bash", "-c", run], env=env, stdout=sys.stderr)
    outputs = {}
    for line in open(files["GITHUB_OUTPUT"]):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            outputs[k] = v
    outcome = "success" if r.returncode == 0 else "failure"
    ctx["steps"][sid] = {"outputs": outputs, "outcome": outcome, "conclusion": outcome}
    # GITHUB_ENV and GITHUB_PATH take effect for the next steps, as on a runner, and
    # for the job's steps after the action (the caller's files).
    os.environ.update(read_env_file(files["GITHUB_ENV"]))
    extra = [p.strip() for p in open(files["GITHUB_PATH"]) if p.strip()]
    if extra:
        os.environ["PATH"] = os.pathsep.join(extra[::-1] + [os.environ["PATH"]])
    for var, job_file in (("GITHUB_ENV", job_env), ("GITHUB_PATH", job_path)):
        if job_file:
            with open(job_file, "a") as f:
                f.write(open(files[var]).read())
    for f in files.values():
        os.unlink(f)
    if r.returncode != 0:
        print(f"== step {sid} failed (exit {r.returncode})", file=sys.stderr)
        state["failed"] = True
        failed_step = failed_step or sid

if failed_step:
    sys.exit(f"step {failed_step} failed")
result = {k: subst(v["value"]) for k, v in action.get("outputs", {}).items()}
print(json.dumps(result))
