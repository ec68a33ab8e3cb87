"""TrainingJob documents: the examples in jobs/, a small base spec to change field by field, and
hypothesis strategies of valid and hostile documents."""

from __future__ import annotations

import copy
import random
import string
import uuid
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import strategies as st

from tandem.api.tpu import ACCELERATORS, chips_per_host_options
from tests.conftest import JOBS
from tests.support import grammar
from tests.support.grammar import Chars, edgy_int, maybe

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


#: Any text at all, including YAML, JSON, Jinja and shell syntax.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "{{ 7*7 }}", "{% raw %}", "}}\n---\nkind: Secret", "\"; rm -rf / #", "$(reboot)", "`id`",
        "a: b\nc: d", "- x\n- y", "&anchor *alias", "!!python/object:os.system", "\x00", "'\"'",
        "\u2028\u0085", "\U0001F600", "null", "true", "0x10", "~", "{\"a\": 1}",
    ]),
)


# Names, labels and images: each grammar is the regex beside it (tests/unit/test_support_specs.py
# checks that both its strategy and its sampler give only strings the regex matches).
_LOWER, _UPPER, _DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits
_ALNUM = _LOWER + _UPPER + _DIGITS
NAMES_REGEX = r"[a-z]([-a-z0-9]{0,40}[a-z0-9])?"
NAME = (Chars(_LOWER), maybe(Chars(_LOWER + _DIGITS + "-", 0, 40), Chars(_LOWER + _DIGITS)))
LABEL_VALUES_REGEX = r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,20})?[A-Za-z0-9])?"
LABEL_VALUE = (maybe(maybe(Chars(_ALNUM), Chars(_ALNUM + "-_.", 0, 20)), Chars(_ALNUM)),)
LABEL_KEYS_REGEX = r"([a-z0-9]{1,10}\.[a-z]{2,5}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,15}[A-Za-z0-9])?"
LABEL_KEY = (maybe(Chars(_LOWER + _DIGITS, 1, 10), ".", Chars(_LOWER, 2, 5), "/"),
             Chars(_ALNUM), maybe(Chars(_ALNUM + "-_.", 0, 15), Chars(_ALNUM)))
ENV_NAMES_REGEX = r"[A-Z][A-Z0-9_]{0,15}"
ENV_NAME = (Chars(_UPPER), Chars(_UPPER + _DIGITS + "_", 0, 15))
#: Image references in the grammar the kubelet parses ([registry[:port]/]path[:tag]).
IMAGES_REGEX = (r"([a-z0-9]{1,8}(\.[a-z]{2,4})?(:[0-9]{2,5})?/)?[a-z0-9]{1,10}([._-][a-z0-9]{1,5})?"
                r"(/[a-z0-9]{1,10})?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,9})?")
IMAGE = (maybe(Chars(_LOWER + _DIGITS, 1, 8), maybe(".", Chars(_LOWER, 2, 4)), maybe(":", Chars(_DIGITS, 2, 5)), "/"),
         Chars(_LOWER + _DIGITS, 1, 10), maybe(Chars("._-"), Chars(_LOWER + _DIGITS, 1, 5)),
         maybe("/", Chars(_LOWER + _DIGITS, 1, 10)), maybe(":", Chars(_ALNUM + "_"), Chars(_ALNUM + "_.-", 0, 9)))


def user_env_name(name: str) -> bool:
    """Not a name Tandem sets itself (the model refuses those)."""
    return not name.startswith(("TANDEM_", "TPU_WORKER_", "TF_CONFIG")) and name not in {
        "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"}


names = grammar.strategy(*NAME)
label_values = grammar.strategy(*LABEL_VALUE)
label_keys = grammar.strategy(*LABEL_KEY)
env_names = grammar.strategy(*ENV_NAME).filter(user_env_name)
images = grammar.strategy(*IMAGE)
QUANTITIES = ["1", "500m", "2", "0.5", "4Gi", "512Mi", "1e3", "1.5Gi", "3"]
quantities = st.sampled_from(QUANTITIES)


