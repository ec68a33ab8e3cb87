"""A local run's workers cannot be reached from other hosts.

TensorFlow's gRPC server (which runs any op it is sent) binds every address whatever TF_CONFIG
says, and so does torch's TCPStore. `tandem run` puts the workers and its private Ray in a
network namespace of the run's own, where loopback is the only address. These tests run real
workers and try the worker's port from this host's own non-loopback address, as another host
on the LAN would.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys

import pytest

from tandem._sys.netns import PrivateNetwork
from tests.conftest import JOBS, REPO
from tests.support.commands import run_args, start_tandem, tandem_argv
from tests.support.processes import environ, processes_of_job
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local

SIOCGIFADDR = 0x8915
LISTEN = "0A"


def lan_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback: where another host would connect."""
    found = []
    for _index, name in socket.if_nameindex():
        if name == "lo":
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(s, SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
        found.append(socket.inet_ntoa(packed[20:24]))
    return found


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2.0).close()
        return True
    except OSError:
        return False


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state on any address, in the network namespace of process `pid`."""
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port = local.split(":")
            if state == LISTEN and set(address) == {"0"}:  # 0.0.0.0 or ::
                ports.add(int(port, 16))
    return ports


@pytest.fixture
def lan_address() -> str:
    addresses = lan_addresses()
    if not addresses:
        pytest.skip("this host has no non-loopback IPv4 address to try")
    # The probe itself works: a server on every address of this host's namespace is reached.
    with socket.socket() as control:
        control.bind(("0.0.0.0", 0))
        control.listen(1)
        assert reachable(addresses[0], control.getsockname()[1])
    return addresses[0]


def test_tensorflow_workers_grpc_port_is_not_reachable_from_the_lan(tmp_path, job_name, lan_address):
    network = PrivateNetwork()
    if not network.start():
        pytest.skip(f"no private network namespace here: {network.reason}")
    network.stop()
    command = ["python", "jobs/train_keras.py", "--epochs", "3", "--steps-per-epoch", "200",
               "--output-dir", str(tmp_path / "out")]
    run = start_tandem(*run_args(tmp_path / "runs", "spec.command=" + json.dumps(command), name=job_name,
                                 job_file=JOBS / "keras-mwms.yaml"))
    try:
        def worker_0_listening():
            for pid in processes_of_job(job_name):
                env = dict(e.decode(errors="replace").partition("=")[::2] for e in environ(pid) if b"=" in e)
                if env.get("TANDEM_WORKER_INDEX") != "0" or "TANDEM_WORKER_HOSTS" not in env:
                    continue
                port = int(env["TANDEM_WORKER_HOSTS"].split(",")[0].rsplit(":", 1)[1])
                if port in listening_ports(pid):
                    return pid, port
            return None

        pid, port = wait_for("worker 0's gRPC server listening", worker_0_listening, timeout=180, interval=0.2)
        # TF's server listens on every address of its namespace, which is not this host's.
        assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        assert not reachable(lan_address, port)
        assert not reachable("127.0.0.1", port)
        assert port in listening_ports(pid)  # ...while the server was still up
        output, _ = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 0, output[-3000:]
    assert "Succeeded" in output and "warning: other hosts" not in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["worker0.json", "worker1.json"]
    figures = [json.loads(line) for line in next((tmp_path / "runs" / job_name).glob("*/metrics.jsonl"))
               .read_text().splitlines()]
    assert figures[-1]["available"], figures[-1]  # the private Ray, in the namespace too, got the figures


def test_a_process_in_the_private_network_listens_on_every_address_unreached(lan_address):
    """The mechanism alone, as this (possibly unprivileged) user: a server on 0.0.0.0 inside is
    reached from inside on 127.0.0.1, and from the LAN address not at all."""
    network = PrivateNetwork()
    if not network.start():
        pytest.skip(f"no private network namespace here: {network.reason}")
    server_code = ("import socket; s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(1); "
                   "print(s.getsockname()[1], flush=True); c, _ = s.accept(); print(c.recv(5).decode(), flush=True)")
    try:
        server = subprocess.Popen(network.wrap([sys.executable, "-c", server_code]), stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        port = int(server.stdout.readline())
        assert not reachable(lan_address, port) and not reachable("127.0.0.1", port)
        client_code = f"import socket; socket.create_connection(('127.0.0.1', {port})).send(b'hello')"
        subprocess.run(network.wrap([sys.executable, "-c", client_code]), check=True, timeout=30)
        assert server.stdout.readline().strip() == "hello"
        assert server.wait(10) == 0
    finally:
        network.stop()


def test_without_network_namespaces_the_run_goes_on_with_one_warning_line(tmp_path, job_name):
    """Where the system refuses a new network namespace (here: a user namespace of the test's own
    whose max_net_namespaces is 0, as an administrator may set it, or as Ubuntu's AppArmor
    restriction refuses unprivileged ones), `tandem run` still runs the job and says so in one
    warning line rather than fail."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace for the test itself: {probe.stderr.decode().strip()}")
    command = ["python", "jobs/train_ddp.py", "--steps", "20", "--output-dir", str(tmp_path / "out")]
    args = run_args(tmp_path / "runs", "spec.command=" + json.dumps(command), name=job_name, metrics=False,
                    options=["--workers", "2"])
    script = 'echo 0 > /proc/sys/user/max_net_namespaces && exec "$@"'
    result = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh",
                             *tandem_argv(*args)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "warning: other hosts can reach" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert "no private network namespace here (unshare: No space left on device)" in warnings[0]
    assert "Succeeded" in result.stderr
