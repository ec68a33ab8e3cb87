#!/usr/bin/env bash
# Builds Tandem's images (operator, and each framework's worker image: `python -m tandem.frameworks
# images`) from images/*.Dockerfile with buildah, no Docker daemon and no registry, on a Debian
# bookworm base made with debootstrap, and prints one OCI layout path per line
# (~/.cache/tandem/images/<name>-<key>.oci, a directory). Layouts are keyed by all their inputs: a
# second run with nothing changed builds nothing and returns at once. A build that would not fit
# on the disk is refused at once, in one line.
#
#   bash hack/build-images.sh                      # all of them
#   bash hack/build-images.sh operator             # just one
#   tar -C "$(bash hack/build-images.sh operator)" -c . | ctr -n k8s.io images import --all-platforms -
#
# Needs root (debootstrap, buildah's store). Installs buildah and debootstrap from Debian's
# packages when missing. Progress goes to stderr. See tests/e2e/images.py and docs/e2e.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if (( ${#missing[@]} )); then
  echo "build-images: installing ${missing[*]} (apt-get)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
cd "$repo"
# operator/ for tandem._sys (stdlib only), which the e2e node's module uses.
PYTHONPATH="$repo/operator" exec python3 -m tests.e2e.images "$@"