# Built once: a strategy built inside a composite is built (and validated) again at every draw.
_SEEDS = st.integers(0, 2**64 - 1)
#: A command, env values and annotation values.
_FREE_TEXT = st.tuples(st.lists(nasty_text, min_size=1, max_size=5), st.lists(nasty_text, max_size=4),
                       st.lists(nasty_text, max_size=3))


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Valid TrainingJobs over all three strategies, with hostile strings wherever free text goes.

    Hypothesis draws the free text (the command, env values, annotation values), where its
    unicode and edge cases matter; a seeded Random draws the rest (the strategy, counts, names,
    labels, images), whose values are all valid and whose shrinking would explain nothing. Drawn
    field by field through Hypothesis, a document took about 150 draws, and the 10,000 hostile
    documents minutes.
    """
    rng = random.Random(draw(_SEEDS))
    command, env_values, annotation_values = draw(_FREE_TEXT)
    return _valid_document(rng, command, env_values, annotation_values)


def _valid_document(rng: random.Random, command: list[str], env_values: list[str],
                    annotation_values: list[str]) -> dict[str, Any]:
    strategy = rng.choice(["ddp", "multi-worker-mirrored", "tpu"])
    framework = "pytorch" if strategy == "ddp" else "tensorflow"
    env_names_ = _unique(len(env_values), lambda: _env_name(rng))
    spec_: dict[str, Any] = {
        "framework": framework,
        "strategy": strategy,
        "image": grammar.sample(rng, *IMAGE),
        "command": command,
        "resources": {"cpu": rng.choice(QUANTITIES), "memory": rng.choice(QUANTITIES)},
        "env": [{"name": n, "value": v} for n, v in zip(env_names_, env_values, strict=True)],
        "podTemplate": {
            "labels": _label_map(rng, edgy_int(rng, 0, 3)),
            "annotations": dict(zip(_unique(len(annotation_values), lambda: grammar.sample(rng, *LABEL_KEY)),
                                    annotation_values, strict=True)),
            "nodeSelector": _label_map(rng, edgy_int(rng, 0, 2)),
        },
        "runPolicy": {"backoffLimit": edgy_int(rng, 0, 10)},
        "metrics": {"enabled": rng.random() < 0.5},
    }
    if strategy == "tpu":
        accelerator = rng.choice(sorted(ACCELERATORS))
        topology = rng.choice(ACCELERATORS[accelerator][1][:6])
        spec_["tpu"] = {"accelerator": accelerator, "topology": topology,
                        "chipsPerHost": rng.choice(chips_per_host_options(accelerator, topology))}
    else:
        spec_["workers"] = edgy_int(rng, 1, 16)
        if strategy == "ddp":
            spec_["procsPerWorker"] = edgy_int(rng, 1, 8)
            spec_["resources"]["gpus"] = edgy_int(rng, 0, 8)
    metadata = {"name": grammar.sample(rng, *NAME), "namespace": grammar.sample(rng, *NAME)}
    if rng.random() < 0.5:
        metadata["uid"] = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    return {"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": metadata, "spec": spec_}


def _env_name(rng: random.Random) -> str:
    while not user_env_name(name := grammar.sample(rng, *ENV_NAME)):
        pass
    return name


def _unique(count: int, draw: Callable[[], str]) -> list[str]:
    """`count` different values of `draw()`, in the order drawn."""
    values: dict[str, None] = {}
    while len(values) < count:
        values[draw()] = None
    return list(values)


def _label_map(rng: random.Random, count: int) -> dict[str, str]:
    keys = _unique(count, lambda: grammar.sample(rng, *LABEL_KEY))
    return {key: grammar.sample(rng, *LABEL_VALUE) for key in keys}


HOSTILE_VALUES = st.one_of(nasty_text, st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.booleans(),
                           st.none(), st.lists(nasty_text, max_size=3), st.dictionaries(nasty_text, nasty_text, max_size=2))
FIELDS = [
    ("metadata", "name"), ("metadata", "namespace"), ("metadata", "labels"), ("spec", "framework"),
    ("spec", "strategy"), ("spec", "image"), ("spec", "command"), ("spec", "workers"), ("spec", "procsPerWorker"),
    ("spec", "resources", "cpu"), ("spec", "resources", "memory"), ("spec", "resources", "gpus"),
    ("spec", "env"), ("spec", "tpu"), ("spec", "runPolicy", "backoffLimit"), ("spec", "podTemplate", "labels"),
    ("spec", "podTemplate", "annotations"), ("spec", "podTemplate", "nodeSelector"),
    ("spec", "podTemplate", "serviceAccountName"), ("spec", "metrics", "stragglerThreshold"),
    ("spec", "tensorboard", "logDir"), ("spec", "tensorboard", "claimName"), ("spec", "unknownField"),
]
_VALID_DOCUMENTS = valid_documents()
_HOSTILE_FIELDS = st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)


@st.composite
def hostile_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with up to three fields replaced by hostile values of any type."""
    document = copy.deepcopy(draw(_VALID_DOCUMENTS))
    for path in draw(_HOSTILE_FIELDS):
        node = document
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[path[-1]] = draw(HOSTILE_VALUES)
    return document


