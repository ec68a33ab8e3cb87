"""Tandem's one error vocabulary: every failure a user can meet is a `TandemError`.

Why one root: the CLI has a single error boundary (each TandemError becomes one line on stderr and
its `exit_code`), the SDK lets callers catch one type, and the operator can tell "the user's spec
or cluster said no" from its own bugs. The children name what went wrong, not where it was
caught, so the same `NotFound` serves the SDK, the CLI and the operator. Standard library only:
the launcher (stdlib-only inside every worker) raises `ContractError` too.
"""

from __future__ import annotations

from typing import Any, Iterable


class TandemError(Exception):
    """Base of every error Tandem raises on purpose; `exit_code` is what the CLI exits with."""

    exit_code = 1


class SpecError(TandemError, ValueError):
    """A TrainingJob that cannot run; `problems` holds (field path, what to fix) pairs."""

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {message}" for path, message in self.problems))

    @property
    def first_path(self) -> str:
        return self.problems[0][0] if self.problems else ""


class ContractError(TandemError, ValueError):
    """A missing or invalid TANDEM_* variable in a worker: the launcher exits 2 with this line."""

    exit_code = 2

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        super().__init__(f"{variable} {problem}; {fix}")


class NotFound(TandemError):
    """The job, run, CRD or worker asked for does not exist."""


class Conflict(TandemError):
    """The object already exists, or belongs to someone else."""


#: The SDK's first name for Conflict, kept so that existing callers still catch it.
AlreadyExists = Conflict


class Invalid(TandemError):
    """The cluster refused the object (its schema, CEL rules or an admission policy)."""


class Forbidden(TandemError):
    """The cluster's RBAC does not allow this caller to do this."""


class Unreachable(TandemError):
    """The cluster (or another service Tandem needs) did not answer."""


class JobFailed(TandemError):
    """A training job ended Failed; the message names the worker and its exit code."""

    def __init__(self, message: str, job: Any = None) -> None:
        self.job = job
        super().__init__(message)


class NotShippable(TandemError, ValueError):
    """A function that `Client.train` cannot send to workers; the message says why and what to do.

    Only a function's source and JSON arguments travel (never a pickle), so whatever the source
    does not carry itself (a closure's variables, a module-level name, a lambda) cannot go."""


class Timeout(TandemError):
    """A wait ran out before the job reached the state asked for."""


class Interrupted(TandemError):
    """Ctrl-C or SIGTERM reached a command that was running workers."""

    exit_code = 130


class UsageError(TandemError, ValueError):
    """A command-line value Tandem cannot use; exit 2, as click exits for a bad option."""

    exit_code = 2
