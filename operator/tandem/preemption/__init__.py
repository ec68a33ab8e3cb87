"""Learn, in training code, that this worker must stop and save now: a preemption checkpoint.

    from tandem import preemption
    preemption.install()                  # early: before the first step
    for step in ...:
        train_step()
        if preemption.requested():        # SIGTERM arrived (pod deleted, Kueue preemption,
            save_checkpoint(step)         # node drain, Ctrl-C of `tandem run`)
            break
    sys.exit(preemption.exit_code())      # 143 after a SIGTERM, so the stop is not a success

Why a flag and not an exception: a signal can land inside a collective or a half-written file;
the training loop knows the one place where stopping is safe (between steps). The kubelet
(and `tandem run`) waits runPolicy.terminationGracePeriodSeconds after SIGTERM before SIGKILL:
that is the time the save has. A handler installed before ours (by the framework or the user)
is still called, after the flag is set. Standard library only: importable in every worker
without torch, TensorFlow, pydantic or Ray. For a group, `tandem.preemption.pytorch` and
`tandem.preemption.keras` make every worker stop at the same step.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Callable, Optional, Union

__all__ = ["exit_code", "install", "request", "requested", "signal_number"]

#: The signals that mean "stop and save": SIGTERM is what Kubernetes and `tandem run` send.
SIGNALS = (signal.SIGTERM,)

_Handler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]

_lock = threading.Lock()
_installed: dict[int, _Handler] = {}
_received: Optional[int] = None


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    """Set the flag, then give the signal to whoever handled it before us."""
    global _received
    _received = signum
    previous = _installed.get(signum)
    if callable(previous):
        previous(signum, frame)
    # SIG_DFL is not re-raised: terminating now is exactly what this module exists to prevent.


def install(signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
    """Catch `signals` (SIGTERM) from now on. Only the main thread may install a signal handler
    (Python's rule), so call it from there, early. Calling it again is safe and re-asserts the
    handler: call it again after a library that takes SIGTERM below Python has started
    (TensorFlow's multi-worker coordination service does, when the strategy is created)."""
    with _lock:
        for sig in signals:
            if sig not in _installed:
                previous = signal.getsignal(sig)
                _installed[sig] = None if previous is _on_signal else previous
            signal.signal(sig, _on_signal)


def requested() -> bool:
    """Whether a stop was asked for (a caught signal, or `request()`). Installs the handler on
    first use from the main thread, so a bare `if preemption.requested():` works too."""
    if not _installed and threading.current_thread() is threading.main_thread():
        install()
    return _received is not None


def request(signum: int = signal.SIGTERM) -> None:
    """Ask for a stop from code (a scheduler's notice read some other way, a test)."""
    global _received
    _received = signum


def signal_number() -> Optional[int]:
    """The signal that asked for the stop, or None."""
    return _received


def exit_code() -> int:
    """128 + the signal after a stop (the shell and Kubernetes convention: 143 for SIGTERM), else 0.
    Exiting with it keeps a preempted run from looking finished."""
    return 0 if _received is None else 128 + _received
