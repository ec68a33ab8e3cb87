#!/usr/bin/env bash
# Builds a real helm binary from the Go module proxy (no release tarball download), caches it
# under ~/.cache/tandem/bin/helm-<version>, and prints its path on stdout. A second call reuses it.
#
#   HELM=$(bash hack/install-helm.sh)           # default version below
#   HELM_VERSION=v3.22.0 bash hack/install-helm.sh
#
# Exit status: 0 with the path printed; 3 when no Go toolchain exists (callers may skip);
# anything else is a failed build (callers must fail, not skip).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}/bin"
TARGET="$CACHE/helm-$HELM_VERSION"

if [[ -x "$TARGET" ]] && "$TARGET" version --short >/dev/null 2>&1; then
  echo "$TARGET"
  exit 0
fi

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
if [[ -z "$GO" ]]; then
  echo "install-helm: no Go toolchain (go not on PATH, no /usr/local/go/bin/go); cannot build helm $HELM_VERSION" >&2
  exit 3
fi

mkdir -p "$CACHE"
# One builder at a time (hack/test.sh starts one in the background; the chart tests call this
# too): a second caller waits, then finds the binary.
exec 9>"$TARGET.lock"
flock 9
if [[ -x "$TARGET" ]] && "$TARGET" version --short >/dev/null 2>&1; then
  echo "$TARGET"
  exit 0
fi
work="$(mktemp -d "$CACHE/.helm-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "install-helm: building helm $HELM_VERSION with $("$GO" version) (first time only) ..." >&2
# The ldflags helm's Makefile sets. Without the k8s ones, `helm template`/`lint` assume
# Kubernetes v1.20 and refuse charts with a newer kubeVersion; like the Makefile, derive them
# from the client-go that this helm version is built with (v0.34 -> Kubernetes 1.34).
moddir="$("$GO" mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
clientgo="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p' "$moddir/go.mod")"
read -r k8s_major_minus_one k8s_minor <<<"$clientgo"
k8s_major=$((k8s_major_minus_one + 1))
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
done
GOBIN="$work" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 \
  "$GO" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
"$work/helm" version --short >&2
mv -f "$work/helm" "$TARGET"   # atomic within the cache dir
echo "install-helm: built $TARGET in $(( $(date +%s) - start )) s" >&2
echo "$TARGET"
