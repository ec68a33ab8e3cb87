"""Cloud TPU slice shapes on GKE: accelerator + topology -> hosts and chips per host.

GKE schedules one pod per TPU VM host of a slice, each asking for all the chips of its host
(`google.com/tpu`). The shapes below follow GKE's published tables ("Plan TPUs in GKE"): v4 and
v5p slices are 3-D tori with 4 chips per host; v5e and v6e slices are 2-D, single-host up to 8
chips and 4 chips per host beyond. The 2x4 shape of v5e/v6e exists both as one 8-chip host
and as two 4-chip hosts; Tandem defaults to the multi-host form (it is a distributed trainer)
and `tpu.chipsPerHost: 8` selects the single-host machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class SliceShape:
    accelerator: str
    topology: str
    chips: int
    hosts: int
    chips_per_host: int


_V4_TOPOLOGIES = (
    "2x2x1", "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8",
    "8x8x12", "8x8x16", "8x16x16", "12x12x12", "12x12x16", "12x16x16", "16x16x16",
)
_V5P_TOPOLOGIES = (*_V4_TOPOLOGIES, "16x16x20", "16x16x24", "16x20x28")
_2D_TOPOLOGIES = ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16")

#: GKE node label value of `cloud.google.com/gke-tpu-accelerator` -> (family, valid topologies).
ACCELERATORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tpu-v4-podslice": ("v4", _V4_TOPOLOGIES),
    "tpu-v5p-slice": ("v5p", _V5P_TOPOLOGIES),
    "tpu-v5-lite-podslice": ("v5e", _2D_TOPOLOGIES),
    "tpu-v6e-slice": ("v6e", _2D_TOPOLOGIES),
}


def chips_per_host_options(accelerator: str, topology: str) -> tuple[int, ...]:
    """Chips per host GKE offers for this slice; the first is Tandem's default."""
    family, _ = ACCELERATORS[accelerator]
    chips = topology_chips(topology)
    if family in ("v4", "v5p"):
        return (min(chips, 4),)
    if chips <= 4:
        return (chips,)
    if chips == 8:
        return (4, 8)
    return (4,)


def topology_chips(topology: str) -> int:
    return prod(int(d) for d in topology.split("x"))


def slice_shape(accelerator: str, topology: str, chips_per_host: int | None = None) -> SliceShape:
    """Resolve a slice; raises ValueError with the accepted values when the pair is unknown."""
    if accelerator not in ACCELERATORS:
        known = ", ".join(sorted(ACCELERATORS))
        raise ValueError(f"unknown TPU accelerator {accelerator!r}; use one of: {known}")
    family, topologies = ACCELERATORS[accelerator]
    if topology not in topologies:
        raise ValueError(
            f"topology {topology!r} is not offered for {family} ({accelerator}); "
            f"use one of: {', '.join(topologies)}"
        )
    options = chips_per_host_options(accelerator, topology)
    per_host = options[0] if chips_per_host is None else chips_per_host
    if per_host not in options:
        allowed = " or ".join(str(o) for o in options)
        raise ValueError(f"{family} {topology} has {allowed} chips per host, not {per_host}")
    chips = topology_chips(topology)
    return SliceShape(accelerator, topology, chips, chips // per_host, per_host)
