"""The three images, built from the real Dockerfiles without a Docker daemon, start and run
what their jobs need (tests/e2e/images.py builds them; hack/build-images.sh by hand).

The smoke commands run in containers of the real node's containerd (runc), from the copies the
session imports there for the pods anyway (tests/e2e/node_images.py): reading the 6 GB PyTorch
layout back into buildah's store, as this test did, cost three minutes more. The container is
made from the image's own config, as the kubelet's would be: its user and working directory,
not its entrypoint (the argv replaces it).
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e import images

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

LAUNCHER = ("python", "-m", "tandem.launch", "--help")
#: What each image must be able to do, beyond starting the launcher (which every image does; a new
#: framework's image that is not listed is checked for that alone).
SMOKE = {
    "operator": [("tandem", "operator", "run", "--help"), ("python", "-c", "import ray, kopf")],
    "pytorch-worker": [
        ("python", "-c", "import torch, torch.distributed.run"),
        # A gloo process group of one: the collective path DDP on CPU takes, with no GPU present.
        ("python", "-c", "import torch, torch.distributed as d; "
         "d.init_process_group('gloo', init_method='tcp://127.0.0.1:29511', rank=0, world_size=1); "
         "t = torch.ones(2); d.all_reduce(t); assert t.tolist() == [1.0, 1.0]; d.destroy_process_group()"),
    ],
    "tensorflow-worker": [("python", "-c", "import tensorflow as tf; tf.distribute.MultiWorkerMirroredStrategy")],
}


@pytest.fixture(scope="module")
def layouts():
    return images.build_images()


def test_a_second_build_is_served_from_the_cache(layouts):
    started = time.monotonic()
    assert images.build_images() == layouts
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("name", images.IMAGES)
def test_image_runs_as_its_user_and_smokes(real_cluster, node_images, layouts, name):
    _, node = real_cluster
    imported = node_images.wait(name)
    assert imported.layout == layouts[name], "the node runs another build of the image than this tree's"
    assert (layouts[name] / "index.json").is_file() and layouts[name].name.startswith(f"{name}-")
    (ref,) = imported.refs

    def run(*argv: str):
        """argv in a new container of the image (its user, its working directory, a network
        namespace of its own with only loopback), removed when it exits. Its cgroup is a
        top-level one of its own, which runc removes with it (ctr's default, /k8s.io/<id>, left
        the /k8s.io parent behind on the host)."""
        container = f"tandem-smoke-{name}-{uuid.uuid4().hex[:8]}"
        return node.ctr("run", "--rm", "--cgroup", f"/{container}", ref, container, *argv, check=False, timeout=300)

    identity = run("id", "-u")
    assert (identity.returncode, identity.stdout.strip()) == (0, "1000"), identity.stderr
    assert run("pwd").stdout.strip() == "/workspace"
    for argv in [LAUNCHER, *SMOKE.get(name, [])]:
        result = run(*argv)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
