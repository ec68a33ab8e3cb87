"""B3: the operator at 100, 1,000 and 5,000 jobs on the real control plane, beside today's rivals.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b3_controller.py [--scales 100,1000,5000]
        [--systems tandem,kubeflow,trainer,objects,children,jobs] [--no-append] [--keep-logs DIR]

The rivals are built once from the Go module proxy by benchmarks/b3_rivals.sh (cached under
~/.cache/tandem/b3-rivals, keyed by version); their CRDs come from the same module sources.

Starts the test control plane (tests/controlplane: Kubernetes v1.33.13 built from the upstream
modules, kwok nodes), adds kwok nodes with room for every pod, and then, for each scale and
each operator in turn (interleaved: tandem 100, kubeflow 100, trainer 100, tandem 1000, ...), in a
fresh namespace and with freshly started operator processes:

1. a warm-up job is applied and both its pods awaited Running (the operator is up and has its
   watches);
2. N jobs are created from 8 client threads, each creation time recorded just before its request;
3. a watch on the namespace's pods records when each pod is first seen and first seen Running;
4. per job: latency = both its pods Running - its creation ("create-to-Running"); "pods" = both
   pods exist. jobs/s = N / (last job Running - first creation). Peak RSS: VmHWM of the
   operator's processes (/proc/<pid>/status) when the last job is Running, summed where the
   system is two processes (Trainer v2 = trainer-controller-manager + the JobSet controller);
5. the figures a busy machine cannot bend: the CPU seconds of the system's processes (utime +
   stime from /proc/<pid>/stat) and the API requests they made (the apiserver's audit log, one
   line per request of the admin credentials, told apart by each system's user agent), both
   from the first creation to the last job Running, divided by N; beside them, the CPU seconds of
   each control plane process (apiserver, etcd, controller-manager, scheduler, kwok) in the same
   window: what the system's way of making pods costs the cluster it shares.

Before each row the script waits (up to --quiet-wait seconds) for the 1-minute load average to
fall under --quiet-load, and records the load it started at: a row of record is taken alone.

Every job is 2 workers (pods) of 1 CPU, 2 GiB:

- tandem: `tandem operator run` (TrainingJob -> headless Service + Indexed Job; the pods come from
  kube-controller-manager's Job controller). Its default reconcile workers (controller/runtime.WORKERS,
  16); its Python client has no client-side rate limit.
- kubeflow: training-operator.v1 (v1.9.3), --enable-scheme=pytorchjob, PyTorchJob Master 1 +
  Worker 1 (it creates the pods and Services itself). --controller-threads = Tandem's worker
  count and --kube-api-qps 500 / --kube-api-burst 1000 (the limits this control plane gives
  kube-controller-manager and the scheduler; well above any operator's request rate here, so no
  client-side limiter binds, as none binds Tandem's). Its validating webhook is not registered.
- trainer: Kubeflow Trainer v2 (trainer-controller-manager v2.1.0) on JobSet v0.10.1: a TrainJob
  (numNodes 2) referring to a ClusterTrainingRuntime copied from the module's torch-distributed
  runtime -> JobSet -> Job (+ headless Service) -> pods from the Job controller. TrainJob
  concurrency = Tandem's worker count, client 500 QPS / burst 1000 for both; the JobSet controller's concurrency is
  fixed in its code (1). Their webhooks (Trainer's validating ones; JobSet's mutating and
  validating ones for JobSets and their pods) ARE registered, with a URL clientConfig to
  127.0.0.1 and a self-signed certificate, as a cluster would call them. Trainer v2.1.0 has only
  validating webhooks (no defaulting), so its runtime resolution happens in the controller.
Three floors, not rivals: no operator runs, and the script creates (from as many threads as
Tandem has reconcile workers) what Tandem's path creates for the same TrainingJob, rendered by
tandem.render, with no status write, event or watch:

- jobs: the Indexed Job only (the Job controller makes the pods): the floor under any operator
  whose pods come from Jobs;
- children: the headless Service, the NetworkPolicy and the Job, in Tandem's order;
- objects: the TrainingJob, then those children owned by it (the garbage collector tracks them).
  Above this floor, what Tandem costs is its operator's own.

Pods never finish inside the measured window (kwok run-seconds 3600): the benchmark measures
creation, and completions would add status churn that differs between the operators.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import shutil
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
from common import REPO, append_results, loadavg, percentile, table

sys.path[:0] = [str(REPO), str(REPO / "operator")]
from costs import cpu_seconds, profile_summary, requests_by_agent, requests_by_kind, requests_in_window  # noqa: E402

from tandem._sys.ports import free_port  # noqa: E402
from tandem.contract import JOB_NAME_LABEL, OPERATOR_USER_AGENT  # noqa: E402
from tandem.controller.runtime import WORKERS  # noqa: E402
from tests.controlplane.cluster import ControlPlane  # noqa: E402
from tests.support.processes import stop_group  # noqa: E402

TRAINING_OPERATOR_VERSION = "v1.9.3"
TRAINER_VERSION = "v2.1.0"
JOBSET_VERSION = "v0.10.1"
RUN_SECONDS = "3600"
BENCH_NODES = 8
BENCH_NODE_PODS = "2000"
#: Tandem's reconcile workers: the rivals get as many threads.
THREADS = WORKERS
#: The rivals' client rate limits: what this control plane gives kube-controller-manager and the
#: scheduler (tests/controlplane/cluster.py); Tandem's Python client has no limiter at all.
CLIENT_QPS, CLIENT_BURST = 500, 1000
TARGET_P99_FACTOR = 1.0
TARGET_RSS_MB = 120
WORKERS_PER_JOB = 2
#: Every request made with the admin credentials (the operators under test, kubectl, this
#: script), metadata only, so that each system's requests can be counted by its user agent.
AUDIT_EVERY_REQUEST = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:masters"]
- level: None
"""
#: This script's own client: its creations and its pod watch are not an operator's requests.
BENCH_USER_AGENT = "tandem-b3-benchmark"


