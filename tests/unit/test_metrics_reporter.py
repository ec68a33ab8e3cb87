"""The reporter in a training process, the gateway reader's bounded failure paths, baselines (no Ray cluster)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tandem._sys.ports import free_port
from tandem.figures import reader
from tandem.local import baseline
from tandem.local.figures_service import LocalMetrics
from tandem.metrics import reporter
from tandem.metrics.reporter import NullReporter, metrics_enabled
from tandem.metrics.shipper import host_port, reachable
from tests.conftest import REPO


def test_reporter_is_a_no_op_outside_tandem():
    for env in ({}, {"TANDEM_JOB": "j"}, {"TANDEM_METRICS": "1", "TANDEM_JOB": "j"},
                {"TANDEM_METRICS": "0", "TANDEM_JOB": "j", "TANDEM_METRICS_ADDRESS": "127.0.0.1:1"}):
        r = reporter(env)
        assert isinstance(r, NullReporter) and not metrics_enabled(env)
        r.step(samples=64)
        r.close()


def test_addresses():
    assert host_port("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert host_port("ray://head.tandem:10001") == ("head.tandem", 10001)
    assert not reachable("nonsense")
    assert not reachable(f"127.0.0.1:{free_port()}")


def test_unreachable_gateway_says_so_once_and_training_goes_on(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from tandem import metrics
        r = metrics.reporter()
        assert r.enabled
        for _ in range(300):
            time.sleep(0.005)
            r.step(samples=64)
        print("trained", flush=True)
    """)
    env = {"PATH": "/usr/bin:/bin", "TANDEM_METRICS": "1", "TANDEM_JOB": "j", "TANDEM_WORKER_INDEX": "1",
           "TANDEM_METRICS_ADDRESS": f"http://127.0.0.1:{free_port()}", "TANDEM_METRICS_CONNECT_TIMEOUT": "0.5",
           "TANDEM_METRICS_TOKEN": "uid.0123",
           "TANDEM_RUN_DIR": str(tmp_path), "PYTHONPATH": str(REPO / "operator")}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "trained" in done.stdout
    assert done.stderr.count("figures delayed") == 1, done.stderr  # said once; the shipper keeps trying
    assert "training goes on" in done.stderr
    assert "worker 1" in done.stderr and "unreachable" in done.stderr


def test_reading_an_unreachable_gateway_is_unavailable():
    status = reader.read(f"http://127.0.0.1:{free_port()}", "reader", "default", "j", "uid", 2, None, 0.8).metrics
    assert status.available is False and status.updated_at and "unreachable" in status.reason
    assert reader.read("", "reader", "default", "j", "uid", 2, None, 0.8).metrics.available is False


def test_from_snapshot_builds_the_status():
    snap = {"records": {"0/0": [[i * 0.1, 64, 0.1, 0.09] for i in range(1, 60)],
                        "1/0": [[i * 0.1, 64, 0.1, 0.02] for i in range(1, 60)]},
            "totals": {"0/0": 59, "1/0": 59}}
    status = reader.from_snapshot(snap, workers=2, baseline=640.0, straggler_threshold=0.8)
    assert round(status.throughput) == 1280 and round(status.scaling_efficiency, 3) == 1.0
    assert status.straggler == 0
    assert [w.steps for w in status.per_worker] == [59, 59]


def test_baseline_is_recorded_and_preferred_after_the_spec(tmp_path):
    assert baseline.choose(None, tmp_path, "j") == (None, "")
    baseline.record(tmp_path, "j", 812.5, command=["python", "x.py"])
    value, source = baseline.choose(None, tmp_path, "j")
    assert value == 812.5 and "one-worker run" in source
    assert baseline.choose(100.0, tmp_path, "j") == (100.0, "spec.metrics.baselineThroughput")
    assert json.loads(baseline.path(tmp_path, "j").read_text())["command"] == ["python", "x.py"]


def test_status_line_reads_the_latest_figures():
    m = LocalMetrics("default", "j", 2, 500.0, 0.8)
    # The workers get the gateway's loopback URL and their job's write token: nothing of Ray's.
    assert m.address.startswith("http://127.0.0.1:") and list(m.worker_env) == ["TANDEM_METRICS_TOKEN"]
    assert "starting Ray" in m.status_line()
    snap = {"records": {"0/0": [[i * 0.1, 64, 0.1, 0.09] for i in range(1, 60)],
                        "1/0": [[i * 0.1, 64, 0.1, 0.02] for i in range(1, 60)]}}
    m.latest = reader.from_snapshot(snap, 2, 500.0, 0.8)
    line = m.status_line()
    assert "1,280.0 samples/s" in line and "efficiency 128%" in line and "straggler: worker 0" in line


def test_spooled_records_join_the_final_figures(tmp_path, monkeypatch):
    from tandem.local.figures_service import merge_spool
    from tandem.metrics.shipper import spool

    monkeypatch.setenv("TANDEM_RUN_DIR", str(tmp_path))
    spool([[i * 0.1, 64, 0.1, None] for i in range(1, 11)], worker=1, rank=0)
    # The rank's info (progress, GPU use) is spooled with its records: a run shorter than Ray's start
    # still shows them (the latest spooled wins; the collector's own info is never overwritten).
    spool([[i * 0.1, 64, 0.1, None] for i in range(11, 21)], worker=1, rank=0,
          info={"stepsDone": 21, "stepsTotal": 21, "gpus": 1, "gpuUtil": 42.0})
    snapshot = {"records": {"0/0": [[i * 0.1, 64, 0.1, None] for i in range(1, 21)]}, "totals": {"0/0": 20},
                "info": {"0/0": {"stepsDone": 20}}}
    merge_spool(snapshot, tmp_path / "metrics")
    assert snapshot["totals"] == {"0/0": 20, "1/0": 20}
    assert snapshot["info"] == {"0/0": {"stepsDone": 20},
                                "1/0": {"stepsDone": 21, "stepsTotal": 21, "gpus": 1, "gpuUtil": 42.0}}
    status = reader.from_snapshot(snapshot, workers=2, baseline=None, straggler_threshold=0.8)
    assert [w.index for w in status.per_worker] == [0, 1] and round(status.throughput) == 1280
    assert (status.per_worker[1].gpus, status.per_worker[1].gpu_utilization) == (1, 42.0)


def test_reporter_records_steps_with_the_wait_split():
    from tandem.metrics.reporter import Reporter

    rep = Reporter.__new__(Reporter)  # no thread, no shipper: just the step bookkeeping
    import collections

    rep._buffer, rep._previous, rep._broken, rep._done = collections.deque(), None, False, 0
    rep.step(64)
    rep.step(64, wait=0.0)
    rep.step(64, wait=10.0)
    assert len(rep._buffer) == 2  # the first step has no duration
    assert rep._done == 3  # ...but it is counted: status.progress's stepsDone
    first, second = rep._buffer
    assert first.samples == 64 and first.busy == first.seconds and second.busy == 0.0
