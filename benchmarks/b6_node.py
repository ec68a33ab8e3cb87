"""B6 on real pods: goodput under an injected failure, per rung of the recovery ladder, on the e2e
tier's cluster (a real control plane, a real kubelet with containerd and runc, the chart installed
with helm, the images built from images/).

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b6_node.py [--steps 3000] [--checkpoint-every 100]
        [--fail-at 1550] [--repeats 3] [--scenarios none,group,in-place,pod-deleted] [--no-append]

Needs root (containerd, CNI, iptables) and Go, as the e2e tier. jobs/mnist-ddp.yaml as the e2e
tests run it (2 workers on the real node, 700m CPU and 2 GiB each, a claim shared by the workers
for checkpoints, figures on: the operator counts in-place restarts from them), a line every
step, a checkpoint every --checkpoint-every steps. Each scenario runs in a namespace of its own:

- **none**: no failure; the reference for goodput.
- **group**: rank 1 exits 137 (as if SIGKILLed) before step --fail-at+1, runPolicy.inPlaceRestarts
  0: the operator restarts the whole group (the Job and its pods deleted and made again).
- **in-place**: the same failure with runPolicy.inPlaceRestarts 1: torchrun's agents restart the
  training processes inside the same pods.
- **pod-deleted**: worker 1's pod deleted (`kubectl delete pod`, the kubelet's SIGTERM with the
  grace period) once rank 0 logged step --fail-at, with inPlaceRestarts 1: what a preemption or a
  drain does. The preemption hook saves a checkpoint at the signal; how the group comes back is
  whatever the operator does for a lost pod (the status's recovery record says which).

Step times come from the container runtime's own stamps (`kubectl logs --timestamps`, taken when
the line was written), followed from the moment each pod runs, so that the logs of pods a group
restart deletes are kept. The figures are benchmarks/goodput.py's, as the local B6. The wall time
of a scenario is from `kubectl apply` to status Succeeded. CPU seconds are not reported here: the
pods' processes are not this script's children (the local B6 reports them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from b6_goodput import HEADERS, Outcome, arguments, plot, rows, summary, verdicts
from common import BENCH, append_results, loadavg, table
from goodput import crash_time, figures, lives, runtime_stamped

SCENARIOS = ("none", "group", "in-place", "pod-deleted")
WORKER = "app.kubernetes.io/component=worker"
TIMEOUT = 900


class LogFollower:
    """Follows every worker pod of one job from the moment its container starts, into one file
    per pod, each line as ``@@T <epoch seconds> <line>`` (goodput.py's form)."""

    def __init__(self, cp: Any, ns: str, job: str, directory: Path):
        self.cp, self.ns, self.job, self.directory = cp, ns, job, directory
        self.followed: dict[str, subprocess.Popen[str]] = {}
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.poller = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> LogFollower:
        self.poller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.finish(0)

    def finish(self, timeout: float) -> None:
        """Stop looking for pods; give each stream `timeout` seconds to end by itself (a container
        that ended closes its log), then end the rest."""
        self.stop.set()
        self.poller.join()
        deadline = time.monotonic() + timeout
        for proc in self.followed.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
        for thread in self.threads:
            thread.join(timeout=10)

    def lines(self) -> list[str]:
        return [line for log in sorted(self.directory.glob("*.log")) for line in log.read_text().splitlines()]

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            pods = _pods(self.cp, self.ns, self.job)
            for pod in pods:
                name = pod["metadata"]["name"]
                statuses = pod.get("status", {}).get("containerStatuses") or [{}]
                started = "running" in statuses[0].get("state", {}) or "terminated" in statuses[0].get("state", {})
                if started and name not in self.followed:
                    self._follow(name)

    def _follow(self, pod: str) -> None:
        argv = ["logs", "-f", "--timestamps", pod, "-n", self.ns]
        proc = subprocess.Popen([self.cp._kubectl_bin(), "--kubeconfig", self.cp.kubeconfig, *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.followed[pod] = proc
        out = self.directory / f"{pod}.log"

        def copy() -> None:
            assert proc.stdout is not None
            with out.open("w") as f:
                for line in proc.stdout:
                    f.write(runtime_stamped(line.rstrip("\n")) + "\n")
        thread = threading.Thread(target=copy, daemon=True)
        thread.start()
        self.threads.append(thread)


def _pods(cp: Any, ns: str, job: str) -> list[dict[str, Any]]:
    result = cp.kubectl("get", "pods", "-n", ns, "-l", f"tandem.dev/job-name={job},{WORKER}", "-o", "json",
                        check=False)
    return json.loads(result.stdout)["items"] if result.returncode == 0 else []


def job_document(chart: Any, scenario: str, name: str, claim: str, args: argparse.Namespace) -> dict[str, Any]:
    train = ["--steps", str(args.steps), "--log-every", "1", "--checkpoint-every", str(args.checkpoint_every),
             "--checkpoint-dir", "/shared/ckpt", "--output-dir", "/shared/out"]
    if scenario in ("group", "in-place"):
        train += ["--crash-at-step", str(args.fail_at), "--crash-rank", "1", "--crash-exit-code", "137"]
    job: dict[str, Any] = chart.with_volume(chart.example("mnist-ddp.yaml", name, train), claim)
    # Figures on: on a cluster the operator learns of in-place restarts through the figures
    # gateway (the chart's Ray head runs anyway), so status can say how each failure was recovered.
    job["spec"]["metrics"] = {"enabled": True}
    job["spec"]["runPolicy"] = {"backoffLimit": 1, "inPlaceRestarts": 0 if scenario in ("none", "group") else 1}
    return job


def logged_step(follower: LogFollower) -> int:
    found = lives(follower.lines())
    return max((life.reached for life in found), default=0)


def run_scenario(chart: Any, cluster: tuple[Any, Any], scenario: str, args: argparse.Namespace) -> Outcome:
    cp, _ = cluster
    ns = f"b6-{scenario}-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", ns)
    cp.kubectl("label", "namespace", ns, chart.RESTRICTED)
    chart.wait_for("the namespace's default SA",
                   lambda: cp.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30)
    claims = chart.shared_claim(cluster, ns)
    claim, _ = next(claims)
    name = "b6"
    try:
        with tempfile.TemporaryDirectory(prefix="tandem-b6-node-") as tmp, \
                LogFollower(cp, ns, name, Path(tmp)) as follower:
            t0 = time.time()
            chart.apply(cp, ns, job_document(chart, scenario, name, claim, args))
            failed_at: Optional[float] = None
            if scenario == "pod-deleted":
                chart.wait_for(f"rank 0 at step {args.fail_at}", lambda: logged_step(follower) >= args.fail_at,
                               TIMEOUT, interval=0.2)
                pod = chart.worker_pod(cp, ns, name, 1)
                failed_at = time.time()
                cp.kubectl("delete", "pod", pod["metadata"]["name"], "-n", ns, "--wait=false")
            status = chart.run_to_end(cp, ns, name, timeout=TIMEOUT)
            wall = time.time() - t0
            follower.finish(30)
            lines = follower.lines()
    finally:
        for _ in claims:  # the generator's own cleanup
            pass
    if scenario in ("group", "in-place"):
        crash = crash_time(lines)
        if crash is None:
            raise RuntimeError(f"{scenario}: no injected crash in the logs")
        failed_at = crash[0]
    recovered = [(r.get("recovered", "?"), float(r.get("seconds") or 0.0)) for r in status.get("recoveries") or []]
    return Outcome(scenario, figures(lives(lines), wall, failed_at), None, int(status.get("restarts") or 0),
                   int(status.get("inPlaceRestarts") or 0), recovered)


class _Mktemp:
    """What installed_chart asks of pytest's tmp_path_factory."""

    def __init__(self, root: Path):
        self.root = root

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name, dir=self.root))


