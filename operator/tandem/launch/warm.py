"""A warm interpreter per worker, which forks each training process that torchrun restarts in place.

Why: after an in-place restart, the new training processes spent most of the time to their first
step importing: ``import torch`` (about 4 s on two cores) and ``torch._dynamo``, which the first
``optimizer.step()`` imports (about 5 s more), while the failure itself was handled in under a
second (docs/reliability.md). A process forked from an interpreter that has already imported them
skips both, the way ``multiprocessing``'s forkserver preloads modules.

How: a torchrun agent with in-place restarts starts this server once (`start`, from
launch/torchrun.py); it imports torch, torch._dynamo and torch.distributed in a helper thread at
niceness `WARM_NICE` (Linux niceness is per thread: the main thread, which forks, stays at the
agent's own, so the training processes do not inherit the low priority), and listens on a unix
socket in a directory only its user can enter. The guard in front of a restarted training process
(launch/guard.py) sends the command, its working directory and environment, and passes its
stdin/stdout/stderr; the server forks a child that becomes the training process (`become`: the
guard's stdio, environment, cwd, argv and sys.path[0], default signal handlers, a session of its
own as torchrun gives, and ``runpy`` as ``python script`` or ``python -m module`` would run it),
and answers the child's pid, then its wait status, which the guard makes its own. The guard falls
back to exec'ing Python (today's path) whenever the server is absent, dead, or refuses: a command
it would not run exactly as Python would, or a Python thread of its own alive (a fork copies only
the forking thread).

Lifetimes: the server dies with its agent (parent-death signal); a child dies with the server
(parent-death signal) and with its guard: the guard's connection at EOF (the guard is gone, for
instance SIGKILLed by torchrun or by its own parent-death signal) makes the server SIGKILL the child.

What a forked child shares with the server unlike a new interpreter: the modules already imported,
the seed of str hashing (unless PYTHONHASHSEED is set), and what torch read at import from the
server's environment (the agent's, which the training processes get as well, less torchrun's
per-rank variables); the OpenMP thread count is set again from the child's ``OMP_NUM_THREADS``,
and NumPy's global generator is seeded afresh. Its /proc/PID/cmdline and environ are the server's,
so the server records, for each guard, the pid of the process it forked (`record_path`): a tool
that finds a rank by its guard's ``RANK`` reads its training process there.

Standard library at import (the guard imports this module); torch only inside `serve`.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .._sys.lifetime import die_with_parent
from .._sys.proctree import exited_children
from ..contract import ENV_IN_PLACE_RESTARTS, ENV_WARM, ENV_WARM_SOCKET, WARM_NICE

#: The module the agent runs as the server.
WARM_MODULE = "tandem.launch.warm"
#: A request: this many bytes of length (big-endian), then the JSON.
_LENGTH = struct.Struct(">I")
#: The largest request accepted (an environment of a few hundred KiB is already unusual).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Seconds a connected guard has to send its whole request.
REQUEST_TIMEOUT_S = 10.0
#: The stdin, stdout and stderr that a guard passes.
STDIO_FDS = 3
#: The socket's file name inside the server's private directory.
SOCKET_NAME = "warm.sock"
#: Per guard, a file holding the pid of the training process forked for it.
RECORD_PREFIX = "guard-"


@dataclass(frozen=True)
class Request:
    """What a guard asks: run `argv` (the worker command) in `cwd` with exactly `env`."""

    argv: list[str]
    cwd: str
    env: dict[str, str]


@dataclass(frozen=True)
class Target:
    """How Python would run a command: a script's path or a module's name, and its sys.argv[1:]."""

    module: bool
    name: str
    args: list[str]


def encode_request(request: Request) -> bytes:
    """The request as sent: its length, then JSON (surrogate-escaped bytes survive as escapes)."""
    body = json.dumps({"argv": request.argv, "cwd": request.cwd, "env": request.env}).encode()
    return _LENGTH.pack(len(body)) + body


def request_length(head: bytes) -> int:
    """The JSON's length from the first bytes of a request; ValueError if too large."""
    (length,) = _LENGTH.unpack(head[:_LENGTH.size])
    if length > MAX_REQUEST_BYTES:
        raise ValueError(f"request of {length} bytes")
    return int(length)