def gomodcache() -> Path:
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30).stdout.strip()
        return Path(out) if out else Path.home() / "go" / "pkg" / "mod"
    except (OSError, subprocess.SubprocessError):
        return Path.home() / "go" / "pkg" / "mod"


def build_rivals(names: list[str]) -> Path:
    """benchmarks/b3_rivals.sh: builds what is not cached yet; the directory of the binaries."""
    env = {**os.environ, "TRAINING_OPERATOR_VERSION": TRAINING_OPERATOR_VERSION, "TRAINER_VERSION": TRAINER_VERSION,
           "JOBSET_VERSION": JOBSET_VERSION}
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "b3_rivals.sh"), *names], env=env, stdout=subprocess.PIPE,
                         text=True, timeout=3600, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def audit_offset(cp: ControlPlane) -> int:
    try:
        return cp.audit_log.stat().st_size
    except OSError:
        return 0


class Profile:
    """py-spy on the Tandem operator's process for one row: a flame graph (SVG) and the folded
    stacks (text) that profile_summary() attributes to packages. Sampling costs CPU of its own,
    so a profiled run is never a row of record (--profile implies --no-append)."""

    def __init__(self, directory: Path, label: str, pid: int, rate: int = 100):
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            raise SystemExit("--profile needs py-spy: `uv pip install py-spy` (or pip) into this environment")
        directory.mkdir(parents=True, exist_ok=True)
        self.svg, self.folded = directory / f"tandem-{label}.svg", directory / f"tandem-{label}.txt"
        self.spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
                                        "--format", form, "-o", str(out)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                      for form, out in (("flamegraph", self.svg), ("raw", self.folded))]

    def stop(self) -> None:
        for spy in self.spies:  # py-spy writes its output on SIGINT
            spy.send_signal(2)
        for spy in self.spies:
            try:
                spy.wait(120)
            except subprocess.TimeoutExpired:
                spy.kill()


class WatchFloor:
    """benchmarks/watch_floor.py beside the Tandem operator for one row: the same watches, only
    read and decoded. Its CPU over the row's window is the floor under any Python operator's CPU
    per job; an extra process on the machine, so a row with it is never of record (--watch-floor
    implies --no-append)."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "watch_floor.py")], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        start_new_session=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "watching":
            raise SystemExit("benchmarks/watch_floor.py did not start its watches")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> dict[str, Any]:
        """Its counts: events and bytes per resource."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def wait_quiet(load: float, wait: float) -> str:
    """Until the 1-minute load average is under `load` (at most `wait` s); the load then."""
    deadline = time.time() + wait
    while time.time() < deadline and float(loadavg().split()[0]) >= load:
        time.sleep(5)
    return loadavg()


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


def wait_http(url: str, timeout: float = 60) -> None:
    """Until a health endpoint answers 200 (the webhook servers must listen before registering)."""
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 in {timeout:.0f}s")


def self_signed(directory: Path) -> bytes:
    """tls.crt/tls.key for 127.0.0.1 in `directory`; the certificate (PEM), the webhooks' caBundle."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "tls.crt").exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt"), "-days", "30",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
    return (directory / "tls.crt").read_bytes()


# ---------------------------------------------------------------------------- the systems


class System:
    name = ""
    group = version = plural = kind = ""
    #: The pod label that names the job a pod belongs to.
    pod_job_label = ""
    #: How the system's requests start their User-Agent header in the audit log.
    user_agents: tuple[str, ...] = ()
    #: Client threads creating the jobs: a user's burst. The floors, which create an operator's
    #: objects themselves, get as many as Tandem has reconcile workers.
    creators = 8
    #: Whether the system runs an operator (the floors do not: this script makes their objects).
    operator = True

    def __init__(self, cp: ControlPlane, logdir: Path):
        self.cp, self.logdir = cp, logdir
        self.processes: list[subprocess.Popen] = []

    def setup(self) -> None:
        raise NotImplementedError

    def document(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        """(log name, argv, env) of each process the system runs."""
        raise NotImplementedError

    def create(self, api_client: Any, namespace: str, name: str) -> None:
        """Create one job: the system's custom resource."""
        from kubernetes import client
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            self.group, self.version, namespace, self.plural, self.document(name))

    def version_note(self) -> str:
        raise NotImplementedError

    def start(self, label: str) -> None:
        for logname, argv, env in self.commands():
            log = (self.logdir / f"{logname}-{label}.log").open("w")
            self.processes.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO))

    def ready(self) -> None:
        """Called after start(): wait for whatever must be up before jobs are created."""

    def stop(self) -> None:
        for process in self.processes:
            stop_group(process, grace=15)
        self.processes = []

    def peak_rss_mb(self) -> float:
        return sum(vm_hwm_mb(p.pid) for p in self.processes)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def base_env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.cp.kubeconfig)}


def worker_resources() -> dict[str, Any]:
    return {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}


class Tandem(System):
    name = "tandem"
    group, version, plural, kind = "tandem.dev", "v1alpha1", "trainingjobs", "TrainingJob"
    pod_job_label = JOB_NAME_LABEL
    user_agents = ("kopf/", OPERATOR_USER_AGENT)  # its watches (kopf) and its writes (kubernetes client)

    def setup(self) -> None:
        apply_tandem_crd(self.cp)

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        argv = [sys.executable, "-m", "tandem", "operator", "run", "--health-port", "0", "--metrics-port", "0",
                "--lease-namespace", "kube-system"]
        source = os.environ.get("B3_TANDEM_OPERATOR_DIR", str(REPO / "operator"))  # to compare two versions
        return [("tandem", argv, {**self.base_env(), "PYTHONPATH": source})]

    def version_note(self) -> str:
        source = os.environ.get("B3_TANDEM_OPERATOR_DIR")
        return (f"tandem operator ({'source ' + source if source else 'this commit'}), "
                f"{WORKERS} reconcile workers, no client-side rate limit")

    def document(self, name: str) -> dict[str, Any]:
        return training_job(name)


