"""Rendering a TrainingJob into the Kubernetes objects that run it: plain dicts.

A Jinja environment with StrictUndefined (a missing value is an error, never an empty string)
fills YAML templates shipped as package data; every value passes through `tojson`, so no
string in a spec can add a field or an object.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jinja2
import yaml

from ..api.model import TrainingJob
from .context import template_values

TEMPLATES = ("service.yaml.j2", "job.yaml.j2")
TENSORBOARD_TEMPLATE = "tensorboard.yaml.j2"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Characters a YAML reader would refuse or read as line breaks inside a quoted scalar.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def tojson(value: Any) -> str:
    """JSON that YAML reads back exactly: non-ASCII kept as is (no surrogate pairs), the few
    characters YAML treats specially escaped."""
    text = json.dumps(value, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tandem", "render/templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = tojson
    return env


def render(job: TrainingJob, restart: int = 0, metrics_address: str = "") -> list[dict[str, Any]]:
    """The headless Service and the Indexed Job of a TrainingJob, in apply order, then the job's
    TensorBoard Deployment and Service when it has one."""
    values = template_values(job, restart=restart, metrics_address=metrics_address)
    names = TEMPLATES + ((TENSORBOARD_TEMPLATE,) if job.spec.tensorboard.servable else ())
    objects = []
    for name in names:
        text = environment().get_template(name).render(values)
        objects.extend(yaml.load_all(text, Loader=_Loader))
    return objects


def render_one(job: TrainingJob, kind: str, **kwargs: Any) -> dict[str, Any]:
    return next(o for o in render(job, **kwargs) if o["kind"] == kind)
