"""Runs action.yml's composite steps here, as a GitHub runner would, for
scripts/try-action.sh: `${{ inputs.* }}`, `${{ steps.*.outputs.* }}`, `${{ github.* }}`
and `${{ runner.* }}` are substituted in `env:`, `with:` and `if:`; each `run:` gets its
own GITHUB_OUTPUT file; `uses: actions/cache` is simulated as a miss (nothing cached).

    python3 run_local.py ACTION_YML INPUTS_JSON  -> prints the action's outputs as JSON
"""

import json
import os
import re
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
    },
    "runner": {"temp": os.environ["RUNNER_TEMP"]},
    "steps": {},
}


def lookup(expr):
    parts = expr.strip().split(".")
    v = ctx
    for p in parts:
        v = v.get(p, "") if isinstance(v, dict) else ""
    return v if isinstance(v, str) else ("" if v is None else str(v))


def subst(text):
    def one(m):
        e = m.group(1).strip()
        eq = re.fullmatch(r"(.+?)\s*==\s*'(.*)'", e)
        if eq:
            return "true" if lookup(eq.group(1)) == eq.group(2) else "false"
        return lookup(e)
    return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))


inputs = {}
for name, spec in action.get("inputs", {}).items():
    inputs[name] = given.get(name, subst(spec.get("default", "")))
unknown = set(given) - set(inputs)
if unknown:
    sys.exit(f"unknown inputs: {sorted(unknown)}")
ctx["inputs"] = inputs

for step in action["runs"]["steps"]:
    sid = step.get("id", "")
    cond = step.get("if")
    if cond is not None and subst(cond) not in ("true", "True"):
        print(f"== step {sid}: skipped (if: {cond})", file=sys.stderr)
        ctx["steps"][sid] = {"outputs": {}}
        continue
    if "uses" in step:
        print(f"== step {sid}: {step['uses']} simulated (cache miss)", file=sys.stderr)
        ctx["steps"][sid] = {"outputs": {"cache-hit": "false"}}
        continue
    run = step["run"]
    if "${{" in run:
        sys.exit(f"step {sid}: `${{{{ }}}}` inside run: is not allowed")
    env = dict(os.environ)
    for k, v in (step.get("env") or {}).items():
        env[k] = subst(v)
    with tempfile.NamedTemporaryFile("r", dir=os.environ["RUNNER_TEMP"], delete=False) as out:
        env["GITHUB_OUTPUT"] = out.name
    print(f"== step {sid}: {run}", file=sys.stderr)
    r = subprocess.run(["bash", "-c", run], env=env, stdout=sys.stderr)
    if r.returncode != 0:
        sys.exit(f"step {sid} failed (exit {r.returncode})")
    outputs = {}
    for line in open(out.name):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            outputs[k] = v
    ctx["steps"][sid] = {"outputs": outputs}
    # GITHUB_PATH lines take effect for the next steps, as on a runner.
    path_file = os.environ.get("GITHUB_PATH")
    if path_file and os.path.exists(path_file):
        extra = [p.strip() for p in open(path_file) if p.strip()]
        os.environ["PATH"] = os.pathsep.join(extra[::-1] + [os.environ["PATH"]])
        open(path_file, "w").close()

result = {k: subst(v["value"]) for k, v in action.get("outputs", {}).items()}
print(json.dumps(result))
