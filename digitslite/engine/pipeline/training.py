"""One pipeline stage's training: the Solve loop of engine.train with the train net's forward and
backward run by torch's pipeline schedules (torch.distributed.pipelining) across the stages.

Each update takes `micro_batches` consecutive batches, as one process with iter_size =
micro_batches does: the schedule (GPipe's fill-drain, or 1F1B) runs every micro-batch forward
and backward and adds the gradients up (scale_grads off), and the solver divides by iter_size.
So a K-stage run of a net without BatchNorm follows the one-process run to float32 rounding
(BatchNorm sees each micro-batch alone, as in GPipe: docs/DESIGN-NOTES.md).

Every stage holds the whole net and updates only its own parameters (and their solver history).
Before a test pass, a snapshot, or the final display, each parameter and its history go from the
stage that owns it to every rank: then the test nets, the ordinary .caffemodel + .solverstate of
rank 0, and a resume on any number of processes work as without a pipeline.
"""
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import distributed
from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe

from digitslite.caffe import caffe_pb2
from digitslite.engine.choices import PIPELINE_SCHEDULES
from digitslite.engine.distributed import Ranks
from digitslite.engine.feeds import Shard
from digitslite.engine.pipeline.bubble import TimedStage, ideal_bubble, measured_bubble
from digitslite.engine.pipeline.stages import StageModule, plan_stages, stage_examples
from digitslite.engine.speed import to_device
from digitslite.engine.train import LARGEST_LOGGED_BLOB, Feeds, TrainConfig, _Training
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.layout import PIPELINE_FILE

SCHEDULES = dict(zip(PIPELINE_SCHEDULES, (ScheduleGPipe, Schedule1F1B), strict=True))


def check_pipeline(config: TrainConfig) -> None:
    """Refuse what a pipelined run cannot do, in the CLI's words."""
    stages, micro = config.pipeline_stages, config.micro_batches
    if micro < 1:
        raise UserError(f"--micro-batches {micro}: give at least 1")
    if config.pipeline_schedule not in SCHEDULES:
        raise UserError(f"--pipeline-schedule {config.pipeline_schedule}: give one of {', '.join(SCHEDULES)}")
    if config.pipeline_schedule == "1f1b" and micro < stages:
        raise UserError(f"--pipeline-schedule 1f1b with {stages} stages needs at least {stages} "
                        f"micro-batches (--micro-batches is {micro}); give more, or use gpipe")
    if config.ranks > 1 or config.nnodes > 1 or len(config.gpus) not in (0, stages):
        raise UserError(f"--pipeline-stages {stages} runs one process per stage on this node; data-parallel "
                        "ranks (--ranks, --nnodes) do not combine with it yet, and --gpus must name one GPU "
                        "per stage")
    if config.solver.iter_size not in (1, micro):
        raise UserError(f"iter_size {config.solver.iter_size} with --micro-batches {micro}: a pipelined "
                        "update takes its micro-batches as iter_size does; leave iter_size at 1")
    if config.amp or config.compile or config.sync_batchnorm:
        raise UserError("--amp, --compile and --sync-batchnorm do not combine with --pipeline-stages yet; "
                        "leave them out")


