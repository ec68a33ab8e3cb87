#!/usr/bin/env bash
# GPU check: `tandem run` on one GPU host, in under 5 minutes, with no network.
#
#   bash benchmarks/gpu_check.sh          # on the GPU host (e.g. 16 cores, one H100 or H200)
#   bash benchmarks/gpu_check.sh --dry    # anywhere: every step but the GPU ones, on CPU, with a
#                                         # fake nvidia-smi listing 2 GPUs (proves the script works)
#
# It checks (benchmarks/gpu_check.py does the work; this wrapper only prepares Python):
#   (a) 1 GPU worker under `tandem run` against bare `torchrun --standalone` on a compute-bound MLP
#       (2048 -> 8192 -> 10, batch 2048, 400 steps): the training loop's time, median of 3,
#       interleaved; metrics are on only where Ray is installed;
#   (b) the one-line refusal of more workers with resources.gpus=1 than the host has GPUs
#       (2 workers on a 1-GPU host), and that nothing started;
#   (c) procsPerWorker on the GPU: one worker whose processes each take their own GPU of the
#       worker's set (cuda:LOCAL_RANK) and all-reduce over NCCL. On a 1-GPU host that is
#       procsPerWorker=1; procsPerWorker=2 needs resources.gpus=2 and is checked to be refused.
# It prints a summary table and writes it, with the full log, to $OUT (or $GPU_CHECK_OUT) if set.
# Exit code 0 only when every run succeeded and every refusal and device assignment was right
# (timings are figures: they never fail the script).
#
# Python there: python3 (override with PYTHON=...). It needs torch, jinja2, click, pyyaml and rich
# (a GPU host of this workplace has them) and pydantic and kubernetes (it has neither, and no
# network). Where those two are missing, they are installed from wheels in $TANDEM_WHEELS
# (default: .whl in the repository root) into a private folder, never into the host's Python.
# The host this was written for has Python 3.12 (the script prints the version and stops with a
# clear line if the wheels do not fit it). Prepare the wheels HERE, in the repository root, with
# pydantic's and kubernetes' whole dependency closure for that Python:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl 'pydantic>=2.7,<3' 'kubernetes>=30,<38'
#
# (27 wheels, about 16 MB: kubernetes 37 pulls aiohttp in; checked with Python 3.12.1 here), then
# run this script with `.whl` carried, e.g. with the device tool (OUT is set there):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=420)
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"
wheels="${TANDEM_WHEELS:-$repo/.whl}"
site="${TMPDIR:-/tmp}/tandem-gpu-check-site"

"$python" - <<'EOF' || exit 2
import platform, sys
print(f"gpu_check: python {platform.python_version()} at {sys.executable}")
if sys.version_info < (3, 10):
    sys.exit("gpu_check: Tandem needs Python 3.10 or newer")
EOF

missing() { "$python" -c 'import pydantic, kubernetes' >/dev/null 2>&1 && return 1 || return 0; }
if missing; then
  if [ ! -d "$wheels" ] || [ -z "$(ls "$wheels"/*.whl 2>/dev/null)" ]; then
    echo "gpu_check: pydantic or kubernetes is missing and there are no wheels in $wheels;" \
         "prepare them as this script's header says (pip download ... -d .whl) and carry .whl" >&2
    exit 2
  fi
  rm -rf "$site"
  if ! PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check --no-index --no-cache-dir --no-compile --find-links "$wheels" \
         --target "$site" 'pydantic>=2.7,<3' 'kubernetes>=30,<38'; then
    echo "gpu_check: the wheels in $wheels do not install on this Python ($("$python" -V 2>&1));" \
         "download them again with --python-version set to it (this script's header)" >&2
    exit 2
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check: installed pydantic and kubernetes from $wheels into $site"
fi
for module in torch jinja2 click yaml rich pydantic kubernetes; do
  "$python" -c "import $module" 2>/dev/null || { echo "gpu_check: python cannot import $module" >&2; exit 2; }
done

export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$repo/benchmarks/gpu_check.py" "$@"