# Near-valid values: each field's edge cases, where a schema and a model most often part ways
# (a zero, a sign, a trailing newline, a number as a string, a name one character too long).
_EDGE_QUANTITIES = st.one_of(
    quantities,
    st.sampled_from(["0", "-1", "0.0", "00", ".0", "0m", "-0", "+1", " 1", "1 ", "1\n", "1K", "1Ki", "1ki", "1k",
                     ".5", "1.", "1e3", "1E3", "1e", "1e-3", "1n", "1e-30", "0e5", "NaN", "Infinity", "1_000",
                     "1.5.5", "0x10", "", "2Gi ", "1Ei", "0.000001"]),
    st.integers(-2, 4), st.floats(0.1, 2.0), st.booleans(),
)
_EDGE_ENV_NAMES = st.one_of(env_names, st.sampled_from(
    ["1X", "9", "A B", "A\n", "-X", ".X", "_X", "X.Y", "x-y", "A=B", "", "\u00e9", "TANDEM_X", "RANK", "TPU_WORKER_ID",
     "TF_CONFIG", "TF_CONFIGX", "A" * 253, "A" * 254]))
_EDGE_IMAGES = st.one_of(
    images,
    st.sampled_from(["a b", " img", "img ", "img\n", "\timg", "", "Example.org/x", "example.org/x:tag", "ubuntu",
                     "x@sha256:" + "a" * 64, "x:1@sha256:" + "0" * 64, "localhost:5000/a/b:1", "a..b", "a//b", "UPPER",
                     ":tag", "x:", "x:-tag", "\u00e9", "a\u00a0b", "a/b/", "[::1]:5000/x", "x" * 1025]),
)
_ALL_TOPOLOGIES = sorted({t for _, topologies in ACCELERATORS.values() for t in topologies})
_EDGE_TPU = st.fixed_dictionaries(
    {"accelerator": st.sampled_from([*sorted(ACCELERATORS), "tpu-v9-slice", ""]),
     "topology": st.sampled_from([*_ALL_TOPOLOGIES, "2x2x2x2", "0x1", "2X2", "2x", " 2x2", "2x2\n"])},
    optional={"chipsPerHost": st.sampled_from([0, 1, 2, 4, 8, "4"])},
)
_SMALL_COUNTS = st.one_of(st.integers(-1, 20), st.sampled_from(["3", 2.0, 2.5, True, None, 10000, 10001]))
_EDGE_NAMES = st.one_of(names, st.sampled_from(
    ["a" * 52, "a" * 53, "Demo", "demo\n", "1demo", "demo-", "de.mo", "d", "-", "de_mo"]))
_EDGE_LABEL_MAPS = st.dictionaries(
    st.one_of(label_keys, st.sampled_from(["", "a/", "/a", "A.B/c", "a" * 64, "x.io/" + "a" * 63, "a b", "a\n"])),
    st.one_of(label_values, st.sampled_from(["", "-a", "a-", "a" * 63, "a" * 64, "a\n", "a b"])),
    max_size=2,
)
_EDGE_DNS_SUBDOMAINS = st.sampled_from(["sa", "my.sa", "My", "sa-", "a" * 253, "a" * 254, "sa\n", "", "a..b"])
# Failure rules and the progress deadlines.
_EDGE_EXIT_CODES = st.fixed_dictionaries(
    {"operator": st.sampled_from(["In", "NotIn", "in", ""]),
     "values": st.lists(st.sampled_from([0, 1, 2, 3, 255, 256, -1, "2", 2.0, 2.5]), max_size=3)})
_EDGE_FAILURE_RULE = st.fixed_dictionaries(
    {"action": st.sampled_from(["FailJob", "Ignore", "Count", "Retry", "failjob"])},
    optional={"name": st.sampled_from(["a", "user-error", "A", "a_b", "", "a-", "a" * 63, "a" * 64]),
              "onExitCodes": _EDGE_EXIT_CODES,
              "onPodConditions": st.lists(st.fixed_dictionaries(
                  {"type": st.sampled_from(["DisruptionTarget", "x.io/Cordoned", "", "a b", "Ready-"])},
                  optional={"status": st.sampled_from(["True", "False", "Unknown", "true"])}), max_size=2),
              "onReasons": st.lists(st.sampled_from(["Hung", "OOMKilled", "", "hung", "1X", "A" * 128, "A" * 129]),
                                    max_size=2)})
