"""Shipping a function (docs/functions.md): what travels, what is refused and why, what the workers run.

All in milliseconds: the shipping is pure, the worker side is called in-process."""

from __future__ import annotations

import functools
import json
import os

import pytest

from tandem.backends.function import JobOptions, function_job, job_name, ship
from tandem.contract import FUNCTION_FILE, FUNCTION_MODULE, FUNCTION_MOUNT_PATH, MAX_FUNCTION_BYTES
from tandem.errors import NotFound, NotShippable, SpecError
from tandem.kube.backend import check_size, function_config_map, with_function_volume
from tandem.launch import function as worker
from tandem.render import render_one


def train(lr: float, epochs: int = 1) -> float:
    import math

    total = 0.0
    for epoch in range(epochs):
        total += math.sqrt(lr) * epoch
    return total


def uses_a_module_level_import(steps: int) -> str:
    return os.getcwd() * steps


def _closure():
    scale = 2

    def inner(x: int) -> int:
        return x * scale

    return inner


def _top_level_in_disguise():
    def inner(x: int) -> int:  # no free variable: shippable although nested
        import math

        return math.floor(x)

    return inner


@functools.lru_cache
def decorated(x: int) -> int:
    return x


def generator(n: int):
    yield from range(n)


def test_a_plain_function_travels_as_its_source_and_json():
    shipped = ship(train, {"lr": 0.1, "epochs": 2})
    assert shipped.name == "train"
    assert shipped.source.startswith("def train(lr: float, epochs: int = 1) -> float:\n    import math")
    assert json.loads(shipped.to_json()) == {"name": "train", "source": shipped.source,
                                             "kwargs": {"lr": 0.1, "epochs": 2}}
    assert ship(_top_level_in_disguise(), {"x": 1}).source.startswith("def inner(")  # dedented


@pytest.mark.parametrize("func, kwargs, why", [
    (lambda x: x, {"x": 1}, "is a lambda"),
    (_closure(), {"x": 1}, "is a closure over scale"),
    (print, {}, "is not a function"),
    (decorated, {"x": 1}, "is not a function"),  # lru_cache wraps it in an object
    (functools.wraps(train)(lambda **k: 0), {}, "is a lambda"),
    (functools.wraps(train)(_top_level_in_disguise()), {"x": 1}, "wraps another function"),
    (generator, {"n": 1}, "generator function"),
    (uses_a_module_level_import, {"steps": 1}, "uses os, which it neither defines nor imports"),
    (train, {"lr": object()}, "kwargs['lr'] is not JSON"),
    (train, {"lr": float("nan")}, "kwargs['lr'] is not JSON"),
    (train, {"lr": (1, 2)}, "kwargs['lr'] would not arrive as it is"),
    (train, {"lr": {1: 2}}, "kwargs['lr'] would not arrive as it is"),
    (train, {"epochs": 2}, "kwargs do not fit train(): missing a required argument: 'lr'"),
    (train, {"lr": 1, "momentum": 0.9}, "unexpected keyword argument 'momentum'"),
])
def test_what_cannot_travel_is_refused_with_one_reason(func, kwargs, why):
    with pytest.raises(NotShippable) as refused:
        ship(func, kwargs)
    assert why in str(refused.value)


def test_a_decorator_is_refused_when_the_result_is_still_a_function():
    def identity(f):
        return f

    namespace: dict = {}
    source = "@identity\ndef f(x):\n    return x\n"
    path = _source_file(source)
    exec(compile(source, str(path), "exec"), {"identity": identity}, namespace)
    with pytest.raises(NotShippable, match="is decorated"):
        ship(namespace["f"], {"x": 1})


def test_a_function_without_readable_source_says_where_to_define_it():
    namespace: dict = {}
    exec(compile("def typed_at_the_prompt(x):\n    return x\n", "<stdin>", "exec"), namespace)
    with pytest.raises(NotShippable, match=r"cannot be read .*define it in a \.py file, IPython or a Jupyter"):
        ship(namespace["typed_at_the_prompt"], {"x": 1})


