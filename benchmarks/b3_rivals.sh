#!/usr/bin/env bash
# Build B3's rival operators once from the Go module proxy and print the directory holding them.
#
#   bash benchmarks/b3_rivals.sh [kubeflow] [trainer]     (default: both)
#
#   training-operator.v1   github.com/kubeflow/training-operator (Kubeflow Training Operator v1)
#   trainer-controller-manager   github.com/kubeflow/trainer/v2 (Kubeflow Trainer v2: TrainJob)
#   jobset                 sigs.k8s.io/jobset (the JobSet controller Trainer v2 drives)
#
# Each binary is cached under ${TANDEM_CACHE:-~/.cache/tandem}/b3-rivals/<name>-<version>/, keyed by
# its version; the CRDs come from the same module sources in GOMODCACHE (the benchmark reads them
# there). Builds run one at a time (flock), like tests/controlplane/build.sh: on 2 cores each takes
# several minutes. Versions: the newest the proxy serves that build with the local Go (1.26).
set -euo pipefail

TRAINING_OPERATOR_VERSION="${TRAINING_OPERATOR_VERSION:-v1.9.3}"
TRAINER_VERSION="${TRAINER_VERSION:-v2.1.0}"
JOBSET_VERSION="${JOBSET_VERSION:-v0.10.1}"   # the version Trainer v2.1.0's go.mod requires

CACHE_ROOT="${TANDEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/b3-rivals"
mkdir -p "$CACHE_ROOT"
export GOTOOLCHAIN=local CGO_ENABLED=0

build() {  # name package module version
  local name="$1" pkg="$2" module="$3" version="$4" out="$CACHE_ROOT/$1-$4"
  [[ -x "$out/$name" ]] && return 0
  exec 9>"$CACHE_ROOT/build.lock"
  flock 9
  if [[ ! -x "$out/$name" ]]; then
    # A throwaway module that requires only the rival's module: its build list is the rival's own.
    # (`go install pkg@version` would be shorter, but it asks the proxy for the module's version
    # list to look for deprecations, which the proxy refuses for some modules, JobSet's among them.)
    echo "b3_rivals.sh: building $pkg from $module@$version" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp/src"
    printf 'module tandem.dev/b3rivals\n\ngo 1.24\n\nrequire %s %s\n' "$module" "$version" >"$out.tmp/src/go.mod"
    ( cd "$out.tmp/src" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags="-s -w" -o "$out.tmp/$name" "$pkg" ) >&2
    rm -rf "$out.tmp/src" "$out" && mv "$out.tmp" "$out"
  fi
  exec 9>&-
}

wanted=" ${*:-kubeflow trainer} "   # which rivals: kubeflow (Training Operator v1), trainer (Trainer v2 + JobSet)
if [[ "$wanted" == *" kubeflow "* ]]; then
  build training-operator.v1 github.com/kubeflow/training-operator/cmd/training-operator.v1 github.com/kubeflow/training-operator "$TRAINING_OPERATOR_VERSION"
fi
if [[ "$wanted" == *" trainer "* ]]; then
  build jobset sigs.k8s.io/jobset sigs.k8s.io/jobset "$JOBSET_VERSION"
  build trainer-controller-manager github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager github.com/kubeflow/trainer/v2 "$TRAINER_VERSION"
fi
echo "$CACHE_ROOT"
