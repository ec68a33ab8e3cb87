#!/usr/bin/env bash
# The long reliability run (not in CI): the chaos tests of tests/cluster/test_chaos.py at full
# scale (50 TrainingJob lifecycles with the operator killed at random moments, an apiserver
# restart, a node deleted under running workers, Pod Security admission) and the local fault
# tests (tests/local/test_reliability.py). See docs/reliability.md.
#
#   make chaos                                   # or: bash hack/chaos.sh
#   TANDEM_CHAOS_JOBS=50 TANDEM_CHAOS_KILLS=20 TANDEM_CHAOS_SEED=1234 bash hack/chaos.sh
#   bash hack/chaos.sh -k lifecycles             # extra arguments go to pytest
#
# The seed is printed (and kept in the log): TANDEM_CHAOS_SEED=<seed> replays a failing run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${TANDEM_PYTHON:-}" ]]; then
    python="$TANDEM_PYTHON"
else
    python="$("$repo/hack/bootstrap.sh")/bin/python"
fi
cd "$repo"
export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
export TANDEM_CHAOS_JOBS="${TANDEM_CHAOS_JOBS:-50}"
export TANDEM_CHAOS_KILLS="${TANDEM_CHAOS_KILLS:-$((TANDEM_CHAOS_JOBS / 2 + 1))}"
export TANDEM_CHAOS_SEED="${TANDEM_CHAOS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
TANDEM_CHAOS_SEED=$((TANDEM_CHAOS_SEED % 2147483648))
log_dir="${TANDEM_CHAOS_LOG_DIR:-$repo/.tandem/chaos}"
mkdir -p "$log_dir"
log="$log_dir/chaos-$(date -u +%Y%m%dT%H%M%SZ)-seed$TANDEM_CHAOS_SEED.log"
echo "chaos: jobs=$TANDEM_CHAOS_JOBS kills=$TANDEM_CHAOS_KILLS seed=$TANDEM_CHAOS_SEED; log $log"
set +e
"$python" -m pytest tests/cluster/test_chaos.py tests/local/test_reliability.py -s -v -rA "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "chaos: exit $rc; seed $TANDEM_CHAOS_SEED (replay: TANDEM_CHAOS_SEED=$TANDEM_CHAOS_SEED TANDEM_CHAOS_JOBS=$TANDEM_CHAOS_JOBS TANDEM_CHAOS_KILLS=$TANDEM_CHAOS_KILLS bash hack/chaos.sh); log $log"
grep -E "^chaos:|operator faults injected|node .* deleted|passed|failed" "$log" | tail -n 12 || true
exit "$rc"