def cluster_with_chart(root: Path) -> Iterator[tuple[Any, tuple[Any, Any]]]:
    from tests.controlplane.node import real_cluster
    from tests.e2e import chart
    from tests.e2e.node_images import NodeImages

    with real_cluster(nodes=1, lock_timeout=1800) as cluster:
        # As the e2e tier: the images go into the node's containerd in the background, and the
        # chart's setup waits for them; the import is stopped before the node.
        imports = NodeImages(root / "node-images.log").start()
        try:
            installed = chart.installed_chart(cluster, imports, _Mktemp(root))
            next(installed)
            try:
                yield chart, cluster
            finally:
                for _ in installed:
                    pass
        finally:
            imports.stop()


def main() -> int:
    args, scenarios = arguments(__doc__, SCENARIOS, BENCH / "b6_node.png")
    load_before = loadavg()
    outcomes: dict[str, list[Outcome]] = {s: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="tandem-b6-node-") as root:
        for chart, cluster in cluster_with_chart(Path(root)):
            for repeat in range(args.repeats):
                for scenario in scenarios:
                    print(f"repeat {repeat + 1}/{args.repeats}: {scenario} (load {loadavg()})", file=sys.stderr,
                          flush=True)
                    outcome = run_scenario(chart, cluster, scenario, args)
                    outcomes[scenario].append(outcome)
                    print(f"  {outcome.figures}, restarts {outcome.restarts}, in place {outcome.in_place}, "
                          f"{outcome.recovered}", file=sys.stderr, flush=True)
    results = [summary(s, outcomes[s]) for s in scenarios]
    # A deleted pod is a preemption to the training (SIGTERM, then the grace period): verdicts()
    # judges its steps lost against one checkpoint interval.
    judged = verdicts([{**r, "scenario": "preemption" if r["scenario"] == "pod-deleted" else r["scenario"]}
                       for r in results], args.checkpoint_every)
    out = table(HEADERS, rows(results))
    print(out, *judged, sep="\n")
    config = {"job": "jobs/mnist-ddp.yaml", "where": "e2e real node", "workers": 2, "steps": args.steps,
              "fail_at": args.fail_at, "checkpoint_every": args.checkpoint_every, "repeats": args.repeats,
              "load_before": load_before, "load_after": loadavg()}
    args.output.with_suffix(".json").write_text(json.dumps(
        {"config": config, "results": results, "verdicts": judged}, indent=2) + "\n")
    plot(results, args.output, f"B6 goodput on real pods: 2 workers, failure at step {args.fail_at} of {args.steps}")
    if not args.no_append:
        body = "\n".join([
            f"`jobs/mnist-ddp.yaml` on the e2e tier's real node (2 workers, 700m CPU each, figures on), "
            f"{args.steps} steps, a checkpoint every {args.checkpoint_every}, the failure at step {args.fail_at}; "
            f"median of {args.repeats} interleaved repeats. Load average before {load_before}, after {loadavg()}. "
            f"Step times from the container runtime's log stamps. Plot `benchmarks/{args.output.name}`, figures "
            f"`benchmarks/{args.output.with_suffix('.json').name}`. CPU s: not measured on pods.", "",
            out, "", *[f"- {v}" for v in judged],
        ])
        append_results("B6 goodput (real node)", body, "benchmarks/b6_node.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
