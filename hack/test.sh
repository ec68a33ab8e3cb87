#!/usr/bin/env bash
# Runs the whole test suite (unit, local, cluster, e2e) in Tandem's environment, installing it first.
#
# On a new machine five slow builds are needed: the Python environment (hack/bootstrap.sh), the
# control plane and node binaries (tests/controlplane/build.sh, Go), Kueue for the queueing tests
# (tests/controlplane/kueue/build.sh, Go), helm (hack/install-helm.sh, Go) and the images
# (hack/build-images.sh, buildah). The last four start here in the
# background, at once, so that they overlap with the environment's install and with the unit and
# local tiers, which run first (tests/conftest.py's TIER_ORDER) and need none of them; the tests
# that need them wait on their locks just before they start. They run at a lower priority
# (nice): the tests have timeouts, the builds do not. Each is cached under ~/.cache/tandem keyed
# by its inputs, so on a warm machine they return in about a second. A run of selected tests
# (`bash hack/test.sh tests/unit`) starts none. Their logs: ~/.cache/tandem/prebuild-*.log.
# Cold times and the critical path: docs/e2e.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${TANDEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}"
mkdir -p "$cache"

prebuilds=()
prebuild() {  # name, command...: run in the background, logged; the tests wait on its lock
  local name="$1"; shift
  setsid nice -n 10 "$@" >"$cache/prebuild-$name.log" 2>&1 </dev/null &
  prebuilds+=("$!")
}
if [[ $# -eq 0 ]]; then
  prebuild controlplane bash "$repo/tests/controlplane/build.sh"
  prebuild helm bash "$repo/hack/install-helm.sh"
  prebuild kueue bash "$repo/tests/controlplane/kueue/build.sh"
  [[ "$(id -u)" == 0 ]] && prebuild images bash "$repo/hack/build-images.sh"
fi
finish() {  # never leave a build running after the tests: it would outlive CI's run
  local pid
  [[ ${#prebuilds[@]} -gt 0 ]] || return 0
  for pid in "${prebuilds[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap finish EXIT

venv="$("$repo/hack/bootstrap.sh")"
cd "$repo"
# This clone's source first, even if another clone shares the cached environment.
export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
# The whole suite runs as two streams (pytest-xdist): most of its time is waiting on pods,
# control planes and training steps, not CPU, so two streams of tiers share the two cores
# (tests/conftest.py's work_group says which tests may share a stream;
# docs/e2e.md, "Two streams"). A run of selected tests stays one stream, in tier order.
streams=()
[[ $# -eq 0 ]] && streams=(-n 2 --dist loadscope --no-loadscope-reorder)
"$venv/bin/python" -m pytest "${streams[@]}" "$@"
