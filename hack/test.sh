#!/usr/bin/env bash
# Runs the whole test suite (unit, local, cluster, e2e) in Tandem's environment, installing it first.
#
# On a new machine five slow builds are needed: the Python environment (hack/bootstrap.sh), the
# control plane and node binaries (tests/controlplane/build.sh, Go), Kueue for the queueing tests
# (tests/controlplane/kueue/build.sh, Go), helm (hack/install-helm.sh, Go) and the images
# (hack/build-images.sh, buildah). The last four start here in the
# background, at once, so that they overlap with the environment's install and with the unit and
# local tiers, which run first (tests/conftest.py's TIER_ORDER) and need none of them; the tests
# that need them wait on their locks just before they start. The control plane and node come
# first: with the suite in two streams, half of it (the cluster and e2e tiers) waits for them, so
# they build at the tests' priority, and Kueue's Go build (one cluster file needs it) waits for
# theirs instead of halving their CPU. The rest run at a lower priority (nice 10): the tests
# have timeouts, those builds do not (docs/e2e.md, "Two streams"). Each is cached under ~/.cache/tandem keyed
# by its inputs, so on a warm machine they return in about a second. A run of selected tests
# (`bash hack/test.sh tests/unit`) starts none. Their logs: ~/.cache/tandem/prebuild-*.log.
# Cold times and the critical path: docs/e2e.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${TANDEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}"
mkdir -p "$cache"

prebuilds=()
# The last line of each log is the build's wall and CPU time (its own and every process it waited
# for): what a cut to the cold run's hour starts from (docs/e2e.md, "Cold CI").
prebuild() {  # name, niceness, command...: run in the background, logged; the tests wait on its lock
  local name="$1" niceness="$2"; shift 2
  setsid nice -n "$niceness" bash -c \
    'TIMEFORMAT="prebuild: %R s wall, %U s user, %S s system"; time "$@"' _ "$@" \
    >"$cache/prebuild-$name.log" 2>&1 </dev/null &
  prebuilds+=("$!")
}
if [[ $# -eq 0 ]]; then
  controlplane="$repo/tests/controlplane/build.sh"
  prebuild controlplane 0 bash "$controlplane"
  controlplane_pid="${prebuilds[-1]}"
  prebuild helm 10 bash "$repo/hack/install-helm.sh"
  # Kueue waits for the control plane's build to end (tail --pid), not by calling build.sh: the
  # first caller takes build.sh's lock and builds, and at nice 10 it could win that race.
  prebuild kueue 10 bash -c 'tail --pid="$1" -f /dev/null; exec bash "$2"' _ "$controlplane_pid" \
    "$repo/tests/controlplane/kueue/build.sh"
  [[ "$(id -u)" == 0 ]] && prebuild images 10 bash "$repo/hack/build-images.sh"
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
