#!/usr/bin/env bash
# Build Tandem's test control plane once and print the directory holding it.
#
#   bin/tandem-k8s                multi-call: etcd, kube-apiserver, kube-controller-manager,
#                                 kube-scheduler, kubelet, kube-proxy, kubectl
#                                 (k8s.io/kubernetes at the version in go.mod)
#   bin/kube-apiserver ... etc.   symlinks to tandem-k8s
#   bin/kwok                      sigs.k8s.io/kwok/cmd/kwok (module kwok/: the version in its go.mod)
#   bin/coredns                   CoreDNS with the few plugins cluster DNS needs (module coredns/)
#   bin/tandem-pause              the real node's pod sandbox program (static, stdlib only)
#   bin/tandem-probe              the e2e smoke test's program (static, stdlib only)
#   bin/tandem-netpol             the real node's NetworkPolicy enforcer: kube-router's policy
#                                 controller alone (module netpol/, its main.go says why)
#
# kwok/ and netpol/ require the very module versions the control plane's go.mod selects, wherever
# their graphs meet (tests/unit/test_controlplane_modules.py checks it): Go's build cache keys a
# compiled package by its module's version and its dependencies' keys, so with equal versions
# their client-go, apimachinery and the rest come out of the cache that tandem-k8s just filled
# instead of being compiled again (in a cold CI run, 1,906 s of build became 1,405 s).
# CoreDNS cannot follow: every CoreDNS release served needs a newer golang.org/x/sys than
# Kubernetes v1.33 pins, and x/sys is under almost every package.
#
# The result is cached under ${TANDEM_CACHE:-~/.cache/tandem}/controlplane/<k8s-version>-<hash>/bin,
# the hash covering the modules' go.mod, go.sum and Go sources and this script; a second call with
# the cache in place builds nothing. Only the bin dir goes to stdout;
# progress goes to stderr. Exit 3 when no Go toolchain is found (and nothing is cached).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

K8S_VERSION="$(awk '/^require k8s.io\/kubernetes / {print $3} /^[[:space:]]+k8s.io\/kubernetes v/ {print $2}' go.mod | head -n1)"
if [[ -z "$K8S_VERSION" ]]; then
  echo "build.sh: cannot read the k8s.io/kubernetes version from go.mod" >&2
  exit 1
fi

HASH="$( {
  cat go.mod go.sum build.sh coredns/go.mod coredns/go.sum netpol/go.mod netpol/go.sum kwok/go.mod kwok/go.sum
  find cmd coredns netpol -type f -name '*.go' | LC_ALL=C sort | xargs cat
} | sha256sum | cut -c1-12)"

CACHE_ROOT="${TANDEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/controlplane"
OUT="$CACHE_ROOT/$K8S_VERSION-$HASH"
BIN="$OUT/bin"

complete() {
  [[ -x "$BIN/tandem-k8s" && -x "$BIN/kwok" && -x "$BIN/coredns" && -x "$BIN/tandem-netpol" \
     && -f "$OUT/.complete" ]]
}

if complete; then
  echo "$BIN"
  exit 0
fi

# TANDEM_GO names the go binary to use (the tests set it to a missing path to check exit 3).
if [[ -n "${TANDEM_GO:-}" ]]; then
  GO="$TANDEM_GO"
else
  GO="$(command -v go || true)"
  if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
fi
if [[ -z "$GO" || ! -x "$GO" ]]; then
  echo "build.sh: no Go toolchain found (need go >= 1.26 on PATH or /usr/local/go/bin/go)" >&2
  exit 3
fi

mkdir -p "$CACHE_ROOT"
# One builder at a time per cache key; a second caller waits and then finds the result.
exec 9>"$OUT.lock"
flock 9
if complete; then
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN=local
export CGO_ENABLED=0
# GOPATH / GOMODCACHE / GOCACHE are left at their defaults (~/go, ~/.cache/go-build)
# so that modules and compiled packages are reused across runs.

TMP="$OUT.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP/bin"
trap 'rm -rf "$TMP"' EXIT

MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
echo "build.sh: building tandem-k8s (k8s.io/kubernetes $K8S_VERSION) with $("$GO" version)" >&2
GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags="$LDFLAGS" \
  -o "$TMP/bin/tandem-k8s" ./cmd/tandem-k8s
echo "build.sh: tandem-k8s built in $(( $(date +%s) - start ))s" >&2

KWOK_VERSION="$(awk '$1 == "sigs.k8s.io/kwok" {print $2}' kwok/go.mod)"
start_kwok=$(date +%s)
echo "build.sh: building kwok $KWOK_VERSION" >&2
( cd kwok && GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags="-s -w" \
    -o "$TMP/bin/kwok" sigs.k8s.io/kwok/cmd/kwok )
echo "build.sh: kwok built in $(( $(date +%s) - start_kwok ))s" >&2

start_small=$(date +%s)
echo "build.sh: building tandem-pause, tandem-probe and coredns" >&2
for cmd in tandem-pause tandem-probe; do
  GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags="-s -w" -o "$TMP/bin/$cmd" "./cmd/$cmd"
done
( cd coredns && GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags="-s -w" \
    -o "$TMP/bin/coredns" . )
echo "build.sh: tandem-pause, tandem-probe and coredns built in $(( $(date +%s) - start_small ))s" >&2

start_netpol=$(date +%s)
echo "build.sh: building tandem-netpol (kube-router's policy controller)" >&2
( cd netpol && GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags="-s -w" \
    -o "$TMP/bin/tandem-netpol" . )
echo "build.sh: tandem-netpol built in $(( $(date +%s) - start_netpol ))s" >&2

for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sf tandem-k8s "$TMP/bin/$name"
done
echo "k8s=$K8S_VERSION kwok=$KWOK_VERSION hash=$HASH built=$(date -u +%FT%TZ) seconds=$(( $(date +%s) - start ))" \
  > "$TMP/.complete"

rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
echo "build.sh: done in $(( $(date +%s) - start ))s -> $BIN" >&2
echo "$BIN"