def decode_request(body: bytes) -> Request:
    """The request from its JSON; ValueError if malformed."""
    data = json.loads(body)
    argv, cwd, env = data.get("argv"), data.get("cwd"), data.get("env")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv) and isinstance(cwd, str)
            and isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("malformed request")
    return Request(argv=list(argv), cwd=cwd, env=dict(env))


def encode_reply(**fields: Any) -> bytes:
    """One reply line: {"pid": n}, {"status": wait status} or {"refused": why}."""
    return json.dumps(fields).encode() + b"\n"


def python_target(argv: Sequence[str], executable: str, path: Optional[str]) -> Optional[Target]:
    """What ``argv`` runs if it is this interpreter running a script or ``-m module`` with no
    option before it, else None (the guard then execs it: an option such as ``-u`` or ``-X``
    changes the interpreter's own start, which a fork cannot redo). The program must be
    `executable` itself, by its path or found on `path`, not merely the same binary: a virtual
    environment's ``python`` is a link to its base interpreter but has other packages."""
    if len(argv) < 2:
        return None
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=path)
    if program is None or os.path.abspath(program) != os.path.abspath(executable):
        return None
    if argv[1] == "-m":
        return Target(module=True, name=argv[2], args=list(argv[3:])) if len(argv) > 2 and argv[2] else None
    if argv[1].startswith("-") or not argv[1]:
        return None
    return Target(module=False, name=argv[1], args=list(argv[2:]))


def record_path(socket_path: str, guard: int) -> str:
    """Where the server writes the pid of the training process it forked for guard `guard`."""
    return os.path.join(os.path.dirname(socket_path), f"{RECORD_PREFIX}{guard}")


def wanted(env: Mapping[str, str]) -> bool:
    """A worker starts a warm server when its job has in-place restarts and none turned it off."""
    text = env.get(ENV_IN_PLACE_RESTARTS, "").strip()
    return text.isdigit() and int(text) >= 1 and env.get(ENV_WARM, "").strip() != "0"


# --- the agent's side -----------------------------------------------------------------------------

@dataclass
class Server:
    """A started warm server: its process and its private directory."""

    process: subprocess.Popen[bytes]
    directory: str

    @property
    def socket_path(self) -> str:
        return os.path.join(self.directory, SOCKET_NAME)

    def stop(self) -> None:
        """SIGKILL the server (its children die with it) and remove its directory."""
        try:
            self.process.kill()
            self.process.wait()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(env: Mapping[str, str], python: str = sys.executable) -> Optional[Server]:
    """Start this worker's warm server (a private directory, mode 0700, holds its socket); None
    where it cannot start, the restarts then exec Python as before. Its output goes to the
    agent's stderr: an import error there is a reason the restarts were cold."""
    try:
        directory = tempfile.mkdtemp(prefix="tandem-warm-")  # mkdtemp makes it 0700
    except OSError as error:  # a read-only temporary directory: restarts start Python as before
        print(f"tandem.launch.warm: not started: {error}", file=sys.stderr)
        return None
    try:
        process = subprocess.Popen([python, "-m", WARM_MODULE, os.path.join(directory, SOCKET_NAME), str(os.getpid())],
                                   env=dict(env), stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                   start_new_session=True)
    except OSError as error:
        print(f"tandem.launch.warm: not started: {error}", file=sys.stderr)
        shutil.rmtree(directory, ignore_errors=True)
        return None
    return Server(process=process, directory=directory)


# --- the server -----------------------------------------------------------------------------------

