"""Where the dashboard's jobs come from: the runs directory of `tandem run`, and the cluster of the
user's kubeconfig, read with the user's own credentials.

Every read here is a file or an API read, each bounded: a log tail is the end of a file, the
latest figures the last line of a history, an API call has a timeout. The cluster is asked for
the TrainingJobs of every namespace first and, where the user may not list those (403), of the
kubeconfig context's namespace: what `kubectl get tj` would show this user, nothing more.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..api.status import MetricsStatus
from ..contract import API_GROUP, COMPLETION_INDEX, JOB_NAME_LABEL, PLURAL, VERSION
from ..errors import Forbidden, TandemError
from ..local import record
from ..local.logs import latest_attempt_of, run_dir_is_active, worker_logs
from .rows import JobDocument, JobRef
from .series import parse_history

if TYPE_CHECKING:
    from ..kube.client import Client

#: A run directory's name: the time it started (local/executor.py `new_run_dir`).
RUN_NAME = re.compile(r"^\d{8}-\d{6}-\d{6}$")
#: A `tandem bench` sweep's figures beside its plot (local/sweep.py): `<runs dir>/<job>/bench-<stamp>.json`.
SWEEP_NAME = re.compile(r"^bench-(\d{8}-\d{6})\.json$")
#: The figures history of a run (written by its figures service).
HISTORY = "metrics.jsonl"
#: Bytes read from a file's end for its last line or its tail.
TAIL_BYTES = 64 * 1024
#: Lines of each worker's log the job page shows.
LOG_LINES = 40
#: Seconds an API call may take before the page says the cluster did not answer.
API_TIMEOUT = 10


def tail(path: Path, lines: int, limit: int = TAIL_BYTES) -> list[str]:
    """The last `lines` lines of a file, reading at most its last `limit` bytes."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    if size > limit and text:
        text = text[1:]  # the first line read is most likely cut
    return text[-lines:]


def plain_name(job: str) -> bool:
    """A job's folder name from a URL that stays inside the runs directory: no `/`, not `.` or `..`."""
    return bool(job) and "/" not in job and job not in (".", "..")


def latest_figures(run_dir: Path) -> Optional[MetricsStatus]:
    """The last figures a run's history holds, or None."""
    samples = parse_history(tail(run_dir / HISTORY, 3))
    return samples[-1] if samples else None


