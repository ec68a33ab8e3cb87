"""A real Kubernetes control plane on 127.0.0.1 for Tandem's cluster tests.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler come from the
upstream Kubernetes Go modules at the version pinned in tests/controlplane/go.mod
(one multi-call binary, built and cached by build.sh); kwok plays the nodes and
moves pods through Pending -> Running -> Succeeded/Failed (stages in kwok/stages.yaml).

    from tests.controlplane.cluster import ControlPlane

    with ControlPlane() as cp:
        cp.kubectl("get", "nodes")
        # cp.kubeconfig, cp.server, cp.bin_dir

For a developer::

    python -m tests.controlplane.cluster up      # prints `export KUBECONFIG=...`, Ctrl-C stops it

Every component runs in its own process group, with PR_SET_PDEATHSIG so that it is
killed when the Python process that started it dies, even by SIGKILL; stop() is also
registered with atexit and on SIGTERM/SIGHUP, so nothing is left running.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Sequence

from tandem._sys.lifetime import die_with_parent
from tandem._sys.ports import free_ports

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"
STAGES = HERE / "kwok" / "stages.yaml"

SERVICE_CIDR = "10.0.0.0/24"
#: The apiserver's audit policy: list and watch requests for the kinds the operator watches as
#: children, by clients with the admin credentials (the operator under test, kubectl), so that a
#: test can read what each request asked for (its requestURI: labelSelector and all). Small on
#: purpose: the components' own watches and every write are left out.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:masters"]
  verbs: ["list", "watch"]
  resources:
  - {group: "", resources: ["pods", "services"]}
  - {group: "batch", resources: ["jobs"]}
- level: None
"""
SERVICE_IP = "10.0.0.1"

# Fake nodes: plenty of room, 8 GPUs each, labelled like a GPU node pool.
DEFAULT_NODES = 4
NODE_CPU = "64"
NODE_MEMORY = "512Gi"
NODE_PODS = "110"
NODE_GPUS = "8"
NODE_LABELS = {
    "type": "kwok",
    "tandem.dev/kwok": "true",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "kwok-fake-gpu",
    "nvidia.com/gpu.count": NODE_GPUS,
}


NODE_RESOURCES = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS, "nvidia.com/gpu": NODE_GPUS,
                  "ephemeral-storage": "1Ti"}
#: Labels every node of the control plane has besides NODE_LABELS.
AGENT_LABELS = {"kubernetes.io/role": "agent", "node-role.kubernetes.io/agent": ""}


