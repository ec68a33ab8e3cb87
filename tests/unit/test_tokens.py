"""Tokens/s, the figure language-model users read first: `reporter.step(samples=..., tokens=...)`
travels in the step record and is shown wherever samples/s is, and nowhere when no step says it."""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from tandem.api.columns import PRINTER_COLUMNS
from tandem.api.model import load_job
from tandem.api.status import MetricsStatus, TrainingJobStatus, WorkerMetrics
from tandem.figures import reader, record, wire
from tandem.figures.record import Step
from tandem.figures.summary import summarize
from tandem.kube.table import progress_line, status_table
from tandem.local.executor import Attempt, RunResult, WorkerExit
from tandem.local.figures_service import LocalMetrics
from tandem.local.table import print_run_summary
from tandem.metrics.reporter import NullReporter, Reporter
from tandem.metrics.tensorboard import EventLog

REPO = Path(__file__).resolve().parents[2]


def steps(n=50, samples=8.0, seconds=0.1, tokens=None, start=0.0):
    return [Step(start + (i + 1) * seconds, samples, seconds, None, tokens) for i in range(n)]


def test_the_reporter_records_tokens_and_the_shipper_line_carries_them():
    rep = Reporter.__new__(Reporter)  # no thread, no shipper: the step bookkeeping only
    rep._buffer, rep._previous, rep._broken, rep._done = collections.deque(), None, False, 0
    rep.step(samples=8, tokens=4096)
    rep.step(samples=8, tokens=4096)
    rep.step(samples=8)
    with_tokens, without = rep._buffer
    assert with_tokens.tokens == 4096 and without.tokens is None
    line = json.loads(json.dumps([record.encode(s) for s in rep._buffer]))
    assert [len(r) for r in line] == [5, 3]  # no wait split: busy null, and left off without tokens
    assert [record.decode(r) for r in line] == [with_tokens, without]
    NullReporter().step(samples=8, tokens=4096)  # outside Tandem: accepted, does nothing


def test_tokens_go_through_the_wire_checked():
    good = Step(1.0, 8.0, 0.1, None, 4096.0)
    assert [record.decode(r) for r in wire.batch(wire.encode(0, 0, [good])).records] == [good]
    for bad in (math.nan, math.inf, -1, "4096", True):
        with pytest.raises(wire.Refused):
            wire.batch(json.dumps({"worker": 0, "rank": 0, "records": [[1.0, 8, 0.1, None, bad]]}).encode())


def test_tokens_per_second_per_worker_and_for_the_job():
    status = summarize({(0, 0): steps(tokens=4096.0), (0, 1): steps(tokens=2048.0), (1, 0): steps(tokens=4096.0)}, 2)
    assert [w.token_throughput for w in status.per_worker] == pytest.approx([61440.0, 40960.0])
    assert status.token_throughput == pytest.approx(102400.0)
    assert status.throughput == pytest.approx(240.0)  # samples/s as before


def test_no_tokens_figure_where_a_step_a_rank_or_a_worker_says_none():
    assert summarize({(0, 0): steps(), (1, 0): steps()}, 2).token_throughput is None
    partial = summarize({(0, 0): steps(tokens=4096.0), (1, 0): steps()}, 2)
    assert partial.token_throughput is None  # a job total of one worker of two would understate
    assert [w.token_throughput for w in partial.per_worker] == [pytest.approx(40960.0), None]
    mixed = [*steps(n=10), *steps(n=40, tokens=4096.0, start=1.0)]
    assert summarize({(0, 0): mixed}, 1).token_throughput is None  # a window of part of the steps too
    again = reader.from_snapshot({"records": {"0/0": [record.encode(s) for s in steps(tokens=4096.0)]}}, 1, None, 0.8)
    assert again.token_throughput == pytest.approx(40960.0)


def _metrics(tokens: bool) -> MetricsStatus:
    return summarize({(0, 0): steps(tokens=4096.0 if tokens else None), (1, 0): steps(tokens=4096.0 if tokens else None)},
                     2, baseline=80.0)


def _views(metrics: MetricsStatus, tmp_path) -> dict[str, str]:
    console = Console(width=250, record=True, color_system=None)
    job = load_job(REPO / "jobs/mnist-ddp.yaml")
    print_run_summary(console, job, RunResult("mnist-ddp", tmp_path, [
        Attempt(0, [WorkerExit(0, 0, tmp_path / "w0.log"), WorkerExit(1, 0, tmp_path / "w1.log")], 1.0)]), metrics)
    status = TrainingJobStatus(phase="Running", metrics=metrics)
    get = Console(width=250, record=True, color_system=None)
    get.print(status_table("demo", status))
    local = LocalMetrics("default", "demo", 2, 80.0, 0.8)
    local.latest = metrics
    return {"run": console.export_text(), "get": get.export_text(), "live": progress_line("demo", status),
            "local live": local.status_line()}


def test_every_view_shows_tokens_per_second_when_the_steps_carry_tokens(tmp_path):
    views = _views(_metrics(tokens=True), tmp_path)
    assert "tokens/s" in views["run"].splitlines()[2]  # the table's header: a column per worker
    assert "40,960.0" in views["run"] and "token throughput: 81,920.0 tokens/s" in views["run"]
    assert "token throughput" in views["get"] and "81,920.0 tokens/s" in views["get"]
    assert "81,920.0 tokens/s" in views["live"] and "81,920.0 tokens/s" in views["local live"]


def test_no_view_shows_tokens_when_no_step_says_how_many(tmp_path):
    for name, text in _views(_metrics(tokens=False), tmp_path).items():
        assert "tokens/s" not in text and "token throughput" not in text, name
        assert "samples/s" in text, name


def test_the_tokens_printer_column_is_for_wide_output():
    (column,) = [c for c in PRINTER_COLUMNS if c.json_path == ".status.metrics.tokenThroughput"]
    assert column.name == "Tokens/s" and column.priority == 1 and column.type == "number"


class _Scalars:
    def __init__(self):
        self.written: dict[str, float] = {}

    def scalar(self, tag, value, step):
        self.written[tag] = value

    def flush(self):
        pass


@pytest.mark.parametrize("tokens, tags", [
    (512.0, {"tandem/throughput_samples_per_s": 80.0, "tandem/throughput_tokens_per_s": 5120.0}),
    (None, {"tandem/throughput_samples_per_s": 80.0}),
])
def test_tensorboard_draws_tokens_per_second_only_when_the_steps_carry_them(tmp_path, tokens, tags):
    log = EventLog({"TANDEM_TENSORBOARD": "1", "TANDEM_TENSORBOARD_DIR": str(tmp_path)})
    log._writer = scalars = _Scalars()
    log.write(steps(n=10, tokens=tokens))
    throughput = {tag: value for tag, value in scalars.written.items() if tag.startswith("tandem/throughput_")}
    assert throughput == pytest.approx(tags)


def test_worker_figures_keep_tokens_through_status_json():
    status = _metrics(tokens=True)
    again = MetricsStatus.model_validate(status.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert again.token_throughput == status.token_throughput
    assert WorkerMetrics.model_validate({"index": 0, "throughput": 1.0, "tokenThroughput": 2.0}).token_throughput == 2.0
