"""B6's figures (benchmarks/goodput.py) from stamped log lines: the lives of a run, the time from
a failure to the first step after it, the steps lost, and goodput. Pure, in milliseconds; the
runs themselves are the benchmark's (benchmarks/b6_goodput.py)."""

from __future__ import annotations

import pytest

from benchmarks.goodput import crash_time, figures, lives, runtime_stamped


def stamped(at: float, rank: int, text: str) -> str:
    return f"@@T {at:.6f} rank {rank}: {text}"


def crashed_run() -> list[str]:
    """Steps 1-10 every 0.1 s; rank 1 crashes after step 10; the restarted processes resume from
    the checkpoint at step 5 and train steps 6-20 every 0.2 s. Rank 1's and unstamped lines mixed in."""
    first = [stamped(100 + 0.1 * k, 0, f"step {k}/20 loss 1.0") for k in range(1, 11)]
    first += [stamped(100 + 0.1 * k, 1, f"step {k}/20 loss 1.0") for k in range(1, 11)]
    crash = [stamped(101.05, 1, "injected crash at step 10, exit code 137"), "[torchrun] worker group restarted"]
    second = [stamped(105.0, 0, "resumed from step 5"), stamped(105.0, 1, "resumed from step 5")]
    second += [stamped(106 + 0.2 * (k - 6), 0, f"step {k}/20 loss 0.5") for k in range(6, 21)]
    return second + crash + first  # log files are read in any order: the stamps order them


def test_a_crash_and_a_resume_from_the_checkpoint():
    lines = crashed_run()
    assert crash_time(lines) == (101.05, 10)
    found = lives(lines)
    assert [(life.resumed_from, min(life.steps), life.reached) for life in found] == [(0, 1, 10), (5, 6, 20)]
    result = figures(found, wall_seconds=20.0, failed_at=101.05)
    assert result.seconds_to_first_step == pytest.approx(4.95)
    assert (result.reached, result.resumed_from, result.steps_lost, result.steps) == (10, 5, 5, 20)
    # steps 1-5 as the first life trained them (0.1 s each, step 1 at that life's median), steps 6-20
    # as the second did (0.2 s each): steps 6-10 of the first life were trained again, not counted
    assert result.productive_seconds == pytest.approx(5 * 0.1 + 15 * 0.2)
    assert result.goodput == pytest.approx(3.5 / 20)


def test_a_run_without_failure_has_no_recovery_figures():
    result = figures(lives([stamped(10 + k, 0, f"step {k}/4") for k in range(1, 5)]), wall_seconds=8.0)
    assert (result.steps, result.productive_seconds, result.seconds_to_first_step, result.steps_lost) == (4, 4.0, None, None)
    assert result.goodput == 0.5


def test_a_restart_without_a_checkpoint_starts_a_life_from_step_one():
    lines = [stamped(k, 0, f"step {k}/3") for k in (1, 2, 3)] + [stamped(10 + k, 0, f"step {k}/3") for k in (1, 2, 3)]
    found = lives(lines)
    assert [life.resumed_from for life in found] == [0, 0] and len(found) == 2
    assert figures(found, 20.0, failed_at=5.0).steps_lost == 3


def test_no_life_after_the_failure_is_refused():
    with pytest.raises(ValueError, match="no life before and after"):
        figures(lives([stamped(k, 0, f"step {k}/3") for k in (1, 2, 3)]), 5.0, failed_at=10.0)


def test_a_runtime_stamped_pod_line_reads_as_a_stamped_one():
    """kubectl logs --timestamps: nanoseconds kept to the microsecond, UTC, the text untouched."""
    line = runtime_stamped("2026-12-06T12:00:01.250000789Z rank 0: step 7/20 loss 1.0")
    assert line == "@@T 1796558401.250001 rank 0: step 7/20 loss 1.0"
    assert lives([line])[0].steps == {7: pytest.approx(1796558401.250001)}
    assert runtime_stamped("2026-12-06T12:00:01Z rank 0: x") == "@@T 1796558401.000000 rank 0: x"
