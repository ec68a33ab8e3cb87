"""The dashboard's web server (aiohttp, the asyncio web framework kopf already brings): pages as
HTML from the templates, their live fragments, each job's series as JSON, the static files.

It listens on 127.0.0.1 only and answers only requests addressed to it by that name
(`localhost` or `127.0.0.1`): the pages carry what the user's kubeconfig can read, and a web page
elsewhere must not reach them through a DNS name rebound to this machine (the check Jupyter
makes). Every page forbids scripts and styles from anywhere but here (Content-Security-Policy);
the vendored chart library is served from the package, never a CDN.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import jinja2
from aiohttp import web

from ..api.status import rfc3339
from . import views
from .rows import JobDocument
from .series import Series, from_history, series
from .sources import ClusterJobs, LocalRuns, Sweep

HERE = Path(__file__).parent
#: Hosts a request may be addressed to (any port).
LOCAL_NAMES = ("127.0.0.1", "localhost")
HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def local_host(host: Optional[str]) -> bool:
    """True for `127.0.0.1:8377`, `localhost`, `[::1]:80`...: a request addressed to this machine by name."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return name.strip("[]").lower() in (*LOCAL_NAMES, "::1")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not local_host(request.host):
        return web.Response(status=421, text="this dashboard answers requests to localhost or 127.0.0.1 only\n")
    response = await handler(request)
    response.headers.update(HEADERS)
    return response


@dataclass
class Dashboard:
    """What the pages read: the local runs, and the cluster when a kubeconfig gave one."""

    local: LocalRuns
    cluster: Optional[ClusterJobs] = None
    #: Why there is no cluster (no kubeconfig...), shown on the jobs page.
    no_cluster: str = ""
    templates: jinja2.Environment = field(default_factory=lambda: jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined))

    def html(self, template: str, **context: Any) -> web.Response:
        return web.Response(text=self.templates.get_template(template).render(**context), content_type="text/html")

    def read_jobs(self) -> tuple[list[JobDocument], list[str], list[str]]:
        """Every job, what was read and what could not be."""
        jobs = self.local.jobs()
        sources = [f"local runs in {self.local.runs_dir}"]
        problems = []
        if self.cluster is not None:
            view = self.cluster.view()
            jobs += view.jobs
            if view.error:
                problems.append(f"The cluster did not answer: {view.error}")
            else:
                sources.append(f"TrainingJobs on {self.cluster.client.host} ({view.scope})")
        else:
            sources.append(f"no cluster ({self.no_cluster})")
        return jobs, sources, problems

    def jobs_page(self, request: web.Request) -> views.JobsPage:
        jobs, sources, problems = self.read_jobs()
        sweeps = [views.sweep_page(s.job, s.stamp, s.data, s.plot is not None) for s in self.local.sweeps()]
        return views.jobs_page(jobs, datetime.now(timezone.utc), request.query.get("namespace", ""),
                               request.query.get("phase", ""), sources, problems, sweeps)

    def sweep(self, request: web.Request) -> Sweep:
        found = self.local.find_sweep(request.match_info["job"], request.match_info["stamp"])
        if found is None:
            raise web.HTTPNotFound(text="no such sweep here\n")
        return found

    def sweep_page(self, request: web.Request) -> views.SweepPage:
        found = self.sweep(request)
        return views.sweep_page(found.job, found.stamp, found.data, found.plot is not None)

    def find(self, request: web.Request) -> tuple[JobDocument, Callable[[], Series], Callable[[], dict[int, list[str]]]]:
        """The job a URL names, with how to read its charts' series and its logs; 404 when there is none."""
        info = request.match_info
        if info["source"] == "local":
            found = self.local.find(info["a"], info["b"])
            if found is not None:
                job, run_dir = found
                return job, lambda: series(self.local.history(run_dir)), lambda: self.local.log_tails(run_dir)
        elif info["source"] == "cluster" and self.cluster is not None:
            cluster, namespace, name = self.cluster, info["a"], info["b"]
            job_doc = cluster.find(namespace, name)
            if job_doc is not None:
                return (job_doc, lambda: from_history(job_doc.history),
                        lambda: cluster.log_tails(namespace, name))
        raise web.HTTPNotFound(text="no such job here\n")

    def job_page(self, request: web.Request) -> views.JobPage:
        job, drawn, logs = self.find(request)
        return views.job_page(job, datetime.now(timezone.utc), drawn(), logs())

    def series(self, request: web.Request) -> dict[str, Any]:
        _, drawn, _ = self.find(request)
        return drawn().as_json()


def make_app(dashboard: Dashboard) -> web.Application:
    """The routes; every read runs in a thread, so one slow read (a cluster, a big history)
    never holds another page."""
    app = web.Application(middlewares=[guard])

    def page(read: Callable[[web.Request], Any], template: str) -> Handler:
        """A route that reads its page in a thread and lays it out with `template`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            content = await asyncio.to_thread(read, request)
            return dashboard.html(template, page=content, now=rfc3339(datetime.now(timezone.utc)))

        return handler

    async def job_series(request: web.Request) -> web.Response:
        data = await asyncio.to_thread(dashboard.series, request)
        return web.Response(text=json.dumps(data), content_type="application/json")

    async def sweep_plot(request: web.Request) -> web.StreamResponse:
        found = await asyncio.to_thread(dashboard.sweep, request)
        if found.plot is None:
            raise web.HTTPNotFound(text="this sweep has no plot\n")
        return web.FileResponse(found.plot, headers={"Content-Type": "image/png"})

    job_path = "/jobs/{source:local|cluster}/{a}/{b}"
    sweep_path = "/sweeps/{job}/{stamp:[0-9]+-[0-9]+}"
    app.router.add_get(sweep_path, page(dashboard.sweep_page, "sweep.html.j2"))
    app.router.add_get(sweep_path + ".png", sweep_plot)
    app.router.add_get("/", page(dashboard.jobs_page, "jobs.html.j2"))
    app.router.add_get("/rows", page(dashboard.jobs_page, "_rows.html.j2"))
    app.router.add_get(job_path, page(dashboard.job_page, "job.html.j2"))
    app.router.add_get(job_path + "/live", page(dashboard.job_page, "_job_live.html.j2"))
    app.router.add_get(job_path + "/logs", page(dashboard.job_page, "_job_logs.html.j2"))
    app.router.add_get(job_path + "/series.json", job_series)
    app.router.add_static("/static", HERE / "static")
    return app


async def start(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    """Listen on 127.0.0.1:`port` (0: any free port); returns the runner and the port taken."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, int(runner.addresses[0][1])
