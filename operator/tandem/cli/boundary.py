"""The CLI's one error boundary: a TandemError leaves a command as its message and exit code.

Modelled on click's own exceptions (src/click/exceptions.py): a ClickException carries its
`exit_code` and knows how to `show()` itself, and click's main loop prints it and exits. A
SpecError shows one line per problem, `FILE: field.path: what to fix`; every other error one red
line. Commands raise; none of them prints an error and exits by itself.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Optional

import click

from ..errors import SpecError, TandemError


def _spec_errors() -> tuple[type[Exception], ...]:
    """SpecError, and api.errors.SpecError while that is a class of its own (it joins the
    TandemError family in the same change series). Looked up only once loaded: a command that
    raised it has loaded it, and `tandem --help` must not import the API model."""
    api_errors = sys.modules.get("tandem.api.errors")
    return (SpecError,) if api_errors is None else (SpecError, api_errors.SpecError)


def spec_error_lines(source: str, error: Any) -> list[str]:
    """One line per problem of a bad spec, the file in bold: `jobs/x.yaml: spec.workers: ...`."""
    return [f"{click.style(source, bold=True)}: {path}: {message}" for path, message in error.problems]


class CommandFailed(click.ClickException):
    """A Tandem error on its way out of a command: shown on stderr, exits with its exit_code."""

    def __init__(self, error: Exception, source: str = ""):
        super().__init__(str(error))
        self.error, self.source = error, source
        # click declares exit_code a ClassVar but reads it from the instance it catches.
        self.exit_code = getattr(error, "exit_code", 1)  # type: ignore[misc]

    def show(self, file: Optional[IO[Any]] = None) -> None:
        if isinstance(self.error, _spec_errors()):
            for line in spec_error_lines(self.source, self.error):
                click.echo(line, file=file, err=True)
        else:
            click.secho(self.message, file=file, fg="red", err=True)


class TandemCommand(click.Command):
    """A command whose Tandem errors become CommandFailed; a SpecError names the FILE argument."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if not isinstance(error, (TandemError, *_spec_errors())):
                raise
            raise CommandFailed(error, source=str(ctx.params.get("file") or "")) from error


class TandemGroup(click.Group):
    """A group whose commands (and subgroups) are TandemCommands."""

    command_class = TandemCommand
    group_class = type  # subgroups are of this same class
