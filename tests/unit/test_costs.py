"""B3's figures that load cannot bend: the API requests counted from an audit log, the CPU
seconds read from /proc (benchmarks/costs.py)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

from benchmarks.costs import (
    WAITING_BUCKET,
    cpu_seconds,
    profile_summary,
    requests_by_agent,
    requests_by_kind,
    requests_in_window,
)


def event(audit_id: str, agent: str, received: str, stage: str = "ResponseComplete", verb: str = "get",
          resource: str = "pods", subresource: str = "") -> str:
    ref = {"resource": resource, **({"subresource": subresource} if subresource else {})}
    return json.dumps({"auditID": audit_id, "userAgent": agent, "stage": stage, "requestReceivedTimestamp": received,
                       "verb": verb, "objectRef": ref})


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
    counted = requests_by_agent(requests_in_window(log, offset, since, since + 30))
    assert counted == {"kopf/1.37": 1, "tandem-operator/0.1.0": 1, "tandem-b3-benchmark": 1}


def test_a_systems_requests_are_broken_down_by_verb_and_resource(tmp_path):
    log = tmp_path / "audit.log"
    lines = [
        event("s1", "tandem-operator/0.1", "2026-12-07T00:00:01Z", verb="patch", resource="trainingjobs",
              subresource="status"),
        event("s2", "tandem-operator/0.1", "2026-12-07T00:00:02Z", verb="patch", resource="trainingjobs",
              subresource="status"),
        event("c1", "tandem-operator/0.1", "2026-12-07T00:00:03Z", verb="create", resource="jobs"),
        event("w1", "kopf/1.45", "2026-12-07T00:00:04Z", "ResponseStarted", verb="watch", resource="pods"),
        event("w1", "kopf/1.45", "2026-12-07T00:00:04Z", verb="watch", resource="pods"),
        event("k1", "training-operator/v1.9", "2026-12-07T00:00:05Z", verb="create", resource="pods"),
    ]
    log.write_text("\n".join(lines) + "\n")
    since = datetime(2026, 12, 7, tzinfo=timezone.utc).timestamp()
    kinds = requests_by_kind(requests_in_window(log, 0, since, since + 60), ("kopf/", "tandem-operator"))
    assert kinds == {"patch trainingjobs/status": 2, "create jobs": 1, "watch pods": 1}


def test_cpu_seconds_grow_with_work_and_a_gone_process_has_none():
    start = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) >= start + 0.2
    assert cpu_seconds(2**22 + 1) != cpu_seconds(2**22 + 1)  # nan: no such process


def test_a_profile_is_attributed_by_package_on_its_own_and_anywhere_in_the_stack(tmp_path):
    folded = tmp_path / "tandem-100.txt"
    folded.write_text(
        "MainThread (1);run (kopf/_core/reactor/running.py:10);reconcile (tandem/controller/reconcile.py:5);"
        "dumps (json/__init__.py:231) 3\n"
        "MainThread (1);run (kopf/_core/reactor/running.py:10) 1\n"
        "worker (2);call_api (kubernetes/client/api_client.py:348);urlopen (urllib3/connectionpool.py:715) 4\n"
        "worker (3);call_api (kubernetes/client/api_client.py:348);read (ssl.py:1100);SSLSocket.read (ssl.py:1167) 2\n")
    total, rows = profile_summary(folded)
    shares = {name: (own, anywhere) for name, own, anywhere in rows}
    assert total == 10
    assert shares["json"] == (3 / 10, 3 / 10) and shares["tandem"] == (0, 3 / 10) and shares["kopf"] == (1 / 10, 4 / 10)
    assert shares["urllib3"] == (4 / 10, 4 / 10) and shares["kubernetes client"] == (0, 6 / 10)
    assert shares[WAITING_BUCKET] == (2 / 10, 0) and shares["ssl / http"] == (0, 2 / 10)  # a wait, not TLS work
