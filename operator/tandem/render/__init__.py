"""Rendering a TrainingJob into the Kubernetes objects that run it: plain dicts.

A Jinja environment with StrictUndefined (a missing value is an error, never an empty string)
fills templates shipped as package data; every value passes through `tojson`, so no string in
a spec can add a field or an object. The templates are JSON documents (JSON is YAML), so the
rendered text is read back as JSON: a YAML parse cost 1.5 ms a job, five times the rest of
rendering together (benchmarks/RESULTS.md, B4).

The operator renders a job's children on every pass, to compare them with what exists, so
rendering is on its path for every event: orjson writes the values and reads the text back
(half the time of the standard library's json, measured), and the templates are loaded once
(`auto_reload` off: jinja otherwise stats each template file at every render).
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
import orjson

from ..api.model import TrainingJob
from .context import metrics_token_values, template_values

TEMPLATES = ("service.json.j2", "job.json.j2", "network-policy.json.j2")
TENSORBOARD_TEMPLATE = "tensorboard.json.j2"
METRICS_TOKEN_TEMPLATE = "metrics-token.json.j2"


def tojson(value: Any) -> str:
    """Every user value enters a template as a JSON literal: quoted, escaped, inert."""
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tandem", "render/templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,  # the templates are package data: they do not change under a process
    )
    env.filters["tojson"] = tojson
    return env


def render(job: TrainingJob, restart: int = 0, metrics_address: str = "",
           token_secret: str = "") -> list[dict[str, Any]]:
    """The headless Service, the Indexed Job and the NetworkPolicy of a TrainingJob, then the
    job's TensorBoard Deployment, Service and NetworkPolicy when it has one. With `token_secret`, the workers read
    their gateway token from the job's token Secret of that name (`render_metrics_token`)."""
    values = template_values(job, restart=restart, metrics_address=metrics_address, token_secret=token_secret)
    names = TEMPLATES + ((TENSORBOARD_TEMPLATE,) if job.spec.tensorboard.servable else ())
    objects: list[dict[str, Any]] = []
    for name in names:
        document = orjson.loads(environment().get_template(name).render(values))
        objects.extend(document if isinstance(document, list) else [document])
    return objects


def render_metrics_token(job: TrainingJob, token: str, secret: str) -> dict[str, Any]:
    """The job's token Secret `secret`, holding its write token for the figures gateway."""
    document: dict[str, Any] = orjson.loads(
        environment().get_template(METRICS_TOKEN_TEMPLATE).render(metrics_token_values(job, token, secret)))
    return document


def render_one(job: TrainingJob, kind: str, **kwargs: Any) -> dict[str, Any]:
    return next(o for o in render(job, **kwargs) if o["kind"] == kind)
