#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from Debian's packages (chromium, chromium-driver)
# when missing, and print the driver's path: the dashboard's browser tests drive it through
# Selenium (tests/support/browser.py). Needs root to install; idempotent: a second run only prints.
set -euo pipefail
PACKAGES=(chromium chromium-driver)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-browser: need root to install: ${missing[*]} (or install them yourself)" >&2
    exit 1
  fi
  echo "install-browser: installing ${missing[*]} (apt-get)" >&2
  # The suite's other installs (the images' buildah, the node's packages) may hold apt's lock: wait for it.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
fi
command -v chromedriver