_files: list = []


def _source_file(source: str):
    import linecache
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "defined_here.py"
    path.write_text(source)
    linecache.checkcache(str(path))
    _files.append(path)
    return path


@pytest.mark.parametrize("name, expected", [
    ("train", "train"), ("train_mnist", "train-mnist"), ("_private", "private"), ("Train2", "train2"),
    ("x" * 80, "x" * 52), ("__9", "fn-9"),
])
def test_job_names_come_from_the_function(name, expected):
    assert job_name(name) == expected
    assert job_name(name, "a1b2c3").endswith("-a1b2c3") and len(job_name(name, "a1b2c3")) <= 52


def test_the_job_runs_the_function_module_under_the_launcher():
    job = function_job(ship(train, {"lr": 0.1}), "/runs/f.json", "train",
                       JobOptions(workers=2, framework="tensorflow", image="tandem/tensorflow-worker:0.1.0",
                                  resources={"gpus": 1}, env={"SEED": "1"}, spec={"runPolicy": {"backoffLimit": 0}}))
    spec = job.spec
    assert list(spec.command) == ["python", "-m", FUNCTION_MODULE, "/runs/f.json"]
    assert (spec.framework, spec.strategy, spec.workers, spec.image) == (
        "tensorflow", "multi-worker-mirrored", 2, "tandem/tensorflow-worker:0.1.0")
    assert spec.resources.gpus == 1 and spec.run_policy.backoff_limit == 0
    assert job.metadata.annotations["tandem.dev/function"] == "train"
    with pytest.raises(SpecError, match="framework"):
        function_job(ship(train, {"lr": 0.1}), "/f", "train", JobOptions(framework="jax"))


