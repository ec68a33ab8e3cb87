"""Elastic PyTorch workers: the rules of a worker range (spec.minWorkers..maxWorkers).

An elastic job's workers rendezvous through torchrun's dynamic rendezvous with
``--nnodes=MIN:MAX``: training starts once MIN agents have joined, grows when more join and goes
on with the rest when one is lost, as long as MIN remain. Only PyTorch has such a mode
(TensorFlow's MultiWorkerMirroredStrategy fixes its cluster at start), and a TPU slice's host
count is fixed by its topology. Pure rules, read by the model's validators.
"""

from __future__ import annotations

from typing import Optional

#: The only framework with an elastic mode (torchrun's dynamic rendezvous).
ELASTIC_FRAMEWORK = "pytorch"

#: Why an elastic job needs in-place restarts: a lost worker's peers must restart their training
#: processes in place and re-rendezvous without it; with no in-place budget their agents exit too.
NEEDS_IN_PLACE = ("must be >= 1 for an elastic job (minWorkers/maxWorkers set): the workers that remain after one "
                  "is lost restart their training processes in place and re-rendezvous without it; "
                  "set runPolicy.inPlaceRestarts (e.g. 3) or drop minWorkers/maxWorkers")


def desired_workers(workers: Optional[int], low: Optional[int], high: Optional[int], framework: Optional[str],
                    tpu: bool) -> int:
    """spec.workers of an elastic job: the desired count, maxWorkers when unset. Raises
    ValueError (placed at spec.workers) naming what to change."""
    if framework is not None and framework != ELASTIC_FRAMEWORK:
        raise ValueError(f"minWorkers/maxWorkers (elastic workers) need framework {ELASTIC_FRAMEWORK}: {framework} "
                         "has no elastic mode (TensorFlow's MultiWorkerMirroredStrategy fixes its workers at start); "
                         "drop minWorkers and maxWorkers")
    if tpu:
        raise ValueError("minWorkers/maxWorkers (elastic workers) do not apply to a TPU slice, whose host count is "
                         "fixed by its topology; drop minWorkers and maxWorkers")
    if low is None or high is None:
        raise ValueError("an elastic job sets both minWorkers and maxWorkers (e.g. 1 and 4); set the missing one")
    if low > high:
        raise ValueError(f"minWorkers ({low}) must be <= maxWorkers ({high})")
    desired = high if workers is None else workers
    if not low <= desired <= high:
        raise ValueError(f"must be within minWorkers..maxWorkers, {low}..{high} (got {desired}); "
                         "scale within the range or change the range")
    return desired


def worker_range(text: str) -> tuple[int, int, int]:
    """`tandem run --workers`: "N" is a fixed N (min = max = workers = N); "MIN:MAX" an elastic
    range that starts MAX workers. Returns (min, max, workers); raises ValueError saying the form."""
    low_text, sep, high_text = text.partition(":")
    try:
        low, high = int(low_text), int(high_text if sep else low_text)
    except ValueError:
        raise ValueError(f"{text!r} is not a worker count: give N or MIN:MAX (e.g. 2 or 1:2)") from None
    if low < 1 or high < low:
        raise ValueError(f"{text!r}: need 1 <= MIN <= MAX")
    return low, high, high