def _import_torch() -> None:
    """Import what a training process's start and first step import, at low priority."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICE)
    import torch
    import torch._dynamo
    import torch.distributed  # noqa: F401


def _preload() -> Optional[str]:
    """Run `_import_torch` in a helper thread, so that only that thread is niced; the reason it
    failed, or None."""
    failed: list[str] = []

    def run() -> None:
        try:
            _import_torch()
        except BaseException as error:  # noqa: BLE001 - reported, the server then refuses
            failed.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=run, name="tandem-warm-import")
    thread.start()
    thread.join()
    return failed[0] if failed else None


@dataclass
class _Child:
    conn: Optional[socket.socket]
    record: str


class _Warm:
    """The server's loop: accept guards, fork their training processes, report their ends."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path)
        self.listener.listen(64)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.children: dict[int, _Child] = {}

    def run(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self.accept()
                elif key.fileobj == self.wake_r:
                    self.reap()
                else:
                    self.guard_gone(key.data)

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            request, fds = _receive(conn)
            refused = self.refusal(request)
            if refused:
                conn.sendall(encode_reply(refused=refused))
                conn.close()
                return
            guard = _peer_pid(conn)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns
                become(request, fds, [conn, self.listener, self.selector, self.wake_r, self.wake_w,
                                      *(c.conn for c in self.children.values())], os.getppid())
            record = record_path(self.socket_path, guard)
            with open(record, "w") as out:
                out.write(f"{pid}\n")
            self.children[pid] = _Child(conn=conn, record=record)
            conn.sendall(encode_reply(pid=pid))
            conn.settimeout(None)
            self.selector.register(conn, selectors.EVENT_READ, data=pid)
        except (OSError, ValueError) as error:
            print(f"tandem.launch.warm: a request failed: {error}", file=sys.stderr)
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def refusal(self, request: Request) -> Optional[str]:
        if threading.active_count() != 1:
            return "a thread of the server is alive"
        if python_target(request.argv, sys.executable, request.env.get("PATH")) is None:
            return "not this interpreter running a script or a module"
        return None

    def guard_gone(self, pid: int) -> None:
        """The guard's connection became readable: EOF (the guard died) or a byte it should not
        send. Either way its training process must not outlive it."""
        child = self.children.get(pid)
        if child is None or child.conn is None:
            return
        self.selector.unregister(child.conn)
        child.conn.close()
        child.conn = None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        for pid, status in exited_children():
            child = self.children.pop(pid, None)
            if child is None:
                continue
            if child.conn is not None:
                self.selector.unregister(child.conn)
                try:
                    child.conn.sendall(encode_reply(status=status))
                except OSError:
                    pass
                child.conn.close()
            try:
                os.unlink(child.record)
            except OSError:
                pass


def _receive(conn: socket.socket) -> tuple[Request, list[int]]:
    """A guard's request and the stdio fds that came with it."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, STDIO_FDS)
    try:
        data = _read_up_to(conn, data, _LENGTH.size)
        length = request_length(data)
        data = _read_up_to(conn, data, _LENGTH.size + length)
        if len(fds) != STDIO_FDS:
            raise ValueError(f"{len(fds)} file descriptors instead of {STDIO_FDS}")
        return decode_request(data[_LENGTH.size:_LENGTH.size + length]), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _read_up_to(conn: socket.socket, data: bytes, size: int) -> bytes:
    """`data` and what follows it on `conn` until it holds at least `size` bytes."""
    while len(data) < size:
        more = conn.recv(65536)
        if not more:
            raise ValueError("short request")
        data += more
    return data


def _peer_pid(conn: socket.socket) -> int:
    """The connected guard's pid (SO_PEERCRED: pid, uid, gid)."""
    pid, _uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return int(pid)


def _stdio(fd: int, mode: str, unbuffered: bool) -> Any:
    """A text stream on `fd` as Python's start makes one: line-buffered on a terminal, written
    through with PYTHONUNBUFFERED."""
    import io

    if mode == "r":
        return io.TextIOWrapper(open(fd, "rb", closefd=False), encoding=sys.stdin.encoding, errors=sys.stdin.errors)
    like = sys.stdout if fd == 1 else sys.stderr
    raw = open(fd, "wb", buffering=0 if unbuffered else -1, closefd=False)
    return io.TextIOWrapper(raw, encoding=like.encoding, errors=like.errors,
                            line_buffering=os.isatty(fd) or fd == 2, write_through=unbuffered)


def become(request: Request, fds: Sequence[int], close: Sequence[Any], server: int) -> None:
    """In the forked child: become the training process the guard would have exec'd, run it,
    and exit as Python would (SystemExit's code; 1 after printing an uncaught exception)."""
    code = 1
    try:
        os.setsid()  # torchrun starts each training process in a session of its own
        if not die_with_parent(server):
            os._exit(137)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for item in close:
            if item is not None:
                try:
                    if isinstance(item, int):
                        os.close(item)
                    else:
                        item.close()
                except OSError:
                    pass
        for target_fd, fd in enumerate(fds):
            os.dup2(fd, target_fd, inheritable=True)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request.cwd)
        os.environ.clear()
        os.environ.update(request.env)
        unbuffered = bool(request.env.get("PYTHONUNBUFFERED", ""))
        sys.stdin, sys.stdout, sys.stderr = _stdio(0, "r", False), _stdio(1, "w", unbuffered), _stdio(2, "w", unbuffered)
        for name in ("__stdin__", "__stdout__", "__stderr__"):  # what Python's start sets them to
            setattr(sys, name, getattr(sys, name.strip("_")))
        target = python_target(request.argv, sys.executable, request.env.get("PATH"))
        assert target is not None  # refused before the fork otherwise
        _threads(request.env)
        _fresh_random()
        code = _run(target)
        _finalize()
    except BaseException:  # noqa: BLE001 - as Python's own start would, print it and exit 1
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - a closed pipe: nothing more to say
            pass
        if code < 0:  # as Python does after a KeyboardInterrupt: die of the signal
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code if code >= 0 else 128 - code)


