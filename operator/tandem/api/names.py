"""Kubernetes name and label rules, as apimachinery's validation package states them."""

from __future__ import annotations

import re

from ..contract import DNS1035_LABEL_PATTERN, MAX_JOB_NAME, MAX_LABEL

DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUALIFIED_NAME_PATTERN = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: A label or annotation key in one pattern, for the CRD's CEL (check_qualified_key says the same,
#: with the lengths: a prefix of at most 253, a name of at most 63).
QUALIFIED_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)

# Matched with fullmatch, never match: Python's $ also matches before a trailing newline, Go's
# (the API server's) does not.
DNS1035_LABEL = re.compile(DNS1035_LABEL_PATTERN)
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_PATTERN)
QUALIFIED_NAME = re.compile(QUALIFIED_NAME_PATTERN)
LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)


def check_job_name(name: str) -> str:
    if len(name) > MAX_JOB_NAME:
        raise ValueError(f"must be at most {MAX_JOB_NAME} characters (got {len(name)}), "
                         f"so that pod hostnames <name>-<index> fit in {MAX_LABEL}")
    if not DNS1035_LABEL.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid name: use lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit (e.g. 'mnist-ddp')"
        )
    return name


def check_dns_label(value: str) -> str:
    if len(value) > MAX_LABEL or not DNS1123_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid DNS-1123 label (lower-case alphanumerics and '-', at most {MAX_LABEL})")
    return value


def check_qualified_key(key: str) -> str:
    """A label or annotation key: optional DNS subdomain prefix and '/', then a name of <= 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"key {key!r} has an invalid prefix {prefix!r} (must be a DNS subdomain)")
    if not name or len(name) > MAX_LABEL or not QUALIFIED_NAME.fullmatch(name):
        raise ValueError(f"key {key!r} is not a valid qualified name (alphanumerics, '-', '_', '.', at most {MAX_LABEL})")
    return key


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        check_qualified_key(key)
        if len(value) > MAX_LABEL or not LABEL_VALUE.fullmatch(value):
            raise ValueError(f"label {key!r} has an invalid value {value!r} (alphanumerics, '-', '_', '.', at most {MAX_LABEL})")
    return labels