def apply_tandem_crd(cp: ControlPlane) -> None:
    cp.kubectl("apply", "--server-side", "-f", str(REPO / "manifests" / "crd.yaml"))
    wait_crd(cp, "trainingjobs.tandem.dev")


def training_job(name: str) -> dict[str, Any]:
    """The benchmark's TrainingJob: 2 workers of 1 CPU, 2 GiB, whose pods kwok runs for RUN_SECONDS."""
    return {
        "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
        "spec": {
            "framework": "pytorch", "strategy": "ddp", "image": "tandem/pytorch-worker:0.1.0",
            "command": ["python", "jobs/train_ddp.py", "--epochs", "2"], "workers": WORKERS_PER_JOB,
            "procsPerWorker": 1, "resources": {"cpu": "1", "memory": "2Gi"}, "runPolicy": {"backoffLimit": 2},
            "podTemplate": {"annotations": {"tandem.dev/kwok-run-seconds": RUN_SECONDS}},
        },
    }


class Kubeflow(System):
    """Kubeflow Training Operator v1 (PyTorchJob)."""

    name = "kubeflow"
    group, version, plural, kind = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
    pod_job_label = "training.kubeflow.org/job-name"
    user_agents = ("training-operator",)  # client-go's default: the binary's name

    def __init__(self, cp: ControlPlane, logdir: Path, bins: Path):
        super().__init__(cp, logdir)
        self.binary = bins / f"training-operator.v1-{TRAINING_OPERATOR_VERSION}" / "training-operator.v1"
        self.module = gomodcache() / f"github.com/kubeflow/training-operator@{TRAINING_OPERATOR_VERSION}"

    def version_note(self) -> str:
        return (f"github.com/kubeflow/training-operator/cmd/training-operator.v1@{TRAINING_OPERATOR_VERSION}, "
                f"--controller-threads={THREADS} --kube-api-qps={CLIENT_QPS} --kube-api-burst={CLIENT_BURST}, "
                "validating webhook not registered")

    def setup(self) -> None:
        self.cp.kubectl("apply", "--server-side", "-f",
                        str(self.module / "manifests" / "base" / "crds" / "kubeflow.org_pytorchjobs.yaml"))
        wait_crd(self.cp, "pytorchjobs.kubeflow.org")
        # What its manifests create: its namespace and the (empty) Secret its cert rotator fills.
        self.cp.kubectl("create", "namespace", "kubeflow", check=False)
        self.cp.kubectl("create", "secret", "generic", "training-operator-webhook-cert", "-n", "kubeflow", check=False)
        # Its cert rotator holds the controllers back until (a) a serving certificate is in
        # /tmp/k8s-webhook-server/serving-certs (fixed in its code; in a cluster: the Secret, mounted
        # by the kubelet) and (b) it injected its CA into this ValidatingWebhookConfiguration. Out of
        # cluster: a self-signed pair written there, and the configuration with no webhooks.
        self_signed(Path("/tmp/k8s-webhook-server/serving-certs"))
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

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        argv = [str(self.binary), f"--kubeconfig={self.cp.kubeconfig}", "--enable-scheme=pytorchjob",
                "--metrics-bind-address=0", f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--webhook-server-port={free_port()}", f"--pytorch-init-container-template-file={self.init_template}",
                "--zap-log-level=info", f"--controller-threads={THREADS}",
                f"--kube-api-qps={CLIENT_QPS}", f"--kube-api-burst={CLIENT_BURST}"]
        return [("kubeflow", argv, {**self.base_env(), "MY_POD_NAMESPACE": "kubeflow"})]

    def document(self, name: str) -> dict[str, Any]:
        def replica() -> dict[str, Any]:
            return {"replicas": 1, "restartPolicy": "OnFailure", "template": {
                "metadata": {"annotations": {"tandem.dev/kwok-run-seconds": RUN_SECONDS}},
                "spec": {"containers": [{
                    "name": "pytorch", "image": "tandem/pytorch-worker:0.1.0",
                    "command": ["python", "jobs/train_ddp.py", "--epochs", "2"], "resources": worker_resources(),
                }]}}}
        return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": name},
                "spec": {"pytorchReplicaSpecs": {"Master": replica(), "Worker": replica()}}}


