#!/usr/bin/env bash
# Runs the whole test suite (unit, local, cluster) in Tandem's environment, installing it first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$repo/hack/bootstrap.sh")"
cd "$repo"
# This clone's source first, even if another clone shares the cached environment.
export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/python" -m pytest "$@"
