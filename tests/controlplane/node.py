"""A real kubelet node beside the kwok nodes, for the e2e tier (docs/e2e.md).

What runs, all as host processes started here (process groups, PR_SET_PDEATHSIG, as the
control plane's components):

- containerd (Debian's package, hack/install-node-deps.sh) with private paths: root
  ``/var/lib/tandem-e2e/containerd`` (kept between runs: imported images are the cache),
  state and socket under ``/run/tandem-e2e``, runc state under ``/run/tandem-e2e/runc``.
  ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, and the CRI's -998 for the
  sandbox would make runc fail.
- CNI: Debian's bridge + host-local (+ portmap, loopback) on bridge ``tandem-e2e0``, pods in
  ``POD_CIDR``; the bridge's address ``HOST_IP`` is the host as pods see it. One iptables
  rule drops whatever pods send out of the bridge to another interface: pods reach this
  machine and each other, nothing else. That rule sits in the mangle table, ahead of every
  filter-table ACCEPT (kube-proxy's, the policy enforcer's).
- NetworkPolicy enforcement: tandem-netpol (kube-router's policy controller alone, built by
  build.sh from its Go module) as a host process, on the bridged traffic (the
  bridge-nf-call-iptables sysctl makes it pass iptables): iptables chains ``KUBE-ROUTER-*``,
  ``KUBE-NWPLCY-*``, ``KUBE-POD-FW-*`` and ipsets ``KUBE-SRC-*`` / ``KUBE-DST-*``. The bridge
  plugin alone enforces nothing; with this the policies Tandem renders are tested.
- kube-apiserver (the control plane's) listens on ``HOST_IP``; the ``kubernetes`` Service's
  endpoint is ``HOST_IP:<port>``, so in-cluster clients (the operator pod) work.
- kubelet and kube-proxy (iptables mode) from the tandem-k8s multi-call binary, the same
  Kubernetes release as the control plane. Node ``NODE_NAME``, label ``tandem.dev/node=real``,
  taint ``tandem.dev/real-node=true:NoSchedule``: only pods that tolerate it land here.
- CoreDNS (tests/controlplane/coredns) on ``HOST_IP:53``, the kubelet's clusterDNS: answers
  cluster.local names as a cluster's DNS does and NXDOMAIN for everything else.
- The sandbox image ``PAUSE_IMAGE``: the static tandem-pause program in a one-layer image,
  imported into containerd under the name its ``sandbox_image`` asks for.

Only one real node can run on a machine (fixed bridge, port 53, kube-proxy's global
chains): a lock file says who holds it. ``stop()`` leaves nothing behind: containers,
sandboxes and their network namespaces, mounts under the node's directories, the bridge,
the iptables chains of kubelet, kube-proxy, CNI and the policy enforcer, its ipsets, the
kubepods cgroups; it checks that
(``host_leftovers()``) before it releases the lock. A run killed with SIGKILL leaves the
shims and pods running: the next start's ``prepare()`` removes them and all they hold
(tests/e2e/test_crash_cleanup.py).

    from tests.controlplane.node import real_cluster

    with real_cluster() as (cp, node):
        node.load_image(Path("~/.cache/tandem/images/operator.oci.tar"))
        cp.kubectl("apply", "-f", "pod.yaml")
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from tandem._sys.ports import free_port
from tests.controlplane import oci
from tests.controlplane.cluster import SERVICE_CIDR, ControlPlane, StartError, _Component, build

STATE_DIR = Path("/var/lib/tandem-e2e")
RUN_DIR = Path("/run/tandem-e2e")
LOCK_FILE = Path("/run/tandem-e2e.lock")
CONTAINERD_ROOT = STATE_DIR / "containerd"
KUBELET_ROOT = STATE_DIR / "kubelet"
POD_LOGS = STATE_DIR / "pod-logs"
CONTAINERD_SOCK = RUN_DIR / "containerd.sock"
CNI_BIN = Path("/usr/lib/cni")

BRIDGE = "tandem-e2e0"
CNI_NETWORK = "tandem-e2e"
POD_CIDR = "10.250.0.0/24"
HOST_IP = "10.250.0.1"
CLUSTER_DOMAIN = "cluster.local"

NODE_NAME = "tandem-e2e-node"
NODE_LABEL = "tandem.dev/node=real"
NODE_TAINT = {"key": "tandem.dev/real-node", "value": "true", "effect": "NoSchedule"}
PAUSE_IMAGE = "tandem.dev/pause:1"
PROBE_IMAGE = "tandem.dev/probe:1"
K8S_NAMESPACE = "k8s.io"  # containerd namespace the CRI uses

CACHE_DIR = Path(os.environ.get("TANDEM_CACHE", Path.home() / ".cache" / "tandem")) / "node"

# What pods send out of the bridge to any other interface is dropped: in the mangle table, whose
# FORWARD chain runs before the filter table's, where kube-proxy and the policy enforcer ACCEPT.
_EGRESS_TABLE = "mangle"
_EGRESS_RULE = ["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-m", "comment",
                "--comment", CNI_NETWORK, "-j", "DROP"]


class NodeBusy(StartError):
    """Another real node already runs on this machine."""


def _run(*argv: str, check: bool = True, input: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise StartError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def _write_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name.replace(".", "/")
    if path.exists() and path.read_text().strip() != value:
        path.write_text(value)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------- images


def sandbox_archives(bin_dir: Path) -> dict[str, Path]:
    """OCI archives of the pause and probe images, written once per binary (the archive's
    name carries the binary's build directory, so a rebuilt binary makes a new one)."""
    key = bin_dir.parent.name
    out = {}
    for name, binary, image in (("pause", "tandem-pause", PAUSE_IMAGE),
                                ("probe", "tandem-probe", PROBE_IMAGE)):
        path = CACHE_DIR / f"{name}-{key}.oci.tar"
        if not path.exists():
            oci.write_image(path, image, {f"/{binary}": bin_dir / binary}, [f"/{binary}"])
        out[image] = path
    return out


# ---------------------------------------------------------------------------- configs


def containerd_config() -> str:
    return f'''version = 2
root = "{CONTAINERD_ROOT}"
state = "{RUN_DIR / 'containerd'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{CONTAINERD_SOCK}"

[ttrpc]
  address = "{RUN_DIR / 'containerd.ttrpc.sock'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{STATE_DIR / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true  # pods' network namespaces under RUN_DIR, not /run/netns
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{RUN_DIR / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{RUN_DIR / 'net.d'}"
    max_conf_num = 1
'''


def cni_config() -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the machine: no masquerading needed
                "hairpinMode": True,  # a pod reaching itself through a Service IP
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": HOST_IP}]],
                    # A default route, as on any cluster (Ray and others find their own
                    # address by "connecting" a UDP socket); the FORWARD rule drops the rest.
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(RUN_DIR / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(port: int, healthz_port: int, ca: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": HOST_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        # The apiserver's kubelet client certificate (kubectl logs/exec) is signed by the CA.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCK}",
        "clusterDNS": [HOST_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods get only cluster DNS, not this machine's resolvers
        "failSwapOn": False,
        "enforceNodeAllocatable": [],
        "evictionHard": {},  # empty, not unset: no evictions on a small CI disk
        "localStorageCapacityIsolation": False,
        "imageGCHighThresholdPercent": 100,  # never delete the imported images
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "podLogsDir": str(POD_LOGS),
        "registerWithTaints": [NODE_TAINT],
        "rotateCertificates": False,
        "maxPods": 110,
    }


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "bindAddress": HOST_IP,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts only on the bridge address, and no route_localnet sysctl.
        "nodePortAddresses": [f"{HOST_IP}/32"],
        "iptables": {"localhostNodePorts": False},
        # 0 = leave this machine's conntrack sysctls as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }


def corefile(kubeconfig: Path, health_port: int, ready_port: int) -> str:
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {HOST_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} tandem
        pods insecure
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {HOST_IP}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def user_rbac(user: str, rules: list[dict]) -> dict:
    """A ClusterRole of `rules` bound to the client-certificate user `user`, both named after it:
    what a node component signing in as that user may do."""
    rbac = "rbac.authorization.k8s.io"
    return {
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": {"name": user}, "rules": rules},
            {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": user},
             "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": user},
             "subjects": [{"apiGroup": rbac, "kind": "User", "name": user}]},
        ],
    }


# CoreDNS's permissions, as the coredns Helm chart grants them.
COREDNS_RBAC = user_rbac("tandem:coredns", [
    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
])
# The policy enforcer's permissions: what kube-router's policy controller reads.
NETPOL_RBAC = user_rbac("tandem:netpol", [
    {"apiGroups": [""], "resources": ["pods", "namespaces", "nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch"]},
])
#: The enforcer's top-level chain for forwarded traffic (the bridged pod-to-pod packets).
NETPOL_CHAIN = "KUBE-ROUTER-FORWARD"


# ---------------------------------------------------------------------------- cleanup


def _mounts_under(*roots: Path) -> list[str]:
    """Mount points below any of `roots`, deepest first (from /proc/self/mountinfo)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            out.append(point)
    return sorted(set(out), key=lambda p: p.count("/"), reverse=True)


def _unmount_all(*roots: Path) -> list[str]:
    left = []
    for point in _mounts_under(*roots):
        if _run("umount", point, check=False).returncode != 0:
            if _run("umount", "-l", point, check=False).returncode != 0:
                left.append(point)
    return left


def _iptables_cleanup() -> None:
    """Remove the chains of kubelet (KUBE-KUBELET-CANARY, KUBE-FIREWALL...), kube-proxy's
    leftovers (KUBE-*) and CNI's for this network, and the egress rule; nothing else."""
    for cmd in ("iptables", "ip6tables"):
        if not shutil.which(cmd):
            continue
        for table in (_EGRESS_TABLE, "filter"):  # filter: where a run of older code put it
            while _run(cmd, "-t", table, "-D", *_EGRESS_RULE, check=False).returncode == 0:
                pass
        save = _run(f"{cmd}-save", check=False).stdout
        table = None
        ours: dict[str, set[str]] = {}
        rules: list[tuple[str, str]] = []
        for line in save.splitlines():
            if line.startswith("*"):
                table = line[1:]
                ours.setdefault(table, set())
            elif line.startswith(":") and table:
                chain = line[1:].split()[0]
                if chain.startswith("KUBE-"):
                    ours[table].add(chain)
            elif line.startswith("-A ") and table:
                rules.append((table, line))
        # CNI chains whose rules name this network (portmap's per-container chains).
        for table, line in rules:
            chain = line.split()[1]
            if chain.startswith("CNI-") and CNI_NETWORK in line:
                ours[table].add(chain)
        for table, line in rules:
            chain = line.split()[1]
            m = re.search(r"-j (\S+)", line)
            if chain not in ours[table] and m and m.group(1) in ours[table]:
                _run(cmd, "-t", table, *shlex.split(line.replace("-A ", "-D ", 1)), check=False)
        for table, chains in ours.items():
            for chain in chains:
                _run(cmd, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(cmd, "-t", table, "-X", chain, check=False)


# The ipsets of the policy enforcer (kube-router's prefixes: policy sets and the temporary sets
# of its atomic swaps; "inet6:" before them for IPv6). Nothing else on a test machine uses them.
_IPSET_NAME = re.compile(r"^(inet6:)?(KUBE-SRC-|KUBE-DST-|TMP-)[A-Z2-7]{16}$")


def _ipsets() -> list[str]:
    if not shutil.which("ipset"):
        return []
    return [n for n in _run("ipset", "list", "-n", check=False).stdout.split() if _IPSET_NAME.match(n)]


def _ipset_cleanup() -> None:
    """Destroy the enforcer's ipsets; after _iptables_cleanup(), as a set in use by a rule
    cannot be destroyed."""
    for name in _ipsets():
        _run("ipset", "destroy", name, check=False)


def _kill_orphaned_shims() -> list[int]:
    """SIGKILL the containerd shims of this node's containerd, and every process below them
    (the pods' processes), left running when a run was killed before it could stop them.
    They are recognised by the socket path in their command line, which is this node's own.

    (tandem.backends.proctree walks /proc the same way; these tests do not import the
    package under test for their own plumbing.)"""
    parents: dict[int, int] = {}
    shims = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and \
                str(CONTAINERD_SOCK).encode() in cmdline:
            shims.append(int(entry.name))
    doomed, queue = [], list(shims)
    while queue:
        pid = queue.pop()
        doomed.append(pid)
        queue.extend(child for child, parent in parents.items() if parent == pid)
    return _kill(doomed)


def _kill(pids: list[int]) -> list[int]:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def process_alive(pid: int) -> bool:
    """True while `pid` runs or is still exiting; False once it is gone or a zombie (it then
    holds no memory, mounts or namespaces, only its pid until its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for killed processes to have exited: until then they hold their mounts, network
    namespaces and cgroups, and the unmounting and removal after this would find them busy."""
    deadline = time.monotonic() + timeout
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _remove_kubepods_cgroups() -> None:
    """The kubelet's cgroupfs tree (/kubepods in every v1 hierarchy, or the unified one)."""
    for top in [*Path("/sys/fs/cgroup").glob("*/kubepods"), Path("/sys/fs/cgroup/kubepods")]:
        if not top.is_dir():
            continue
        dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts),
                      reverse=True)
        for d in [*dirs, top]:
            with contextlib.suppress(OSError):
                d.rmdir()


