"""The Go modules built beside the control plane require its versions wherever their graphs meet.

Go's build cache keys a compiled package by its module's version and by its dependencies' keys,
so kwok and the policy enforcer, at the control plane's versions of client-go, apimachinery,
golang.org/x/sys and the rest, reuse the packages that tandem-k8s compiled a minute before; one
version apart anywhere under them and a cold build compiles those packages again (minutes on two
cores: tests/controlplane/build.sh says where the time went)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CONTROLPLANE = Path(__file__).resolve().parents[1] / "controlplane"
#: "path version" on a require line, inside or outside a require block (not replace lines).
REQUIREMENT = re.compile(r"^\s*(?:require\s+)?([A-Za-z0-9][\w.\-/]*\.[\w.\-/]+)\s+(v[\w.+\-]+)\s*(?://.*)?$", re.M)


def requirements(go_mod: Path) -> dict[str, str]:
    return dict(REQUIREMENT.findall(go_mod.read_text()))


def test_requirements_are_read_from_blocks_and_single_lines(tmp_path):
    go_mod = tmp_path / "go.mod"
    go_mod.write_text("module x\n\ngo 1.24.0\n\nrequire a.io/one v1.2.3\n\nrequire (\n\tb.io/two/v2 v2.0.0 // indirect\n"
                      "\tc.io/three v0.0.0-20250207200755-1244d31929d7\n)\n\nreplace d.io/four => d.io/four v1.0.0\n")
    assert requirements(go_mod) == {"a.io/one": "v1.2.3", "b.io/two/v2": "v2.0.0",
                                    "c.io/three": "v0.0.0-20250207200755-1244d31929d7"}


@pytest.mark.parametrize("module", ["kwok", "netpol"])
def test_a_module_built_beside_the_control_plane_requires_its_versions(module):
    ours = requirements(CONTROLPLANE / "go.mod")
    theirs = requirements(CONTROLPLANE / module / "go.mod")
    apart = {path: (ours[path], version) for path, version in theirs.items() if path in ours and ours[path] != version}
    assert len(set(theirs) & set(ours)) > 30, "the two graphs should share client-go and what is under it"
    assert not apart, (f"{module}/go.mod and the control plane's go.mod require other versions of {apart} "
                       "(control plane's, this module's): raise this module's to the control plane's "
                       "(go mod edit -require=PATH@VERSION, then go mod tidy)")