def _threads(env: Mapping[str, str]) -> None:
    """OpenMP read OMP_NUM_THREADS when torch loaded it, in the server: set the child's own."""
    text = env.get("OMP_NUM_THREADS", "").strip()
    if text.isdigit() and int(text) > 0:
        import torch

        torch.set_num_threads(int(text))


def _fresh_random() -> None:
    """A new interpreter seeds NumPy's global generator from the OS; a fork would copy the
    server's, the same in every restarted process (Python's own ``random`` reseeds itself in a
    forked child)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _run(target: Target) -> int:
    """Run the script or module as ``__main__`` with its argv and sys.path[0] as Python's start
    sets them; the exit code Python would exit with."""
    import runpy

    if target.module:
        sys.path[0] = os.getcwd()
        sys.argv = ["-m", *target.args]  # runpy puts the module's file in sys.argv[0]
    else:
        sys.path[0] = os.path.dirname(os.path.realpath(target.name))
        sys.argv = [target.name, *target.args]
    try:
        if target.module:
            runpy.run_module(target.name, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target.name, run_name="__main__")
    except SystemExit as done:
        return _system_exit_code(done.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        return -signal.SIGINT
    except BaseException:  # noqa: BLE001 - as Python's start would, print it and exit 1
        traceback.print_exc()
        return 1
    return 0


def _finalize() -> None:
    """What an interpreter's exit does before it ends (os._exit skips it): wait for the
    non-daemon threads, then run the atexit functions."""
    import atexit

    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()


def _system_exit_code(code: object) -> int:
    """The exit status of ``sys.exit(code)``: None 0, an int itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def serve(socket_path: str, parent: int) -> int:
    """The server's main: die with the agent, import torch, then serve guards until killed."""
    if not die_with_parent(parent):
        return 0
    failed = _preload()
    if failed is not None:
        print(f"tandem.launch.warm: cannot preload torch ({failed}); restarts start a new Python", file=sys.stderr)
        return 0
    try:
        warm = _Warm(socket_path)
    except OSError as error:
        print(f"tandem.launch.warm: cannot listen on {socket_path}: {error}", file=sys.stderr)
        return 0
    warm.run()
    return 0  # pragma: no cover - run() returns only by the server's death


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m tandem.launch.warm <socket path> <parent pid>", file=sys.stderr)
        return 2
    return serve(argv[0], int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["ENV_WARM_SOCKET", "Request", "Server", "Target", "decode_request", "encode_request", "python_target",
           "record_path", "start", "wanted"]
