"""``python -m tandem.launch.function FILE``: what each worker of a function job runs.

`Client.train(func, kwargs=...)` ships a function as its source text and JSON arguments
(`tandem.backends.function`); this module, the user's command under ``python -m tandem.launch --``,
reads them back, checks that the source is exactly one ``def`` of that name, defines it and calls
it. So a function runs under the same environment contract, framework launch (torchrun's
processes, TF_CONFIG) and restarts as any command, and nothing anywhere unpickles anything: the
file is text and JSON, and the operator never reads it. Standard library only, as all of launch.

Exit codes: the function's (0 when it returns; 1 with its traceback when it raises); 2 when the
file is not a function Tandem shipped.
"""

from __future__ import annotations
import __future__

import ast
import json
import linecache
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence, Union

from ..contract import FUNCTION_KEYS

USAGE = "usage: python -m tandem.launch.function FILE (a function shipped by tandem's Client.train)"


class ShippedFileError(ValueError):
    """The file is not one function's source and JSON arguments."""


@dataclass(frozen=True)
class Unfit:
    """Why a source is not one plain ``def`` that can be defined without running anything. The
    client (backends/function.py) and the worker (check_source) each say it in their own words."""

    #: "syntax" (does not parse), "shape" (not exactly one ``def name``), "decorated", "default".
    kind: Literal["syntax", "shape", "decorated", "default"]
    #: The syntax error's message, or the text of the first default that is not a literal.
    detail: str = ""


def plain_definition(source: str, name: str) -> Union[ast.FunctionDef, Unfit]:
    """The one top-level ``def name(...)`` of `source`, or why it is unfit: nothing may run before
    the function is called (no other statement, no decorator: a decorator runs when the ``def``
    does) and defaults must be literals (a default expression runs when the ``def`` runs)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return Unfit("syntax", str(error.msg))
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != name:
        return Unfit("shape")
    definition = tree.body[0]
    if definition.decorator_list:
        return Unfit("decorated")
    arguments = definition.args
    for default in [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]:
        try:
            ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return Unfit("default", ast.unparse(default)[:80])
    return definition


def check_source(source: str, name: str) -> None:
    """The source must be one plain top-level ``def name(...)`` (plain_definition): no other name
    can be what is called, and defining it runs nothing; its annotations are compiled as text,
    never evaluated (define)."""
    unfit = plain_definition(source, name)
    if not isinstance(unfit, Unfit):
        return
    words = {
        "syntax": f"the source does not parse: {unfit.detail}",
        "shape": f"the source must be exactly one `def {name}(...)`",
        "decorated": f"`def {name}` is decorated: a decorator runs when the function is defined; "
                     f"ship the undecorated function",
        "default": f"a default of `def {name}` is not a literal ({unfit.detail}): it would run when the "
                   f"function is defined; pass the value in kwargs",
    }
    raise ShippedFileError(words[unfit.kind])


def read_shipped(path: Path) -> tuple[str, str, dict[str, Any]]:
    """(name, source, kwargs) from the file, checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ShippedFileError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or sorted(data) != sorted(FUNCTION_KEYS):
        raise ShippedFileError(f"{path} must be a JSON object with exactly the keys {', '.join(FUNCTION_KEYS)}")
    name, source, kwargs = data["name"], data["source"], data["kwargs"]
    if not isinstance(name, str) or not name.isidentifier() or not isinstance(source, str) or not isinstance(kwargs, dict):
        raise ShippedFileError(f"{path}: name must be an identifier, source a string, kwargs an object")
    check_source(source, name)
    return name, source, kwargs


def define(name: str, source: str, path: Path) -> Callable[..., Any]:
    """The function, defined alone in a fresh namespace; its source is registered with linecache
    under `path` so that a traceback shows the user's lines."""
    filename = f"{path}:{name}"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__tandem_function__"}
    # Annotations as text (PEP 563): a `def` line's annotations would otherwise run at definition.
    code = compile(source, filename, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)  # the user's own code, as a script would run
    function: Callable[..., Any] = namespace[name]
    return function


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if args[:1] != ["--help"] else sys.stdout)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    path = Path(args[0])
    try:
        name, source, kwargs = read_shipped(path)
    except ShippedFileError as error:
        print(f"tandem.launch.function: {error}", file=sys.stderr)
        return 2
    define(name, source, path)(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