def kwok_node(name: str, labels: Mapping[str, str] | None = None, resources: Mapping[str, str] | None = None,
              taints: Sequence[Mapping[str, str]] = ()) -> dict:
    """A Node that kwok plays: by default one of this control plane's GPU nodes."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {**(NODE_LABELS | AGENT_LABELS if labels is None else labels), "kubernetes.io/hostname": name,
                       "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
        },
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {"allocatable": dict(resources or NODE_RESOURCES), "capacity": dict(resources or NODE_RESOURCES)},
    }


class BuildError(RuntimeError):
    """build.sh failed (a compile error, a missing module, ...)."""


class GoMissing(BuildError):
    """No Go toolchain and nothing cached: the control plane cannot be built here."""


class StartError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


class KubectlError(subprocess.CalledProcessError):
    """A failed ``ControlPlane.kubectl(...)``; unlike CalledProcessError, says what kubectl said."""

    def __str__(self) -> str:
        args = self.cmd[3:] if isinstance(self.cmd, list) else self.cmd  # drop kubectl --kubeconfig X
        return f"kubectl {' '.join(map(str, args))} exited {self.returncode}: {(self.stderr or '').strip()[-3000:]}"


# ---------------------------------------------------------------------------- build


def build(env: dict[str, str] | None = None) -> Path:
    """Run build.sh (a no-op when the binaries are cached) and return the bin dir."""
    proc = subprocess.run(
        ["bash", str(BUILD_SH)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode == 3:
        raise GoMissing(proc.stderr.strip() or "no Go toolchain")
    if proc.returncode != 0:
        raise BuildError(
            f"tests/controlplane/build.sh failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise BuildError("build.sh printed no bin dir")
    return Path(lines[-1].strip())


# ---------------------------------------------------------------------------- processes

def _child_setup(parent: int) -> Callable[[], None]:
    """preexec_fn: die with the parent (Linux), in a process group of our own."""

    def setup() -> None:
        os.setpgid(0, 0)
        if not die_with_parent(parent):  # the parent died between fork and prctl
            os._exit(1)

    return setup


class _Component:
    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str]):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(os.getpid()),
            env=env,
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close_log(self) -> None:
        try:
            self._log.close()
        except OSError:
            pass


WORKDIR_PREFIX = "tandem-controlplane-"


def _remove_stale_workdirs() -> None:
    """Remove temporary workdirs left by control planes whose Python process was killed
    (SIGKILL leaves no chance to clean up; PR_SET_PDEATHSIG took the components down)."""
    for d in Path(tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


# ---------------------------------------------------------------------------- PKI


def _issue(directory: Path, stem: str, subject: str, *ext: str,
           ca: tuple[Path, Path] | None = None) -> tuple[Path, Path]:
    """directory/stem.crt and .key: a certificate (ECDSA P-256, 30 days) with the given
    subject and extensions, signed by `ca` (crt, key), or self-signed when `ca` is None."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise StartError("the openssl command is needed to make the control plane's certificates")
    cnf = directory / "openssl.cnf"
    if not cnf.exists():
        cnf.write_text("[req]\ndistinguished_name = dn\n[dn]\n")
    crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    argv = [openssl, "req", "-config", str(cnf), "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(crt), "-subj", subject, "-days", "30"]
    if ca is not None:
        argv += ["-CA", str(ca[0]), "-CAkey", str(ca[1])]
    for e in ext:
        argv += ["-addext", e]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StartError(f"openssl failed making {stem}: {proc.stderr[-2000:]}")
    key.chmod(0o600)
    return crt, key


LEAF_EXT = ("basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment")
CLIENT_EXT = (*LEAF_EXT, "extendedKeyUsage=clientAuth")


def _pki(directory: Path, host_address: str = "127.0.0.1") -> dict[str, Path]:
    """CA, serving and client certificates and the service-account key (ECDSA P-256),
    made with the openssl CLI (OpenSSL 3: `req -x509 -CA`), a few milliseconds each."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise StartError("the openssl command is needed to make the control plane's certificates")
    out: dict[str, Path] = {}

    def req(stem: str, subject: str, *ext: str, ca: bool = False) -> None:
        signer = None if ca else (out["ca.crt"], out["ca.key"])
        out[f"{stem}.crt"], out[f"{stem}.key"] = _issue(directory, stem, subject, *ext, ca=signer)

    req("ca", "/CN=tandem-test-ca", "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,digitalSignature,keyCertSign,cRLSign", "subjectKeyIdentifier=hash",
        ca=True)
    sans = ",".join(
        [f"DNS:{d}" for d in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                              "kubernetes.default.svc.cluster.local")]
        + [f"IP:{i}" for i in dict.fromkeys(("127.0.0.1", host_address, SERVICE_IP))]
    )
    req("apiserver", "/CN=kube-apiserver", *LEAF_EXT, "extendedKeyUsage=serverAuth", f"subjectAltName={sans}")
    client = CLIENT_EXT
    req("admin", "/O=system:masters/CN=tandem-admin", *client)
    req("controller-manager", "/CN=system:kube-controller-manager", *client)
    req("scheduler", "/CN=system:kube-scheduler", *client)
    # kwok updates the status of every node and pod it plays: an admin identity, as kwokctl does.
    req("kwok", "/O=system:masters/CN=kwok-controller", *client)
    req("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", *client)

    # Service-account token signing key; its public half verifies the tokens.
    out["sa.key"], out["sa.pub"] = directory / "sa.key", directory / "sa.pub"
    for argv in (
        [openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(out["sa.key"])],
        [openssl, "pkey", "-in", str(out["sa.key"]), "-pubout", "-out", str(out["sa.pub"])],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StartError(f"openssl failed making the service-account key: {proc.stderr[-2000:]}")
    out["sa.key"].chmod(0o600)
    return out


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tandem", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "tandem", "context": {"cluster": "tandem", "user": user}}],
        "current-context": "tandem",
        "preferences": {},
    }
    # JSON is YAML: no PyYAML needed here.
    path.write_text(json.dumps(cfg, indent=2))
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------- control plane

_live: set[ControlPlane] = set()
_handlers_installed = False
_handlers_lock = threading.Lock()


def _stop_all() -> None:
    for cp in list(_live):
        try:
            cp.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _install_exit_handlers() -> None:
    """atexit + SIGTERM/SIGHUP: stop every live control plane, then die as asked."""
    global _handlers_installed
    with _handlers_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            _stop_all()
            if callable(previous):
                previous(signum, frame)
                return
            if previous == signal.SIG_IGN:
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on 127.0.0.1.

    Attributes (valid after start()): ``kubeconfig`` (path of an admin kubeconfig, client
    certificate in group system:masters), ``server`` (https URL), ``bin_dir`` (the cached
    binaries), ``workdir`` (certificates, configs, logs/ of every component).
    ``issue_kubeconfig`` gives further identities (a real node's kubelet, kube-proxy, CoreDNS).
    """

    def __init__(
        self,
        nodes: int = DEFAULT_NODES,
        workdir: str | os.PathLike | None = None,
        keep_workdir: bool = False,
        bin_dir: str | os.PathLike | None = None,
        start_timeout: float = 120.0,
        verbosity: int = 0,
        host_address: str = "127.0.0.1",
        audit_policy: str = AUDIT_POLICY,
        controller_manager_args: Sequence[str] = (),
    ):
        self.nodes = nodes
        #: Flags added to kube-controller-manager's (a benchmark's setting of a controller's concurrency).
        self.controller_manager_args = list(controller_manager_args)
        #: What the apiserver's audit log records (AUDIT_POLICY unless a benchmark counts more).
        self.audit_policy = audit_policy
        # Where kube-apiserver listens and what it advertises. 127.0.0.1 for the kwok-only
        # tiers; a real node's pods cannot reach that, so the e2e tier passes the node's
        # bridge address (tests/controlplane/node.py), and the `kubernetes` Service then
        # gets that address as its endpoint.
        self.host_address = host_address
        self._workdir_arg = Path(workdir) if workdir else None
        self.keep_workdir = keep_workdir
        self.bin_dir: str | None = str(bin_dir) if bin_dir else None
        self.start_timeout = start_timeout
        self.verbosity = verbosity
        self.workdir: str | None = None
        self.kubeconfig: str | None = None
        self.server: str | None = None
        self.ports: dict[str, int] = {}
        self.components: list[_Component] = []
        self.timings: dict[str, float] = {}
        self._lock = threading.RLock()
        self._stopped = True

    # -- public API -----------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.components}

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float | None = 120) -> subprocess.CompletedProcess:
        """Run kubectl (built from the same Kubernetes release) against this control plane.

        With check (the default) a non-zero exit raises KubectlError, a CalledProcessError
        whose message carries kubectl's stderr."""
        if not self.kubeconfig:
            raise RuntimeError("control plane not started")
        proc = subprocess.run(
            [self._kubectl_bin(), "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def issue_kubeconfig(self, name: str, subject: str) -> Path:
        """A kubeconfig in the workdir for a new client identity (`subject`, e.g.
        ``/O=system:nodes/CN=system:node:n1``) with a certificate signed by this control
        plane's CA; for components started beside it, such as a real node's kubelet."""
        if not self.workdir or not self.server:
            raise RuntimeError("control plane not started")
        pki_dir = Path(self.workdir) / "pki"
        crt, key = _issue(pki_dir, name, subject, *CLIENT_EXT,
                          ca=(self._pki["ca.crt"], self._pki["ca.key"]))
        return _kubeconfig(Path(self.workdir) / f"{name}.kubeconfig", self.server,
                           self._pki["ca.crt"], crt, key, name)

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log (JSON lines; self.audit_policy says what it records)."""
        if not self.workdir:
            raise RuntimeError("control plane not started")
        return Path(self.workdir) / "logs" / "audit.log"

    @property
    def ca_cert(self) -> Path:
        """The cluster CA's certificate (it signs every client and serving certificate)."""
        return self._pki["ca.crt"]

    def start(self) -> ControlPlane:
        with self._lock:
            if not self._stopped:
                return self
            t0 = time.monotonic()
            if self.bin_dir is None:
                self.bin_dir = str(build())
            self.timings["build"] = time.monotonic() - t0
            _install_exit_handlers()
            for attempt in range(3):
                _live.add(self)
                self._stopped = False
                self.components = []
                try:
                    self._start(t0)
                    return self
                except StartError as e:
                    # Free ports are picked, then bound by the components: another process
                    # may take one in between. Try again with new ports.
                    retry = "address already in use" in str(e) and attempt < 2
                    self.stop(keep_workdir=not retry)
                    if not retry:
                        raise StartError(f"{e}\n(all logs kept in {self.workdir}/logs)") from e
                except BaseException:
                    self.stop(keep_workdir=True)
                    raise
            return self  # pragma: no cover

    def stop(self, keep_workdir: bool | None = None) -> None:
        """Stop every component (SIGTERM, then SIGKILL after a grace period) and clean up."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            _live.discard(self)
            for comp in reversed(self.components):
                comp.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for comp in reversed(self.components):
                try:
                    comp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            for comp in self.components:
                # Kill the whole group too: nothing a component forked may outlive it.
                comp.signal_group(signal.SIGKILL)
                try:
                    comp.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    pass
                comp.close_log()
            keep = self.keep_workdir if keep_workdir is None else keep_workdir
            if self.workdir and not keep and self._workdir_arg is None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    # -- fault injection (tests/cluster/test_chaos.py) ---------------------------------

    def component(self, name: str) -> _Component:
        """The running component called `name` (etcd, kube-apiserver, kube-controller-manager,
        kube-scheduler, kwok)."""
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(f"no component {name!r}; have {[c.name for c in self.components]}")

    def stop_component(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop one component (its whole process group) and wait until it has exited.
        The others keep running; start_component(name) brings it back with the same flags."""
        with self._lock:
            comp = self.component(name)
            comp.signal_group(sig)
            try:
                comp.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                comp.signal_group(signal.SIGKILL)
                comp.proc.wait(timeout=5)
            comp.signal_group(signal.SIGKILL)  # anything it forked
            comp.close_log()

    def start_component(self, name: str, timeout: float = 60.0) -> _Component:
        """Start a stopped component again with the same argv (same ports, same data dir:
        etcd keeps the cluster's state) and wait until it is healthy again."""
        with self._lock:
            old = self.component(name)
            if old.alive():
                raise RuntimeError(f"{name} is still running (pid {old.pid}); stop_component first")
            env = dict(os.environ)
            env.pop("KUBECONFIG", None)
            deadline = time.monotonic() + timeout
            for _attempt in range(20):
                comp = _Component(name, old.argv, old.log_path, env)
                self.components[self.components.index(old)] = comp
                try:
                    self._wait_healthy(comp, deadline)
                    return comp
                except StartError as e:
                    # The old process's port may linger a moment: try again until the deadline.
                    if "address already in use" not in str(e) or time.monotonic() > deadline:
                        raise
                    old = comp
                    time.sleep(0.5)
            raise StartError(f"{name} did not start again")  # pragma: no cover

    def restart_component(self, name: str, sig: int = signal.SIGTERM, down_seconds: float = 0.0,
                          timeout: float = 60.0) -> _Component:
        """stop_component, stay down `down_seconds`, start_component."""
        self.stop_component(name, sig)
        if down_seconds:
            time.sleep(down_seconds)
        return self.start_component(name, timeout)

    def restart_apiserver(self, sig: int = signal.SIGTERM, down_seconds: float = 0.0,
                          timeout: float = 60.0) -> _Component:
        """Restart only kube-apiserver, same flags and port; etcd keeps the data, clients
        (controller-manager, scheduler, kwok, operators) see their connections and watches drop."""
        return self.restart_component("kube-apiserver", sig, down_seconds, timeout)

    def _wait_healthy(self, comp: _Component, deadline: float) -> None:
        p = self.ports
        admin = (self._pki["admin.crt"], self._pki["admin.key"])
        checks: dict[str, Callable[[], bool]] = {
            "etcd": lambda: json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{p['etcd']}/health", timeout=2).read()).get("health") == "true",
            "kube-apiserver": lambda: self._https_ok(f"{self.server}/readyz", admin, True),
            "kube-controller-manager": lambda: self._https_ok(
                f"https://127.0.0.1:{p['controller-manager']}/healthz", None, False),
            "kube-scheduler": lambda: self._https_ok(f"https://127.0.0.1:{p['scheduler']}/healthz", None, False),
        }
        check = checks.get(comp.name, lambda: True)
        self._wait(f"{comp.name} healthy again", comp, check, deadline, 0.2)
        if comp.name == "kwok":
            time.sleep(1.0)
            if not comp.alive():
                raise StartError(f"kwok exited with {comp.proc.returncode}:\n{comp.log_tail()}")

    # -- internals ------------------------------------------------------------------

    def _kubectl_bin(self) -> str:
        assert self.bin_dir
        return str(Path(self.bin_dir) / "kubectl")

    def _spawn(self, name: str, argv: list[str]) -> _Component:
        assert self.workdir
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        comp = _Component(name, argv, Path(self.workdir) / "logs" / f"{name}.log", env)
        self.components.append(comp)
        return comp

    def _wait(self, what: str, comp: _Component | None, check: Callable[[], bool],
              deadline: float, interval: float = 0.1) -> None:
        last_err: BaseException | None = None
        while time.monotonic() < deadline:
            if comp is not None and not comp.alive():
                raise StartError(
                    f"{comp.name} exited with {comp.proc.returncode} while waiting for {what}; "
                    f"log {comp.log_path}:\n{comp.log_tail()}"
                )
            try:
                if check():
                    return
            except Exception as e:  # noqa: BLE001 - keep polling
                last_err = e
            time.sleep(interval)
        tail = f"\n{comp.name} log {comp.log_path}:\n{comp.log_tail()}" if comp else ""
        raise StartError(f"timed out waiting for {what} (last error: {last_err!r}){tail}")

    def _https_ok(self, url: str, client: tuple[Path, Path] | None, verify: bool) -> bool:
        ctx = ssl.create_default_context(cafile=str(self._pki["ca.crt"])) if verify else ssl._create_unverified_context()
        if client:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError:
            return False

    def _start(self, t0: float) -> None:
        assert self.bin_dir
        bin_dir = Path(self.bin_dir)
        if self._workdir_arg is not None:
            self._workdir_arg.mkdir(parents=True, exist_ok=True)
            self.workdir = str(self._workdir_arg)
        else:
            _remove_stale_workdirs()
            self.workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
        wd = Path(self.workdir)
        (wd / "owner.pid").write_text(str(os.getpid()))
        shutil.rmtree(wd / "etcd", ignore_errors=True)  # a fresh cluster, even in a reused --workdir
        (wd / "logs").mkdir(exist_ok=True)
        (wd / "pki").mkdir(exist_ok=True)
        pki = self._pki = _pki(wd / "pki", self.host_address)
        (wd / "audit-policy.yaml").write_text(self.audit_policy)

        names = ["etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=False))
        p = self.ports
        self.server = f"https://{self.host_address}:{p['apiserver']}"
        kc = {
            who: str(_kubeconfig(wd / f"{who}.kubeconfig", self.server, pki["ca.crt"],
                                 pki[f"{who}.crt"], pki[f"{who}.key"], who))
            for who in ("admin", "controller-manager", "scheduler", "kwok")
        }
        deadline = t0 + self.timings["build"] + self.start_timeout
        v = str(self.verbosity)
        k8s = str(bin_dir / "tandem-k8s")

        # etcd ---------------------------------------------------------------------
        etcd = self._spawn("etcd", [
            k8s, "etcd",
            f"--data-dir={wd / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=8589934592",
        ])
        self._wait(
            "etcd /health", etcd,
            lambda: json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{p['etcd']}/health", timeout=2).read()).get("health") == "true",
            deadline,
        )
        self.timings["etcd"] = time.monotonic() - t0

        # kube-apiserver ------------------------------------------------------------
        apiserver = self._spawn("kube-apiserver", [
            k8s, "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            f"--bind-address={self.host_address}",
            f"--advertise-address={self.host_address}",
            f"--secure-port={p['apiserver']}",
            f"--cert-dir={wd / 'pki'}",
            f"--tls-cert-file={pki['apiserver.crt']}",
            f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            f"--kubelet-client-certificate={pki['apiserver-kubelet-client.crt']}",
            f"--kubelet-client-key={pki['apiserver-kubelet-client.key']}",
            f"--service-account-key-file={pki['sa.pub']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,PodSecurity",
            "--allow-privileged=true",
            # 127.0.0.1 may not be an endpoint of the `kubernetes` Service; nothing in the
            # kwok tiers reaches the apiserver through that Service. A real node's pods do:
            # then the default (lease) reconciler publishes host_address as its endpoint.
            *(["--endpoint-reconciler-type=none"] if self.host_address == "127.0.0.1" else
              # kubectl logs/exec: dial a real kubelet at its node IP (its hostname resolves nowhere).
              ["--kubelet-preferred-address-types=InternalIP,Hostname"]),
            "--profiling=false",
            f"--audit-policy-file={wd / 'audit-policy.yaml'}",
            f"--audit-log-path={wd / 'logs' / 'audit.log'}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            f"--v={v}",
        ])
        admin = (pki["admin.crt"], pki["admin.key"])
        self._wait("kube-apiserver /readyz", apiserver,
                   lambda: self._https_ok(f"{self.server}/readyz", admin, True), deadline, 0.2)
        self.kubeconfig = kc["admin"]
        self.timings["apiserver"] = time.monotonic() - t0

        # kube-controller-manager, kube-scheduler, kwok ---------------------------------
        cm = self._spawn("kube-controller-manager", [
            k8s, "kube-controller-manager",
            f"--kubeconfig={kc['controller-manager']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['controller-manager']}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki['sa.key']}",
            f"--root-ca-file={pki['ca.crt']}",
            f"--cluster-signing-cert-file={pki['ca.crt']}",
            f"--cluster-signing-key-file={pki['ca.key']}",
            "--cluster-name=tandem",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            f"--v={v}",
            *self.controller_manager_args,
        ])
        sched = self._spawn("kube-scheduler", [
            k8s, "kube-scheduler",
            f"--kubeconfig={kc['scheduler']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['scheduler']}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            f"--v={v}",
        ])
        kwok = self._spawn("kwok", [
            str(bin_dir / "kwok"),
            f"--kubeconfig={kc['kwok']}",
            f"--config={STAGES}",
            # Only the fake nodes (created with this annotation): a real kubelet's node is
            # its own.
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{p['kwok']}",
            "--node-ip=127.0.0.1",
            "--cidr=10.244.0.0/16",
            "--node-lease-duration-seconds=40",
            f"--v={'DEBUG' if self.verbosity > 2 else 'INFO'}",
        ])
        self._create_nodes()
        self._wait("kube-controller-manager /healthz", cm,
                   lambda: self._https_ok(f"https://127.0.0.1:{p['controller-manager']}/healthz", None, False),
                   deadline, 0.2)
        self._wait("kube-scheduler /healthz", sched,
                   lambda: self._https_ok(f"https://127.0.0.1:{p['scheduler']}/healthz", None, False),
                   deadline, 0.2)
        self._wait(f"{self.nodes} kwok nodes Ready", kwok, self._nodes_ready, deadline, 0.3)
        # Pods need the `default` ServiceAccount, made by the controller-manager.
        self._wait("ServiceAccount default/default", cm,
                   lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default",
                                        check=False).returncode == 0,
                   deadline, 0.3)
        self.timings["ready"] = time.monotonic() - t0
        with open(wd / "env", "w") as f:
            f.write(f"export KUBECONFIG={self.kubeconfig}\n")

    def _create_nodes(self) -> None:
        items = [kwok_node(f"kwok-node-{i}") for i in range(self.nodes)]
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        self.kubectl("apply", "-f", "-", input=doc)

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        nodes = json.loads(out.stdout)["items"]
        ready = [
            n for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in n.get("status", {}).get("conditions", []))
        ]
        return len(ready) >= self.nodes


# ---------------------------------------------------------------------------- CLI


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane.cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a control plane and wait for Ctrl-C")
    up.add_argument("--nodes", type=int, default=DEFAULT_NODES)
    up.add_argument("--workdir", help="keep certificates, configs and logs here")
    up.add_argument("-v", "--verbosity", type=int, default=0)
    up.add_argument("--real-node", action="store_true",
                    help="also a real kubelet node (root; tests/controlplane/node.py, docs/e2e.md)")
    up.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS",
                    help="with --real-node: wait this long for another run's node to stop "
                         "(default: fail at once)")
    sub.add_parser("build", help="build (or find cached) binaries and print the bin dir")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        print(build())
        return 0

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.real_node:
        from tests.controlplane import node as real

        with real.real_cluster(nodes=args.nodes, verbosity=args.verbosity, workdir=args.workdir,
                               lock_timeout=args.lock_timeout) as (cp, node):
            print(f"# real node {real.NODE_NAME} Ready in {node.timings['ready']:.1f}s; its images: "
                  f"ctr --address {real.CONTAINERD_SOCK} -n {real.K8S_NAMESPACE} images ls", file=sys.stderr)
            return _serve(cp, stop, node.components)

    cp = ControlPlane(nodes=args.nodes, workdir=args.workdir, verbosity=args.verbosity)
    try:
        cp.start()
    except KeyboardInterrupt:
        cp.stop()
        return 130
    try:
        return _serve(cp, stop, [])
    finally:
        cp.stop()


def _serve(cp: ControlPlane, stop: threading.Event, extra: list[_Component]) -> int:
    """Print how to reach the cluster, then wait for Ctrl-C or a component's death."""
    print(f"export KUBECONFIG={cp.kubeconfig}")
    print(f"# server {cp.server}; bin dir {cp.bin_dir}; logs {cp.workdir}/logs", file=sys.stderr)
    print(f"# kubectl: {cp.bin_dir}/kubectl; ready in {cp.timings['ready']:.1f}s", file=sys.stderr)
    print("# pids " + json.dumps({**cp.pids, **{c.name: c.pid for c in extra}}), flush=True)
    print("# Ctrl-C to stop", file=sys.stderr, flush=True)
    components = [*cp.components, *extra]
    while not stop.wait(1.0):
        dead = [c.name for c in components if not c.alive()]
        if dead:
            print(f"# component(s) exited: {', '.join(dead)}", file=sys.stderr)
            for c in components:
                if c.name in dead:
                    print(c.log_tail(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
