"""runPolicy.failurePolicy, judged: a failure in, the action of the first rule that matches out.

Pure, and shared by the operator (controller/policy/failure.py, hang.py) and `tandem run`
(local/executor.py), so that one spec means the same on both. Matching follows batch/v1
podFailurePolicy: onExitCodes (In / NotIn) against the failed worker's exit code, onPodConditions
against its pod's conditions, and Tandem's onReasons against the failure's reason (Hung, or the
kubelet's: OOMKilled, Error, Evicted). The first rule that matches decides. When none does, one
built-in rule comes last: a worker whose pod was disrupted (preempted, evicted, drained, deleted)
gets Ignore, as Kubernetes' own podFailurePolicy guidance says ("DisruptionTarget: Ignore"): the
job did nothing wrong, so its backoffLimit is not spent on it. Anything else: Count.

A failure with no exit code (a hung group, a pod evicted or lost with its node before its
container ended) matches no onExitCodes rule, In or NotIn, as in podFailurePolicy. A local run
has no pods, so onPodConditions never matches there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..contract import DEFAULT_FAILURE_ACTION, DISRUPTION_TARGET
from .model import FailurePolicy, FailureRule

#: The built-in rule's name in status.lastFailure.ruleName and in messages (its `rule` is unset).
DISRUPTED_POD_RULE = "disrupted-pod"
#: How a container ends when its pod is deleted: SIGTERM (143), or SIGKILL (137) after the grace period.
DELETION_EXIT_CODES = frozenset({128 + 15, 128 + 9})
#: The kubelet's reason for a container killed for memory (also 137): the job's own fault, never a deletion's.
OOM_KILLED = "OOMKilled"


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
    #: The pod had a deletionTimestamp when it failed: someone or something (a drain, a preemption
    #: by hand, `kubectl delete pod`) deleted it.
    deleting: bool = False


@dataclass(frozen=True)
class Verdict:
    """The action taken, and the rule that chose it (None: no rule matched)."""

    action: str
    rule: Optional[int] = None
    rule_name: Optional[str] = None
    #: The built-in rule decided (DISRUPTED_POD_RULE, after every rule of the job's): `rule` is unset.
    builtin: bool = False

    def cite(self) -> str:
        """How events and conditions name the rule: 'rule 0 (user-error)', the built-in rule, or that none matched."""
        if self.builtin:
            return f"built-in rule ({self.rule_name})"
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


def disrupted(failure: Failure) -> bool:
    """The worker's pod was taken away from the job: Kubernetes said so (a True DisruptionTarget
    condition: preemption, eviction, a lost node's pod GC), or the pod was being deleted and its
    container ended as a deletion ends it (SIGTERM, or SIGKILL after the grace period; a plain
    `kubectl delete pod` or a drain sets no condition). An OOM kill is the job's own failure."""
    if (DISRUPTION_TARGET, "True") in failure.conditions:
        return True
    return failure.deleting and failure.exit_code in DELETION_EXIT_CODES and failure.reason != OOM_KILLED


def judge(failure: Failure, policy: FailurePolicy) -> Verdict:
    """The first matching rule's action; then the built-in rule (a disrupted pod: Ignore); then
    Count. The built-in rule comes after the job's own, so a job that wants disruptions counted
    (or fatal) says so with a rule on DisruptionTarget or the exit code."""
    for index, rule in enumerate(policy.rules):
        if matches(rule, failure):
            return Verdict(rule.action, index, rule.name)
    if disrupted(failure):
        return Verdict("Ignore", rule_name=DISRUPTED_POD_RULE, builtin=True)
    return Verdict(DEFAULT_FAILURE_ACTION)