def pod_processes() -> list[int]:
    """Processes in the kubelet's cgroups (``/kubepods/...`` in any hierarchy): the pods'.
    A pod's process names nothing of the node in its command line; its cgroup gives it away."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_alive(int(entry.name)):
            with contextlib.suppress(OSError):
                for line in (entry / "cgroup").read_text().splitlines():
                    if line.split(":", 2)[-1].startswith("/kubepods"):
                        pids.append(int(entry.name))
                        break
    return pids


def host_leftovers() -> list[str]:
    """What a node left on this machine (empty once stop() has run): processes using its
    socket or directories (containerd, shims, runc, kubelet), the pods' processes, mounts, the
    bridge, iptables chains and rules, cgroups, dirs. Call it with the lock held (stop() does):
    while another run's node starts, its processes and bridge are not leftovers."""
    found = []
    markers = (str(CONTAINERD_SOCK).encode(), str(RUN_DIR).encode(), str(KUBELET_ROOT).encode())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and process_alive(int(entry.name)):
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if any(m in cmdline for m in markers):
                    argv = cmdline.replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"process {entry.name}: {argv[:200]}")
    found += [f"pod process {pid}" for pid in pod_processes()]
    found += [f"mount {m}" for m in _mounts_under(STATE_DIR, RUN_DIR)]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"bridge {BRIDGE}")
    for cmd in ("iptables-save", "ip6tables-save"):
        if shutil.which(cmd):
            for line in _run(cmd, check=False).stdout.splitlines():
                if re.match(r"^:KUBE-", line) or CNI_NETWORK in line:
                    found.append(f"{cmd}: {line}")
    found += [f"ipset {name}" for name in _ipsets()]
    found += [f"cgroup {d}" for d in Path("/sys/fs/cgroup").glob("*/kubepods")]
    found += [f"directory {d}" for d in (RUN_DIR, KUBELET_ROOT, POD_LOGS) if d.exists()]
    return found


