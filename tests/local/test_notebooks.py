"""The example notebooks (docs/notebooks/) run headless, as a user's Jupyter would run them:
a real IPython kernel (so `inspect.getsource` reads the function from a cell), each cell in order,
and the notebook's own last cell checks that both workers ended with the same weights."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

pytestmark = pytest.mark.local

NOTEBOOKS = sorted((REPO / "docs" / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook_for_each_framework():
    assert [p.name for p in NOTEBOOKS] == ["train-function-pytorch.ipynb", "train-function-tensorflow.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    # The kernel imports this clone's tandem (hack/test.sh puts it on PYTHONPATH) and keeps its
    # runs under tmp_path; a failing cell raises CellExecutionError with the cell's traceback.
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    nbformat.write(notebook, tmp_path / path.name)  # as run, for a failure's reader
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "'Succeeded'" in text
    assert "both workers ended with weights" in text
    assert (tmp_path / ".tandem" / "runs" / "train").is_dir()
