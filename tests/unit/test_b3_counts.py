"""B3's figures that load cannot bend: the API requests counted from an audit log, the CPU
seconds read from /proc (benchmarks/b3_controller.py)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from b3_controller import cpu_seconds, requests_by_agent


def event(audit_id: str, agent: str, received: str, stage: str = "ResponseComplete") -> str:
    return json.dumps({"auditID": audit_id, "userAgent": agent, "stage": stage, "requestReceivedTimestamp": received})


def test_requests_are_counted_once_each_by_user_agent_within_the_window(tmp_path):
    log = tmp_path / "audit.log"
    before = event("old", "kopf/1.37", "2026-12-07T00:00:00.000000Z")
    log.write_text(before + "\n")
    offset = log.stat().st_size
    lines = [
        event("w1", "kopf/1.37", "2026-12-07T00:00:10.500000Z", "ResponseStarted"),  # a watch: two lines, one request
        event("w1", "kopf/1.37", "2026-12-07T00:00:10.500000Z"),
        event("p1", "tandem-operator/0.1.0", "2026-12-07T00:00:11.000000Z"),
        event("b1", "tandem-b3-benchmark", "2026-12-07T00:00:12.000000Z"),
        event("late", "kopf/1.37", "2026-12-07T00:01:00.000000Z"),  # after the window
        "not json",
    ]
    log.write_text(before + "\n" + "\n".join(lines) + "\n")
    since = datetime(2026, 12, 7, 0, 0, 5, tzinfo=timezone.utc).timestamp()
    counted = requests_by_agent(SimpleNamespace(audit_log=log), offset, since, since + 30)
    assert counted == {"kopf/1.37": 1, "tandem-operator/0.1.0": 1, "tandem-b3-benchmark": 1}


def test_cpu_seconds_grow_with_work_and_a_gone_process_has_none():
    start = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) >= start + 0.2
    assert cpu_seconds(2**22 + 1) != cpu_seconds(2**22 + 1)  # nan: no such process
