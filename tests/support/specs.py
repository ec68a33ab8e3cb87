"""TrainingJob documents: the examples in jobs/, a small base spec to change field by field, and
hypothesis strategies of valid and hostile documents."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import strategies as st

from tandem.api.tpu import ACCELERATORS, chips_per_host_options
from tests.conftest import JOBS

BASE: dict[str, Any] = {
    "apiVersion": "tandem.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "demo", "namespace": "team-a"},
    "spec": {
        "framework": "pytorch",
        "strategy": "ddp",
        "image": "example.org/train:1",
        "command": ["python", "train.py"],
        "workers": 2,
    },
}


def spec(**changes: Any) -> dict[str, Any]:
    """BASE with spec fields changed (a value of None removes the field)."""
    document = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            document["spec"].pop(key, None)
        else:
            document["spec"][key] = value
    return document


def example(name: str, **spec_changes: Any) -> dict[str, Any]:
    """The example jobs/<name>, with spec fields replaced by `spec_changes`."""
    document = yaml.safe_load((JOBS / name).read_text())
    for key, value in spec_changes.items():
        document["spec"][key] = value
    return document


names = st.from_regex(r"\A[a-z]([-a-z0-9]{0,40}[a-z0-9])?\Z")
#: Any text at all, including YAML, JSON, Jinja and shell syntax.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "{{ 7*7 }}", "{% raw %}", "}}\n---\nkind: Secret", "\"; rm -rf / #", "$(reboot)", "`id`",
        "a: b\nc: d", "- x\n- y", "&anchor *alias", "!!python/object:os.system", "\x00", "'\"'",
        "\u2028\u0085", "\U0001F600", "null", "true", "0x10", "~", "{\"a\": 1}",
    ]),
)
label_values = st.from_regex(r"\A(([A-Za-z0-9][-A-Za-z0-9_.]{0,20})?[A-Za-z0-9])?\Z")
label_keys = st.from_regex(r"\A([a-z0-9]{1,10}\.[a-z]{2,5}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,15}[A-Za-z0-9])?\Z")
env_names = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,15}\Z").filter(
    lambda n: not n.startswith(("TANDEM_", "TPU_WORKER_", "TF_CONFIG"))
    and n not in {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"}
)
quantities = st.sampled_from(["1", "500m", "2", "0.5", "4Gi", "512Mi", "1e3", "1.5Gi", "3"])


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Valid TrainingJobs over all three strategies, with hostile strings wherever free text goes."""
    strategy = draw(st.sampled_from(["ddp", "multi-worker-mirrored", "tpu"]))
    framework = "pytorch" if strategy == "ddp" else "tensorflow"
    spec_: dict[str, Any] = {
        "framework": framework,
        "strategy": strategy,
        "image": draw(st.from_regex(r"\A[a-z0-9./:-]{1,30}\Z")),
        "command": draw(st.lists(nasty_text, min_size=1, max_size=5)),
        "resources": {"cpu": draw(quantities), "memory": draw(quantities)},
        "env": [{"name": n, "value": draw(nasty_text)} for n in draw(st.lists(env_names, max_size=4, unique=True))],
        "podTemplate": {
            "labels": draw(st.dictionaries(label_keys, label_values, max_size=3)),
            "annotations": draw(st.dictionaries(label_keys, nasty_text, max_size=3)),
            "nodeSelector": draw(st.dictionaries(label_keys, label_values, max_size=2)),
        },
        "runPolicy": {"backoffLimit": draw(st.integers(0, 10))},
        "metrics": {"enabled": draw(st.booleans())},
    }
    if strategy == "tpu":
        accelerator = draw(st.sampled_from(sorted(ACCELERATORS)))
        topology = draw(st.sampled_from(ACCELERATORS[accelerator][1][:6]))
        spec_["tpu"] = {"accelerator": accelerator, "topology": topology,
                        "chipsPerHost": draw(st.sampled_from(chips_per_host_options(accelerator, topology)))}
    else:
        spec_["workers"] = draw(st.integers(1, 16))
        if strategy == "ddp":
            spec_["procsPerWorker"] = draw(st.integers(1, 8))
            spec_["resources"]["gpus"] = draw(st.integers(0, 8))
    return {
        "apiVersion": "tandem.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": draw(names), "namespace": draw(names),
                     **({"uid": draw(st.uuids()).hex} if draw(st.booleans()) else {})},
        "spec": spec_,
    }
