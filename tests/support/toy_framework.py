"""A framework in a few lines: what a new one writes, with nothing of it outside this module.

`toy` has one strategy, `ring`, that tells each worker its rank and its peers through TOY_*
variables, one rule (one process per worker), and a TensorBoard writer that writes plain text.
tests/unit/test_frameworks.py registers it and renders, validates and runs a job with it.
"""

from __future__ import annotations

from pathlib import Path

from tandem.frameworks import Contract, Fixed, Framework, Strategy, WorkerLaunch


def ring_launch(contract: Contract, command: tuple[str, ...], python: str) -> WorkerLaunch:
    peers = ",".join(contract.worker_hosts)
    return WorkerLaunch(argv=command, env={"TOY_RANK": str(contract.worker_index), "TOY_PEERS": peers})


class TextWriter:
    """Scalars as lines of text, `tag value step`, in <directory>/scalars.txt."""

    def __init__(self, directory: str):
        self.path = Path(directory) / "scalars.txt"

    def scalar(self, tag: str, value: float, step: int) -> None:
        with self.path.open("a") as out:
            out.write(f"{tag} {value:g} {step}\n")

    def flush(self) -> None:
        pass


TOY = Framework(
    name="toy",
    strategies=(Strategy(name="ring", launch=ring_launch, needs_hosts=True, sets_env=("TOY_*",)),),
    image="toy-worker",
    extra="toy",
    tensorboard_writer=f"{__name__}:TextWriter",
    rules=(Fixed("procsPerWorker", 1, reason="a toy worker is one process"),),
)