class Trainer(System):
    """Kubeflow Trainer v2 (TrainJob) on JobSet: two controllers, both started per row."""

    name = "trainer"
    group, version, plural, kind = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
    pod_job_label = "jobset.sigs.k8s.io/jobset-name"  # the JobSet is named after its TrainJob
    user_agents = ("trainer-controller-manager", "jobset")
    runtime = "tandem-b3-torch"
    webhook_names = ("tandem-b3-trainer-validator", "tandem-b3-jobset-mutator", "tandem-b3-jobset-validator")

    def __init__(self, cp: ControlPlane, logdir: Path, bins: Path):
        super().__init__(cp, logdir)
        self.trainer_bin = bins / f"trainer-controller-manager-{TRAINER_VERSION}" / "trainer-controller-manager"
        self.jobset_bin = bins / f"jobset-{JOBSET_VERSION}" / "jobset"
        self.trainer_module = gomodcache() / f"github.com/kubeflow/trainer/v2@{TRAINER_VERSION}"
        self.jobset_module = gomodcache() / f"sigs.k8s.io/jobset@{JOBSET_VERSION}"
        self.tmp = logdir / "trainer-tmp"
        self.certs = self.tmp / "k8s-webhook-server" / "serving-certs"  # controller-runtime's default, under TMPDIR
        self.ports: dict[str, int] = {}

    def version_note(self) -> str:
        return (f"github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager@{TRAINER_VERSION} "
                f"(TrainJob concurrency {THREADS}) + sigs.k8s.io/jobset@{JOBSET_VERSION} (concurrency 1, fixed), "
                f"both {CLIENT_QPS} QPS / burst {CLIENT_BURST}; webhooks registered (URL clientConfig, 127.0.0.1)")

    def setup(self) -> None:
        crds = [self.jobset_module / "config" / "components" / "crd" / "bases" / "jobset.x-k8s.io_jobsets.yaml",
                *sorted((self.trainer_module / "manifests" / "base" / "crds").glob("trainer.kubeflow.org_*.yaml"))]
        for crd in crds:
            self.cp.kubectl("apply", "--server-side", "-f", str(crd))
        for name in ("jobsets.jobset.x-k8s.io", "trainjobs.trainer.kubeflow.org",
                     "clustertrainingruntimes.trainer.kubeflow.org"):
            wait_crd(self.cp, name)
        self.ca = self_signed(self.certs)
        # The module's torch-distributed runtime, with kwok's run time on its pods (tests/controlplane/kwok).
        runtime = {
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
            "metadata": {"name": self.runtime, "labels": {"trainer.kubeflow.org/framework": "torch"}},
            "spec": {"mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
                     "template": {"spec": {"replicatedJobs": [{
                         "name": "node",
                         "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                                      "spec": {"template": {
                                          "metadata": {"annotations": {"tandem.dev/kwok-run-seconds": RUN_SECONDS}},
                                          "spec": {"containers": [{"name": "node",
                                                                   "image": "tandem/pytorch-worker:0.1.0"}]}}}},
                     }]}}},
        }
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(runtime))

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        self.ports = {k: free_port() for k in ("trainer-webhook", "trainer-health", "jobset-webhook", "jobset-health")}
        trainer_cfg = self.logdir / "trainer-config.yaml"
        trainer_cfg.write_text(json.dumps({
            "apiVersion": "config.trainer.kubeflow.org/v1alpha1", "kind": "Configuration",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.ports['trainer-health']}",
                       "readinessEndpointName": "readyz", "livenessEndpointName": "healthz"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"port": self.ports["trainer-webhook"], "host": "127.0.0.1"},
            "leaderElection": {"leaderElect": False},
            "controller": {"groupKindConcurrency": {"TrainJob.trainer.kubeflow.org": THREADS,
                                                    "TrainingRuntime.trainer.kubeflow.org": 1,
                                                    "ClusterTrainingRuntime.trainer.kubeflow.org": 1}},
            "certManagement": {"enable": False},
            "clientConnection": {"qps": CLIENT_QPS, "burst": CLIENT_BURST},
        }))
        jobset_cfg = self.logdir / "jobset-config.yaml"
        jobset_cfg.write_text(json.dumps({
            "apiVersion": "config.jobset.x-k8s.io/v1alpha1", "kind": "Configuration",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.ports['jobset-health']}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"port": self.ports["jobset-webhook"], "host": "127.0.0.1", "certDir": str(self.certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "clientConnection": {"qps": CLIENT_QPS, "burst": CLIENT_BURST},
        }))
        env = {**self.base_env(), "TMPDIR": str(self.tmp)}
        return [
            ("jobset", [str(self.jobset_bin), f"--kubeconfig={self.cp.kubeconfig}", f"--config={jobset_cfg}",
                        "--zap-log-level=info"], env),
            ("trainer", [str(self.trainer_bin), f"--kubeconfig={self.cp.kubeconfig}", f"--config={trainer_cfg}",
                         "--zap-log-level=info"], env),
        ]

    def _webhook(self, name: str, port: int, path: str, group: str, version: str, resource: str, ops: list[str],
                 pods_of_jobsets: bool = False) -> dict[str, Any]:
        hook: dict[str, Any] = {
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(self.ca).decode()},
            "rules": [{"apiGroups": [group], "apiVersions": [version], "operations": ops, "resources": [resource]}],
        }
        if pods_of_jobsets:  # as JobSet's kustomize patches narrow them
            hook["objectSelector"] = {"matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name",
                                                            "operator": "Exists"}]}
        return hook

    def ready(self) -> None:
        """Register the webhooks once both servers answer (what the modules' manifests register)."""
        wait_http(f"http://127.0.0.1:{self.ports['jobset-health']}/readyz")
        wait_http(f"http://127.0.0.1:{self.ports['trainer-health']}/readyz")
        t, j = self.ports["trainer-webhook"], self.ports["jobset-webhook"]
        ar = "admissionregistration.k8s.io/v1"
        configs = [
            {"apiVersion": ar, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": self.webhook_names[0]},
             "webhooks": [self._webhook(f"validator.{r}.trainer.kubeflow.org", t,
                                        f"/validate-trainer-kubeflow-org-v1alpha1-{r}", "trainer.kubeflow.org",
                                        "v1alpha1", f"{r}s", ["CREATE", "UPDATE"])
                          for r in ("clustertrainingruntime", "trainingruntime", "trainjob")]},
            {"apiVersion": ar, "kind": "MutatingWebhookConfiguration", "metadata": {"name": self.webhook_names[1]},
             "webhooks": [self._webhook("mjobset.kb.io", j, "/mutate-jobset-x-k8s-io-v1alpha2-jobset",
                                        "jobset.x-k8s.io", "v1alpha2", "jobsets", ["CREATE"]),
                          self._webhook("mpod.kb.io", j, "/mutate--v1-pod", "", "v1", "pods", ["CREATE"], True)]},
            {"apiVersion": ar, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": self.webhook_names[2]},
             "webhooks": [self._webhook("vjobset.kb.io", j, "/validate-jobset-x-k8s-io-v1alpha2-jobset",
                                        "jobset.x-k8s.io", "v1alpha2", "jobsets", ["CREATE", "UPDATE"]),
                          self._webhook("vpod.kb.io", j, "/validate--v1-pod", "", "v1", "pods", ["CREATE"], True)]},
        ]
        self.cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": configs}))

    def stop(self) -> None:
        # failurePolicy Fail: with the servers gone, the webhooks would refuse every JobSet (and its pods).
        for kind, name in zip(("validatingwebhookconfiguration", "mutatingwebhookconfiguration",
                               "validatingwebhookconfiguration"), self.webhook_names, strict=True):
            self.cp.kubectl("delete", kind, name, "--ignore-not-found", check=False)
        super().stop()

    def document(self, name: str) -> dict[str, Any]:
        return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": name},
                "spec": {"runtimeRef": {"name": self.runtime, "apiGroup": "trainer.kubeflow.org",
                                        "kind": "ClusterTrainingRuntime"},
                         "trainer": {"image": "tandem/pytorch-worker:0.1.0",
                                     "command": ["python", "jobs/train_ddp.py", "--epochs", "2"],
                                     "numNodes": WORKERS_PER_JOB, "resourcesPerNode": worker_resources()}}}


