#!/usr/bin/env bash
# Install what the e2e tier's real node needs from Debian's packages (run as root; idempotent):
#
#   containerd, runc                 the container runtime the kubelet talks CRI to
#   containernetworking-plugins      CNI bridge, host-local, portmap, loopback (in /usr/lib/cni)
#   iptables, conntrack, iproute2    kube-proxy's Service rules, CNI masquerading, teardown
#   ipset                            the NetworkPolicy enforcer's address sets (tests/controlplane/netpol)
#
# Nothing is started or enabled: the node (tests/controlplane/node.py) runs its own containerd
# with private root/state/socket paths, so the packaged service is never used. Where the package
# would start it (a machine with systemd), policy-rc.d keeps it stopped during the install.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables ipset conntrack iproute2 kmod)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "install-node-deps: all present (${PACKAGES[*]})" >&2
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-node-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

# Keep the packaged containerd from starting (only matters where an init system would run it).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; own_policy=1
fi
trap '[[ $own_policy == 1 ]] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
# Another installer may hold the dpkg lock: wait for it rather than fail.
apt_opts=(-o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
# Only refresh the package lists when they are missing or a day old.
if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]]; then
  apt-get -o DPkg::Lock::Timeout=600 update -q
fi
echo "install-node-deps: installing ${missing[*]}" >&2
apt-get install "${apt_opts[@]}" "${missing[@]}"
