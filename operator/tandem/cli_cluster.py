"""CLI commands against the cluster of the current kubeconfig: submit, get, list, logs, delete."""

from __future__ import annotations

import json
import sys
from typing import Optional

import click
import yaml
from rich.console import Console
from rich.table import Table

from .api.status import TrainingJobStatus
from .contract import API_GROUP, SINGULAR
from .sdk import Client, JobFailed, TandemError, status_of

PHASE_STYLES = {"Succeeded": "green", "Failed": "red", "Invalid": "red", "Running": "cyan",
                "Restarting": "yellow", "Suspended": "yellow", "Pending": "white"}

namespace_option = click.option("-n", "--namespace", help="Namespace (default: the kubeconfig context's).")
kubeconfig_option = click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG",
                                 help="Kubeconfig file (default: KUBECONFIG or ~/.kube/config).")


def _client(kubeconfig: Optional[str], namespace: Optional[str]) -> Client:
    try:
        return Client(kubeconfig=kubeconfig.split(":")[0] if kubeconfig else None, namespace=namespace)
    except TandemError as error:
        _fail(str(error))
        raise


def _fail(message: str) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(1)


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def status_table(name: str, status: TrainingJobStatus) -> Table:
    """The figures a person wants of a job: phase, workers, restarts, throughput, efficiency."""
    table = Table(title=f"{name}: [{PHASE_STYLES.get(status.phase or '', 'white')}]{status.phase or 'Unknown'}[/]",
                  title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    w = status.workers
    table.add_row("workers", f"{w.active} active, {w.ready} ready, {w.succeeded} succeeded, {w.failed} failed")
    table.add_row("restarts", str(status.restarts))
    m = status.metrics
    if m is not None and m.available:
        table.add_row("throughput", f"{_fmt(m.throughput)} samples/s")
        table.add_row("scaling efficiency", _fmt(m.scaling_efficiency, 2))
        table.add_row("step time p50 / p95", f"{_fmt(m.step_time_p50, 3)} / {_fmt(m.step_time_p95, 3)} s")
        table.add_row("straggler", "-" if m.straggler is None else f"worker {m.straggler}")
    elif m is not None:
        table.add_row("metrics", "unavailable")
    for condition in status.conditions:
        if condition.status == "True":
            table.add_row(condition.type, f"{condition.reason}: {condition.message}")
    return table


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
    @namespace_option
    @kubeconfig_option
    def submit(file: str, overrides: tuple[str, ...], namespace: Optional[str], kubeconfig: Optional[str]) -> None:
        """Create a TrainingJob on the cluster (the operator runs it)."""
        from .api import SpecError, load_job
        from .cli import report_spec_error

        try:
            job = load_job(file, overrides)
        except SpecError as error:
            report_spec_error(file, error)
            sys.exit(1)
        try:
            created = _client(kubeconfig, namespace).submit(job)
        except TandemError as error:
            _fail(str(error))
        click.echo(f"{SINGULAR}.{API_GROUP}/{created.metadata.name} submitted in {created.metadata.namespace}; "
                   f"follow it with: tandem get {created.metadata.name} -n {created.metadata.namespace}")

    @cli.command()
    @click.argument("name")
    @click.option("-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table", show_default=True)
    @namespace_option
    @kubeconfig_option
    def get(name: str, output: str, namespace: Optional[str], kubeconfig: Optional[str]) -> None:
        """Show one TrainingJob: phase, workers, restarts and its figures."""
        try:
            job = _client(kubeconfig, namespace).get(name)
        except TandemError as error:
            _fail(str(error))
        if output == "table":
            Console().print(status_table(name, status_of(job)))
        elif output == "json":
            click.echo(json.dumps(job.to_dict(), indent=2))
        else:
            click.echo(yaml.safe_dump(job.to_dict(), sort_keys=False), nl=False)

    @cli.command("list")
    @namespace_option
    @click.option("-A", "--all-namespaces", is_flag=True)
    @kubeconfig_option
    def list_jobs(namespace: Optional[str], all_namespaces: bool, kubeconfig: Optional[str]) -> None:
        """List TrainingJobs with the same columns as `kubectl get tj`."""
        try:
            jobs = _client(kubeconfig, namespace).list(all_namespaces=all_namespaces)
        except TandemError as error:
            _fail(str(error))
        table = Table(box=None)
        for column in (["NAMESPACE"] if all_namespaces else []) + ["NAME", "FRAMEWORK", "WORKERS", "PHASE",
                                                                     "THROUGHPUT", "EFFICIENCY", "RESTARTS"]:
            table.add_column(column)
        for job in jobs:
            status = status_of(job)
            metrics = status.metrics
            row = [job.metadata.name, job.spec.framework, str(job.spec.worker_count), status.phase or "",
                   _fmt(metrics.throughput if metrics else None), _fmt(metrics.scaling_efficiency if metrics else None, 2),
                   str(status.restarts)]
            table.add_row(*([job.metadata.namespace] if all_namespaces else []), *row)
        Console().print(table)

    @cli.command()
    @click.argument("name")
    @namespace_option
    @kubeconfig_option
    @click.option("--wait", is_flag=True, help="Return only once the job and its workers are gone.")
    def delete(name: str, namespace: Optional[str], kubeconfig: Optional[str], wait: bool) -> None:
        """Delete a TrainingJob; its Service, Job and pods go with it."""
        try:
            _client(kubeconfig, namespace).delete(name, wait=wait)
        except TandemError as error:
            _fail(str(error))
        click.echo(f"{SINGULAR}.{API_GROUP}/{name} deleted")


def run_on_kubernetes(job, kubeconfig: Optional[str], namespace: Optional[str]) -> int:
    """`tandem run --on kubernetes`: submit, follow with a live status line, end with the table."""
    from rich.live import Live

    console = Console(stderr=True)
    client = _client(kubeconfig, namespace)
    try:
        created = client.submit(job)
    except TandemError as error:
        _fail(str(error))
    name, ns = created.metadata.name, created.metadata.namespace
    console.print(f"[bold]{name}[/] submitted to {ns} on {client.api.configuration.host}")
    with Live(console=console, transient=True, refresh_per_second=4) as live:
        def show(current) -> None:
            status = status_of(current)
            m = status.metrics
            figures = f"  {_fmt(m.throughput)} samples/s  efficiency {_fmt(m.scaling_efficiency, 2)}" if m and m.available else ""
            live.update(f"● {name}  {status.phase or 'Pending'}  workers {status.workers.active} active  "
                        f"restarts {status.restarts}{figures}")
        try:
            final = client.wait(name, ns, on_change=show)
            code = 0
        except JobFailed as failure:
            final, code = failure.job, 1
        except KeyboardInterrupt:
            console.print(f"stopped following; {name} keeps running (tandem delete {name} -n {ns} stops it)")
            return 130
    console.print(status_table(name, status_of(final)))
    return code