class BareJobs(System):
    """No operator: this script creates the Indexed Job Tandem renders for each job, and
    kube-controller-manager's Job controller makes the pods. The floor under any operator whose
    pods come from Jobs (Tandem; Trainer v2 through JobSet): how fast this control plane turns
    Jobs into Running pods when nothing else asks anything of it."""

    name = "jobs"
    pod_job_label = JOB_NAME_LABEL
    user_agents = ()  # no process of its own; its creations are this script's
    creators = WORKERS
    operator = False
    #: Which of the objects Tandem renders for a job this system creates, in Tandem's order.
    kinds: tuple[str, ...] = ("Job",)
    #: Whether the TrainingJob is created first and owns the children, as Tandem's do.
    owned = False

    def setup(self) -> None:
        if self.owned:
            apply_tandem_crd(self.cp)

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        return []

    def version_note(self) -> str:
        made = ("the TrainingJob, then " if self.owned else "") + ", ".join(self.kinds)
        owners = "owned by the TrainingJob" if self.owned else "no TrainingJob"
        return (f"no operator: this script creates what Tandem's path creates for the same TrainingJob ({made}; "
                f"{owners}; no status writes, no events, no watches); the pods come from kube-controller-manager")

    def document(self, name: str) -> dict[str, Any]:
        return training_job(name)

    def create(self, api_client: Any, namespace: str, name: str) -> None:
        from kubernetes import client

        from tandem.api.model import TrainingJob
        from tandem.render import render

        creates = {"Service": client.CoreV1Api(api_client).create_namespaced_service,
                   "Job": client.BatchV1Api(api_client).create_namespaced_job,
                   "NetworkPolicy": client.NetworkingV1Api(api_client).create_namespaced_network_policy}
        document = self.document(name)
        if self.owned:
            document = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
                Tandem.group, Tandem.version, namespace, Tandem.plural, document)
        else:
            document["metadata"].update(namespace=namespace, uid=f"b3-{namespace}-{name}")
        for obj in render(TrainingJob.model_validate(document)):
            if obj["kind"] in self.kinds:
                if not self.owned:
                    obj["metadata"].pop("ownerReferences", None)  # no TrainingJob exists to own it
                creates[obj["kind"]](namespace, obj)


class BareChildren(BareJobs):
    """As BareJobs, with the headless Service and the NetworkPolicy Tandem creates beside the Job:
    Tandem's children without Tandem."""

    name = "children"
    kinds = ("Service", "Job", "NetworkPolicy")


class BareObjects(BareChildren):
    """As BareChildren, after the TrainingJob itself, which owns them (the garbage collector
    tracks them as it does Tandem's): every object of Tandem's path, with no operator's status
    writes, events, watches or process. Above this floor, the cost is the operator's own."""

    name = "objects"
    owned = True


# ---------------------------------------------------------------------------- watching


@dataclass
class Seen:
    """Per job: each pod's first-seen time and first-seen-Running time."""
    created: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    running: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all_at(self, times: dict[str, dict[str, float]], job: str) -> Optional[float]:
        """When the job's last pod got there; None while fewer than all its pods have."""
        got = times.get(job, {})
        return max(got.values()) if len(got) >= WORKERS_PER_JOB else None


def watch_pods(core: Any, namespace: str, label: str, seen: Seen, stop: threading.Event) -> None:
    """One raw (undeserialized) watch on the namespace's pods: 10,000 typed pods would cost the
    benchmark process more CPU than the operators it measures."""
    from kubernetes import watch as kwatch
    rv = None
    while not stop.is_set():
        w = kwatch.Watch()
        try:
            kwargs: dict[str, Any] = {"timeout_seconds": 5, "allow_watch_bookmarks": False, "deserialize": False,
                                      "label_selector": label}
            if rv:
                kwargs["resource_version"] = rv
            for event in w.stream(core.list_namespaced_pod, namespace, **kwargs):
                now = time.time()
                obj = event["object"]
                meta = obj.get("metadata", {})
                rv = meta.get("resourceVersion", rv)
                job = (meta.get("labels") or {}).get(label)
                if job and event.get("type") != "DELETED":
                    with seen.lock:
                        seen.created[job].setdefault(meta["name"], now)
                        if (obj.get("status") or {}).get("phase") == "Running":
                            seen.running[job].setdefault(meta["name"], now)
                if stop.is_set():
                    break
        except Exception as error:  # noqa: BLE001 - expired resourceVersion etc.: relist
            if "410" in str(error) or "Expired" in str(error):
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
    wall_seconds: float = float("nan")
    #: CPU seconds of the system's processes from the first creation to the last job Running.
    cpu_seconds: float = float("nan")
    #: The system's API requests in the same window, and every user agent's there.
    requests: int = 0
    agents: dict[str, int] = field(default_factory=dict)
    #: The system's own requests by "verb resource[/subresource]".
    kinds: dict[str, int] = field(default_factory=dict)
    #: With --watch-floor: the bare watcher's CPU seconds in the same window, and its event counts.
    floor_cpu_seconds: float = float("nan")
    floor_events: dict[str, Any] = field(default_factory=dict)
    #: CPU seconds of each control plane process (apiserver, etcd, controller-manager, scheduler,
    #: kwok) in the same window: what the system's way of making pods costs the cluster.
    control_plane_cpu: dict[str, float] = field(default_factory=dict)
    load_before: str = "-"
    note: str = ""
    #: False for the floors: no operator process, so no RSS, CPU or requests of its own.
    operator: bool = True

    def per_job(self, total: float) -> float:
        return total / self.n if self.n else float("nan")