# ---------------------------------------------------------------------------- the node


class RealNode:
    """containerd + kubelet + kube-proxy + CoreDNS on this machine, registered with a
    ControlPlane started with ``host_address=HOST_IP``.

    ``prepare()`` takes the machine-wide lock and makes the bridge (the apiserver binds
    its address, so the control plane starts after it); ``start(cp)`` starts the rest and
    waits for the node Ready and DNS serving; ``stop()`` removes everything. ``timings``
    records the seconds each phase took.
    """

    def __init__(self, bin_dir: str | os.PathLike | None = None, verbosity: int = 0,
                 start_timeout: float = 180.0, lock_timeout: float = 0.0):
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self.verbosity = verbosity
        self.start_timeout = start_timeout
        # How long to wait for another run's node to go away (0: fail at once with NodeBusy).
        self.lock_timeout = lock_timeout
        self.components: list[_Component] = []
        self.timings: dict[str, float] = {}
        self.logs_dir: Path | None = None
        self.cp: ControlPlane | None = None
        self._lock_fd: int | None = None
        # host_leftovers() as stop() found them after its cleanup, with the lock still held.
        self.leftovers: list[str] = []

    # -- lifecycle ------------------------------------------------------------------

    def prepare(self, lock_fd: int | None = None) -> RealNode:
        """Root check, lock, leftovers of a killed run, sysctls, bridge, egress rule.
        `lock_fd`: the lock, already held (take_lock()); this node releases it on stop()."""
        if os.geteuid() != 0:
            raise StartError("a real node needs root (containerd, CNI, iptables)")
        missing = [b for b in ("containerd", "ctr", "runc", "iptables", "ipset") if not shutil.which(b)]
        if missing or not (CNI_BIN / "bridge").exists():
            raise StartError(f"missing {missing or [str(CNI_BIN / 'bridge')]}: run "
                             "`sudo bash hack/install-node-deps.sh`")
        self._lock_fd = lock_fd if lock_fd is not None else take_lock(self.lock_timeout)
        t0 = time.monotonic()
        self._cleanup_host()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        for d in (CONTAINERD_ROOT, KUBELET_ROOT, POD_LOGS, RUN_DIR / "net.d", CACHE_DIR):
            d.mkdir(parents=True, exist_ok=True)
        _write_sysctl("net.ipv4.ip_forward", "1")
        # Pod -> Service IP -> pod on the same bridge needs bridged packets to see iptables.
        _write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{HOST_IP}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _run("iptables", "-t", _EGRESS_TABLE, "-I", *_EGRESS_RULE)
        (RUN_DIR / "net.d" / "10-tandem-e2e.conflist").write_text(json.dumps(cni_config(), indent=2))
        self.timings["prepare"] = time.monotonic() - t0
        return self

    def start(self, cp: ControlPlane) -> RealNode:
        if cp.host_address != HOST_IP:
            raise StartError(f"the control plane must listen on {HOST_IP} (ControlPlane(host_address=...))")
        if self._lock_fd is None:
            self.prepare()
        self.cp = cp
        self.bin_dir = self.bin_dir or Path(cp.bin_dir or build())
        assert cp.workdir
        self.logs_dir = Path(cp.workdir) / "logs"
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        try:
            self._start_containerd(deadline)
            self.timings["containerd"] = time.monotonic() - t0
            for archive in sandbox_archives(self.bin_dir).values():
                self.load_image(archive)
            self.timings["images"] = time.monotonic() - t0
            self._start_coredns(deadline)
            self.timings["coredns"] = time.monotonic() - t0
            self._start_kubelet(deadline)
            self._start_kube_proxy(deadline)
            self._wait("node Ready", self.component("kubelet"), self._node_ready, deadline, 0.5)
            self.timings["ready"] = time.monotonic() - t0
            self._start_netpol(deadline)
            self.timings["netpol"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the processes, then remove every trace: containers, sandboxes, netns,
        mounts, iptables chains, the bridge, cgroups, state; keep imported images.
        Does nothing unless this object holds the machine's lock (prepare()). What is still
        there afterwards, checked before the lock is released, is in ``self.leftovers``."""
        if self._lock_fd is None:
            return
        by_name = {c.name: c for c in self.components}
        for name in ("tandem-netpol", "kubelet", "kube-proxy", "coredns"):
            if name in by_name:
                self._stop_component(by_name[name])
        if "containerd" in by_name and by_name["containerd"].alive():
            self._remove_containers()
            self._stop_component(by_name["containerd"])
        self.components = []
        self._cleanup_host()
        # Checked before the lock goes: after it, another run's node may be starting.
        self.leftovers = host_leftovers()
        os.close(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> RealNode:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def component(self, name: str) -> _Component:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    # -- images ---------------------------------------------------------------------

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return _run(*_ctr_argv(*args), check=check, timeout=timeout)

    def images(self) -> dict[str, str]:
        """{image name: target digest} of what containerd holds for the kubelet."""
        out = {}
        for line in self.ctr("images", "ls").stdout.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 3:
                out[cols[0]] = cols[2]
        return out

    def load_image(self, archive: str | os.PathLike) -> list[str]:
        """Import an OCI archive or layout directory into containerd (the CRI's namespace),
        unpacked, so that pods with imagePullPolicy Never/IfNotPresent run it. A no-op when
        containerd already holds every image the archive names at the same digest.

        The versions it replaces are removed, every ref to them (the CRI adds `sha256:` ones),
        and garbage-collected at once: a re-tag alone leaves the old layers in containerd's
        store, and after a day of source changes that store had grown to 35 GB."""
        archive = Path(archive).expanduser()
        wanted = oci.archive_images(archive)
        have = self.images()
        if wanted and all(have.get(n) == d for n, d in wanted.items()):
            return list(wanted)
        replaced = {have[n] for n, d in wanted.items() if n in have and have[n] != d}
        if archive.is_dir():
            _import_layout(archive)
        else:
            self.ctr("images", "import", "--all-platforms", str(archive))
        stale = [ref for ref, digest in self.images().items() if digest in replaced]
        if stale:
            self.ctr("images", "rm", "--sync", *stale)
        return list(wanted)

    # -- processes ------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> _Component:
        assert self.logs_dir
        full_env = dict(os.environ)
        full_env.pop("KUBECONFIG", None)
        full_env.update(env or {})
        comp = _Component(name, argv, self.logs_dir / f"{name}.log", full_env)
        self.components.append(comp)
        return comp

    def _wait(self, what: str, comp: _Component | None, check: Callable[[], bool],
              deadline: float, interval: float = 0.2) -> None:
        assert self.cp
        self.cp._wait(what, comp, check, deadline, interval)

    @staticmethod
    def _stop_component(comp: _Component) -> None:
        comp.signal_group(signal.SIGTERM)
        try:
            comp.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        comp.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.proc.wait(timeout=5)
        comp.close_log()

    def _start_containerd(self, deadline: float) -> None:
        conf = RUN_DIR / "containerd.toml"
        conf.write_text(containerd_config())
        # A registry pull would leave this machine: send every one to a closed local port.
        no_pull = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                   "NO_PROXY": ""}
        comp = self._spawn("containerd", ["containerd", "--config", str(conf),
                                          "--log-level", "debug" if self.verbosity > 2 else "info"],
                           env=no_pull)
        self._wait("containerd", comp,
                   lambda: self.ctr("version", check=False, timeout=5).returncode == 0, deadline)
        # Containers of a run that was killed (its Python process and so its kubelet died,
        # containerd's shims lived on): the CRI reloads them; remove them before the kubelet.
        self._remove_containers()

    def _start_coredns(self, deadline: float) -> None:
        assert self.cp and self.bin_dir
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(COREDNS_RBAC))
        kc = self.cp.issue_kubeconfig("tandem-coredns", "/CN=tandem:coredns")
        health, ready = free_port(), free_port()
        conf = RUN_DIR / "Corefile"
        conf.write_text(corefile(kc, health, ready))
        comp = self._spawn("coredns", [str(self.bin_dir / "coredns"), "-conf", str(conf)])
        self._wait("CoreDNS /ready", comp, lambda: _http_ok(f"http://127.0.0.1:{ready}/ready"),
                   deadline)

    def _start_kubelet(self, deadline: float) -> None:
        assert self.cp and self.bin_dir
        kc = self.cp.issue_kubeconfig("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}")
        conf = RUN_DIR / "kubelet.yaml"
        conf.write_text(json.dumps(kubelet_config(free_port(), free_port(), self.cp.ca_cert), indent=2))
        self._spawn("kubelet", [
            str(self.bin_dir / "tandem-k8s"), "kubelet",
            f"--config={conf}",
            f"--kubeconfig={kc}",
            f"--root-dir={KUBELET_ROOT}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={HOST_IP}",
            f"--node-labels={NODE_LABEL}",
            f"--v={max(self.verbosity, 1)}",
        ])

    def _start_kube_proxy(self, deadline: float) -> None:
        assert self.cp and self.bin_dir
        kc = self.cp.issue_kubeconfig("kube-proxy", "/CN=system:kube-proxy")
        healthz = free_port()
        conf = RUN_DIR / "kube-proxy.yaml"
        conf.write_text(json.dumps(kube_proxy_config(kc, healthz, free_port()), indent=2))
        comp = self._spawn("kube-proxy", [str(self.bin_dir / "tandem-k8s"), "kube-proxy",
                                          f"--config={conf}", f"--v={self.verbosity}"])
        self._wait("kube-proxy /healthz", comp,
                   lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"), deadline, 0.5)

    def _start_netpol(self, deadline: float) -> None:
        """The policy enforcer, once the node is registered (it reads its Node for its IP, the
        one its pods' hostIP shows: only those pods get firewall chains). Up once its top-level
        chains are in place; each policy then takes effect at its first sync, which the tests
        wait for by probing, as a cluster's user would."""
        assert self.cp and self.bin_dir
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(NETPOL_RBAC))
        issued = self.cp.issue_kubeconfig("tandem-netpol", "/CN=tandem:netpol")
        # Under RUN_DIR, so that host_leftovers() recognises the process by its command line.
        kc = RUN_DIR / "netpol.kubeconfig"
        shutil.copy(issued, kc)
        comp = self._spawn("tandem-netpol", [
            str(self.bin_dir / "tandem-netpol"),
            f"--kubeconfig={kc}",
            f"--hostname-override={NODE_NAME}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--health-port=0", "--metrics-port=0",
            f"--v={max(self.verbosity, 1)}",
        ])
        self._wait("tandem-netpol's chains", comp, lambda: _run(
            "iptables", "-t", "filter", "-S", NETPOL_CHAIN, check=False).returncode == 0, deadline)

    def _node_ready(self) -> bool:
        assert self.cp
        out = self.cp.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- cleanup --------------------------------------------------------------------

    def _remove_containers(self) -> None:
        """Kill and remove every container containerd holds for the CRI (pods' containers
        and sandboxes), then their network namespaces, which only the CRI would remove."""
        ids = self.ctr("containers", "ls", "-q", check=False).stdout.split()
        netns = set()
        for cid in ids:
            info = self.ctr("containers", "info", cid, check=False)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                for ns in json.loads(info.stdout)["Spec"]["linux"]["namespaces"]:
                    if ns.get("type") == "network" and ns.get("path"):
                        netns.add(ns["path"])
            self.ctr("tasks", "rm", "-f", cid, check=False)
            self.ctr("containers", "rm", cid, check=False)
        for path in netns:
            _run("umount", path, check=False)
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _cleanup_host(self) -> None:
        """Everything a node leaves on the host, whether it stopped or was killed; each
        step is harmless when there is nothing to remove."""
        # The shims with the pods below them; then any pod process that outlived its shim
        # (reparented to init, it names nothing of ours: its kubepods cgroup does).
        _wait_gone(_kill_orphaned_shims() + _kill(pod_processes()), timeout=15)
        _unmount_all(KUBELET_ROOT, RUN_DIR, CONTAINERD_ROOT)
        if self.bin_dir and (self.bin_dir / "tandem-k8s").exists():
            _run(str(self.bin_dir / "tandem-k8s"), "kube-proxy", "--cleanup", check=False)
        _iptables_cleanup()
        _ipset_cleanup()
        _run("ip", "link", "del", BRIDGE, check=False)
        _remove_kubepods_cgroups()
        # The kubelet links every container's log into /var/log/containers (a fixed path).
        for link in Path("/var/log/containers").glob("*.log"):
            with contextlib.suppress(OSError):
                if os.readlink(link).startswith(f"{POD_LOGS}/"):
                    link.unlink()
        for d in (KUBELET_ROOT, POD_LOGS):
            shutil.rmtree(d, ignore_errors=True)
        if RUN_DIR.exists():
            shutil.rmtree(RUN_DIR, ignore_errors=True)


def _ctr_argv(*args: str) -> list[str]:
    """ctr against this node's containerd, in the CRI's namespace."""
    return ["ctr", "--address", str(CONTAINERD_SOCK), "-n", K8S_NAMESPACE, *args]


def _import_layout(layout: Path, timeout: float = 900) -> None:
    """`ctr images import` of an OCI layout directory, streamed as a tar (what ctr reads): no
    archive is written, which for the 6 GB PyTorch image is 6 GB of disk not needed."""
    members = sorted(p.name for p in layout.iterdir())
    tar = subprocess.Popen(["tar", "-C", str(layout), "-cf", "-", *members], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run(_ctr_argv("images", "import", "--all-platforms", "-"), stdin=tar.stdout,
                              capture_output=True, text=True, timeout=timeout)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    if proc.returncode != 0 or tar.returncode != 0:
        raise StartError(f"importing {layout}: tar exited {tar.returncode}, ctr exited {proc.returncode}: "
                         f"{proc.stderr.strip()[-2000:]}")


def drop_imported_images(lock_timeout: float = 0.0) -> None:
    """Empties the node's containerd store (images, their unpacked snapshots) while no node runs:
    what the e2e tier does before it builds images that replace the ones there, so that the old
    copies (about 18 GB for the three) are not still on disk while the new ones are built. The
    sandbox images come back by themselves at the next start; the Tandem images at load_image."""
    fd = take_lock(lock_timeout)
    try:
        node = RealNode()
        node._lock_fd = fd
        node._cleanup_host()  # unmounts what a killed run left, before anything under it goes
        shutil.rmtree(CONTAINERD_ROOT, ignore_errors=True)
    finally:
        os.close(fd)


def take_lock(timeout: float = 0.0, poll: float = 1.0) -> int:
    """The machine's real-node lock: an open fd holding ``flock(LOCK_EX)`` on LOCK_FILE, with
    our pid written in it for the NodeBusy message. Waits up to `timeout` seconds for another
    run to let go. The kernel releases it when the holder dies, even by SIGKILL (the fd is not
    inherited by the node's processes: os.open's fds are close-on-exec)."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                os.close(fd)
                raise NodeBusy(f"another real node runs on this machine (pid {holder or '?'}, "
                               f"lock {LOCK_FILE}); only one can") from None
            time.sleep(poll)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def clean_host(lock_fd: int | None = None, lock_timeout: float = 0.0) -> list[str]:
    """Remove what a killed node left (shims and pods' processes, mounts, bridge, chains,
    cgroups, dirs) without starting one; returns host_leftovers() afterwards, taken before
    the lock is released. The next start does the same by itself. `lock_fd`: a lock already
    held (take_lock()), handed over and released here."""
    node = RealNode(lock_timeout=lock_timeout)
    node._lock_fd = lock_fd if lock_fd is not None else take_lock(lock_timeout)
    node.stop()  # with the lock held and nothing started: only the host cleanup
    return node.leftovers


@contextlib.contextmanager
def real_cluster(nodes: int = 1, verbosity: int = 0, workdir: str | os.PathLike | None = None,
                 lock_timeout: float = 0.0) -> Iterator[tuple[ControlPlane, RealNode]]:
    """A control plane on HOST_IP with `nodes` kwok nodes and the real node; both stopped
    (and the host cleaned) on exit. `lock_timeout`: seconds to wait for another run's node."""
    node = RealNode(bin_dir=build(), verbosity=verbosity, lock_timeout=lock_timeout).prepare()
    try:
        cp = ControlPlane(nodes=nodes, host_address=HOST_IP, verbosity=verbosity, workdir=workdir)
        try:
            cp.start()
            node.start(cp)
            yield cp, node
        finally:
            node.stop()
            cp.stop()
    finally:
        node.stop()


if __name__ == "__main__":  # python -m tests.controlplane.node clean
    import sys

    if sys.argv[1:] != ["clean"]:
        sys.exit("usage: python -m tests.controlplane.node clean")
    left = clean_host()
    print("\n".join(left) or "nothing left")
    sys.exit(1 if left else 0)
