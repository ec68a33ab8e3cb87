"""The suite's two streams: which tests may run beside which (tests/conftest.py, work_group)."""

from tests.conftest import STREAMS_ORDER, TIER_ORDER, work_group


def test_tests_with_training_processes_share_one_group_and_the_unit_tier_runs_beside_it():
    assert work_group("tests/local/test_run.py::test_y[2]") == work_group("tests/local/test_hang.py::test_z") == "host"
    assert work_group("tests/unit/test_model.py::test_x") == "unit"


def test_the_unit_tier_is_handed_out_second_so_that_its_stream_takes_the_e2e_tier_next():
    assert STREAMS_ORDER[:3] == ("local", "unit", "e2e")


def test_the_e2e_tier_is_one_group_and_each_cluster_file_its_own():
    assert work_group("tests/e2e/test_faults.py::test_a") == work_group("tests/e2e/test_images.py::test_b") == "e2e"
    assert work_group("tests/cluster/test_hang.py::test_a") == "cluster-test_hang"
    assert work_group("tests/cluster/test_hang.py::test_b[x]") == "cluster-test_hang"
    assert work_group("tests/cluster/test_chaos.py::test_a") == "cluster-test_chaos"


def test_both_orders_hold_every_tier_once():
    assert sorted(STREAMS_ORDER) == sorted(TIER_ORDER)
