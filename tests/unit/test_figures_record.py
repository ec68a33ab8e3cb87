"""The step record and the figures' declaration: one encode/decode pair that refuses anything not
finite and non-negative, and one list of figures every view and printer column is drawn from."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from tandem.api.columns import PRINTER_COLUMNS
from tandem.api.crd import crd
from tandem.api.status import FIGURES, Figure, MetricsStatus, check_figures, rate_text
from tandem.figures import record, wire
from tandem.figures.record import Step
from tandem.metrics.shipper import Inbox

counts = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
optional = st.none() | counts


@given(st.builds(Step, counts, counts, *[optional] * (len(Step._fields) - record.REQUIRED)))
def test_a_step_survives_encoding_json_and_decoding(step):
    encoded = json.loads(json.dumps(record.encode(step), allow_nan=False))
    assert record.decode(encoded) == step


def test_unset_optional_fields_are_left_off_the_end():
    assert record.encode(Step(1.0, 64.0)) == [1.0, 64.0]
    assert record.encode(Step(1.0, 64.0, 0.1)) == [1.0, 64.0, 0.1]
    assert record.encode(Step(1.0, 64.0, None, 0.05)) == [1.0, 64.0, None, 0.05]
    assert record.decode([1, 64]) == Step(1.0, 64.0, None, None)


@pytest.mark.parametrize("raw", [
    [1.0, math.nan], [1.0, math.inf], [1.0, -1], [-1.0, 64], [1.0, "64"], [1.0, True], [1.0, 10**400],
    [1.0, None], [None, 64], [1.0], [], [1.0, 64, 0.1, 0.1, 0.1, 0.1], {"t": 1.0, "samples": 64}, "1,64", None,
    [1.0, 64, -0.1], [1.0, 64, 0.1, math.nan],
])
def test_anything_but_finite_non_negative_numbers_is_refused(raw):
    with pytest.raises(ValueError):
        record.decode(raw)


def test_a_batch_goes_through_the_wire_as_steps():
    steps = [Step(1.0 + i, 64.0, 0.1, 0.08) for i in range(3)]
    batch = wire.batch(wire.encode(2, 1, steps))
    assert (batch.worker, batch.rank) == (2, 1)
    assert [record.decode(r) for r in batch.records] == steps


def test_the_shipper_drops_records_that_do_not_decode():
    lines = [json.dumps([[1.0, 64, 0.1], [2.0, -64, 0.1], [3.0, 64, 0.1]]).encode(), b"[[4.0, NaN, 0.1]]\n",
             json.dumps({"stepsDone": 4}).encode()]
    inbox = Inbox(lines)
    assert inbox.closed.wait(10)
    assert inbox.take() == [Step(1.0, 64.0, 0.1), Step(3.0, 64.0, 0.1)] and inbox.info == {"stepsDone": 4}


def test_a_figure_of_a_field_the_status_does_not_have_is_refused():
    check_figures(FIGURES)
    with pytest.raises(TypeError, match="not a MetricsStatus field"):
        check_figures((Figure("thruput", "throughput", "samples/s", rate_text, frozenset({"run"})),))
    with pytest.raises(TypeError, match="not a WorkerMetrics field"):
        check_figures((Figure("scaling_efficiency", "efficiency", "", rate_text, frozenset({"run"}), per_worker=True),))


def _schema_node(path: str):
    node = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in path.strip(".").split("."):
        if key == "metadata":
            return {"type": "object"}
        node = node["properties"][key]
    return node


def test_every_printer_column_reads_a_field_of_the_schema_of_its_type():
    for column in PRINTER_COLUMNS:
        if column.type == "date":
            continue
        assert _schema_node(column.json_path)["type"] == column.type, column


def test_each_figure_with_a_column_is_a_printer_column_described_as_its_field():
    by_path = {c.json_path: c for c in PRINTER_COLUMNS}
    for figure in FIGURES:
        path = f".status.metrics.{MetricsStatus.model_fields[figure.field].alias}"
        if figure.column:
            column = by_path[path]
            assert column.name == figure.column and column.priority == (1 if figure.wide else 0)
            assert column.description and column.description in (MetricsStatus.model_fields[figure.field].description or "")
        else:
            assert path not in by_path
