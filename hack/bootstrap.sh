#!/usr/bin/env bash
# Creates (once) the Python environment Tandem's examples and tests run in, and prints its path.
#
# The environment lives under the user's home, keyed by a hash of pyproject.toml's dependency
# lists, so that a new clone on the same machine reuses torch, TensorFlow and Ray instead of
# installing them again; uv's cache under ~/.cache/uv serves a rebuild. Tandem itself is
# installed editable from the clone that runs this script, every time (it is cheap), so the
# environment follows the clone.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${TANDEM_PYTHON:-python3}"
# The key hashes only what decides the environment's contents (the Python version and the
# dependency lists), so editing tool settings or test markers in pyproject.toml keeps it.
key="$("$python" - "$repo/pyproject.toml" <<'PY'
import hashlib, json, sys
try:
    import tomllib
except ImportError:  # Python 3.10: no TOML reader in the standard library, so hash the whole file
    tomllib = None
raw = open(sys.argv[1], "rb").read()
if tomllib is not None:
    project = tomllib.loads(raw.decode())["project"]
    raw = json.dumps([project["dependencies"], project.get("optional-dependencies", {})], sort_keys=True).encode()
print("py%d%d-%s" % (*sys.version_info[:2], hashlib.sha256(raw).hexdigest()[:12]))
PY
)"
venv="${TANDEM_VENV:-$HOME/.cache/tandem/venv-$key}"
log="$HOME/.cache/tandem/bootstrap.log"
mkdir -p "$(dirname "$venv")"
# One installer at a time per environment: a second clone's run waits for the first.
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "tandem: installing torch, TensorFlow, Ray and the test tools into $venv (first run only: a minute or two; log: $log)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # uv installs the 7 GB of wheels (torch with its CUDA libraries, TensorFlow, Ray) in under a
  # minute where pip took ten (parallel downloads, no per-file Python work); it resolves to the
  # same versions from the same index. Its cache is ~/.cache/uv.
  "$venv/bin/pip" install --quiet "uv==0.13.9" >"$log" 2>&1
  if ! "$venv/bin/uv" pip install --python "$venv/bin/python" -e "$repo[dev]" >>"$log" 2>&1; then
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
