import math

import pytest

from sew.train.schedule import PolynomialDecaySchedule, TriStageSchedule, build_schedule


def test_tri_stage_phases():
    s = TriStageSchedule(1.0, phase_ratio=(0.1, 0.4, 0.5), init_lr_scale=0.01, final_lr_scale=0.05)
    assert s(0, 0.0) == pytest.approx(0.01)
    assert s(5, 0.05) == pytest.approx(0.505)
    assert s(10, 0.1) == 1.0 and s(40, 0.49) == 1.0
    assert s(75, 0.75) == pytest.approx(math.sqrt(0.05))  # halfway through an exponential decay
    assert s(100, 1.0) == pytest.approx(0.05)


def test_tri_stage_warmup_in_updates():
    s = TriStageSchedule(1e-3, phase_ratio=(0.0, 0.2, 0.8), init_lr_scale=0.0, warmup_updates=40)
    assert s(20, 0.01) == pytest.approx(5e-4)
    assert s(40, 0.01) == 1e-3
    assert s(40, 0.6) < 1e-3


def test_polynomial_decay_may_stop_before_the_end():
    s = PolynomialDecaySchedule(1.0, max_update=100, warmup_updates=10, total_num_update=190)
    assert s(0, 0.0) == pytest.approx(1 / 11)
    assert s(10, 0.1) == pytest.approx(1.0)
    assert s(100, 1.0) == pytest.approx(0.5)  # (1 - 90/180)
    full = build_schedule("polynomial_decay", 1.0, 100, warmup_updates=10)
    assert full(100, 1.0) == pytest.approx(0.0)


def test_wall_clock_progress_moves_the_schedule():
    s = PolynomialDecaySchedule(1.0, max_update=1000, warmup_updates=0)
    assert s(10, 0.5) == pytest.approx(0.5)  # half the time budget is gone, few updates done


def test_unknown_schedule():
    with pytest.raises(ValueError, match="tri_stage"):
        build_schedule("cosine", 1.0, 10)
