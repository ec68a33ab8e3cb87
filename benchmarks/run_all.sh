#!/usr/bin/env bash
# Runs every benchmark of this directory in turn (B1, B3, B4, B5, B6) with the project's Python
# environment; each appends its section to benchmarks/RESULTS.md. B2 (benchmarks/metrics_overhead.py)
# runs too when it is there. Arguments after the script name go to every benchmark (e.g.
# --no-append). One benchmark failing does not stop the others; the exit code says if any did.
#
#   bash benchmarks/run_all.sh            # about 30-40 minutes on a 2-core machine
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="$("$repo/hack/bootstrap.sh")/bin/python"
export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
failed=()
run() {
  echo "=== $* ($(date -u +%H:%M:%S) UTC)" >&2
  "$python" "$@" || failed+=("$1")
}
run benchmarks/b4_render.py "$@"
run benchmarks/b1_launcher.py "$@"
[ -f benchmarks/metrics_overhead.py ] && run benchmarks/metrics_overhead.py
run benchmarks/b3_controller.py "$@"
run benchmarks/b5_scaling.py "$@"
run benchmarks/b6_goodput.py "$@"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "all benchmarks ran; results in benchmarks/RESULTS.md" >&2
