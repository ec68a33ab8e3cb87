#!/usr/bin/env bash
# Build Kueue's manager once and print the directory holding it (only tests that need Kueue call this,
# so the rest of the cluster tier never pays for it).
#
#   bin/kueue        sigs.k8s.io/kueue/cmd/kueue at $KUEUE_VERSION (from the Go module proxy)
#   crd/*.yaml       Kueue's CRDs, copied from that module's config/components/crd/bases
#
# KUEUE_VERSION is the newest release the proxy serves whose k8s.io libraries match the test control
# plane's minor version (v1.33; Kueue v0.13 is built against k8s.io/* v0.33).
# Cached under ${TANDEM_CACHE:-~/.cache/tandem}/kueue/<version>-<hash>, the hash covering this script;
# a second call with the cache in place builds nothing. Only the directory goes to stdout; progress goes
# to stderr. Exit 3 when no Go toolchain is found (and nothing is cached).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUEUE_VERSION="v0.13.2"
HASH="$( { echo "kueue=$KUEUE_VERSION"; cat "$HERE/build.sh"; } | sha256sum | cut -c1-12)"
CACHE_ROOT="${TANDEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/kueue"
OUT="$CACHE_ROOT/$KUEUE_VERSION-$HASH"

complete() {
  [[ -x "$OUT/bin/kueue" && -f "$OUT/.complete" ]] && compgen -G "$OUT/crd/*.yaml" >/dev/null
}

if complete; then
  echo "$OUT"
  exit 0
fi

if [[ -n "${TANDEM_GO:-}" ]]; then
  GO="$TANDEM_GO"
else
  GO="$(command -v go || true)"
  if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
fi
if [[ -z "$GO" || ! -x "$GO" ]]; then
  echo "kueue/build.sh: no Go toolchain found (need go >= 1.24 on PATH or /usr/local/go/bin/go)" >&2
  exit 3
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$OUT.lock"
flock 9
if complete; then
  echo "$OUT"
  exit 0
fi

export GOTOOLCHAIN=local
export CGO_ENABLED=0
TMP="$OUT.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP/bin" "$TMP/crd"
trap 'rm -rf "$TMP"' EXIT

start=$(date +%s)
echo "kueue/build.sh: building kueue $KUEUE_VERSION with $("$GO" version)" >&2
( cd "$TMP" && GOFLAGS="-buildvcs=false" GOBIN="$TMP/bin" \
    "$GO" install -trimpath -ldflags="-s -w" "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" )
MODDIR="$(cd "$TMP" && GOFLAGS= "$GO" mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
cp "$MODDIR"/config/components/crd/bases/*.yaml "$TMP/crd/"
chmod u+w "$TMP"/crd/*.yaml
echo "kueue=$KUEUE_VERSION hash=$HASH built=$(date -u +%FT%TZ) seconds=$(( $(date +%s) - start ))" > "$TMP/.complete"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
echo "kueue/build.sh: done in $(( $(date +%s) - start ))s -> $OUT" >&2
echo "$OUT"
