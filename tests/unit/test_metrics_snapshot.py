"""The collector snapshot is tenant-fed: only bounded, well-formed figures reach status, and one
bad record costs that record, never the whole read."""

from __future__ import annotations

import json
import math

from tandem.api.status import MAX_WORKER_FIGURES
from tandem.figures import reader
from tandem.figures.snapshot import MAX_RECORDS, check


def _steps(n=20, samples=64, seconds=0.1):
    return [[i * seconds, samples, seconds, None] for i in range(1, n + 1)]


def _finite_everywhere(status):
    json.dumps(status.model_dump(mode="json"), allow_nan=False)
    for worker in status.per_worker:
        assert math.isfinite(worker.throughput) and worker.throughput >= 0


def test_a_nan_record_is_dropped_and_named_not_the_whole_read():
    steps = _steps()
    steps[5] = [0.6, float("nan"), 0.1, None]
    steps[6] = [0.7, 64, float("inf"), None]
    steps[7] = [0.8, -64, 0.1, None]
    status = reader.from_snapshot({"records": {"0/0": steps, "1/0": _steps()}}, 2, None, 0.8)
    _finite_everywhere(status)
    assert status.available and round(status.throughput) == 1280
    assert "3 record(s) of 0/0" in status.reason


def test_workers_outside_the_spec_are_dropped():
    records = {f"{i}/0": _steps() for i in range(5)} | {"-1/0": _steps(), "x/0": _steps(), "0/99999": _steps()}
    status = reader.from_snapshot({"records": records, "totals": {"4/0": 20, "0/0": float("nan")}}, 2, None, 0.8)
    assert [w.index for w in status.per_worker] == [0, 1]
    assert "6 key(s) outside workers 0..1" in status.reason and "total of 0/0" in status.reason


def test_overflowing_figures_never_reach_status():
    huge = [[i * 1e-300, 1e308, 1e-300, None] for i in range(1, 20)]
    status = reader.from_snapshot({"records": {"0/0": huge, "1/0": _steps()}}, 2, 100.0, 0.8)
    _finite_everywhere(status)
    assert [w.index for w in status.per_worker] == [1] and "overflowed" in status.reason


def test_lists_are_capped():
    checked = check({"records": {"0/0": _steps(MAX_RECORDS * 3)}}, 1)
    assert len(checked.records[(0, 0)]) == MAX_RECORDS
    records = {f"{i}/0": _steps(2) for i in range(MAX_WORKER_FIGURES + 5)}
    status = reader.from_snapshot({"records": records}, MAX_WORKER_FIGURES + 5, None, 0.8)
    assert len(status.per_worker) == MAX_WORKER_FIGURES and "first" in status.reason


def test_garbage_snapshots_read_as_no_figures():
    for garbage in (None, [], "x", {"records": []}, {"records": {"0/0": "abc"}}, {"records": {"0/0": [[1]]}}):
        status = reader.from_snapshot(garbage, 2, None, 0.8)
        assert status.available and status.throughput is None and status.per_worker == []
