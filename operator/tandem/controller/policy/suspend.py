"""runPolicy.suspend: the workers are removed and the job waits, Suspended, until resumed.

Resuming needs no step of its own: with suspend false the group step creates the Job again.
"""

from __future__ import annotations

from ...api.model import TrainingJob
from ..decision import Decision
from ..observed import Observed
from .group import worker_counts


def suspend(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    if not job.spec.run_policy.suspend:
        return False
    if observed.job is not None and not observed.job.deleting:
        decision.actions.delete_job = decision.job_ref
    decision.status["workers"] = worker_counts(observed.pods_of(decision.restart))
    decision.enter("Suspended", "Suspended", "runPolicy.suspend is true: workers removed")
    return True