def run_scale(system: System, n: int, timeout: float, profile: Optional[Path] = None,
              watch_floor: bool = False) -> ScaleResult:
    from kubernetes import client, config
    cp = system.cp
    api_client = config.new_client_from_config(str(cp.kubeconfig))
    api_client.configuration.connection_pool_maxsize = 16
    api_client.user_agent = BENCH_USER_AGENT
    core = client.CoreV1Api(api_client)
    ns = f"b3-{system.name}-{n}"
    cp.kubectl("create", "namespace", ns)
    result = ScaleResult(system.name, n, operator=system.operator)
    seen = Seen()
    stop = threading.Event()
    watcher = threading.Thread(target=watch_pods, args=(core, ns, system.pod_job_label, seen, stop), daemon=True)
    watcher.start()
    system.start(str(n))
    floor: Optional[WatchFloor] = None
    try:
        system.ready()
        floor = WatchFloor(system.base_env()) if watch_floor and system.name == "tandem" else None
        warm = "warmup"
        deadline = time.time() + 180
        while True:  # a TrainJob is refused until the controller's runtime cache has synced
            try:
                system.create(api_client, ns, warm)
                break
            except client.ApiException as error:
                if time.time() > deadline:
                    raise
                print(f"  warm-up create refused ({error.status}), retrying", file=sys.stderr)
                time.sleep(1)
        while time.time() < deadline:
            with seen.lock:
                if seen.all_at(seen.running, warm) is not None:
                    break
            time.sleep(0.2)
        else:
            result.note = "the warm-up job's pods never ran; see the operator log"
            return result
        result.rss_start_mb = system.peak_rss_mb()

        names = [f"job-{i:04d}" for i in range(n)]
        created: dict[str, float] = {}

        def create(name: str) -> None:
            t = time.time()
            system.create(api_client, ns, name)
            created[name] = t

        offset, cpu_start = audit_offset(cp), system.cpu_seconds()
        cp_start = {name: cpu_seconds(pid) for name, pid in cp.pids.items()}
        floor_start = floor.cpu_seconds() if floor else 0.0
        spy = Profile(profile, str(n), system.processes[0].pid) if profile and system.name == "tandem" else None
        t_start = time.time()
        with ThreadPoolExecutor(system.creators) as pool:
            list(pool.map(create, names))
        result.create_seconds = time.time() - t_start

        deadline = time.time() + timeout
        done_at: dict[str, float] = {}
        while time.time() < deadline and len(done_at) < n:
            with seen.lock:
                for name in names:
                    if name not in done_at:
                        t = seen.all_at(seen.running, name)
                        if t is not None:
                            done_at[name] = t
            time.sleep(0.5)
        result.rss_mb = system.peak_rss_mb()
        result.cpu_seconds = system.cpu_seconds() - cpu_start
        result.control_plane_cpu = {name: cpu_seconds(pid) - cp_start[name] for name, pid in cp.pids.items()}
        if floor is not None:
            result.floor_cpu_seconds = floor.cpu_seconds() - floor_start
        if spy is not None:
            spy.stop()
        t_end = max(done_at.values()) if len(done_at) == n else time.time()
        requests = requests_in_window(cp.audit_log, offset, t_start, t_end)
        agents = requests_by_agent(requests)
        result.agents = dict(agents.most_common())
        result.requests = sum(count for agent, count in agents.items() if agent.startswith(system.user_agents))
        result.kinds = dict(requests_by_kind(requests, system.user_agents).most_common())
        with seen.lock:
            for name in names:
                t = seen.all_at(seen.created, name)
                if t is not None:
                    result.pod_latencies.append(t - created[name])
        result.done = len(done_at)
        result.latencies = [done_at[nm] - created[nm] for nm in done_at]
        if done_at:
            result.jobs_per_s = len(done_at) / (max(done_at.values()) - t_start)
        if len(done_at) < n:
            result.note = f"only {len(done_at)}/{n} Running after {timeout:.0f}s"
        return result
    finally:
        stop.set()
        if floor is not None:
            result.floor_events = floor.stop()
        system.stop()
        watcher.join(8)
        api_client.close()


def delete_namespace(cp: ControlPlane, ns: str, wait: float) -> str:
    cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    deadline = time.time() + wait
    while time.time() < deadline:
        if cp.kubectl("get", "namespace", ns, check=False).returncode != 0:
            return "deleted"
        time.sleep(1)
    return f"still terminating after {wait:.0f}s"


def bench_nodes(largest_scale: int) -> int:
    """kwok nodes enough for the largest row's pods (two a job), with a quarter to spare, and
    for the previous row's pods while its namespace is still being deleted."""
    return max(BENCH_NODES, math.ceil(2 * (largest_scale + 1) * 1.25 / int(BENCH_NODE_PODS)))


