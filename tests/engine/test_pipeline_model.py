"""The pipeline's time model (digitslite.engine.pipeline.bubble) against timelines worked by hand."""
import pytest

from digitslite.engine.pipeline.bubble import fill_drain_time, ideal_bubble


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_equal_stages_take_gpipes_m_plus_k_minus_1_steps(schedule):
    # K = 3 equal stages, forward 1 s and backward 2 s per micro-batch, M = 4: (M + K − 1) x 3 s
    assert fill_drain_time([1, 1, 1], [2, 2, 2], 4, schedule) == 18
    assert ideal_bubble(3, 4) == pytest.approx(2 / 6)


def test_gpipe_with_the_forward_heavy_stage_last_and_the_backward_heavy_one_first():
    # stage 0: F0 0-1, F1 1-2; stage 1: F0 1-3, F1 3-5, B0 5-6, B1 6-7; stage 0: B0 6-9, B1 9-12
    assert fill_drain_time([1, 2], [3, 1], 2, "gpipe") == 12


def test_1f1b_interleaves_the_same_stages_into_less_time():
    # torch's order: stage 0 F0 F1 B0 B1, stage 1 F0 B0 F1 B1
    # stage 0: F0 0-1, F1 1-2; stage 1: F0 1-3, B0 3-4, F1 4-6, B1 6-7; stage 0: B0 4-7, B1 7-10
    assert fill_drain_time([1, 2], [3, 1], 2, "1f1b") == 10
