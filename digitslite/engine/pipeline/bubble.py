"""How much of a pipeline's time its stages sit idle: the measured bubble, and GPipe's model of it.

A stage is busy while it runs a micro-batch's forward or backward (torch's forward_one_chunk and
backward_one_chunk, timed here); the rest of an update's wall time it waits for its neighbours.
The measured bubble is 1 − (Σ busy over the stages) / (K · wall time), over the updates after the
first (which sets up buffers and runs the first kernels). GPipe's model, for equal
stages and free communication, is (K − 1) / (M + K − 1).

Equal stage times are not equal forward and backward times: on FCN a stage cut by FLOPs can take
longer forward and shorter backward than its neighbour. `fill_drain_time` plays a schedule through
with each stage's own forward and backward seconds (still free hand-overs), the model the
measurement can be held to when the stages are uneven.
"""
import time
from collections.abc import Sequence
from typing import Any

from torch.distributed.pipelining import PipelineStage


def ideal_bubble(stages: int, micro_batches: int) -> float:
    """GPipe's idle fraction for K equal stages and M micro-batches."""
    return (stages - 1) / (micro_batches + stages - 1)


class TimedStage(PipelineStage):
    """A PipelineStage that adds up the seconds it spends computing forward and backward."""

    forward_s: float = 0.0
    backward_s: float = 0.0

    def forward_one_chunk(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().forward_one_chunk(*args, **kwargs)
        finally:
            self.forward_s += time.perf_counter() - started

    def backward_one_chunk(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().backward_one_chunk(*args, **kwargs)
        finally:
            self.backward_s += time.perf_counter() - started


def measured_bubble(busy_s: list[float], wall_s: list[float]) -> float | None:
    """The idle fraction from each stage's busy and wall seconds over the same updates."""
    total = sum(wall_s)
    return None if total <= 0 else max(0.0, 1.0 - sum(busy_s) / total)


def _order(stage: int, stages: int, micro_batches: int, schedule: str) -> list[tuple[str, int]]:
    """The passes ("F"/"B", micro-batch) stage `stage` runs, in torch's order for the schedule."""
    forwards = [("F", index) for index in range(micro_batches)]
    backwards = [("B", index) for index in range(micro_batches)]
    if schedule == "gpipe":
        return forwards + backwards
    warmup = min(micro_batches, stages - stage)    # torch's Schedule1F1B: K − k forwards first
    steady = [step for index in range(micro_batches - warmup)
              for step in (backwards[index], forwards[warmup + index])]
    return forwards[:warmup] + steady + backwards[micro_batches - warmup:]


def fill_drain_time(forward_s: Sequence[float], backward_s: Sequence[float], micro_batches: int,
                    schedule: str = "gpipe") -> float:
    """Seconds of one update when stage k takes forward_s[k] and backward_s[k] per micro-batch and
    hand-overs are free: every stage runs its passes in the schedule's order ("gpipe", "1f1b"), a
    forward after the previous stage's forward of that micro-batch, a backward after the next
    stage's backward of it."""
    stages = len(forward_s)
    orders = [_order(stage, stages, micro_batches, schedule) for stage in range(stages)]
    finished: dict[tuple[str, int, int], float] = {}
    free, done = [0.0] * stages, [0] * stages
    while sum(done) < 2 * stages * micro_batches:
        ran = False
        for stage in range(stages):
            while done[stage] < len(orders[stage]):
                kind, index = orders[stage][done[stage]]
                neighbour = stage - 1 if kind == "F" else stage + 1
                waits = (kind, neighbour, index) if 0 <= neighbour < stages else None
                if waits is not None and waits not in finished:
                    break
                start = max(free[stage], finished[waits] if waits else 0.0)
                free[stage] = start + (forward_s if kind == "F" else backward_s)[stage]
                finished[(kind, stage, index)] = free[stage]
                done[stage] += 1
                ran = True
        if not ran:
            raise ValueError(f"schedule {schedule!r} waits on itself")
    return max(free)
