#!/usr/bin/env bash
# Creates (once) the Python environment Tandem's examples and tests run in, and prints its path.
#
# The environment lives under the user's home, keyed by a hash of pyproject.toml, so that a new
# clone on the same machine reuses torch, TensorFlow and Ray instead of installing them again;
# pip's own cache under ~/.cache/pip serves a rebuild. Tandem itself is installed editable from
# the clone that runs this script, every time (it is cheap), so the environment follows the clone.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${TANDEM_PYTHON:-python3}"
# Keyed by what pip installs (the Python version, the build system, the dependency lists), not by
# the whole pyproject.toml: a pytest marker or a tool's settings must not cost a 7 GB reinstall.
key="$("$python" - "$repo/pyproject.toml" <<'PY'
import hashlib, json, sys, tomllib
with open(sys.argv[1], "rb") as f:
    pyproject = tomllib.load(f)
project = pyproject["project"]
inputs = [pyproject.get("build-system"), project.get("requires-python"), project.get("dependencies"),
          project.get("optional-dependencies")]
digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
print("py%d%d-%s" % (*sys.version_info[:2], digest))
PY
)"
venv="${TANDEM_VENV:-$HOME/.cache/tandem/venv-$key}"
log="$HOME/.cache/tandem/bootstrap.log"
mkdir -p "$(dirname "$venv")"
# One installer at a time per environment: a second clone's run waits for the first.
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "tandem: installing torch, TensorFlow, Ray and the test tools into $venv (first run only: a few minutes; log: $log)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >"$log" 2>&1
  if ! "$venv/bin/pip" install --progress-bar off -e "$repo[dev]" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "tandem: installing the environment failed; see $log" >&2
    exit 1
  fi
  touch "$venv/.complete"
else
  "$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e "$repo" >"$log" 2>&1 \
    || "$venv/bin/pip" install --quiet --no-deps -e "$repo" >>"$log" 2>&1
fi
echo "$venv"
