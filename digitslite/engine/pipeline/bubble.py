"""How much of a pipeline's time its stages sit idle: the measured bubble, and GPipe's model of it.

A stage is busy while it runs a micro-batch's forward or backward (torch's forward_one_chunk and
backward_one_chunk, timed here); the rest of an update's wall time it waits for its neighbours.
The measured bubble is 1 − (Σ busy over the stages) / (K · wall time), over the updates after the
first (which sets up buffers and runs the first kernels). GPipe's model, for equal
stages and free communication, is (K − 1) / (M + K − 1).
"""
import time
from typing import Any

from torch.distributed.pipelining import PipelineStage


def ideal_bubble(stages: int, micro_batches: int) -> float:
    """GPipe's idle fraction for K equal stages and M micro-batches."""
    return (stages - 1) / (micro_batches + stages - 1)


class TimedStage(PipelineStage):
    """A PipelineStage that adds up the seconds it spends computing."""

    busy_s: float = 0.0

    def forward_one_chunk(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().forward_one_chunk(*args, **kwargs)
        finally:
            self.busy_s += time.perf_counter() - started

    def backward_one_chunk(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().backward_one_chunk(*args, **kwargs)
        finally:
            self.busy_s += time.perf_counter() - started


def measured_bubble(busy_s: list[float], wall_s: list[float]) -> float | None:
    """The idle fraction from each stage's busy and wall seconds over the same updates."""
    total = sum(wall_s)
    return None if total <= 0 else max(0.0, 1.0 - sum(busy_s) / total)
