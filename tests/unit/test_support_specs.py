"""The generators' grammars (tests/support/specs.py): each one's Hypothesis strategy and its seeded
sampler give only strings of the regex it stands for (the `st.from_regex` it replaced), so the
valid parts of the generated documents are valid names, labels and images."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings, strategies as st

from tests.support import grammar, specs

GRAMMARS = {
    "names": (specs.NAME, specs.NAMES_REGEX),
    "label_values": (specs.LABEL_VALUE, specs.LABEL_VALUES_REGEX),
    "label_keys": (specs.LABEL_KEY, specs.LABEL_KEYS_REGEX),
    "env_names": (specs.ENV_NAME, specs.ENV_NAMES_REGEX),
    "images": (specs.IMAGE, specs.IMAGES_REGEX),
}


@pytest.mark.parametrize("name", GRAMMARS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_drawn_value_matches_its_grammar(name, data):
    parts, regex = GRAMMARS[name]
    value = data.draw(grammar.strategy(*parts))
    assert re.fullmatch(regex, value), (value, regex)


@pytest.mark.parametrize("name", GRAMMARS)
def test_every_sampled_value_matches_its_grammar(name):
    parts, regex = GRAMMARS[name]
    rng = random.Random(0)
    values = [grammar.sample(rng, *parts) for _ in range(2000)]
    assert [v for v in values if not re.fullmatch(regex, v)] == []
    assert len(set(values)) > len(values) / 4, "a sampler stuck on a few values"
