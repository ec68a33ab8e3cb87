"""How long `tandem dashboard`'s jobs page takes with N TrainingJobs on a real control plane.

Starts the test control plane (tests/controlplane/cluster.py), installs the CRD, creates N
TrainingJobs (the example's spec) and gives each a status as the operator writes one (phase,
figures for two workers, progress, a history of 40 points), then starts `tandem dashboard` with
the control plane's kubeconfig, exactly as a user would, and times its pages over HTTP: the
whole jobs page (what a browser or curl loads first) and the rows fragment its script fetches
every 3 seconds, each `--repeats` times. No operator runs: the status is written once and holds
still, so every request reads the same objects.

    python benchmarks/dashboard_load.py --jobs 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, loadavg

sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
from tandem.api.status import MetricsStatus, WorkerMetrics, rfc3339
from tandem.contract import API_GROUP, PLURAL, VERSION
from tandem.figures.history import recorded
from tests.controlplane.cluster import ControlPlane
from tests.support.browser import Dashboard

NAMESPACE = "default"


def status_of(index: int, now: datetime) -> dict:
    """A Running job's status as the operator writes it, with 40 history points."""
    history = None
    for step in range(40):
        figures = MetricsStatus(throughput=200.0 + step, scaling_efficiency=0.9, per_worker=[
            WorkerMetrics(index=w, throughput=100.0 + step / 2, steps=step * 10, steps_done=step * 10,
                          steps_total=1000, step_rate=10.0) for w in (0, 1)])
        history = recorded(history, figures, now - timedelta(seconds=15 * (40 - step))) or history
    metrics = figures.model_dump(by_alias=True, exclude_none=True, mode="json")
    return {"phase": "Running", "startTime": rfc3339(now - timedelta(minutes=10)), "desiredWorkers": 2,
            "currentWorkers": 2, "metrics": {**metrics, "available": True, "updatedAt": rfc3339(now)},
            "metricsHistory": history.model_dump(by_alias=True, exclude_none=True, mode="json") if history else None,
            "progress": {"stepsDone": 390, "stepsTotal": 1000, "percent": 39.0, "eta": 61}}


def create_jobs(cp: ControlPlane, count: int) -> None:
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=cp.kubeconfig))
    spec = json.loads(json.dumps(__import__("yaml").safe_load((REPO / "jobs" / "mnist-ddp.yaml").read_text())))
    now = datetime.now(timezone.utc)

    def one(index: int) -> None:
        body = {**spec, "metadata": {"name": f"job-{index:05d}", "namespace": NAMESPACE}}
        api.create_namespaced_custom_object(API_GROUP, VERSION, NAMESPACE, PLURAL, body)
        api.patch_namespaced_custom_object_status(API_GROUP, VERSION, NAMESPACE, PLURAL, body["metadata"]["name"],
                                                  {"status": status_of(index, now)})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def timed(url: str, repeats: int) -> tuple[list[float], int]:
    seconds, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as response:
            size = len(response.read())
        seconds.append(time.perf_counter() - start)
    return seconds, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load before: {loadavg()}", flush=True)
    cp = ControlPlane().start()
    try:
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "manifests" / "crd.yaml"))
        cp.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.tandem.dev", "--timeout=60s")
        started = time.monotonic()
        create_jobs(cp, args.jobs)
        print(f"{args.jobs} TrainingJobs with status created in {time.monotonic() - started:.1f} s", flush=True)
        with Dashboard("--kubeconfig", cp.kubeconfig, "--runs-dir", "/nonexistent") as board:
            for path in ("", "rows"):
                seconds, size = timed(board.url + path, args.repeats)
                print(f"GET /{path}: median {statistics.median(seconds) * 1000:.0f} ms "
                      f"(min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f}) over {args.repeats}, "
                      f"{size / 1024:.0f} KiB", flush=True)
            seconds, size = timed(board.url + "jobs/cluster/default/job-00000", args.repeats)
            print(f"GET a job's page: median {statistics.median(seconds) * 1000:.0f} ms, {size / 1024:.0f} KiB")
        print(f"load after: {loadavg()}")
    finally:
        cp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
