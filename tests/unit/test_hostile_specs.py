"""10,000 hostile TrainingJobs: each is refused with an error naming a field, or renders to
exactly the objects expected, with every hostile string carried verbatim and none executed.

Strings full of YAML, JSON, Jinja and shell syntax are put anywhere a user can put text or a
number. Accepted specs render to a fixed set of objects; the user's command reaches the
launcher as separate argv elements (no shell), exactly as written.
"""

from __future__ import annotations

import collections
import json

import pytest
from hypothesis import HealthCheck, given, settings

from tandem.api import SpecError, TrainingJob
from tandem.contract import tensorboard_name
from tandem.launch.env import build_launch
from tandem.local.plan import plan_workers
from tandem.render import render
from tests.support.specs import hostile_documents

OUTCOMES: collections.Counter = collections.Counter()


def _check_rendered(document, job):
    objects = render(job)
    kinds = [o["kind"] for o in objects]
    assert kinds in (["Service", "Job", "NetworkPolicy"],
                     ["Service", "Job", "NetworkPolicy", "Deployment", "Service", "NetworkPolicy"]), kinds
    name = job.metadata.name
    assert all(o["metadata"]["name"] in (name, tensorboard_name(name)) for o in objects)
    assert all(o["metadata"]["namespace"] == job.metadata.namespace for o in objects)
    container = objects[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == list(job.spec.command)
    assert container["command"] == ["python", "-m", "tandem.launch", "--"]
    user_env = [e for e in container["env"] if not e["name"].startswith("TANDEM_")]
    expected = [{"name": e.name, "value": e.value} for e in job.spec.env]
    if not any(e.name == "OMP_NUM_THREADS" for e in job.spec.env):
        assert user_env[-1]["name"] == "OMP_NUM_THREADS" and int(user_env.pop()["value"]) >= 1
    assert user_env == expected
    # The launcher gets the command as argv elements, never through a shell.
    plan = plan_workers(objects[1], list(range(20000, 20000 + job.spec.worker_count)), python="/py")[0]
    launch = build_launch(plan.env, plan.argv[4:], "/py")
    assert list(launch.argv[-len(job.spec.command):])[1:] == list(job.spec.command)[1:]
    assert "sh" not in launch.argv[:3] and "-c" not in launch.argv[:3]
    json.dumps(objects)  # plain data all the way down


#: 10,000 examples in 10 runs of 1,000: Hypothesis keeps a tree of every choice it made in one run
#: (to avoid repeats), and one run of 10,000 such documents grew past 10 GB on a 24 GB machine.
CHUNKS, EXAMPLES_PER_CHUNK = 10, 1_000


@pytest.mark.parametrize("chunk", range(CHUNKS))
@settings(max_examples=EXAMPLES_PER_CHUNK, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(document=hostile_documents())
def test_hostile_specs_are_refused_or_render_exactly(chunk, document):
    try:
        job = TrainingJob.from_dict(document)
    except SpecError as error:
        OUTCOMES["rejected"] += 1
        assert error.problems, "a refusal names at least one field"
        for path, message in error.problems:
            assert path.split(".")[0].split("[")[0] in ("metadata", "spec", "apiVersion", "kind", "(document)"), path
            assert message and "\n" not in message
        return
    OUTCOMES["accepted"] += 1
    _check_rendered(document, job)


def teardown_module(module):
    print(f"\nhostile specs: {OUTCOMES['accepted']} accepted and rendered exactly, {OUTCOMES['rejected']} rejected")
