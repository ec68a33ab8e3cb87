"""The launcher's pure env builder: TANDEM_* contract -> torchrun argv / TF_CONFIG / TPU env."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))

from tandem.api import SpecError, TrainingJob
from tandem.contract import COORDINATOR_PORT, MAX_WORKERS
from tandem.frameworks.pytorch import GUARD_MODULE, TORCHRUN_MODULE
from tandem.launch.env import (
    ContractError,
    build_launch,
    is_python,
    read_contract,
    split_host_port,
    with_interpreter,
)

PY = "/opt/venv/bin/python3"


def contract_env(framework: str = "pytorch", strategy: str = "ddp", workers: int = 2, index: int = 1,
                 **extra: str) -> dict[str, str]:
    hosts = ",".join(f"job-{i}.job.ns.svc:2222" for i in range(workers))
    env = {
        "TANDEM_JOB": "job",
        "TANDEM_NAMESPACE": "ns",
        "TANDEM_FRAMEWORK": framework,
        "TANDEM_STRATEGY": strategy,
        "TANDEM_WORKERS": str(workers),
        "TANDEM_WORKER_INDEX": str(index),
        "TANDEM_PROCS_PER_WORKER": "1",
        "TANDEM_COORDINATOR": "job-0.job.ns.svc",
        "TANDEM_PORT": "2222",
        "TANDEM_WORKER_HOSTS": hosts,
        "TANDEM_METRICS_ADDRESS": "",
    }
    env.update(extra)
    return env


def torchrun_flags(argv: tuple[str, ...]) -> list[str]:
    assert argv[:3] == (PY, "-m", TORCHRUN_MODULE)
    end = argv.index("--no-python")
    return list(argv[3:end])


def worker_command(argv: tuple[str, ...]) -> list[str]:
    """What torchrun runs per worker, after the guard."""
    end = argv.index("--no-python")
    assert list(argv[end + 1 : end + 5]) == [PY, "-m", GUARD_MODULE, "--"]
    return list(argv[end + 5 :])


def test_torchrun_for_python_script() -> None:
    env = contract_env(TANDEM_PROCS_PER_WORKER="4")
    launch = build_launch(env, ["python", "train.py", "--epochs", "2"], PY)
    assert torchrun_flags(launch.argv) == [
        "--nnodes=2",
        "--node-rank=1",
        "--nproc-per-node=4",
        "--rdzv-backend=static",
        "--master-addr=job-0.job.ns.svc",
        "--master-port=2222",
        "--max-restarts=0",
    ]
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE" not in launch.env
    assert worker_command(launch.argv) == [PY, "train.py", "--epochs", "2"]
    assert "TF_CONFIG" not in launch.env
    assert launch.summary.startswith("worker 1/2 pytorch ddp -> torchrun --nnodes=2")
    assert "-- python train.py --epochs 2" in launch.summary


def test_torchrun_for_module() -> None:
    launch = build_launch(contract_env(), ["python3", "-m", "pkg.train", "--lr", "0.1"], PY)
    assert worker_command(launch.argv) == [PY, "-m", "pkg.train", "--lr", "0.1"]


def test_absolute_python_is_kept() -> None:
    launch = build_launch(contract_env(), ["/usr/bin/python3.11", "train.py"], PY)
    assert worker_command(launch.argv) == ["/usr/bin/python3.11", "train.py"]


def test_torchrun_for_non_python_command() -> None:
    launch = build_launch(contract_env(), ["bash", "-c", "echo $RANK"], PY)
    assert worker_command(launch.argv) == ["bash", "-c", "echo $RANK"]


def test_tf_config() -> None:
    env = contract_env("tensorflow", "multi-worker-mirrored", workers=3, index=2)
    launch = build_launch(env, ["python", "train_keras.py"], PY)
    assert launch.argv == (PY, "train_keras.py")
    assert json.loads(launch.env["TF_CONFIG"]) == {
        "cluster": {"worker": ["job-0.job.ns.svc:2222", "job-1.job.ns.svc:2222", "job-2.job.ns.svc:2222"]},
        "task": {"type": "worker", "index": 2},
    }
    assert launch.summary == "worker 2/3 tensorflow multi-worker-mirrored -> python train_keras.py"


def test_tf_does_not_need_torch_variables() -> None:
    env = contract_env("tensorflow", "multi-worker-mirrored")
    for name in ("TANDEM_COORDINATOR", "TANDEM_PORT", "TANDEM_PROCS_PER_WORKER"):
        del env[name]
    assert "TF_CONFIG" in build_launch(env, ["python", "t.py"], PY).env


def test_tpu_env() -> None:
    env = contract_env("tensorflow", "tpu", workers=2, index=1)
    launch = build_launch(env, ["python", "tpu.py"], PY)
    assert launch.env["TPU_WORKER_ID"] == "1"
    assert launch.env["TPU_WORKER_HOSTNAMES"] == "job-0.job.ns.svc,job-1.job.ns.svc"
    assert "TF_CONFIG" not in launch.env
    assert launch.argv == (PY, "tpu.py")


def test_unbuffered_unless_user_set() -> None:
    assert build_launch(contract_env(), ["python", "t.py"], PY).env["PYTHONUNBUFFERED"] == "1"
    env = contract_env(PYTHONUNBUFFERED="0")
    assert "PYTHONUNBUFFERED" not in build_launch(env, ["python", "t.py"], PY).env


def test_restart_defaults_to_zero_and_shows() -> None:
    assert read_contract(contract_env()).restart == 0
    launch = build_launch(contract_env(TANDEM_RESTART="2"), ["python", "t.py"], PY)
    assert "restart 2" in launch.summary


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"TANDEM_FRAMEWORK": None}, "TANDEM_FRAMEWORK"),
        ({"TANDEM_FRAMEWORK": "jax"}, "TANDEM_FRAMEWORK"),
        ({"TANDEM_STRATEGY": "multi-worker-mirrored"}, "TANDEM_STRATEGY"),
        ({"TANDEM_WORKERS": None}, "TANDEM_WORKERS"),
        ({"TANDEM_WORKERS": "two"}, "TANDEM_WORKERS"),
        ({"TANDEM_WORKERS": "0"}, "TANDEM_WORKERS"),
        ({"TANDEM_WORKER_INDEX": "2"}, "TANDEM_WORKER_INDEX"),
        ({"TANDEM_WORKER_INDEX": "-1"}, "TANDEM_WORKER_INDEX"),
        ({"TANDEM_WORKER_INDEX": ""}, "TANDEM_WORKER_INDEX"),
        ({"TANDEM_COORDINATOR": None}, "TANDEM_COORDINATOR"),
        ({"TANDEM_PORT": None}, "TANDEM_PORT"),
        ({"TANDEM_PORT": "70000"}, "TANDEM_PORT"),
        ({"TANDEM_PROCS_PER_WORKER": "0"}, "TANDEM_PROCS_PER_WORKER"),
        ({"TANDEM_JOB": None}, "TANDEM_JOB"),
        ({"TANDEM_RESTART": "x"}, "TANDEM_RESTART"),
        ({"TANDEM_WORKER_HOSTS": "a:1"}, "TANDEM_WORKER_HOSTS"),
        ({"TANDEM_WORKER_HOSTS": "a:1,b"}, "TANDEM_WORKER_HOSTS"),
    ],
)
def test_bad_contract_names_the_variable(change: dict, variable: str) -> None:
    env = contract_env()
    for name, value in change.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    with pytest.raises(ContractError) as caught:
        build_launch(env, ["python", "t.py"], PY)
    assert caught.value.variable == variable
    message = str(caught.value)
    assert message.startswith(variable) and "\n" not in message
    assert "set by Tandem" in message  # the fix


def test_tf_derives_the_pod_hosts_unless_listed_and_needs_one_proc() -> None:
    """A pod carries no host list (its size must not grow with the workers): the launcher derives
    the hosts from job, namespace and port, exactly the list contract_env gives locally."""
    env = contract_env("tensorflow", "multi-worker-mirrored", workers=3)
    listed = json.loads(build_launch(env, ["python", "t.py"], PY).env["TF_CONFIG"])
    del env["TANDEM_WORKER_HOSTS"]
    assert json.loads(build_launch(env, ["python", "t.py"], PY).env["TF_CONFIG"]) == listed
    del env["TANDEM_PORT"]
    with pytest.raises(ContractError, match=r"^TANDEM_PORT"):
        build_launch(env, ["python", "t.py"], PY)
    env = contract_env("tensorflow", "multi-worker-mirrored", TANDEM_PROCS_PER_WORKER="2")
    with pytest.raises(ContractError, match=r"^TANDEM_PROCS_PER_WORKER"):
        build_launch(env, ["python", "t.py"], PY)


def test_a_host_list_past_the_exec_limit_is_refused_clearly() -> None:
    """10,000 workers make a TF_CONFIG of ~280 KB: exec would fail with E2BIG, so the launcher
    names the variable, its size and the fix instead."""
    env = contract_env("tensorflow", "multi-worker-mirrored", workers=10000, index=0)
    del env["TANDEM_WORKER_HOSTS"]
    with pytest.raises(ContractError, match=r"^TANDEM_WORKERS is 10000: TF_CONFIG would be \d+ bytes.*E2BIG"):
        build_launch(env, ["python", "t.py"], PY)


def test_the_model_refuses_the_worker_count_the_launcher_would_and_no_fewer() -> None:
    """The model refuses, naming spec.workers, exactly the TF worker counts at which a pod's
    launcher would refuse TF_CONFIG: one arithmetic, so a spec never passes apply and then fails
    in every pod at start. PyTorch (no host list) takes the same count."""
    def document(framework: str, strategy: str, workers: int) -> dict:
        return {"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": "job", "namespace": "ns"},
                "spec": {"framework": framework, "strategy": strategy, "command": ["python", "t.py"],
                         "workers": workers, "procsPerWorker": 1}}

    def launcher_refuses(workers: int) -> bool:
        env = contract_env("tensorflow", "multi-worker-mirrored", workers=workers, index=0,
                           TANDEM_PORT=str(COORDINATOR_PORT))
        del env["TANDEM_WORKER_HOSTS"]  # derived from the pods' DNS names, as on a cluster
        try:
            build_launch(env, ["python", "t.py"], PY)
        except ContractError:
            return True
        return False

    def model_refuses(workers: int) -> bool:
        try:
            TrainingJob.from_dict(document("tensorflow", "multi-worker-mirrored", workers))
        except SpecError as error:
            assert [path for path, _ in error.problems] == ["spec.workers"]
            assert "TF_CONFIG" in error.problems[0][1]
            return True
        return False

    low, high = 1, MAX_WORKERS  # the largest count the launcher takes, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (low, middle - 1) if launcher_refuses(middle) else (middle, high)
    assert 1 < low < MAX_WORKERS
    assert not model_refuses(low) and model_refuses(low + 1)
    TrainingJob.from_dict(document("pytorch", "ddp", low + 1))


def test_empty_command() -> None:
    with pytest.raises(ContractError, match=r"^command"):
        build_launch(contract_env(), [], PY)


def test_python_detection_and_host_port() -> None:
    assert is_python("python") and is_python("python3") and is_python("/usr/bin/python3.12")
    assert not is_python("bash") and not is_python("pythonista") and not is_python("ipython")
    assert split_host_port("[::1]:2222") == ("[::1]", 2222)
    with pytest.raises(ValueError):
        split_host_port("host:0")


def test_only_a_bare_python3_name_becomes_the_interpreter() -> None:
    """One rule for the launcher (the user's command) and the local plan (the pod's command):
    a name PATH would resolve is replaced; a path, relative or absolute, is the user's choice;
    python2 is another language and is left alone."""
    for name in ("python", "python3", "python3.11"):
        assert with_interpreter([name, "t.py"], PY) == [PY, "t.py"]
    for kept in ("/usr/bin/python3", "venv/bin/python", "./python3", "python2", "python2.7", "bash"):
        assert with_interpreter([kept, "t.py"], PY) == [kept, "t.py"]
    assert with_interpreter([], PY) == []


@given(
    workers=st.integers(min_value=1, max_value=64),
    data=st.data(),
    port=st.integers(min_value=1, max_value=65535),
)
def test_tf_config_lists_every_worker_and_this_index(workers: int, data: st.DataObject, port: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=workers - 1))
    hosts = [f"w{i}.svc:{port}" for i in range(workers)]
    env = contract_env("tensorflow", "multi-worker-mirrored", workers=workers, index=index)
    env["TANDEM_WORKER_HOSTS"] = ",".join(hosts)
    config = json.loads(build_launch(env, ["python", "t.py"], PY).env["TF_CONFIG"])
    assert config["cluster"]["worker"] == hosts
    assert len(config["cluster"]["worker"]) == workers
    assert config["task"] == {"type": "worker", "index": index}


def test_debug_runs_in_place_with_torchrun_equivalent_env() -> None:
    launch = build_launch(contract_env(TANDEM_DEBUG="1"), ["python", "train.py"], PY)
    assert launch.in_place and list(launch.argv) == [PY, "train.py"]
    assert {k: launch.env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")} == {
        "MASTER_ADDR": "job-0.job.ns.svc", "MASTER_PORT": "2222", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0",
    }


def test_debug_needs_one_process_per_worker() -> None:
    with pytest.raises(ContractError, match="procsPerWorker=1"):
        build_launch(contract_env(TANDEM_DEBUG="1", TANDEM_PROCS_PER_WORKER="2"), ["python", "train.py"], PY)


def test_debug_tensorflow_keeps_tf_config() -> None:
    launch = build_launch(contract_env("tensorflow", "multi-worker-mirrored", TANDEM_DEBUG="1"), ["python", "t.py"], PY)
    assert launch.in_place and json.loads(launch.env["TF_CONFIG"])["task"]["index"] == 1
