"""B3: the operator at 1, 100 and 1000 jobs on the real control plane, beside Kubeflow's.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b3_controller.py [--scales 1,100,1000] [--no-kubeflow] [--no-append]

Starts the test control plane (tests/controlplane: Kubernetes v1.33.13 built from the upstream
modules, kwok nodes), adds kwok nodes with room for every pod, and then, for each scale and
each operator in turn (interleaved: tandem 1, kubeflow 1, tandem 100, ...), in a fresh
namespace and with a freshly started operator process:

1. a warm-up job is applied and its children awaited (the operator is up and has its watches;
   the warm-up also tells how many children of each kind a job gets);
2. N jobs are created from 8 client threads, each creation time recorded just before its request;
3. watches on the namespace record when each child (and each pod) is first seen;
4. per job: latency = children complete - its creation; "pods" = all its pods exist.
   jobs/s = N / (last job's children complete - first creation). Peak RSS: VmHWM of the operator
   process (/proc/<pid>/status) when the last job is done.

Tandem: `tandem operator run` (TrainingJob -> headless Service + Indexed Job; the Job's 2 pods
come from kube-controller-manager's job controller). Kubeflow: training-operator.v1 (v1.8.1,
built with `go install` from the Go module proxy, see --kubeflow-bin), --enable-scheme=pytorchjob,
PyTorchJob with Master 1 + Worker 1 (it creates the pods and Services itself). Its CRD comes
from the module source (manifests/base/crds). Its validating webhook is NOT registered (the
control plane cannot route to it); it runs out of cluster with its default flags otherwise
(one reconcile thread, as its manifests deploy it) unless --kubeflow-threads is given.

Pods never finish inside the measured window (kwok run-seconds 3600): the benchmark measures
creation, and completions would add status churn that differs between the operators.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, append_results, percentile, table

sys.path[:0] = [str(REPO), str(REPO / "operator")]
from tandem._sys.ports import free_port  # noqa: E402
from tests.controlplane.cluster import ControlPlane  # noqa: E402
from tests.support.processes import stop_group  # noqa: E402

KUBEFLOW_VERSION = "v1.8.1"
KUBEFLOW_MODULE = "github.com/kubeflow/training-operator"
RUN_SECONDS = "3600"
BENCH_NODES = 4
BENCH_NODE_PODS = "700"
TARGET_P99_FACTOR = 1.5
TARGET_RSS_MB = 300


def gopath() -> Path:
    try:
        return Path(subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True, timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return Path.home() / "go"


def kubeflow_build(bin_path: Optional[str]) -> tuple[Optional[Path], Optional[Path], str]:
    """(binary, crd dir, note): go install once (cached in GOPATH/bin); the error text if it fails."""
    gp = gopath()
    binary = Path(bin_path) if bin_path else gp / "bin" / "training-operator.v1"
    crds = gp / "pkg" / "mod" / f"{KUBEFLOW_MODULE}@{KUBEFLOW_VERSION}" / "manifests" / "base" / "crds"
    if binary.exists() and crds.exists():
        return binary, crds, f"{KUBEFLOW_MODULE}/cmd/training-operator.v1@{KUBEFLOW_VERSION}"
    if not shutil.which("go"):
        return None, None, "no Go toolchain"
    cmd = ["go", "install", f"{KUBEFLOW_MODULE}/cmd/training-operator.v1@{KUBEFLOW_VERSION}"]
    print("building the Kubeflow training operator: " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0 or not binary.exists():
        return None, None, f"`{' '.join(cmd)}` failed: {(out.stderr or out.stdout).strip()[-1500:]}"
    return binary, crds, f"{KUBEFLOW_MODULE}/cmd/training-operator.v1@{KUBEFLOW_VERSION}"


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def wait_crd(cp: ControlPlane, name: str, timeout: float = 90) -> None:
    """Until the CRD is Established (`kubectl wait` fails outright while it has no conditions yet)."""
    deadline = time.time() + timeout
    path = '{.status.conditions[?(@.type=="Established")].status}'
    while time.time() < deadline:
        out = cp.kubectl("get", f"crd/{name}", "-o", f"jsonpath={path}", check=False)
        if out.returncode == 0 and out.stdout.strip() == "True":
            return
        time.sleep(0.5)
    raise RuntimeError(f"CRD {name} not Established after {timeout:.0f}s")


# ---------------------------------------------------------------------------- the two systems


class System:
    name = ""
    group = version = plural = kind = ""
    children_kinds: tuple[str, ...] = ()

    def __init__(self, cp: ControlPlane, logdir: Path):
        self.cp, self.logdir = cp, logdir
        self.process: Optional[subprocess.Popen] = None

    def document(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.cp.kubeconfig}

    def start(self, label: str) -> None:
        log = (self.logdir / f"{self.name}-{label}.log").open("w")
        self.process = subprocess.Popen(self.argv(), env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)

    def stop(self) -> None:
        stop_group(self.process, grace=15)


class Tandem(System):
    name = "tandem"
    group, version, plural, kind = "tandem.dev", "v1alpha1", "trainingjobs", "TrainingJob"
    children_kinds = ("Service", "Job")

    def setup(self) -> None:
        self.cp.kubectl("apply", "--server-side", "-f", str(REPO / "manifests" / "crd.yaml"))
        wait_crd(self.cp, "trainingjobs.tandem.dev")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "tandem", "operator", "run", "--health-port", "0", "--metrics-port", "0",
                "--lease-namespace", "kube-system"]

    def env(self) -> dict[str, str]:
        return {**super().env(), "PYTHONPATH": str(REPO / "operator")}

    def document(self, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {
                "framework": "pytorch", "strategy": "ddp", "image": "tandem/pytorch-worker:0.1.0",
                "command": ["python", "jobs/train_ddp.py", "--epochs", "2"], "workers": 2, "procsPerWorker": 1,
                "resources": {"cpu": "1", "memory": "2Gi"}, "runPolicy": {"backoffLimit": 2},
                "podTemplate": {"annotations": {"tandem.dev/kwok-run-seconds": RUN_SECONDS}},
            },
        }


class Kubeflow(System):
    name = "kubeflow"
    group, version, plural, kind = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
    children_kinds = ("Service", "Pod")

    def __init__(self, cp: ControlPlane, logdir: Path, binary: Path, crds: Path, threads: Optional[int]):
        super().__init__(cp, logdir)
        self.binary, self.crds, self.threads = binary, crds, threads

    def setup(self) -> None:
        self.cp.kubectl("apply", "--server-side", "-f", str(self.crds / "kubeflow.org_pytorchjobs.yaml"))
        wait_crd(self.cp, "pytorchjobs.kubeflow.org")
        # What its manifests create: its namespace and the (empty) Secret its cert rotator fills.
        self.cp.kubectl("create", "namespace", "kubeflow", check=False)
        self.cp.kubectl("create", "secret", "generic", "training-operator-webhook-cert", "-n", "kubeflow", check=False)
        # Its cert rotator holds the controllers back until (a) a serving certificate is in
        # /tmp/k8s-webhook-server/serving-certs (in a cluster: the Secret, mounted by the kubelet)
        # and (b) it injected its CA into this ValidatingWebhookConfiguration. Out of cluster: a
        # self-signed pair written there, and the configuration with no webhooks, so the apiserver
        # never calls a webhook it could not reach.
        certs = Path("/tmp/k8s-webhook-server/serving-certs")
        certs.mkdir(parents=True, exist_ok=True)
        if not (certs / "tls.crt").exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", str(certs / "tls.key"), "-out", str(certs / "tls.crt"), "-days", "30",
                            "-subj", "/CN=training-operator.kubeflow.svc"], check=True, capture_output=True)
        vwc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": {"name": "validator.training-operator.kubeflow.org"}, "webhooks": []}
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(vwc))
        init = self.logdir / "initContainer.yaml"
        init.write_text(
            "- name: init-pytorch\n  image: {{.InitContainerImage}}\n"
            "  imagePullPolicy: IfNotPresent\n  resources:\n    limits:\n      cpu: 100m\n      memory: 20Mi\n"
            "    requests:\n      cpu: 50m\n      memory: 10Mi\n"
            "  command: ['sh', '-c', 'err=1;for i in $(seq {{.MaxTries}}); "
            "do if nslookup {{.MasterAddr}}; then err=0 && break; fi;"
            "echo waiting for master; sleep 2; done; exit $err']\n")
        self.init_template = init

    def argv(self) -> list[str]:
        argv = [str(self.binary), f"--kubeconfig={self.cp.kubeconfig}", "--enable-scheme=pytorchjob",
                "--metrics-bind-address=0", f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--webhook-server-port={free_port()}", f"--pytorch-init-container-template-file={self.init_template}",
                "--zap-log-level=info"]
        if self.threads:
            argv.append(f"--controller-threads={self.threads}")
        return argv

    def env(self) -> dict[str, str]:
        return {**super().env(), "MY_POD_NAMESPACE": "kubeflow"}

    def document(self, name: str) -> dict[str, Any]:
        def replica() -> dict[str, Any]:
            return {"replicas": 1, "restartPolicy": "OnFailure", "template": {
                "metadata": {"annotations": {"tandem.dev/kwok-run-seconds": RUN_SECONDS}},
                "spec": {"containers": [{
                    "name": "pytorch", "image": "tandem/pytorch-worker:0.1.0",
                    "command": ["python", "jobs/train_ddp.py", "--epochs", "2"],
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
                }]}}}
        return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": name},
                "spec": {"pytorchReplicaSpecs": {"Master": replica(), "Worker": replica()}}}


# ---------------------------------------------------------------------------- watching


@dataclass
class Seen:
    """First-seen times of children, by owner (kind, name)."""
    children: dict[str, dict[tuple[str, str], float]] = field(default_factory=lambda: defaultdict(dict))
    pods: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))  # owner-or-job -> pod -> t
    job_owner: dict[str, str] = field(default_factory=dict)  # batch Job name -> TrainingJob name
    lock: threading.Lock = field(default_factory=threading.Lock)


def watch(api_list, namespace: str, kind: str, owner_kind: str, seen: Seen, stop: threading.Event) -> None:
    from kubernetes import watch as kwatch
    rv = None
    while not stop.is_set():
        w = kwatch.Watch()
        try:
            kwargs = {"timeout_seconds": 5, "allow_watch_bookmarks": False}
            if rv:
                kwargs["resource_version"] = rv
            for event in w.stream(api_list, namespace, **kwargs):
                now = time.time()
                obj = event["object"]
                meta = obj.metadata
                rv = meta.resource_version
                owners = meta.owner_references or []
                with seen.lock:
                    for ref in owners:
                        if ref.kind == owner_kind:
                            seen.children[ref.name].setdefault((kind, meta.name), now)
                            if kind == "Pod":
                                seen.pods[ref.name].setdefault(meta.name, now)
                        elif kind == "Pod" and ref.kind == "Job":
                            seen.pods["job:" + ref.name].setdefault(meta.name, now)
                    if kind == "Job":
                        for ref in owners:
                            if ref.kind == owner_kind:
                                seen.job_owner[meta.name] = ref.name
                if stop.is_set():
                    break
        except Exception as error:  # noqa: BLE001 - expired resourceVersion etc.: relist
            if "410" in str(error):
                rv = None
            time.sleep(0.2)
        finally:
            w.stop()


@dataclass
class ScaleResult:
    system: str
    n: int
    done: int = 0
    latencies: list[float] = field(default_factory=list)
    pod_latencies: list[float] = field(default_factory=list)
    create_seconds: float = float("nan")
    jobs_per_s: float = float("nan")
    rss_mb: float = float("nan")
    rss_start_mb: float = float("nan")
    note: str = ""


def run_scale(system: System, n: int, timeout: float, py_spy: Optional[str] = None) -> ScaleResult:
    from kubernetes import client, config
    cp = system.cp
    api_client = config.new_client_from_config(cp.kubeconfig)
    api_client.configuration.connection_pool_maxsize = 16
    core, batch, custom = client.CoreV1Api(api_client), client.BatchV1Api(api_client), client.CustomObjectsApi(api_client)
    ns = f"b3-{system.name}-{n}"
    cp.kubectl("create", "namespace", ns)
    result = ScaleResult(system.name, n)
    seen = Seen()
    stop = threading.Event()
    watched = [(core.list_namespaced_service, "Service"), (core.list_namespaced_pod, "Pod")]
    if "Job" in system.children_kinds:
        watched.append((batch.list_namespaced_job, "Job"))
    threads = [threading.Thread(target=watch, args=(lister, ns, kind, system.kind, seen, stop), daemon=True)
               for lister, kind in watched]
    for t in threads:
        t.start()
    system.start(str(n))
    pid = system.process.pid  # type: ignore[union-attr]
    try:
        # warm-up: the operator is up and watching; how many children of each kind a job gets
        warm = "warmup"
        custom.create_namespaced_custom_object(system.group, system.version, ns, system.plural, system.document(warm))
        deadline = time.time() + 180
        expected: dict[str, int] = {}
        stable_since, last = None, None
        while time.time() < deadline:
            with seen.lock:
                kinds = defaultdict(int)
                for (kind, _), _t in seen.children.get(warm, {}).items():
                    kinds[kind] += 1
            if all(kinds.get(k) for k in system.children_kinds):
                if kinds != last:
                    stable_since, last = time.time(), dict(kinds)
                elif time.time() - stable_since > 3:
                    expected = last
                    break
            time.sleep(0.2)
        if not expected:
            result.note = f"warm-up job's children never appeared (saw {dict(last or {})}); see the operator log"
            return result
        expected_pods = 2
        result.rss_start_mb = vm_hwm_mb(pid)

        names = [f"job-{i:04d}" for i in range(n)]
        created: dict[str, float] = {}
        profiler = None
        if py_spy:
            result.profile_path = system.logdir / f"{system.name}-{n}.pyspy.txt"  # type: ignore[attr-defined]
            profiler = subprocess.Popen([py_spy, "record", "-p", str(pid), "-r", "50", "-f", "raw", "--nonblocking",
                                         "-o", str(result.profile_path)],  # type: ignore[attr-defined]
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def create(name: str) -> None:
            t = time.time()
            custom.create_namespaced_custom_object(system.group, system.version, ns, system.plural, system.document(name))
            created[name] = t

        t_start = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        result.create_seconds = time.time() - t_start

        def complete(name: str) -> Optional[float]:
            got = seen.children.get(name, {})
            counts = defaultdict(int)
            for (kind, _), _t in got.items():
                counts[kind] += 1
            if any(counts.get(k, 0) < c for k, c in expected.items()):
                return None
            return max(got.values())

        deadline = time.time() + timeout
        done_at: dict[str, float] = {}
        while time.time() < deadline and len(done_at) < n:
            with seen.lock:
                for name in names:
                    if name not in done_at:
                        t = complete(name)
                        if t is not None:
                            done_at[name] = t
            time.sleep(0.25)
        result.rss_mb = vm_hwm_mb(pid)
        if profiler:
            profiler.send_signal(signal.SIGINT)
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        # pods: let them catch up a little, for the pods column
        pod_deadline = time.time() + min(120.0, timeout)
        while time.time() < pod_deadline:
            with seen.lock:
                pods_done = sum(1 for nm in names if len(pods_of(system, seen, nm)) >= expected_pods)
            if pods_done >= n:
                break
            time.sleep(0.5)
        with seen.lock:
            for name in names:
                pods = pods_of(system, seen, name)
                if len(pods) >= expected_pods:
                    result.pod_latencies.append(max(pods.values()) - created[name])
        result.done = len(done_at)
        result.latencies = [done_at[nm] - created[nm] for nm in done_at]
        if done_at:
            result.jobs_per_s = len(done_at) / (max(done_at.values()) - t_start)
        if len(done_at) < n:
            result.note = f"only {len(done_at)}/{n} complete after {timeout:.0f}s"
        result.expected = expected  # type: ignore[attr-defined]
        return result
    finally:
        stop.set()
        system.stop()
        for t in threads:
            t.join(8)
        api_client.close()


def summarize_profile(path: Path, top: int = 15) -> str:
    """py-spy's collapsed stacks -> the functions with most samples, inclusive and on-CPU (leaf)."""
    inclusive: dict[str, int] = defaultdict(int)
    leaf: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        leaf[frames[-1]] += int(count)
    if not total:
        return "(no samples)"
    def rows(d: dict[str, int]) -> list[tuple[str, str]]:
        return [(f"{100 * c / total:.1f}%", f[:150]) for f, c in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return (f"{total} samples (50 Hz, on-CPU threads only)\n\ninclusive (frame anywhere on the stack):\n\n"
            + table(("samples", "function (file:line)"), rows(inclusive))
            + "\n\nself (leaf frame):\n\n" + table(("samples", "function (file:line)"), rows(leaf)))


def pods_of(system: System, seen: Seen, name: str) -> dict[str, float]:
    if system.kind == "PyTorchJob":
        return seen.pods.get(name, {})
    out: dict[str, float] = {}
    for job, owner in seen.job_owner.items():
        if owner == name:
            out.update(seen.pods.get("job:" + job, {}))
    return out


def delete_namespace(cp: ControlPlane, ns: str, wait: float) -> str:
    cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    deadline = time.time() + wait
    while time.time() < deadline:
        if cp.kubectl("get", "namespace", ns, check=False).returncode != 0:
            return "deleted"
        time.sleep(1)
    return f"still terminating after {wait:.0f}s"


def add_bench_nodes(cp: ControlPlane) -> None:
    resources = {"cpu": "1000", "memory": "4Ti", "pods": BENCH_NODE_PODS, "ephemeral-storage": "10Ti"}
    items = [{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"kwok-bench-{i}",
                     "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-bench-{i}", "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64"}},
        "spec": {}, "status": {"allocatable": resources, "capacity": resources},
    } for i in range(BENCH_NODES)]
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def plot(results: list[ScaleResult], path: Path) -> Optional[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"tandem": "-", "kubeflow": "--"}
    for r in results:
        if r.n < 100 or not r.latencies:
            continue
        xs = sorted(r.latencies)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.plot(xs, ys, styles.get(r.system, "-"), label=f"{r.system}, {r.n} jobs")
    ax.set_xlabel("seconds from create to all children created")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("B3: create -> children latency (CDF)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", default="1,100,1000")
    p.add_argument("--timeout", type=float, default=300.0, help="per scale, for the children to appear")
    p.add_argument("--no-kubeflow", action="store_true")
    p.add_argument("--kubeflow-bin", help="a training-operator.v1 binary (default: go install, cached in GOPATH/bin)")
    p.add_argument("--kubeflow-threads", type=int, help="--controller-threads for Kubeflow (default: its own, 1)")
    p.add_argument("--profile", action="store_true",
                   help="sample Tandem's operator with py-spy (PY_SPY or py-spy on PATH) during each scale")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--keep-logs", metavar="DIR", help="operator logs here (default: a temp dir, removed)")
    args = p.parse_args()
    scales = [int(s) for s in args.scales.split(",")]

    kubeflow_note = "not run (--no-kubeflow)"
    binary = crds = None
    if not args.no_kubeflow:
        binary, crds, kubeflow_note = kubeflow_build(args.kubeflow_bin)
        print(f"kubeflow: {kubeflow_note}", file=sys.stderr)

    logdir = Path(args.keep_logs or tempfile.mkdtemp(prefix="tandem-b3-"))
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    cp = ControlPlane().start()
    results: list[ScaleResult] = []
    notes: list[str] = []
    try:
        add_bench_nodes(cp)
        systems: list[System] = [Tandem(cp, logdir)]
        if binary and crds:
            systems.append(Kubeflow(cp, logdir, binary, crds, args.kubeflow_threads))
        for s in systems:
            s.setup()
        print(f"control plane up in {cp.timings.get('ready', 0):.1f}s; logs in {logdir}", file=sys.stderr)
        for n in scales:
            for s in systems:
                t = time.time()
                py_spy = (os.environ.get("PY_SPY") or shutil.which("py-spy")) if args.profile and s.name == "tandem" else None
                if args.profile and s.name == "tandem" and not py_spy:
                    print("--profile: py-spy not found (set PY_SPY)", file=sys.stderr)
                r = run_scale(s, n, args.timeout, py_spy)
                results.append(r)
                print(f"{s.name:9s} {n:5d} jobs: {r.done}/{n} done, p50 {percentile(r.latencies, 50):.2f}s "
                      f"p99 {percentile(r.latencies, 99):.2f}s, {r.jobs_per_s:.1f} jobs/s, create {r.create_seconds:.1f}s, "
                      f"peak RSS {r.rss_mb:.0f} MB (at warm-up {r.rss_start_mb:.0f}) {r.note} [{time.time() - t:.0f}s]",
                      file=sys.stderr, flush=True)
                state = delete_namespace(cp, f"b3-{s.name}-{n}", 240 if n >= 1000 else 60)
                if state != "deleted":
                    notes.append(f"namespace b3-{s.name}-{n} {state} when the next run started")
    finally:
        cp.stop()
        if not args.keep_logs and not any(r.note for r in results):
            shutil.rmtree(logdir, ignore_errors=True)
    total = time.time() - started

    rows = []
    for r in results:
        rows.append((r.system, r.n, f"{r.done}/{r.n}", f"{percentile(r.latencies, 50):.2f}",
                     f"{percentile(r.latencies, 99):.2f}", f"{r.jobs_per_s:.1f}",
                     f"{percentile(r.pod_latencies, 50):.2f}" if r.pod_latencies else "-",
                     f"{percentile(r.pod_latencies, 99):.2f}" if r.pod_latencies else "-",
                     f"{r.create_seconds:.1f}", f"{r.rss_mb:.0f}", r.note or "-"))
    out = table(("operator", "jobs", "done", "children p50 s", "children p99 s", "jobs/s",
                 "pods p50 s", "pods p99 s", "create s", "peak RSS MB", "note"), rows)
    verdicts = []
    by = {(r.system, r.n): r for r in results}
    for n in scales:
        t, k = by.get(("tandem", n)), by.get(("kubeflow", n))
        if t and k and t.latencies and k.latencies:
            f = percentile(t.latencies, 99) / percentile(k.latencies, 99)
            verdicts.append(f"- {n} jobs: tandem p99 / kubeflow p99 = {f:.2f} (target <= {TARGET_P99_FACTOR}: "
                            f"{'met' if f <= TARGET_P99_FACTOR else 'MISSED'})")
    t1000 = by.get(("tandem", 1000))
    if t1000:
        verdicts.append(f"- tandem operator peak RSS at 1000 jobs: {t1000.rss_mb:.0f} MB (target < {TARGET_RSS_MB} MB: "
                        f"{'met' if t1000.rss_mb < TARGET_RSS_MB else 'MISSED'})")
    print(out)
    print("\n".join(verdicts))
    profiles = []
    for r in results:
        path = getattr(r, "profile_path", None)
        if path and Path(path).exists():
            profiles.append(f"py-spy profile of Tandem's operator, {r.n} jobs, {summarize_profile(Path(path))}")
            print(profiles[-1])
    png = plot(results, REPO / "benchmarks" / "b3_controller.png")
    if not args.no_append:
        children = "; ".join(f"{r.system}: {getattr(r, 'expected', {})}" for r in results if r.n == scales[0])
        body = "\n".join([
            f"Control plane: tests/controlplane (Kubernetes {__import__('common').k8s_version()}, etcd, kwok), 4 kwok nodes "
            f"+ {BENCH_NODES} bench nodes of {BENCH_NODE_PODS} pods; pods run {RUN_SECONDS}s (never finish in the window). "
            f"Fresh namespace and operator process per row; jobs created from 8 client threads. "
            f"'children' = the operator's own objects ({children}); 'pods' = both pods of the job exist "
            f"(Tandem: created by the Job controller; Kubeflow: by the operator). "
            f"Kubeflow: {kubeflow_note}, --enable-scheme=pytorchjob, controller threads "
            f"{args.kubeflow_threads or '1 (default)'}, webhook not registered. Whole run {total / 60:.1f} min.",
            "", out, "", *verdicts, *(f"- {n}" for n in notes), *("\n" + pr for pr in profiles),
            *(["", f"Plot: benchmarks/{png.name} (latency CDF at 100 and 1000 jobs)."] if png else []),
        ])
        append_results("B3 controller", body, "benchmarks/b3_controller.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
