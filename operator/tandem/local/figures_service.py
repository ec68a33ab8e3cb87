"""Metrics for `tandem run` on this machine: a private Ray, started off the critical path.

`LocalMetrics` (in the CLI) picks the ports, a gateway key and the job's write token up front,
so the workers can be given TANDEM_METRICS_ADDRESS (the gateway's URL) and TANDEM_METRICS_TOKEN
before anything listens, and starts a helper process, ``python -m tandem.local.figures_service``,
while the workers start. The helper

- serves the figures gateway (gateway/server.py) on 127.0.0.1 at once: the workers' shippers
  talk to it exactly as they do on a cluster, one protocol everywhere; it answers "not yet"
  until Ray is up, and the shippers keep their records meanwhile;
- starts a Ray head (`ray start --head --block`: no dashboard, no CPUs, a small object store,
  loopback only, token authentication with a token of its own, a temp dir of its own), every
  process of which carries TANDEM_RAY_SESSION=<run id> in its environment, and is its only
  driver (the workers never see Ray's address or token);
- creates the job's collector actor, then every `INTERVAL` seconds reads the figures, appends
  them to the run's metrics history (``<run dir>/metrics.jsonl``) and prints them as a JSON
  line, which the CLI shows in the live status line;
- when the CLI closes its stdin, reads the final figures, prints them, and stops *this* Ray:
  every process carrying its session id, nothing else, and removes the temp dir.

Should Ray die during the run, training goes on and the final figures say they are unavailable:
the records the collector held went with it, and those of the shippers it had not answered yet
(spooled) are only part of the run, which must not pass for the job's figures.

The training workers' shippers keep their records until the head is up, so training never
waits for Ray. The CLI does not import Ray at all.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .._sys import proctree
from .._sys.lifetime import become_subreaper, die_with_parent
from .._sys.netns import PrivateNetwork
from .._sys.ports import free_ports
from ..api.status import MetricsStatus, shown
from ..contract import ENV_METRICS_TOKEN, ENV_RAY_SESSION, RUN_ENV_PREFIXES
from ..figures.token import job_token

#: The helper's environment variable carrying the gateway key (hex); it removes it at start, so
#: that Ray's processes do not inherit it.
ENV_GATEWAY_KEY = "TANDEM_LOCAL_GATEWAY_KEY"

INTERVAL = 1.0
RAY_START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: Why the final figures are unavailable when the run's Ray ended before the run.
RAY_STOPPED = "Ray stopped during the run"
OBJECT_STORE_BYTES = 100_000_000
#: Ray and the shippers run niced: on a small machine, training gets the CPU first.
RAY_NICE = 10


# -- processes of one Ray session ------------------------------------------------------------
# The helper is a child subreaper, so every process of its Ray (raylet's agents and workers
# included, whoever their parent was) stays below it; stopping the session is stopping the
# helper's descendants. Ray renames its processes (setproctitle), which can clobber what
# /proc/<pid>/environ shows, so the session env var is only a second way to find them.
def descendants(pid: int) -> list[int]:
    return [p for p in proctree.descendants(pid) if proctree.alive(p)]


def session_processes(session: str) -> list[int]:
    """Live processes whose environment (as /proc shows it) names the session."""
    return proctree.live_with_env(ENV_RAY_SESSION, session)


def stop_processes(find: Callable[[], list[int]], grace: float = 3.0, timeout: float = 10.0) -> list[int]:
    """SIGTERM what `find()` lists, SIGKILL what is left after `grace` s, and keep looking until
    nothing has been listed for a moment (Ray's raylet starts its agents late); reaps zombies
    of ours on the way. Returns survivors (none, unless `timeout` passed)."""
    started = time.monotonic()
    quiet_since: Optional[float] = None
    while time.monotonic() - started < timeout:
        proctree.reap_children()
        pids = [p for p in find() if p != os.getpid()]
        if not pids:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:
                return []
            time.sleep(0.05)
            continue
        quiet_since = None
        sig = signal.SIGTERM if time.monotonic() - started < grace else signal.SIGKILL
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return [p for p in find() if p != os.getpid()]


def stop_session(session: str, grace: float = 3.0, timeout: float = 10.0) -> list[int]:
    """Stop every process that carries the session id in its environment."""
    return stop_processes(lambda: session_processes(session), grace, timeout)


def _ray_executable() -> list[str]:
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ray")
    return [found] if found else [sys.executable, "-m", "ray.scripts.scripts"]


def _helper_setup() -> None:
    """The helper outlives a SIGKILLed CLI just long enough: its stdin ends, it stops its Ray."""
    os.setpgid(0, 0)  # Ctrl-C on the terminal reaches the CLI, which stops the helper in order
    try:
        os.nice(RAY_NICE)
    except OSError:
        pass


# -- the CLI's side ---------------------------------------------------------------------------
class LocalMetrics:
    """The CLI's handle on the helper: address and env for the workers, live figures, final figures."""

    def __init__(self, namespace: str, job: str, workers: int, baseline: Optional[float],
                 straggler_threshold: float, session: Optional[str] = None):
        self.namespace, self.job, self.workers = namespace, job, workers
        self.baseline, self.threshold = baseline, straggler_threshold
        self.session = session or f"{job}-{secrets.token_hex(4)}"
        self.port, self.client_port, self.agent_port, self.gateway_port = free_ports(4)
        #: What the workers get as TANDEM_METRICS_ADDRESS: the gateway, on loopback.
        self.address = f"http://127.0.0.1:{self.gateway_port}"
        self.uid = secrets.token_hex(8)
        self.key = secrets.token_hex(32)
        # Short: Ray's unix socket paths below it must stay under ~107 characters.
        self.temp_dir = Path(tempfile.gettempdir()) / f"tandem-ray-{secrets.token_hex(4)}"
        # The workers hold this job's write token only; Ray's own token stays with the helper.
        self.worker_env = {ENV_METRICS_TOKEN: job_token(self.key.encode(), namespace, job, self.uid)}
        self._helper_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                            "RAY_USAGE_STATS_ENABLED": "0", ENV_GATEWAY_KEY: self.key}
        self.latest: Optional[MetricsStatus] = None
        self.final: Optional[MetricsStatus] = None
        self.state = "starting Ray"
        self.history: Optional[Path] = None
        self.pids_file: Optional[Path] = None
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._reader: Optional[threading.Thread] = None

    def start(self, run_dir: Path, network: Optional[PrivateNetwork] = None) -> None:
        """Start the helper (returns at once; Ray comes up in the background), inside the run's
        private network namespace when there is one: the workers' shippers reach Ray there."""
        run_dir.mkdir(parents=True, exist_ok=True)
        self.history = run_dir / "metrics.jsonl"
        self.pids_file = run_dir / "metrics" / "ray-session.pids"
        (run_dir / "metrics").mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "tandem.local.figures_service",
                "--session", self.session, "--port", str(self.port), "--client-port", str(self.client_port),
                "--agent-port", str(self.agent_port), "--gateway-port", str(self.gateway_port),
                "--namespace", self.namespace, "--job", self.job, "--uid", self.uid,
                "--workers", str(self.workers), "--threshold", str(self.threshold), "--history", str(self.history),
                "--pids-file", str(self.pids_file), "--temp-dir", str(self.temp_dir)]
        if self.baseline:
            argv += ["--baseline", str(self.baseline)]
        if network is not None:
            argv = network.wrap(argv)
        env = {k: v for k, v in os.environ.items() if not k.startswith(RUN_ENV_PREFIXES)}
        env.update(self._helper_env)
        env[ENV_RAY_SESSION] = self.session
        log = open(run_dir / "metrics" / "ray-session.log", "ab")
        try:
            self._process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=log, preexec_fn=_helper_setup)
        finally:
            log.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind in ("summary", "final"):
                status = MetricsStatus.model_validate(event["status"])
                self.latest = status
                if kind == "final":
                    self.final = status
            elif kind == "state":
                self.state = event.get("message", "")

    def status_line(self) -> str:
        """A few words for the live progress line; cheap (reads what the reader thread stored)."""
        status = self.latest
        if status is None:
            return f"metrics: {self.state}" if self.state else ""
        if not status.available:
            return "metrics unavailable"
        if status.throughput is None:
            return "metrics: waiting for the first steps"
        text = "  ".join(figure.phrase(value) for figure, value in shown(status, "live"))
        if status.straggler is not None:
            text += f"  straggler: worker {status.straggler}"
        return text

    def stop(self) -> MetricsStatus:
        """Final figures, then this Ray session stopped; never raises, returns within ~STOP_TIMEOUT."""
        process = self._process
        if process is not None:
            try:
                if process.stdin is not None:
                    process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if self._reader is not None:
                self._reader.join(2.0)
        # The helper stops its own Ray; should it have died first, stop what it last listed.
        listed = _read_pids(self.pids_file) if self.final is None else []
        stop_processes(lambda: [p for p in listed if proctree.alive(p)] + session_processes(self.session), grace=1.0)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        if self.final is None and self.history is not None:
            self.final = self._final_without_helper(self.history)
        return self.final or MetricsStatus(available=False, reason="the metrics process ended early")

    def _final_without_helper(self, history: Path) -> Optional[MetricsStatus]:
        """The final figures, written to the history, when the helper was stopped before it wrote
        them. If it was still connecting to a Ray that came up as the run ended, no shipper's
        records reached Ray and the spool holds them all: the figures come from it (None, and
        nothing written, when nothing was spooled). If the history has figures, the helper read
        them from Ray and then hung on a Ray that died: the spool holds only the shippers Ray never
        answered, so the figures are unavailable."""
        collected = has_figures(history)
        snapshot: dict[str, Any] = {}
        if not collected:
            merge_spool(snapshot, history.parent / "metrics")
            if not snapshot.get("records"):
                return None
        with SampleHistory(history, self.workers, self.baseline, self.threshold, INTERVAL) as samples:
            if collected:
                return samples.unavailable(RAY_STOPPED, final=True)
            return samples.sample(lambda _final: snapshot, ray_up=False, final=True)