def add_bench_nodes(cp: ControlPlane, count: int) -> None:
    resources = {"cpu": "4000", "memory": "16Ti", "pods": BENCH_NODE_PODS, "ephemeral-storage": "10Ti"}
    items = [{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"kwok-bench-{i}",
                     "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-bench-{i}", "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64"}},
        "spec": {}, "status": {"allocatable": resources, "capacity": resources},
    } for i in range(count)]
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def plot(results: list[ScaleResult], path: Path) -> Optional[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    scales = sorted({r.n for r in results if r.latencies})
    if not scales:
        return None
    fig, axes = plt.subplots(1, len(scales), figsize=(4.2 * len(scales), 4.2), squeeze=False)
    styles = {"tandem": "-", "kubeflow": "--", "trainer": ":"}
    for ax, n in zip(axes[0], scales, strict=True):
        for r in results:
            if r.n != n or not r.latencies:
                continue
            xs = sorted(r.latencies)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.plot(xs, ys, styles.get(r.system, "-"), label=f"{r.system} ({r.done}/{r.n})")
        ax.set_title(f"{n} jobs")
        ax.set_xlabel("seconds from create to both pods Running")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("fraction of jobs")
    fig.suptitle("B3: create -> Running latency (CDF)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_profiles(directory: Path, scales: list[int]) -> None:
    """Each profiled row's samples by package, also written beside them as summary.md."""
    lines = []
    for n in scales:
        folded = directory / f"tandem-{n}.txt"
        if not folded.exists():
            continue
        total, rows = profile_summary(folded)
        lines += ["", f"Tandem operator, {n} jobs: {total} samples (py-spy, active threads only)", "",
                  table(("package", "self", "inclusive"), [(name, f"{own:.0%}", f"{incl:.0%}") for name, own, incl in rows])]
    (directory / "summary.md").write_text("\n".join(lines).lstrip() + "\n")
    print("\n".join(lines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", default="100,1000,5000")
    p.add_argument("--systems", default="tandem,kubeflow,trainer")
    p.add_argument("--timeout", type=float, default=900.0, help="per scale, for every job's pods to be Running")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--keep-logs", metavar="DIR", help="operator logs here (default: a temp dir, removed)")
    p.add_argument("--plot", default=str(REPO / "benchmarks" / "b3_controller.png"))
    p.add_argument("--profile", metavar="DIR", help="py-spy the Tandem operator in each row: flame graph and "
                   "folded stacks here, with their summary by package (implies --no-append: sampling costs CPU)")
    p.add_argument("--watch-floor", action="store_true", help="beside Tandem's rows, a bare Python watcher of "
                   "the same watches (benchmarks/watch_floor.py): its CPU per job, the floor under any Python "
                   "operator's (implies --no-append: an extra process)")
    p.add_argument("--job-syncs", type=int, default=0, help="kube-controller-manager's --concurrent-job-syncs "
                   "(default: its own, 5): the Job controller makes the pods of Tandem's and Trainer's Jobs, not of "
                   "the Training Operator's; a run with it is a different control plane, titled so in RESULTS.md")
    p.add_argument("--quiet-load", type=float, default=1.5, help="1-minute load average to wait for before each row")
    p.add_argument("--quiet-wait", type=float, default=300.0, help="longest wait for it, seconds")
    args = p.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    wanted = args.systems.split(",")

    rivals = [name for name in wanted if name in ("kubeflow", "trainer")]
    bins = build_rivals(rivals) if rivals else None
    logdir = Path(args.keep_logs or tempfile.mkdtemp(prefix="tandem-b3-"))
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    cp = ControlPlane(audit_policy=AUDIT_EVERY_REQUEST, controller_manager_args=(
        [f"--concurrent-job-syncs={args.job_syncs}"] if args.job_syncs else [])).start()
    results: list[ScaleResult] = []
    notes: list[str] = []
    loads: list[str] = []
    systems: list[System] = []
    try:
        nodes = bench_nodes(max(scales))
        add_bench_nodes(cp, nodes)
        makers = {"tandem": lambda: Tandem(cp, logdir), "kubeflow": lambda: Kubeflow(cp, logdir, bins),
                  "trainer": lambda: Trainer(cp, logdir, bins), "jobs": lambda: BareJobs(cp, logdir),
                  "children": lambda: BareChildren(cp, logdir), "objects": lambda: BareObjects(cp, logdir)}
        systems = [makers[name]() for name in wanted]
        for s in systems:
            s.setup()
        print(f"control plane up in {cp.timings.get('ready', 0):.1f}s; logs in {logdir}", file=sys.stderr)
        for n in scales:
            for s in systems:
                before = wait_quiet(args.quiet_load, args.quiet_wait)
                began = time.time()
                r = run_scale(s, n, args.timeout, Path(args.profile) if args.profile else None, args.watch_floor)
                r.wall_seconds = time.time() - began
                r.load_before = before
                results.append(r)
                loads.append(f"{s.name} {n}: {loadavg()}")
                print(f"{s.name:9s} {n:5d} jobs: {r.done}/{n} Running, p50 {percentile(r.latencies, 50):.2f}s "
                      f"p99 {percentile(r.latencies, 99):.2f}s, {r.jobs_per_s:.1f} jobs/s, create {r.create_seconds:.1f}s, "
                      f"peak RSS {r.rss_mb:.0f} MB (at warm-up {r.rss_start_mb:.0f}), CPU {r.cpu_seconds:.1f} s, "
                      f"{r.requests} requests {r.note} [{r.wall_seconds:.0f}s, load before {before}, after {loadavg()}]",
                      file=sys.stderr, flush=True)
                print(f"  user agents in the window: {r.agents}", file=sys.stderr, flush=True)
                print("  control plane CPU s in the window: " + ", ".join(
                    f"{name} {seconds:.1f}" for name, seconds in r.control_plane_cpu.items()), file=sys.stderr, flush=True)
                print(f"  {r.system}'s requests by kind: {r.kinds}", file=sys.stderr, flush=True)
                state = delete_namespace(cp, f"b3-{s.name}-{n}", 300 if n >= 1000 else 60)
                if state != "deleted":
                    notes.append(f"namespace b3-{s.name}-{n} {state} when the next run started")
    finally:
        cp.stop()
        if not args.keep_logs and not any(r.note for r in results):
            shutil.rmtree(logdir, ignore_errors=True)
    total = time.time() - started

    rows = [(r.system, r.n, f"{r.done}/{r.n}", f"{percentile(r.latencies, 50):.2f}", f"{percentile(r.latencies, 99):.2f}",
             f"{r.jobs_per_s:.1f}", f"{percentile(r.pod_latencies, 99):.2f}" if r.pod_latencies else "-",
             f"{r.create_seconds:.1f}", *((f"{r.rss_mb:.0f}", f"{r.rss_start_mb:.0f}",
             f"{r.per_job(r.cpu_seconds) * 1000:.0f}", f"{r.per_job(r.requests):.1f}") if r.operator else ("-",) * 4),
             f"{r.per_job(sum(r.control_plane_cpu.values())) * 1000:.0f}", r.load_before.split()[0],
             r.note or "-") for r in results]
    out = table(("operator", "jobs", "Running", "p50 s", "p99 s", "jobs/s", "pods exist p99 s", "create s",
                 "peak RSS MB", "RSS at warm-up MB", "CPU ms/job", "requests/job", "control plane CPU ms/job",
                 "load before", "note"), rows)
    verdicts = []
    by = {(r.system, r.n): r for r in results}
    for n in scales:
        t = by.get(("tandem", n))
        rivals = [by[(s, n)] for s in ("kubeflow", "trainer") if (s, n) in by and by[(s, n)].done == n]
        if t and t.done == n and rivals:
            best = min(rivals, key=lambda r: percentile(r.latencies, 99))
            f = percentile(t.latencies, 99) / percentile(best.latencies, 99)
            verdicts.append(f"- {n} jobs: tandem p99 / best rival's p99 ({best.system}) = {f:.2f} "
                            f"(target <= {TARGET_P99_FACTOR}: {'met' if f <= TARGET_P99_FACTOR else 'MISSED'})")
    for n in scales:
        t, k = by.get(("tandem", n)), by.get(("kubeflow", n))
        if t and k and t.done == n and k.done == n:
            ratio = t.cpu_seconds / k.cpu_seconds
            verdicts.append(f"- {n} jobs: tandem CPU per job / kubeflow's = {t.per_job(t.cpu_seconds):.3f} s / "
                            f"{k.per_job(k.cpu_seconds):.3f} s = {ratio:.2f} (target <= 1: "
                            f"{'met' if ratio <= 1 else 'MISSED'}); requests per job {t.per_job(t.requests):.1f} / "
                            f"{k.per_job(k.requests):.1f}")
    for n in scales:
        t = by.get(("tandem", n))
        if t:
            target = f" (target <= {TARGET_RSS_MB} MB: {'met' if t.rss_mb <= TARGET_RSS_MB else 'MISSED'})" if n == 1000 else ""
            verdicts.append(f"- tandem operator peak RSS at {n} jobs: {t.rss_mb:.0f} MB{target}")
    verdicts += [f"- the bare watch at {r.n} jobs (benchmarks/watch_floor.py): "
                 f"{r.per_job(r.floor_cpu_seconds) * 1000:.1f} ms CPU per job, events per job "
                 + ", ".join(f"{kind} {r.per_job(count):.1f}" for kind, count in r.floor_events.get("events", {}).items())
                 + f", {r.per_job(sum(r.floor_events.get('bytes', {}).values())) / 1000:.1f} kB per job"
                 for r in results if r.floor_events]
    kinds = [f"- {r.system} at {r.n} jobs, control plane CPU ms per job: " + ", ".join(
        f"{name} {r.per_job(seconds) * 1000:.1f}" for name, seconds in r.control_plane_cpu.items())
        for r in results if r.control_plane_cpu]
    kinds += [f"- {r.system} at {r.n} jobs, requests per job by kind: " + ", ".join(
        f"{kind} {r.per_job(count):.2f}" for kind, count in r.kinds.items()) for r in results if r.kinds]
    print(out)
    print("\n".join(verdicts + kinds))
    if args.profile:
        print_profiles(Path(args.profile), scales)
        return 0
    if args.watch_floor:
        return 0  # not a run of record: neither its plot nor its rows are kept
    png = plot(results, Path(args.plot) if not args.job_syncs else Path(args.plot).with_stem("b3_controller_job_syncs"))
    if not args.no_append:
        body = "\n".join([
            f"Control plane: tests/controlplane (Kubernetes {__import__('common').k8s_version()}, etcd, kwok), "
            + (f"kube-controller-manager --concurrent-job-syncs={args.job_syncs} (its default: 5), " if args.job_syncs
               else "")
            +
            f"{nodes} kwok bench nodes of {BENCH_NODE_PODS} pods; pods run {RUN_SECONDS}s (never finish in the "
            "window). Fresh namespace and operator process(es) per row; jobs created from 8 client threads; every job "
            "is 2 pods. Latency = create -> both pods Running; 'pods exist' = both pods created. Peak RSS = VmHWM, "
            "summed over the system's processes (trainer: trainer-controller-manager + JobSet controller). "
            "CPU ms/job and requests/job: the system's processes' CPU (utime + stime) and its API requests (the "
            "apiserver's audit log, by user agent) from the first creation to the last job Running, over the jobs. "
            f"Each row waited for a 1-minute load average under {args.quiet_load} (at most {args.quiet_wait:.0f} s); "
            "'load before' is where it started.",
            "", *(f"- {s.name}: {s.version_note()}" for s in systems), "",
            f"Whole run {total / 60:.1f} min. Load average (1/5/15 min) after each row: " + "; ".join(loads) + ".",
            "User agents counted: " + "; ".join(f"{s.name} {', '.join(s.user_agents)}" for s in systems) + ".",
            "", out, "", *verdicts, *kinds, *(f"- {n}" for n in notes),
            *(["", f"Plot: benchmarks/{png.name} (latency CDF per scale)."] if png else []),
        ])
        title = "B3 controller: Tandem vs Kubeflow Training Operator v1.9 and Trainer v2 (JobSet)"
        if args.job_syncs:
            title += f", Job controller with {args.job_syncs} syncs"
        append_results(title, body,
                       "benchmarks/b3_controller.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
