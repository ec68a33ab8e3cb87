"""A private network namespace for the processes of one local run (Linux).

Binding cannot keep a worker's ports off the network: torch's TCPStore listens on every
address even when given 127.0.0.1, and TensorFlow's gRPC server binds 0.0.0.0 and runs any op it
is sent. A network namespace of its own, holding nothing but a loopback interface, has no other
address to listen on, so no other host can reach what listens in it, while the processes inside
still reach each other on 127.0.0.1.

One holder process creates the namespace and keeps it alive (until its stdin closes, or its
parent dies); each process meant to run inside is started as
``python -m tandem._sys.netns <holder pid>:<namespace inode> -- argv...``, which joins the holder's
namespaces and then execs ``argv`` (same pid, same environment). The inode pins the namespace, not
the pid: should the holder die and its pid be reused by a process of the host's network, a worker
(a restarted group's, say) refuses to start instead of running, unnoticed, on the host's network.
Unprivileged users get the namespace through a user namespace of their own that maps only their
own uid and gid, so files keep their owner and no privilege is gained; root needs none. Where
user namespaces are refused (a kernel built without them, a sysctl, Ubuntu's AppArmor
restriction, not Linux), `PrivateNetwork.start` returns False with the reason, and the caller
decides what to say.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from typing import Optional, Sequence

from .lifetime import die_with_parent

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
HOSTS = "/etc/hosts"
#: What the namespace's own hosts file adds to the host's. torch's TCPStore listens on an IPv6
#: socket, so a worker connecting to 127.0.0.1 arrives as ::ffff:127.0.0.1, which it then names
#: with getnameinfo; no hosts file lists that form, and the DNS server the host's resolv.conf names
#: is out of reach from a namespace with loopback only, so the lookup failed as "try again" and
#: every rendezvous printed c10d's "hostname of the client socket cannot be retrieved" warning.
HOSTS_ADDED = "\n# tandem: this run's private network namespace (loopback only)\n::ffff:127.0.0.1 localhost\n"
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
READY = "ready"
HOLDER_START_TIMEOUT = 10.0

_libc: Optional[ctypes.CDLL]
try:
    _libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover - no C library to load
    _libc = None


def _call(name: str, *args: int) -> None:
    if _libc is None or not hasattr(_libc, name):
        raise OSError(f"{name}() is not available on this system")
    if getattr(_libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _loopback_up() -> None:
    """Bring up `lo` (a new namespace's loopback is down), then prove it carries a connection."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.settimeout(2.0)
        client.connect(server.getsockname())


def create() -> None:
    """Move this process into a new network namespace (and user namespace, unless root) with
    loopback up, and a mount namespace whose /etc/hosts also names loopback's IPv6-mapped form
    (`HOSTS_ADDED`). Raises OSError saying why not."""
    if os.geteuid() == 0:
        _call("unshare", CLONE_NEWNET | CLONE_NEWNS)
    else:
        uid, gid = os.getuid(), os.getgid()
        _call("unshare", CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _loopback_up()
    _own_hosts()


def _mount(source: Optional[str], target: str, flags: int) -> None:
    if _libc is None:
        raise OSError("mount() is not available on this system")
    encoded = None if source is None else source.encode()
    if _libc.mount(encoded, target.encode(), None, ctypes.c_ulong(flags), None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _own_hosts() -> None:
    """Bind a copy of the host's /etc/hosts with `HOSTS_ADDED` over it, in this mount namespace
    only (made private first, so nothing propagates back to the host). Best effort: where the
    system refuses, the run loses nothing but the fix of a warning."""
    try:
        with open(HOSTS, encoding="utf-8", errors="replace") as hosts:
            text = hosts.read()
        _mount(None, "/", MS_REC | MS_PRIVATE)
        fd, copy = tempfile.mkstemp(prefix="tandem-hosts-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + HOSTS_ADDED)
            os.chmod(copy, 0o644)
            _mount(copy, HOSTS, MS_BIND)
        finally:
            os.unlink(copy)  # the bind mount keeps the file for as long as the namespace lives
    except OSError:
        pass


def enter(pid: int, net_inode: int) -> None:
    """Join the network namespace of process `pid`, which must be the namespace `net_inode` (and
    first its user namespace, if it has its own, then its mount namespace, for its hosts file).
    Must run single-threaded: the kernel refuses to move a threaded process's user or mount ns.
    The check is made on the descriptor that is then joined, so the pid cannot change hands in
    between. Joining a mount namespace moves the process to its root, so the working directory is
    taken again after."""
    gone = f"the run's network namespace is gone: its holder (pid {pid}) has ended"
    cwd = os.getcwd()
    fds: dict[str, int] = {}
    try:
        for kind in ("user", "net", "mnt"):
            fds[kind] = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
    except FileNotFoundError:
        for fd in fds.values():
            os.close(fd)
        raise OSError(gone) from None
    try:
        if os.fstat(fds["net"]).st_ino != net_inode:
            raise OSError(gone)
        for kind, flag in (("user", CLONE_NEWUSER), ("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS)):
            if os.stat(f"/proc/self/ns/{kind}").st_ino != os.fstat(fds[kind]).st_ino:
                _call("setns", fds[kind], flag)
    finally:
        for fd in fds.values():
            os.close(fd)
    os.chdir(cwd)


class PrivateNetwork:
    """The holder of one run's namespace; `wrap(argv)` runs argv inside it."""

    def __init__(self) -> None:
        self.process: Optional[subprocess.Popen[str]] = None
        #: The namespace's inode: what a process entering it checks (see the module docstring).
        self.net_inode = 0
        #: Why there is no private network (empty once started).
        self.reason = ""

    @property
    def active(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> bool:
        """Create the namespace; False (and `reason`) where this system does not allow it."""
        if not sys.platform.startswith("linux") or not os.path.exists("/proc/self/ns/net"):
            self.reason = "network namespaces are Linux-only"
            return False
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "tandem._sys.netns", "--hold"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
            )
        except OSError as error:
            self.reason = str(error)
            return False
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline().strip()  # "ready", or nothing when it failed
        if line != READY:
            process.kill()
            _out, complaint = process.communicate(timeout=HOLDER_START_TIMEOUT)
            self.reason = (complaint.strip().splitlines() or ["the namespace holder ended"])[-1]
            return False
        self.process = process
        self.net_inode = os.stat(f"/proc/{process.pid}/ns/net").st_ino
        return True

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """argv, run inside the namespace; unchanged when there is none."""
        if self.process is None:
            return list(argv)
        return [sys.executable, "-m", "tandem._sys.netns", f"{self.process.pid}:{self.net_inode}", "--", *argv]

    def stop(self) -> None:
        """End the holder; the namespace goes when the last process in it has ended."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(5.0)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


def _hold() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the run, which stops us in order
    try:
        create()
    except OSError as error:
        print(error.strerror or error, file=sys.stderr)
        return 1
    print(READY, flush=True)
    sys.stdin.read()  # until the run closes our stdin (or dies: the parent-death signal)
    return 0


def main(argv: Sequence[str]) -> int:
    """`--hold`: create a namespace and keep it; `<pid>:<inode> -- command...`: run command in
    pid's namespace, if it still is the namespace `inode`."""
    if list(argv) == ["--hold"]:
        return _hold()
    pid, _, inode = argv[0].partition(":") if argv else ("", "", "")
    if len(argv) < 3 or argv[1] != "--" or not (pid.isdigit() and inode.isdigit()):
        print("usage: python -m tandem._sys.netns --hold | <holder pid>:<net inode> -- command...", file=sys.stderr)
        return 2
    try:
        enter(int(pid), int(inode))
    except OSError as error:
        print(f"tandem: cannot enter the run's private network namespace: {error}", file=sys.stderr)
        return 126
    try:
        os.execvp(argv[2], list(argv[2:]))
    except OSError as error:
        print(f"tandem: {argv[2]}: {error}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
