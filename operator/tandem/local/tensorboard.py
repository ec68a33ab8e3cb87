"""`tandem run --tensorboard`: a TensorBoard on 127.0.0.1 reading the run's event files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

from .._sys import proctree
from .._sys.lifetime import die_with_parent
from .._sys.ports import free_ports


class TensorBoardServer:
    """The `tensorboard` of this interpreter's environment, stopped with stop() or with us."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        (self.port,) = free_ports(1)
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> TensorBoardServer:
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(self.logdir), "--host", "127.0.0.1",
             "--port", str(self.port), "--reload_interval", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        return self

    def serve_until_interrupted(self) -> None:
        """Keep serving after the run, until TensorBoard ends or Ctrl-C."""
        if self.process is None:
            return
        try:
            self.process.wait()
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            proctree.stop_trees([self.process.pid], 3.0)
            self.process.wait(5)
