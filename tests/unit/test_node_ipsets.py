"""Which ipsets the real node's cleanup destroys (tests/controlplane/node.py): the policy
enforcer's, named as kube-router names them, and no one else's on the machine."""

from __future__ import annotations

import base64
import hashlib

from tests.controlplane.node import _IPSET_NAME


def _kube_router_name(prefix: str, key: str) -> str:
    """kube-router's naming: a prefix and the first 16 base32 characters of a sha256."""
    return prefix + base64.b32encode(hashlib.sha256(key.encode()).digest()).decode()[:16]


def test_the_enforcers_sets_match():
    for prefix in ("KUBE-SRC-", "KUBE-DST-", "TMP-"):
        name = _kube_router_name(prefix, "ns/policy")
        assert _IPSET_NAME.match(name), name
        assert _IPSET_NAME.match(f"inet6:{name}"), name


def test_other_sets_do_not():
    for name in ("KUBE-SRC-short", "TMP-", "tmp-ABCDEFGHIJKLMNOP", "KUBE-CLUSTER-IP",
                 "cali40all-hosts", "my-KUBE-SRC-ABCDEFGHIJKLMNOP", "KUBE-SRC-ABCDEFGHIJKLMNOPQ",
                 "TMP-abcdefghijklmnop"):
        assert not _IPSET_NAME.match(name), name