class LocalRuns:
    """Runs of `tandem run` under one runs directory (`--runs-dir`, default .tandem/runs)."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir

    def run_dirs(self) -> list[tuple[str, Path]]:
        """(job, run directory) of every run, by job and then oldest first."""
        if not self.runs_dir.is_dir():
            return []
        found = []
        for job_dir in sorted(p for p in self.runs_dir.iterdir() if p.is_dir()):
            found += [(job_dir.name, run) for run in sorted(job_dir.iterdir()) if RUN_NAME.match(run.name)]
        return found

    def read(self, job: str, run_dir: Path) -> JobDocument:
        document = record.read(run_dir) or self._without_record(job, run_dir)
        namespace = str((document.get("metadata") or {}).get("namespace") or "default")
        alive = run_dir_is_active(run_dir)
        return JobDocument(JobRef("local", namespace, job, run_dir.name), document, alive,
                           latest_figures(run_dir) if alive else None)

    @staticmethod
    def _without_record(job: str, run_dir: Path) -> dict[str, Any]:
        """A run from before records: its name and start (its directory's name) only; Running,
        which the page shows as Stopped once no `tandem run` writes it."""
        day, clock, _ = run_dir.name.split("-")
        started = f"{day[:4]}-{day[4:6]}-{day[6:]}T{clock[:2]}:{clock[2:4]}:{clock[4:]}Z"
        return {"metadata": {"name": job, "creationTimestamp": started}, "spec": {},
                "status": {"phase": "Running", "startTime": started}}

    def jobs(self) -> list[JobDocument]:
        return [self.read(job, run_dir) for job, run_dir in self.run_dirs()]

    def find(self, job: str, run: str) -> Optional[tuple[JobDocument, Path]]:
        """The run `<runs dir>/<job>/<run>`, and never a directory outside the runs directory (a job
        name with a `/`, `.` or `..`, or a run name that is not a run's timestamp)."""
        if not plain_name(job) or not RUN_NAME.match(run):
            return None
        run_dir = self.runs_dir / job / run
        if not run_dir.is_dir() or run_dir.resolve().parent.parent != self.runs_dir.resolve():
            return None
        return self.read(job, run_dir), run_dir

    def sweeps(self) -> list[Sweep]:
        """Every `tandem bench` sweep kept under the runs directory, by job, oldest first."""
        if not self.runs_dir.is_dir():
            return []
        found = []
        for job_dir in sorted(p for p in self.runs_dir.iterdir() if p.is_dir()):
            for path in sorted(job_dir.glob("bench-*.json")):
                match = SWEEP_NAME.match(path.name)
                sweep = read_sweep(job_dir.name, match.group(1), path) if match else None
                if sweep is not None:
                    found.append(sweep)
        return found

    def find_sweep(self, job: str, stamp: str) -> Optional[Sweep]:
        """The sweep `<runs dir>/<job>/bench-<stamp>.json`, never a file outside the runs directory."""
        if not plain_name(job) or not SWEEP_NAME.match(f"bench-{stamp}.json"):
            return None
        return read_sweep(job, stamp, self.runs_dir / job / f"bench-{stamp}.json")

    def history(self, run_dir: Path) -> list[MetricsStatus]:
        try:
            with (run_dir / HISTORY).open(encoding="utf-8") as handle:
                return parse_history(handle)
        except OSError:
            return []

    def log_tails(self, run_dir: Path) -> dict[int, list[str]]:
        """Each worker's last lines in the run's newest attempt."""
        attempt = latest_attempt_of(run_dir)
        if attempt is None:
            return {}
        return {index: tail(path, LOG_LINES) for index, path in worker_logs(attempt)}


@dataclass(frozen=True)
class Sweep:
    """A `tandem bench` sweep as it kept itself: its figures (local/sweep.py's JSON) and its plot."""

    job: str
    stamp: str
    data: dict[str, Any]
    plot: Optional[Path]


def read_sweep(job: str, stamp: str, path: Path) -> Optional[Sweep]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        return None
    plot = path.with_suffix(".png")
    return Sweep(job, stamp, data, plot if plot.is_file() else None)


@dataclass
class ClusterView:
    """What the cluster answered: the jobs, the scope they were listed in, or why there are none."""

    jobs: list[JobDocument] = field(default_factory=list)
    scope: str = ""
    error: str = ""


class ClusterJobs:
    """TrainingJobs of the kubeconfig's cluster, read as its user. None of this writes anything."""

    def __init__(self, client: Client, only_namespace: Optional[str] = None):
        """`only_namespace`: list that namespace's jobs only, not every one the user may list."""
        self.client = client
        self.only_namespace = only_namespace

    def _list(self) -> tuple[list[dict[str, Any]], str]:
        custom = self.client.custom
        if not self.only_namespace:
            try:
                result = self.client._call("TrainingJobs", custom.list_cluster_custom_object, API_GROUP, VERSION,
                                           PLURAL, _request_timeout=API_TIMEOUT)
                return result.get("items", []), "all namespaces"
            except Forbidden:
                pass  # this user may list its own namespace only
        namespace = self.only_namespace or self.client.namespace
        result = self.client._call("TrainingJobs", custom.list_namespaced_custom_object, API_GROUP, VERSION,
                                   namespace, PLURAL, _request_timeout=API_TIMEOUT)
        return result.get("items", []), f"namespace {namespace}"

    def view(self) -> ClusterView:
        try:
            items, scope = self._list()
        except TandemError as error:
            return ClusterView(error=str(error))
        jobs = []
        for item in items:
            metadata = item.get("metadata") or {}
            ref = JobRef("cluster", str(metadata.get("namespace", "")), str(metadata.get("name", "")))
            jobs.append(JobDocument(ref, item))
        return ClusterView(jobs, scope)

    def find(self, namespace: str, name: str) -> Optional[JobDocument]:
        try:
            item = self.client._call(f"TrainingJob {namespace}/{name}", self.client.custom.get_namespaced_custom_object,
                                     API_GROUP, VERSION, namespace, PLURAL, name, _request_timeout=API_TIMEOUT)
        except TandemError:
            return None
        return JobDocument(JobRef("cluster", namespace, name), item)

    def log_tails(self, namespace: str, name: str) -> dict[int, list[str]]:
        """Each worker pod's last lines (container `worker`), as `kubectl logs --tail` gives them."""
        core = self.client.core
        try:
            pods = self.client._call("pods", core.list_namespaced_pod, namespace,
                                     label_selector=f"{JOB_NAME_LABEL}={name}", _request_timeout=API_TIMEOUT).items
        except TandemError as error:
            return {-1: [f"(logs unavailable: {error})"]}
        tails = {}
        for pod in pods:
            index = int((pod.metadata.labels or {}).get(COMPLETION_INDEX, "0"))
            try:
                text = self.client._call(f"pod {pod.metadata.name}", core.read_namespaced_pod_log, pod.metadata.name,
                                         namespace, container="worker", tail_lines=LOG_LINES,
                                         _request_timeout=API_TIMEOUT)
                tails[index] = str(text).splitlines()
            except TandemError as error:
                tails[index] = [f"(logs unavailable: {error})"]
        return dict(sorted(tails.items()))