def test_on_a_cluster_the_pods_mount_the_configmap_the_job_owns():
    job = with_function_volume(function_job(ship(train, {"lr": 0.1}), f"{FUNCTION_MOUNT_PATH}/{FUNCTION_FILE}",
                                            "train-abc123", JobOptions(workers=2)))
    pod = render_one(job, "Job")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "tandem.launch", "--"]
    assert container["args"] == ["python", "-m", FUNCTION_MODULE, f"{FUNCTION_MOUNT_PATH}/{FUNCTION_FILE}"]
    assert {"name": "tandem-function", "configMap": {"name": "train-abc123-function"}} in pod["volumes"]
    assert {"name": "tandem-function", "mountPath": FUNCTION_MOUNT_PATH, "readOnly": True} in container["volumeMounts"]
    job.metadata.uid = "uid-1"
    config_map = function_config_map(job, ship(train, {"lr": 0.1}).to_json())
    assert config_map["metadata"]["ownerReferences"] == [
        {"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "name": "train-abc123", "uid": "uid-1"}]
    assert json.loads(config_map["data"][FUNCTION_FILE])["kwargs"] == {"lr": 0.1}


def test_a_function_too_big_for_a_configmap_is_refused_naming_the_limit():
    shipped = ship(train, {"lr": 0.1, "epochs": 1})
    check_size(shipped)
    big = ship(train, {"lr": 0.1, "epochs": 1})
    object.__setattr__(big, "kwargs", {"lr": 0.1, "epochs": 1, "pad": "x" * MAX_FUNCTION_BYTES})
    with pytest.raises(NotShippable, match=f"holds at most {MAX_FUNCTION_BYTES // 1024} KiB"):
        check_size(big)


def test_the_worker_side_calls_the_function_with_its_arguments(tmp_path, capsys):
    def report(path: str, value: int) -> None:
        with open(path, "w") as out:
            out.write(str(value * 2))

    shipped = tmp_path / "f.json"
    shipped.write_text(ship(report, {"path": str(tmp_path / "out"), "value": 21}).to_json())
    assert worker.main([str(shipped)]) == 0
    assert (tmp_path / "out").read_text() == "42"


@pytest.mark.parametrize("content, why", [
    ({"name": "f", "source": "import os\ndef f():\n    pass\n", "kwargs": {}}, "exactly one `def f(...)`"),
    ({"name": "f", "source": "def g():\n    pass\n", "kwargs": {}}, "exactly one `def f(...)`"),
    ({"name": "f", "source": "def f(:\n", "kwargs": {}}, "does not parse"),
    ({"name": "f", "source": "def f():\n    pass\n"}, "exactly the keys name, source, kwargs"),
    ({"name": "os.system", "source": "def f():\n    pass\n", "kwargs": {}}, "name must be an identifier"),
    # Each of these ran code when the worker defined the function, before any call.
    ({"name": "f", "source": "@print\ndef f():\n    pass\n", "kwargs": {}}, "`def f` is decorated"),
    ({"name": "f", "source": "def f(x=print('ran')):\n    pass\n", "kwargs": {}},
     "a default of `def f` is not a literal (print('ran'))"),
    ({"name": "f", "source": "def f(*, x=open('/etc/hostname').read()):\n    pass\n", "kwargs": {}},
     "a default of `def f` is not a literal"),
])
def test_the_worker_side_refuses_anything_but_one_named_def(tmp_path, capsys, content, why):
    shipped = tmp_path / "f.json"
    shipped.write_text(json.dumps(content))
    assert worker.main([str(shipped)]) == 2
    assert why in capsys.readouterr().err


def test_the_worker_side_never_evaluates_annotations(tmp_path, capsys):
    """An annotation ran when the `def` ran; compiled as text, it never does."""
    marker = tmp_path / "ran"
    source = (f"def f(x: open({str(marker)!r}, 'w').write('x') = 1, *, y: int = -2, z: tuple = (1, 'a')) "
              f"-> open({str(marker)!r}, 'w').write('y'):\n    return None\n")
    shipped = tmp_path / "f.json"
    shipped.write_text(json.dumps({"name": "f", "source": source, "kwargs": {}}))
    assert worker.main([str(shipped)]) == 0
    assert not marker.exists()


def _default_runs_code(path: str = os.getcwd()) -> str:
    return path


def test_a_default_that_runs_code_is_refused_before_shipping():
    with pytest.raises(NotShippable, match=r"a default of _default_runs_code is not a literal \(os.getcwd\(\)\)"):
        ship(_default_runs_code)


def _ended(tmp_path, failed=None, reason="", interrupted=False):
    from tandem.local.executor import Attempt, RunResult, WorkerExit
    from tandem.local.run import LocalRun

    exits = [WorkerExit(i, 0, tmp_path / f"worker-{i}.log") for i in (0, 1)]
    failure = WorkerExit(failed, 7, exits[failed].log) if failed is not None else None
    result = RunResult("train", tmp_path, attempts=[Attempt(0, exits, 1.0, failure, reason)], interrupted=interrupted)
    return LocalRun(result, None)


def test_a_local_run_ends_as_the_status_a_cluster_would_show(tmp_path):
    from tandem.errors import Interrupted, JobFailed
    from tandem.local.backend import LocalBackend
    from tandem.local.run import local_status

    backend = LocalBackend(tmp_path)
    backend.finished["ok"] = local_status(_ended(tmp_path))
    assert backend.wait("ok").phase == "Succeeded"
    backend.finished["bad"] = local_status(_ended(tmp_path, failed=1, reason="Error"))
    with pytest.raises(JobFailed, match="bad Failed: worker 1 exited with code 7"):
        backend.wait("bad")
    backend.finished["hung"] = local_status(_ended(tmp_path, failed=0, reason="Hung"))
    with pytest.raises(JobFailed, match=r"worker 0 reported no step \(Hung\)"):
        backend.wait("hung")
    backend.finished["stopped"] = local_status(_ended(tmp_path, interrupted=True))
    with pytest.raises(Interrupted):
        backend.wait("stopped")
    with pytest.raises(NotFound, match="was not trained by this client"):
        backend.wait("other")