# -- the helper process -----------------------------------------------------------------------
def _write_pids(path: Optional[Path], pids: list[int]) -> None:
    """Record each pid with its start time, so that a reader can tell it from a later process
    that was given the same pid."""
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    started = {p: proctree.start_time(p) for p in pids}
    tmp.write_text("".join(f"{p} {t}\n" for p, t in started.items() if t is not None))
    os.replace(tmp, path)


def _read_pids(path: Optional[Path]) -> list[int]:
    """The recorded pids that still name the process recorded: a stale file (the helper died, the
    pid was reused) must never lead to signalling an unrelated process."""
    try:
        lines = path.read_text().splitlines() if path else []
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            pid, started = int(fields[0]), int(fields[1])
            if proctree.start_time(pid) == started:
                found.append(pid)
    return found


def merge_spool(snapshot: dict[str, Any], directory: Path) -> None:
    """Add the records and info that shippers left in the run directory (their training ended before
    Ray was up; see shipper.spool) to a collector snapshot. A spooled info fills only a rank the
    collector has no info of: a shipper spools only when the gateway never took anything from it."""
    from ..figures import record
    from ..metrics.shipper import SPOOL_PREFIX

    records, totals = snapshot.setdefault("records", {}), snapshot.setdefault("totals", {})
    info = snapshot.setdefault("info", {})
    collected = set(info)
    for path in sorted(directory.glob(f"{SPOOL_PREFIX}*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                key = f"{int(entry['worker'])}/{int(entry['rank'])}"
                batch = [record.decode(raw) for raw in entry["records"]]
                steps = [record.decode(raw) for raw in records.get(key, [])]
            except (ValueError, KeyError, TypeError):
                continue
            records[key] = [record.encode(s) for s in sorted([*steps, *batch], key=lambda s: s.t)]
            totals[key] = int(totals.get(key, 0)) + len(batch)
            if isinstance(entry.get("info"), dict) and key not in collected:
                info[key] = entry["info"]  # the latest spooled; checked like every info by figures.snapshot


def _emit(event: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # the CLI has gone; the history file still gets everything


def _has_figures(line: str) -> bool:
    try:
        return json.loads(line).get("throughput") is not None
    except (ValueError, AttributeError):
        return False


def has_figures(history: Path) -> bool:
    """Whether a metrics history holds a sample with figures."""
    if not history.exists():
        return False
    with history.open(encoding="utf-8") as lines:
        return any(_has_figures(line) for line in lines)


def _dump(status: MetricsStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def start_ray(args: argparse.Namespace, temp_dir: str) -> subprocess.Popen[bytes]:
    argv = [*_ray_executable(), "start", "--head", "--block", "--port", str(args.port),
            "--node-ip-address", "127.0.0.1", "--num-cpus", "0", "--num-gpus", "0",
            "--include-dashboard", "false", "--disable-usage-stats", "--no-monitor",
            "--object-store-memory", str(OBJECT_STORE_BYTES),
            "--ray-client-server-port", str(args.client_port),
            "--dashboard-agent-listen-port", str(args.agent_port),
            "--temp-dir", temp_dir]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
                            preexec_fn=die_with_parent)


class RayStopped(Exception):
    """The run's Ray head ended before the run did: asking it for figures would only hang."""


class SampleHistory:
    """The run's metrics history (`<run dir>/metrics.jsonl`): a sample a second, the last marked final.

    The file exists from the helper's start, so a run always has one. The first sample with figures
    comes with the seconds before it (figures.history.backfill): whether Ray came up late or never
    (a run shorter than its start), the chart of the run starts with its first steps."""

    def __init__(self, path: Path, workers: int, baseline: Optional[float], threshold: float, interval: float):
        self.workers, self.baseline, self.threshold, self.interval = workers, baseline, threshold, interval
        #: Whether a sample with figures is in the file: the backfill comes once, before the first.
        self.figures_written = has_figures(path)
        self._file = path.open("a", encoding="utf-8")

    def __enter__(self) -> SampleHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def sample(self, snapshot_now: Callable[[bool], dict[str, Any]], ray_up: bool, final: bool = False) -> MetricsStatus:
        """Read the figures, append them (after the backfill, the first time there are any), and return them."""
        from ..figures import reader
        from ..figures.history import backfill

        try:
            snapshot = snapshot_now(final)
        except RayStopped:
            return self.unavailable(RAY_STOPPED, final)
        except Exception as error:  # noqa: BLE001 - the collector's failure is a figure of its own
            return self.unavailable(f"the metrics collector did not answer ({type(error).__name__})", final)
        if not ray_up and not snapshot.get("records"):
            return self.unavailable("Ray did not start", final)
        status = reader.from_snapshot(snapshot, self.workers, self.baseline, self.threshold)
        if status.throughput is not None and not self.figures_written:
            for earlier in backfill(snapshot, self.workers, self.baseline, self.threshold, self.interval):
                if earlier.updated_at != status.updated_at:
                    self._write(earlier, False)
            self.figures_written = True
        return self._write(status, final)

    def unavailable(self, reason: str, final: bool = False) -> MetricsStatus:
        """Append a sample that says why there are no figures now."""
        from ..figures import reader, summary

        return self._write(summary.unavailable(reason, reader.now_rfc3339()), final)

    def _write(self, status: MetricsStatus, final: bool) -> MetricsStatus:
        line = {**_dump(status), "final": True} if final else _dump(status)
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        return status


def helper_main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.local.figures_service")
    p.add_argument("--session", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-port", type=int, required=True)
    p.add_argument("--agent-port", type=int, required=True)
    p.add_argument("--gateway-port", type=int, required=True)
    p.add_argument("--namespace", default="default")
    p.add_argument("--job", required=True)
    p.add_argument("--uid", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--baseline", type=float, default=None)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--history", type=Path, required=True)
    p.add_argument("--interval", type=float, default=INTERVAL)
    p.add_argument("--pids-file", type=Path, default=None)
    p.add_argument("--temp-dir", default=None)
    args = p.parse_args(argv)
    become_subreaper()  # Ray's orphans stay below us
    if os.environ.get(ENV_RAY_SESSION) != args.session:
        os.environ[ENV_RAY_SESSION] = args.session  # the Ray processes inherit it: that is how they are found

    from ..gateway import server as gateway
    from ..metrics.shipper import reachable

    key = os.environ.pop(ENV_GATEWAY_KEY, "").encode()
    address = f"127.0.0.1:{args.port}"
    collectors = gateway.Collectors(address)
    job = (args.namespace, args.job, args.uid)
    # Serving before Ray is up: the shippers find the gateway at once and hold their records
    # while it answers "not yet".
    gateway.start(key, collectors, "127.0.0.1", args.gateway_port)

    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.buffer.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    temp_dir = args.temp_dir or tempfile.mkdtemp(prefix="tandem-ray-")
    os.makedirs(temp_dir, exist_ok=True)
    ray_up = False
    try:
        history = SampleHistory(args.history, args.workers, args.baseline, args.threshold, args.interval)
        ray_head = start_ray(args, temp_dir)
        deadline = time.monotonic() + RAY_START_TIMEOUT
        while not reachable(address, 0.5) and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.1)
        if done.is_set():
            pass  # the run is over: its shippers spooled every record; connecting now would only delay the end
        elif reachable(address, 0.5):
            if collectors.connect(timeout=30.0, give_up=done):
                collectors.ensure(job)
                ray_up = True
                _emit({"event": "state", "message": "waiting for the first steps"})
            else:
                _emit({"event": "state", "message": f"Ray did not start ({collectors.failure})"})
            _write_pids(args.pids_file, descendants(os.getpid()))
        else:
            _emit({"event": "state", "message": "Ray did not start"})

        def snapshot_now(final: bool) -> dict[str, Any]:
            """The collector's records (and, at the end, those the shippers spooled); raises when
            the collector does not answer."""
            if ray_up and ray_head.poll() is not None:
                raise RayStopped()  # its driver calls would block until Ray's own timeout ends this process
            snapshot: dict[str, Any] = (collectors.snapshot(job) or {}) if ray_up else {}
            if final:
                merge_spool(snapshot, args.history.parent / "metrics")
            return snapshot

        with history:
            while not done.wait(args.interval):
                status = history.sample(snapshot_now, ray_up)
                _write_pids(args.pids_file, descendants(os.getpid()))
                _emit({"event": "summary", "status": _dump(status)})
            status = history.sample(snapshot_now, ray_up, final=True)
        _emit({"event": "final", "status": _dump(status)})
    except BaseException:  # noqa: BLE001 - whatever ends the helper, its parent still gets a final status
        import traceback

        traceback.print_exc()
        _emit({"event": "final", "status": _dump(MetricsStatus(available=False, reason="the metrics process failed"))})
    finally:
        stop_processes(lambda: descendants(os.getpid()) + session_processes(args.session), grace=2.0)
        shutil.rmtree(temp_dir, ignore_errors=True)
    os._exit(0)  # not ray.shutdown(): the cluster is gone, and its atexit hooks would wait for it


if __name__ == "__main__":
    sys.exit(helper_main())