_EDGE_FAILURE_POLICY = st.one_of(
    st.fixed_dictionaries({}, optional={"rules": st.lists(_EDGE_FAILURE_RULE, max_size=3)}),
    st.just({"rules": [{"name": "a", "action": "Count", "onReasons": ["Hung"]},
                       {"name": "a", "action": "Ignore", "onReasons": ["Error"]}]}),
    st.just({"rules": [{"action": "Count", "onReasons": ["Hung"]}] * 21}),
)
_EDGE_PROGRESS_DEADLINES = st.sampled_from([0, -1, 1, 29, 30, 31, 600, "60", 60.0, 60.5, True, None])
#: Where near-valid values go, and what they are.
NEAR_VALID_FIELDS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("metadata", "name"): _EDGE_NAMES,
    ("metadata", "labels"): _EDGE_LABEL_MAPS,
    ("metadata", "annotations"): st.dictionaries(st.sampled_from(["a", "x.io/b", "A B", "x..io/c"]), nasty_text, max_size=2),
    ("spec", "framework"): st.sampled_from([*"pytorch", "tensorflow", "PyTorch", "jax", ""]),
    ("spec", "strategy"): st.sampled_from(["ddp", "multi-worker-mirrored", "tpu", "DDP", "mirrored", ""]),
    ("spec", "image"): _EDGE_IMAGES,
    ("spec", "command"): st.one_of(st.just([]), st.just("python"), st.lists(nasty_text, min_size=1, max_size=2),
                                   st.just([1]), st.just([None])),
    ("spec", "workers"): _SMALL_COUNTS,
    ("spec", "procsPerWorker"): _SMALL_COUNTS,
    ("spec", "procs_per_worker"): st.integers(1, 2),
    ("spec", "resources", "cpu"): _EDGE_QUANTITIES,
    ("spec", "resources", "memory"): _EDGE_QUANTITIES,
    ("spec", "resources", "gpus"): _SMALL_COUNTS,
    ("spec", "env"): st.lists(st.fixed_dictionaries({"name": _EDGE_ENV_NAMES},
                                                   optional={"value": st.one_of(nasty_text, st.integers(0, 3))}),
                              max_size=3),
    ("spec", "tpu"): _EDGE_TPU,
    ("spec", "runPolicy", "backoffLimit"): _SMALL_COUNTS,
    ("spec", "runPolicy", "activeDeadlineSeconds"): _SMALL_COUNTS,
    ("spec", "runPolicy", "ttlSecondsAfterFinished"): _SMALL_COUNTS,
    ("spec", "runPolicy", "suspend"): st.sampled_from([True, False, "true", 1, None]),
    ("spec", "runPolicy", "failurePolicy"): _EDGE_FAILURE_POLICY,
    ("spec", "runPolicy", "progressDeadlineSeconds"): _EDGE_PROGRESS_DEADLINES,
    ("spec", "runPolicy", "startupDeadlineSeconds"): _EDGE_PROGRESS_DEADLINES,
    ("spec", "metrics", "enabled"): st.sampled_from([True, False, "true", "yes", 0, 1, None]),
    ("spec", "metrics", "stragglerThreshold"): st.sampled_from([0, 1, 0.5, "0.5", 1e-9, 0.999, -0.5, True]),
    ("spec", "metrics", "baselineThroughput"): st.sampled_from([0, 1, 0.5, "10", -1.0, 1e300]),
    ("spec", "podTemplate", "labels"): _EDGE_LABEL_MAPS,
    ("spec", "podTemplate", "annotations"): st.dictionaries(st.one_of(label_keys, st.sampled_from(["a b", "", "a/"])),
                                                            nasty_text, max_size=2),
    ("spec", "podTemplate", "nodeSelector"): _EDGE_LABEL_MAPS,
    ("spec", "podTemplate", "serviceAccountName"): _EDGE_DNS_SUBDOMAINS,
    ("spec", "podTemplate", "priorityClassName"): _EDGE_DNS_SUBDOMAINS,
    ("spec", "tensorboard", "enabled"): st.booleans(),
    ("spec", "tensorboard", "logDir"): st.sampled_from(["", "/x", "gs://b/x", "a" * 1025, "x\n"]),
    ("spec", "tensorboard", "claimName"): _EDGE_DNS_SUBDOMAINS,
}


@st.composite
def near_valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one or two fields set to edge values of their own kind (a value of
    None removes the field)."""
    document = copy.deepcopy(draw(valid_documents()))
    for path in draw(st.lists(st.sampled_from(sorted(NEAR_VALID_FIELDS)), min_size=1, max_size=2, unique=True)):
        node = document
        for part in path[:-1]:
            node = node.setdefault(part, {})
        value = draw(NEAR_VALID_FIELDS[path])
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return document
