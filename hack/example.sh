#!/usr/bin/env bash
# Runs the PyTorch DDP example with 2 local workers, installing Tandem's environment first.
# Extra arguments go to `tandem run`, e.g. `bash hack/example.sh --workers 4`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$repo/hack/bootstrap.sh")"
cd "$repo"
# This clone's source first, even if another clone shares the cached environment.
export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/tandem" run jobs/mnist-ddp.yaml --workers 2 "$@"
