"""Workers the kubelet cannot start: an image it cannot have, a command the image lacks.

A Pod in either state stays Pending (or fails with the runtime's exit 128) whatever the
operator waits for, and a whole-group restart would only meet the same wall: the image and the
command come from the spec, and the new pods ask the same runtime for them. So the job is
Failed at once, naming the worker and the kubelet's own words, without spending
runPolicy.backoffLimit, and the Job is deleted so that the other workers stop holding their
resources. A pull that failed and is being retried (ErrImagePull, ImagePullBackOff) may be a
registry's hiccup: it gets the operator's image-pull grace (timing.IMAGE_PULL_GRACE_SECONDS unless
`--image-pull-grace-seconds` says otherwise), counted from when the kubelet took the pod on, and is
shown in the Pending condition meanwhile. A slow pull that is still making progress
is not a failure: the kubelet reports it as ContainerCreating.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from ...api.model import TrainingJob
from ...api.status import parse_time, rfc3339
from ...contract import (
    REASON_COMMAND_NOT_FOUND,
    REASON_IMAGE_PULL_BACK_OFF,
    REASON_IMAGE_PULL_FAILED,
)
from ..decision import Decision
from ..observed import START_FAILURES, Observed, PodState
from ..timing import IMAGE_PULL_GRACE_SECONDS

#: Waiting reasons no retry can cure: the pull policy forbids pulling an image the node lacks,
#: or the reference cannot be parsed.
IMAGE_NEVER_AVAILABLE = frozenset({"ErrImageNeverPull", "InvalidImageName"})
#: Waiting reasons of a pull that failed and that the kubelet retries with back-off.
IMAGE_PULL_RETRYING = frozenset({"ErrImagePull", "ImagePullBackOff"})
#: What runc says when the command is not in the image.
COMMAND_NOT_FOUND_MARKERS = ("executable file not found", "no such file or directory")
#: The kubelet's messages carry the runtime's whole error chain, whose end names the cause; a
#: failed pull's (about 330 characters) fits whole.
MESSAGE_TAIL = 400


@dataclass(frozen=True)
class StartFault:
    """A worker that cannot start; `final` is False while a failing pull is within its grace."""

    pod: PodState
    reason: str
    message: str
    #: When a failing pull's grace ends; None for a fault that is final now.
    grace_ends: Optional[datetime] = None

    @property
    def final(self) -> bool:
        return self.grace_ends is None


def _tail(text: str) -> str:
    text = text.strip()
    if len(text) <= MESSAGE_TAIL:
        return text
    tail = text[-MESSAGE_TAIL:]
    return "..." + (tail.split(" ", 1)[1] if " " in tail else tail)  # from a whole word


def _image_fault(pod: PodState, now: datetime, grace_seconds: float) -> Optional[StartFault]:
    if pod.waiting_reason not in IMAGE_NEVER_AVAILABLE | IMAGE_PULL_RETRYING:
        return None
    message = (f"worker {pod.index} (pod {pod.name}): image {pod.image} cannot be pulled "
               f"({pod.waiting_reason}): {_tail(pod.waiting_message)}")
    if pod.waiting_reason in IMAGE_NEVER_AVAILABLE:
        return StartFault(pod, REASON_IMAGE_PULL_FAILED, message)
    grace_ends = (parse_time(pod.started) or now) + timedelta(seconds=grace_seconds)
    if now >= grace_ends:
        return StartFault(pod, REASON_IMAGE_PULL_FAILED,
                          f"{message} (still failing after {grace_seconds:g}s of retries)")
    return StartFault(pod, REASON_IMAGE_PULL_BACK_OFF, message, grace_ends)


def _command_fault(pod: PodState) -> Optional[StartFault]:
    """The runtime failed the start, either state, and says the command is missing."""
    reason = pod.reason if pod.exit_code is not None and pod.reason in START_FAILURES else pod.waiting_reason
    text = pod.message if reason == pod.reason else pod.waiting_message
    if reason not in START_FAILURES or not any(marker in text for marker in COMMAND_NOT_FOUND_MARKERS):
        return None
    exit_code = f", exit code {pod.exit_code}" if pod.exit_code is not None and reason == pod.reason else ""
    return StartFault(pod, REASON_COMMAND_NOT_FOUND,
                      f"worker {pod.index} (pod {pod.name}): the command cannot start in image {pod.image} "
                      f"({reason}{exit_code}): {_tail(text)}")


def start_fault(pod: PodState, now: datetime,
                grace_seconds: float = IMAGE_PULL_GRACE_SECONDS) -> Optional[StartFault]:
    """What keeps this worker from ever starting, if anything does; a failing pull is final
    `grace_seconds` after the kubelet took the pod on."""
    return _image_fault(pod, now, grace_seconds) or _command_fault(pod)


def fail_unstartable(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    """Fail the job for a worker that cannot start; while a failing pull is retried, say so in
    the Pending condition and come back when its grace ends (the pass goes on: False)."""
    faults = sorted(filter(None, (start_fault(p, decision.now, decision.image_pull_grace_seconds)
                                  for p in observed.pods_of(decision.restart))),
                    key=lambda fault: (not fault.final, fault.pod.index))
    if not faults:
        return False
    first = faults[0]
    if first.grace_ends is not None:
        # The message names the moment, not the seconds left, so that it stays the same from
        # pass to pass and the status is not rewritten for nothing.
        decision.enter("Pending", first.reason,
                       f"{first.message}; the job fails at {rfc3339(first.grace_ends)} if the pull keeps failing",
                       "Warning")
        decision.actions.requeue_after = max((first.grace_ends - decision.now).total_seconds(), 1.0)
        return False
    if observed.job is not None and not observed.job.deleting:
        decision.actions.delete_job = decision.job_ref
    decision.status["completionTime"] = rfc3339(decision.now)
    decision.enter("Failed", first.reason, f"{first.message}; not restarted: a new group would meet the same fault",
                   "Warning")
    return True
