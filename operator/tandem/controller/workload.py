"""What Kueue says about a queued job: its Workload's conditions, reduced to what status needs.

Kueue makes one Workload per batch/v1 Job it manages (labelled with the Job's uid) and writes its
verdicts there, not on the Job: QuotaReserved False with the reason a group does not fit, Evicted
when it was preempted. The operator only reads it (runtime.Controller._read_workload), to name
Kueue's reason in the Queued condition. Pure, like observed.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional


@dataclass(frozen=True)
class WorkloadState:
    """The Workload of the job's current Job, or why the operator could not read one (`missing`)."""

    name: str = ""
    #: Kueue's reason and message for the job still waiting (QuotaReserved False), e.g.
    #: Pending: "couldn't assign flavors to pod set main: insufficient unused quota ...".
    reason: str = ""
    message: str = ""
    #: Set while the Workload is Evicted (Preempted, InactiveWorkload...): why it lost its admission.
    evicted_reason: str = ""
    evicted_message: str = ""
    admitted: bool = False
    #: No Workload could be read: the operator's words why (none exists yet, RBAC, no Kueue).
    missing: str = ""


def _true(conditions: Mapping[str, Mapping[str, Any]], type_: str) -> Optional[Mapping[str, Any]]:
    condition = conditions.get(type_)
    return condition if condition is not None and condition.get("status") == "True" else None


def workload_state(obj: Mapping[str, Any]) -> WorkloadState:
    """The state of one Workload object (a dict, as the API returns it)."""
    status = obj.get("status") or {}
    conditions = {c.get("type", ""): c for c in status.get("conditions") or []}
    reserved = conditions.get("QuotaReserved") or {}
    evicted = _true(conditions, "Evicted") or {}
    return WorkloadState(
        name=(obj.get("metadata") or {}).get("name", ""),
        reason=reserved.get("reason", "") if reserved.get("status") == "False" else "",
        message=reserved.get("message", "") if reserved.get("status") == "False" else "",
        evicted_reason=evicted.get("reason", ""),
        evicted_message=evicted.get("message", ""),
        admitted=_true(conditions, "Admitted") is not None,
    )
