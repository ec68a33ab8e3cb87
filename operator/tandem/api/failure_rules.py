"""runPolicy.failurePolicy, judged: a failure in, the action of the first rule that matches out.

Pure, and shared by the operator (controller/policy/failure.py, hang.py) and `tandem run`
(local/executor.py), so that one spec means the same on both. Matching follows batch/v1
podFailurePolicy: onExitCodes (In / NotIn) against the failed worker's exit code, onPodConditions
against its pod's conditions, and Tandem's onReasons against the failure's reason (Hung, or the
kubelet's: OOMKilled, Error, Evicted). The first rule that matches decides; none: Count.

A failure with no exit code (a hung group, a pod evicted or lost with its node before its
container ended) matches no onExitCodes rule, In or NotIn, as in podFailurePolicy. A local run
has no pods, so onPodConditions never matches there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..contract import DEFAULT_FAILURE_ACTION
from .model import FailurePolicy, FailureRule


@dataclass(frozen=True)
class Failure:
    """What is known of one failure: the worker, its exit code, its reason, its pod's conditions."""

    worker: Optional[int]
    exit_code: Optional[int] = None
    #: Hung, or the container's terminated reason (Error, OOMKilled), or the pod's (Evicted).
    reason: str = ""
    #: The pod's conditions as (type, status): ("DisruptionTarget", "True"). Empty locally.
    conditions: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    pod: str = ""
    #: The reason of the pod's DisruptionTarget condition (PreemptionByScheduler, DeletionByPodGC,
    #: EvictionByEvictionAPI); onReasons matches it as well as `reason`.
    disruption: str = ""


@dataclass(frozen=True)
class Verdict:
    """The action taken, and the rule that chose it (None: no rule matched)."""

    action: str
    rule: Optional[int] = None
    rule_name: Optional[str] = None

    def cite(self) -> str:
        """How events and conditions name the rule: 'rule 0 (user-error)', or that none matched."""
        if self.rule is None:
            return "no failure rule matched"
        return f"failure rule {self.rule}" + (f" ({self.rule_name})" if self.rule_name else "")


def matches(rule: FailureRule, failure: Failure) -> bool:
    if rule.on_exit_codes is not None:
        if failure.exit_code is None:
            return False
        inside = failure.exit_code in rule.on_exit_codes.values
        return inside if rule.on_exit_codes.operator == "In" else not inside
    if rule.on_pod_conditions is not None:
        return any((c.type, c.status) in failure.conditions for c in rule.on_pod_conditions)
    reasons = rule.on_reasons or ()
    return failure.reason in reasons or (bool(failure.disruption) and failure.disruption in reasons)


def judge(failure: Failure, policy: FailurePolicy) -> Verdict:
    """The first matching rule's action, or Count (today's behaviour) when none matches."""
    for index, rule in enumerate(policy.rules):
        if matches(rule, failure):
            return Verdict(rule.action, index, rule.name)
    return Verdict(DEFAULT_FAILURE_ACTION)
