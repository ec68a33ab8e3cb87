"""A Python function as a TrainingJob: what `Client.train(func, kwargs=...)` ships, and why some
functions cannot go.

Only text travels: the function's source (one ``def``, dedented) and its keyword arguments as
JSON, never a pickle, so neither the operator nor a worker ever unpickles what a notebook sent.
Each worker runs ``python -m tandem.launch -- python -m tandem.launch.function FILE``
(`tandem.launch.function`), so the function gets the same environment contract, framework launch
and restarts as any command. The backend decides where FILE is: the run's directory here, a
ConfigMap owned by the TrainingJob on a cluster.

A function runs alone on each worker, so it must carry everything it uses. What cannot travel is
refused here, before anything starts, with one error saying why and what to do (`NotShippable`):
not a plain ``def``, a lambda, a closure, a decorator, an unreadable source (the plain ``python``
prompt keeps none; IPython and Jupyter do), a name it neither defines nor imports (a module-level
``import torch`` stays behind: import inside the function), arguments that do not fit its
signature or would not arrive as they are through JSON.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import inspect
import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .. import frameworks
from ..api import SpecError, TrainingJob
from ..contract import API_VERSION, FUNCTION_ANNOTATION, FUNCTION_MODULE, KIND, MAX_JOB_NAME
from ..errors import NotShippable
from ..launch.function import plain_definition


@dataclass(frozen=True)
class ShippedFunction:
    """A function as it travels: its name, its source and its JSON keyword arguments."""

    name: str
    source: str
    kwargs: Mapping[str, Any]

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "source": self.source, "kwargs": dict(self.kwargs)}, indent=1)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def ship(func: Callable[..., Any], kwargs: Optional[Mapping[str, Any]] = None) -> ShippedFunction:
    """The function and its arguments as text, or NotShippable naming the first reason why not."""
    kwargs = dict(kwargs or {})
    what = _describe(func)
    if not inspect.isfunction(func):
        raise NotShippable(f"{what} is not a function: train() ships a function defined with `def`")
    if func.__code__.co_name == "<lambda>":
        raise NotShippable(f"{what} is a lambda, whose source cannot be cut out of its line: define it with `def`")
    if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise NotShippable(f"{what} is a coroutine or generator function: train() calls a plain `def` that returns")
    if hasattr(func, "__wrapped__"):
        raise NotShippable(f"{what} wraps another function (a decorator made it): its own source is not the "
                           f"function's; ship the undecorated function")
    if func.__code__.co_freevars:
        raise NotShippable(f"{what} is a closure over {', '.join(func.__code__.co_freevars)} (variables of the "
                           f"function that defined it), which cannot travel: define it at the top level and "
                           f"pass them in kwargs")
    definition = _definition(func, what)
    free = sorted(free_names(definition))
    if free:
        raise NotShippable(f"{what} uses {', '.join(free)}, which it neither defines nor imports: it runs alone on "
                           f"each worker, so import modules and define helpers inside it, and pass values in kwargs")
    _check_kwargs(func, what, kwargs)
    return ShippedFunction(func.__name__, _source(func), kwargs)


def _describe(func: Any) -> str:
    return f"{getattr(func, '__qualname__', None) or type(func).__name__}"


def _source(func: Callable[..., Any]) -> str:
    return textwrap.dedent(inspect.getsource(func))


def _definition(func: Callable[..., Any], what: str) -> ast.FunctionDef:
    """The function's own `def`, parsed from its source; refused when the source is unreadable,
    decorated, or defines something else."""
    try:
        source = _source(func)
    except (OSError, TypeError) as error:
        raise NotShippable(f"the source of {what} cannot be read ({error}): the plain `python` prompt keeps no "
                           f"source; define it in a .py file, IPython or a Jupyter notebook cell") from None
    found = plain_definition(source, func.__name__)
    if isinstance(found, ast.FunctionDef):
        return found
    unfit = found
    words = {
        "syntax": f"the source of {what} does not parse on its own ({unfit.detail})",
        "shape": f"the source of {what} is not one `def {func.__name__}(...)`",
        "decorated": f"{what} is decorated: a decorator runs where the function is defined and cannot "
                     f"travel with it; ship the undecorated function",
        "default": f"a default of {what} is not a literal ({unfit.detail}): the workers run nothing when "
                   f"they define it; use a literal default or pass the value in kwargs",
    }
    raise NotShippable(words[unfit.kind])


def free_names(definition: ast.FunctionDef) -> set[str]:
    """Names the function reads but binds nowhere in itself (parameters, assignments, imports,
    nested defs, loop and `with` targets) and that are not builtins. Scopes are not told apart:
    a name bound anywhere inside counts as bound, so this misses some mistakes but never refuses
    a function that defines what it uses."""
    bound: set[str] = {definition.name}
    read: set[str] = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
    return read - bound - set(dir(builtins))


def _check_kwargs(func: Callable[..., Any], what: str, kwargs: dict[str, Any]) -> None:
    try:
        inspect.signature(func, follow_wrapped=False).bind(**kwargs)
    except TypeError as error:
        raise NotShippable(f"kwargs do not fit {what}(): {error}") from None
    for key, value in kwargs.items():
        try:
            arrives = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise NotShippable(f"kwargs[{key!r}] is not JSON ({error}): arguments travel as JSON; pass numbers, "
                               f"strings, lists and dicts, and build objects inside the function") from None
        if arrives != value or _shape(arrives) != _shape(value):
            raise NotShippable(f"kwargs[{key!r}] would not arrive as it is through JSON (a tuple becomes a list, "
                               f"dict keys become strings): pass lists and string keys")


def _shape(value: Any) -> Any:
    """The JSON types of a value, all the way down (1 == 1.0 == True in Python, not in JSON)."""
    if isinstance(value, dict):
        return {str(k): _shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_shape(v) for v in value]]
    return type(value).__name__


def job_name(function_name: str, suffix: str = "") -> str:
    """A DNS-1035 job name from the function's name: `train_mnist` -> `train-mnist`."""
    base = re.sub(r"[^a-z0-9-]+", "-", function_name.lower()).strip("-")
    base = base if base[:1].isalpha() else f"fn-{base}".rstrip("-")
    limit = MAX_JOB_NAME - (len(suffix) + 1 if suffix else 0)
    base = base[:limit].rstrip("-")
    return f"{base}-{suffix}" if suffix else base