class PipelinedTraining(_Training):
    """_Training on one stage of a pipeline (rank r runs stage r)."""

    def __init__(self, config: TrainConfig, job_dir: Path, feeds: Feeds | None, progress,
                 ranks: Ranks) -> None:
        check_pipeline(config)
        if ranks.world_size != config.pipeline_stages:
            raise UserError(f"--pipeline-stages {config.pipeline_stages} needs as many processes, but "
                            f"{ranks.world_size} were started; start one per stage")
        solver = caffe_pb2.SolverParameter()
        solver.CopyFrom(config.solver)
        solver.iter_size = config.micro_batches
        super().__init__(dataclasses.replace(config, solver=solver), job_dir, feeds, progress, ranks)
        self.replicas = 1
        self.plans = plan_stages(self.train_net, config.pipeline_stages, tuple(config.pipeline_cuts))
        self.plan = self.plans[ranks.rank]
        self.owner = {index: plan.index for plan in self.plans for index in plan.owned}
        self.solver.owned = list(self.plan.owned)
        self.solver.joint_sum = self._sum_over_stages
        self.module = StageModule(self.train_net, self.plan)
        inputs, outputs = stage_examples(self.train_net, self.plan, self.device)
        self.stage = TimedStage(self.module, self.plan.index, self.plan.count, self.device,
                                input_args=inputs, output_args=outputs)
        self.schedule = SCHEDULES[config.pipeline_schedule](
            self.stage, config.micro_batches, loss_fn=lambda loss, micro_batch: loss, scale_grads=False)
        self.busy_s = self.wall_s = 0.0
        self.updates, self.warmed_up = 0, False
        self._write_stages()

    def _shard(self, index: int) -> Shard:
        """Every stage reads the whole train stream (the first takes the inputs from it); test
        passes are dealt to the stages as to data-parallel ranks."""
        return Shard(0, 1) if index == 0 else super()._shard(index)

    def _parallel(self, synced: bool) -> torch.nn.Module:
        return self.train_net

    def _sum_over_stages(self, value: torch.Tensor) -> torch.Tensor:
        total = value.clone()
        distributed.all_reduce(total)
        return total

    def _tensors(self) -> list[torch.Tensor]:
        return [self.solver.params[index].tensor for index in self.plan.owned]

    def step(self) -> tuple[dict[str, torch.Tensor], int]:
        """One update's micro-batches through the pipeline; the loss and the last micro-batch's
        output blobs come from the last stage to every rank."""
        for tensor in self._tensors():
            tensor.grad = None
        count = self.config.micro_batches
        batches = [to_device(self.train_stream.next(), self.device, self.config.channels_last)
                   for _ in range(count)]
        images = sum(next(iter(batch.values())).shape[0] for batch in batches if batch)
        inputs = [torch.cat([batch[name] for batch in batches]) for name in self.plan.receives] \
            if self.plan.index == 0 else []
        self.module.outputs.clear()
        losses: list[torch.Tensor] = []
        last = self.plan.is_last
        started, busy = time.perf_counter(), self.stage.busy_s
        self.schedule.step(*inputs, target=torch.arange(count) if last else None,
                           losses=losses if last else None, return_outputs=False)
        if self.warmed_up:     # the first update (buffers, first kernels) is not the pipeline's rhythm
            self.wall_s += time.perf_counter() - started
            self.busy_s += self.stage.busy_s - busy
            self.updates += 1
        self.warmed_up = True
        shared: Any = None
        if last:
            total = None
            for loss in losses:
                total = loss.detach() if total is None else total + loss.detach()
            outputs = {name: value.cpu() for name, value in self.module.outputs[-1].items()
                       if value.numel() <= LARGEST_LOGGED_BLOB}
            shared = (float(total / count), outputs)
        loss, outputs = self.ranks.broadcast_object(shared, src=self.plan.count - 1)
        self.smoothed.add(torch.tensor(loss))
        return outputs, images

    @torch.no_grad()
    def _share_weights(self) -> None:
        """Each parameter and its history from the stage that owns it to every rank."""
        count = len(self.solver.params)
        for index, param in enumerate(self.solver.params):
            source = self.owner.get(index, 0)
            for tensor in (param.tensor, *self.solver.history[index::count]):
                distributed.broadcast(tensor.data, src=source)

    def _write_stages(self) -> None:
        """pipeline.json (rank 0): each stage's layers, device and cost, and the bubble so far."""
        shares = self.ranks.gather((str(self.device), self.busy_s, self.wall_s, self.updates))
        if shares is None:
            return
        stages = [{"stage": plan.index, "layers": list(plan.layers), "device": device,
                   "receives": list(plan.receives), "sends": list(plan.sends),
                   "parameters": sum(self.solver.params[i].tensor.numel() for i in plan.owned),
                   "flops": plan.flops, "activation_bytes": plan.activation_bytes,
                   "busy_s": busy, "wall_s": wall, "updates": updates}
                  for plan, (device, busy, wall, updates) in zip(self.plans, shares, strict=True)]
        write_json_atomically(self.job_dir / PIPELINE_FILE, {
            "net": self.train_net.name, "micro_batches": self.config.micro_batches,
            "schedule": self.config.pipeline_schedule, "stages": stages,
            "bubble": measured_bubble([share[1] for share in shares], [share[2] for share in shares]),
            "ideal_bubble": ideal_bubble(len(self.plans), self.config.micro_batches)})

    def test_all(self) -> None:
        self._share_weights()
        super().test_all()

    def snapshot(self) -> None:
        self._share_weights()
        self._write_stages()
        super().snapshot()

    def _finish(self) -> None:
        self._share_weights()
        super()._finish()
