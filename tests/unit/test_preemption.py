"""tandem.preemption: a real SIGTERM, sent by a process to itself in a fresh interpreter, sets the
flag instead of ending it, a handler set before is still called, and the exit code says SIGTERM.
Each case runs in a subprocess: signal handlers are process-wide and pytest's must stay intact.
The torchrun agent's wait (launch/torchrun.py) follows the job's grace period."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tandem.contract import ENV_TERMINATION_GRACE
from tandem.launch.torchrun import EXIT_MARGIN_SECONDS, TORCH_SHUTDOWN_TIMEOUT, shutdown_timeout


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_sigterm_sets_the_flag_and_the_process_lives_on():
    result = run_python("""
        import os, signal, sys
        from tandem import preemption
        preemption.install()
        assert not preemption.requested() and preemption.exit_code() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested(), "flag not set"
        assert preemption.signal_number() == signal.SIGTERM
        print("alive after SIGTERM")
        sys.exit(preemption.exit_code())
    """)
    assert "alive after SIGTERM" in result.stdout, result.stderr
    assert result.returncode == 143, result.stderr


def test_a_handler_installed_before_is_still_called():
    result = run_python("""
        import os, signal
        calls = []
        signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
        from tandem import preemption
        preemption.install()
        preemption.install()  # idempotent: installing twice must not make it call itself
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested()
        print("previous handler calls:", calls)
    """)
    assert result.returncode == 0, result.stderr
    assert "previous handler calls: [15]" in result.stdout, result.stdout + result.stderr


def test_requested_installs_the_handler_on_first_use():
    result = run_python("""
        import os, signal
        from tandem import preemption
        assert not preemption.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        print("requested:", preemption.requested())
    """)
    assert result.returncode == 0, result.stderr
    assert "requested: True" in result.stdout


def test_without_the_module_sigterm_still_ends_the_process():
    """The control: the same self-signal kills a plain interpreter, so the cases above mean something."""
    result = run_python("""
        import os, signal
        os.kill(os.getpid(), signal.SIGTERM)
        print("alive after SIGTERM")
    """)
    assert result.returncode == -15 and "alive" not in result.stdout


def test_the_module_imports_in_a_bare_worker_without_torch_pydantic_or_ray():
    result = run_python("""
        import sys
        from tandem import preemption
        preemption.install()
        heavy = sorted(m for m in ("torch", "tensorflow", "keras", "pydantic", "ray", "yaml") if m in sys.modules)
        print("heavy:", heavy)
    """)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout, result.stdout


def test_the_pytorch_helper_agrees_without_a_process_group():
    result = run_python("""
        import os, signal
        from tandem.preemption import pytorch as preemption
        preemption.install()
        assert preemption.should_stop() is False
        os.kill(os.getpid(), signal.SIGTERM)
        print("should_stop:", preemption.should_stop())
    """)
    assert result.returncode == 0, result.stderr
    assert "should_stop: True" in result.stdout


def test_torchrun_waits_the_grace_period_less_its_margin():
    assert shutdown_timeout({ENV_TERMINATION_GRACE: "30"}) == 30 - EXIT_MARGIN_SECONDS
    assert shutdown_timeout({ENV_TERMINATION_GRACE: "600"}) == 600 - EXIT_MARGIN_SECONDS
    assert shutdown_timeout({ENV_TERMINATION_GRACE: "1"}) == 0
    assert shutdown_timeout({}) is None  # no contract: torch's default
    assert shutdown_timeout({ENV_TERMINATION_GRACE: "30", TORCH_SHUTDOWN_TIMEOUT: "5"}) is None  # the user's own