@dataclass(frozen=True)
class JobOptions:
    """Everything about a function job but the function: `Client.train`'s keyword arguments.
    `spec`: any other TrainingJob fields (camelCase, as in YAML), e.g. {"runPolicy": {"backoffLimit": 0}}."""

    workers: int = 2
    framework: str = "pytorch"
    image: Optional[str] = None
    resources: Optional[Mapping[str, Any]] = None
    env: Optional[Mapping[str, str]] = None
    name: Optional[str] = None
    namespace: Optional[str] = None
    spec: Optional[Mapping[str, Any]] = None


def function_job(function: ShippedFunction, path: str, name: str, options: JobOptions) -> TrainingJob:
    """The TrainingJob whose workers call the function from the file at `path`."""
    framework = frameworks.find(options.framework)
    if framework is None:
        raise SpecError([("framework", f"must be one of {', '.join(frameworks.names())} (got {options.framework!r})")])
    body: dict[str, Any] = {
        "framework": framework.name,
        "strategy": framework.default_strategy.name,  # the framework's usual, multi-worker one
        "command": ["python", "-m", FUNCTION_MODULE, path],
        "workers": options.workers,
        **({"image": options.image} if options.image else {}),
        **({"resources": dict(options.resources)} if options.resources else {}),
        **({"env": [{"name": k, "value": v} for k, v in options.env.items()]} if options.env else {}),
        **dict(options.spec or {}),
    }
    metadata = {"name": name, **({"namespace": options.namespace} if options.namespace else {}),
                "annotations": {FUNCTION_ANNOTATION: function.name}}
    return TrainingJob.from_dict({"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": body})
