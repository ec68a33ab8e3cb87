"""Progress and ETA: the pure maths, the helpers that learn the total, and the
fields on the wire and in status.progress. No Ray, no clocks but the ones passed in."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from tandem.api.status import WorkerMetrics, duration
from tandem.figures import eta, progress
from tandem.figures.record import Step
from tandem.figures.snapshot import check
from tandem.figures.summary import summarize
from tandem.figures.wire import Refused, batch, encode
from tandem.metrics.keras import keras_total
from tandem.metrics.pytorch import steps_of

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@given(st.integers(0, 10**9), st.one_of(st.none(), st.integers(-5, 10**9)),
       st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
@settings(deadline=None)
def test_eta_is_absent_or_consistent(done, total, rate):
    """Either no ETA, or one that the rate turns into the steps left (rounded up to a second)."""
    found = eta.estimate(done, total, rate)
    if total is None or total <= 0:
        assert found == eta.Estimate(None, None)
        return
    assert 0 <= found.percent <= 100
    if found.eta is None:
        assert done < total and (rate is None or not math.isfinite(rate) or rate <= 0
                                 or (total - done) / rate > eta.MAX_ETA_SECONDS)
    elif done >= total:
        assert found.eta == 0 and found.percent == 100
    else:
        assert rate is not None and rate > 0
        assert found.eta - 1 < (total - done) / rate <= found.eta + 1e-6


def test_a_rate_needs_enough_steps_and_time():
    assert eta.rate(eta.MIN_STEPS - 1, 10.0) is None
    assert eta.rate(10, 0.0) is None
    assert eta.rate(10, 5.0) == 2.0


def test_the_eta_follows_the_recent_rate_not_the_average_since_the_start():
    """A slow first minute (compiling, a cold cache), then 10 steps/s: the ETA is the recent rate's."""
    slow = [Step(float(i + 1) * 6, 64, 6.0) for i in range(10)]            # 10 steps in 60 s
    fast = [Step(60 + (i + 1) * 0.1, 64, 0.1) for i in range(400)]        # 400 steps in 40 s
    status = summarize({(0, 0): slow + fast}, workers=1)
    worker = status.per_worker[0].model_copy(update={"steps_total": 1410, "steps_done": 410})
    record = progress.observe(None, 0, {0: 410}, T0, [worker])
    assert record.steps_done == 410 and record.steps_total == 1410 and math.isclose(record.percent, 410 / 14.1)
    assert record.eta == 100  # 1000 steps left at 10 steps/s; the average since the start (4.1/s) would say 244 s


def test_no_total_or_no_rate_means_no_eta():
    worker = WorkerMetrics(index=0, throughput=1.0, steps=50, steps_done=50, step_rate=None, steps_total=100)
    assert progress.observe(None, 0, {0: 50}, T0, [worker]).eta is None
    assert progress.observe(None, 0, {0: 50}, T0, [worker]).percent == 50
    untold = worker.model_copy(update={"steps_total": None, "step_rate": 5.0})
    record = progress.observe(None, 0, {0: 50}, T0, [untold])
    assert record.percent is None and record.eta is None and record.steps_done == 50
    assert progress.progress_text(record) == ""


def test_the_job_ends_with_its_slowest_worker():
    fast = WorkerMetrics(index=0, throughput=1.0, steps=80, steps_done=80, step_rate=10.0, steps_total=100)
    slow = WorkerMetrics(index=1, throughput=1.0, steps=60, steps_done=60, step_rate=2.0, steps_total=100)
    record = progress.observe(None, 0, {0: 80, 1: 60}, T0, [fast, slow])
    assert (record.steps_done, record.percent, record.eta) == (60, 60.0, 20)
    assert progress.progress_text(record) == "step 60/100 (60%) ETA 0:20"


def test_elapsed_counts_from_the_groups_first_read_and_starts_again_after_a_restart():
    first = progress.observe(None, 0, {0: 1}, T0)
    later = progress.observe(first, 0, {0: 5}, T0 + timedelta(seconds=75))
    assert later.elapsed == 75 and later.since == first.since
    restarted = progress.observe(later, 1, {0: 5}, T0 + timedelta(seconds=90))
    assert restarted.elapsed == 0 and restarted.restart == 1
    assert duration(3725) == "1:02:05" and duration(65) == "1:05"


def test_the_hang_fields_are_as_before():
    """Percent and ETA are added beside the hang clock, which reads as it did."""
    worker = WorkerMetrics(index=0, throughput=1.0, steps=3, steps_done=3, step_rate=1.0, steps_total=10)
    with_figures = progress.observe(None, 0, {0: 3}, T0, [worker])
    without = progress.observe(None, 0, {0: 3}, T0)
    keys = ("restart", "since", "checked_at", "last_step", "last_step_at", "workers")
    assert [getattr(with_figures, k) for k in keys] == [getattr(without, k) for k in keys]


def test_the_helpers_learn_the_total_where_the_framework_knows_it():
    assert keras_total({"steps": 50, "epochs": 3}) == 150
    assert keras_total({"steps": None, "epochs": 3}) is None  # a dataset of unknown length
    assert steps_of(None, list(range(40)), 2) == 80           # len(loader) x epochs
    assert steps_of(500, list(range(40)), 2) == 500           # said outright
    assert steps_of(None, iter(range(40)), 2) is None         # no length: no guess
    assert steps_of(None, None, 3) is None


def test_info_travels_checked_on_the_wire_and_in_the_snapshot():
    good = {"stepsDone": 10, "stepsTotal": 100, "gpus": 2, "gpuUtil": 87.5, "gpuMemUsed": 3 << 30, "gpuMemTotal": 80 << 30}
    assert batch(encode(0, 0, [[1.0, 64, 0.1, None]], good)).info == good
    for bad in ({"stepsTotal": -1}, {"stepsTotal": 1.5}, {"gpuUtil": 101}, {"gpus": 10**6}, {"other": 1},
                {"stepsDone": True}, [1, 2]):
        try:
            batch(encode(0, 0, [], bad))  # type: ignore[arg-type]
        except Refused as refused:
            assert refused.status == 400
        else:
            raise AssertionError(f"{bad} was taken")
    snapshot = {"records": {"0/0": [[i * 0.1, 64, 0.1, None] for i in range(1, 60)]},
                "info": {"0/0": good, "1/0": {"stepsTotal": "lots"}, "9/0": good}}
    checked = check(snapshot, workers=2)
    assert checked.info[(0, 0)].steps_total == 100 and (1, 0) not in checked.info
    assert "info of 1/0" in checked.reason()
    status = summarize(checked.records, 2, info=checked.info)
    worker = status.per_worker[0]
    assert (worker.steps_done, worker.steps_total, worker.gpus, worker.gpu_utilization) == (10, 100, 2, 87.5)
    assert worker.gpu_memory_total == 80 << 30 and worker.step_rate is not None
