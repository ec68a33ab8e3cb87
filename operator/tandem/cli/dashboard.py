"""`tandem dashboard`: every job, local and on the cluster, on a web page at 127.0.0.1."""

from __future__ import annotations

import asyncio
import webbrowser
from pathlib import Path
from typing import Optional

import click

from ..errors import UsageError
from .boundary import TandemCommand
from .options import kube_client, kubeconfig_option, namespace_option, runs_dir_option

DEFAULT_PORT = 8377


@click.command(cls=TandemCommand)
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--no-cluster", is_flag=True, help="Local runs only, even with a kubeconfig.")
@runs_dir_option("The local runs to show (tandem run's --runs-dir).")
@namespace_option("Only this namespace's TrainingJobs (default: every namespace the kubeconfig's user may list, "
                  "else its context's).")
@kubeconfig_option()
def dashboard(port: int, open_browser: bool, no_cluster: bool, runs_dir: str, namespace: Optional[str],
              kubeconfig: Optional[str]) -> None:
    """Serve a read-only web page of every job: local runs, and the TrainingJobs your kubeconfig can list."""
    try:
        from ..dashboard.server import Dashboard, make_app, start
    except ImportError as error:
        raise UsageError(f"tandem dashboard needs aiohttp ({error}): pip install 'tandem[dashboard]'") from None
    from ..dashboard.sources import ClusterJobs, LocalRuns
    from ..errors import TandemError

    board = Dashboard(LocalRuns(Path(runs_dir)))
    if no_cluster:
        board.no_cluster = "--no-cluster"
    else:
        try:
            board.cluster = ClusterJobs(kube_client(kubeconfig, namespace), namespace)
        except TandemError as error:
            board.no_cluster = str(error)

    async def serve() -> None:
        try:
            runner, taken = await start(make_app(board), port)
        except OSError as error:
            raise UsageError(f"cannot listen on 127.0.0.1:{port} ({error.strerror}): pass another --port, "
                             "or --port 0 for any free one") from None
        url = f"http://127.0.0.1:{taken}/"
        click.echo(f"Tandem dashboard: {url}  (read-only; Ctrl-C stops it)", err=True)
        if open_browser:
            webbrowser.open(url)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
