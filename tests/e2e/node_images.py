"""Tandem's three images imported into the real node's containerd in the background, from the
moment the session's node is up, so that no test waits for the import unless it needs an image
before it is in.

Importing the archives costs minutes on a fresh containerd root (the PyTorch image alone about 3:
it is read, hashed and unpacked, 12 GB written); the tests that run before the first user of an
image (test_faults, test_node) overlap it instead of waiting for it in that user's setup.

The work (for each image in IMAGES order, the operator first, the smallest, which test_faults
needs: build_images() of it, which returns at once when its layout is cached, then load_image())
runs in a child process of its own process group, which prints one JSON line per image
as it is in. So the session can kill it, with the ctr and tar it runs, at any moment: no
process outlives the session, and none is still talking to the node's containerd when the node
stops and checks for leftovers. A failure of the build or of an import surfaces in the test that
waits for that image, with the child's own words; a child that is still at it after the waiter's
timeout fails that test, naming what it was doing: never a hang.

Run by hand (the node must be running): `python -m tests.e2e.node_images [NAME...]`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e import images

REPO = Path(__file__).resolve().parents[2]
#: How long a test waits for an image by default: a cold build of all three (about 20 min on a
#: loaded 2-core machine, started by hack/test.sh well before the e2e tier) and the imports
#: fit in it, and it is less than the e2e tests' own pytest timeouts (30 min and more).
WAIT_SECONDS = 1500.0


@dataclass(frozen=True)
class Imported:
    """One image in the node's containerd: its layout and the names containerd holds it by."""

    layout: Path
    refs: tuple[str, ...]
    seconds: float


class NodeImages:
    """The background import of `names` into the running node's containerd: start() once,
    wait(name) in any test, stop() before the node stops."""

    def __init__(self, log_path: Path, names: tuple[str, ...] = images.IMAGES, command: list[str] | None = None):
        self.names, self.log_path = names, log_path
        #: The child; main() below unless a test of this class gives a stand-in.
        self.command = command or [sys.executable, "-m", "tests.e2e.node_images", *names]
        self.started = 0.0
        self._results: dict[str, Imported | str] = {}  # an Imported, or why it is not
        self._events = {name: threading.Event() for name in names}
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> NodeImages:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), str(REPO),
                                                                          os.environ.get("PYTHONPATH")]))}
        self.started = time.monotonic()
        with self.log_path.open("w") as log:
            self._process = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                             start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="node-images", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        """Each line the child prints settles one image; at its end, every image not settled
        yet is settled with the reason: an exit before it, or a kill by stop()."""
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            name = record.get("image")
            if name in self._events:
                self._results[name] = record["error"] if "error" in record else Imported(
                    Path(record["layout"]), tuple(record["refs"]), record["seconds"])
                self._events[name].set()
        code = self._process.wait()
        for name, event in self._events.items():
            if not event.is_set():
                self._results[name] = f"the import process exited {code} before importing {name}:\n{self._log_tail()}"
                event.set()

    def _log_tail(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""

    def wait(self, name: str, timeout: float = WAIT_SECONDS) -> Imported:
        """The image, once it is in the node's containerd; AssertionError if its import failed or
        has not ended within `timeout` seconds."""
        if not self._events[name].wait(timeout):
            raise AssertionError(f"importing {name} into the node's containerd has not ended after "
                                 f"{time.monotonic() - self.started:.0f}s (log {self.log_path}):\n{self._log_tail()}")
        result = self._results[name]
        if isinstance(result, str):
            raise AssertionError(f"{name} could not be put into the node's containerd: {result}")
        return result

    def stop(self) -> None:
        """Kill the child and all it runs (a build, tar, ctr), if it is still at it, and wait
        for it: nothing may be talking to containerd when the node stops."""
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had ended, and every process of its group with it
        self._process.wait()
        if self._reader is not None:
            self._reader.join(30)


def main(names: list[str]) -> int:
    """The child: for each image in turn, build (or find) its layout and import it, one JSON
    line each; one at a time, so that the first is in while the next one builds."""
    from tests.controlplane.node import RealNode  # the node's ctr and socket, in one place

    for name in names:
        t0 = time.monotonic()
        try:
            layout = images.build_images((name,))[name]
        except Exception as error:  # noqa: BLE001 - the waiter gets the reason, the next image its chance
            print(json.dumps({"image": name, "error": f"building the image failed: {error}"}), flush=True)
            continue
        built = time.monotonic()
        try:
            refs = RealNode().load_image(layout)
        except Exception as error:  # noqa: BLE001 - as above
            print(json.dumps({"image": name, "error": f"importing {layout} failed: {error}"}), flush=True)
            continue
        seconds = time.monotonic() - built
        print(f"node_images: {name} layout after {built - t0:.0f}s, imported in {seconds:.0f}s",
              file=sys.stderr, flush=True)
        print(json.dumps({"image": name, "layout": str(layout), "refs": refs, "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(images.IMAGES)))
