"""Exit codes as the shell and Kubernetes report them: 128+N for a death by signal N.

Popen (and torch's elastic agent) report a death by signal N as the return code -N; Tandem
reports, and exits with, what a shell would show, so a job's status reads the same locally
and on a cluster.
"""

from __future__ import annotations


def signalled(signum: int) -> int:
    """The exit code of a process killed by signal `signum`."""
    return 128 + int(signum)


def exit_code(returncode: int) -> int:
    """A return code (negative: killed by that signal) -> the process's exit code."""
    return signalled(-returncode) if returncode < 0 else returncode
