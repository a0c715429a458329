"""One pipeline stage's training: the Solve loop of engine.train with the train net's forward and
backward run by torch's pipeline schedules (torch.distributed.pipelining) across the stages.

Each update takes `micro_batches` consecutive batches per replica: the schedule (GPipe's
fill-drain, or 1F1B) runs every micro-batch forward and backward and adds the gradients up
(scale_grads off). With D data-parallel replicas of the pipeline (K·D ranks: rank = replica·K +
stage), each replica reads its share of the batches as data-parallel ranks do (replica r of D takes
batches r, r+D, ...), and the stage's gradients are summed over the replicas. The solver divides
by iter_size = M·D, so the run follows one process with iter_size M·D on the same batches to
float32 rounding (BatchNorm sees each micro-batch alone, as in GPipe: docs/DESIGN-NOTES.md).

Each stage holds, loads, updates and keeps the solver history of only its own layers' parameters
(digitslite.engine.pipeline.stages). Test passes and the final display run forward through the
stages too; a snapshot gathers the stages' weights and history into the ordinary .caffemodel and
.solverstate on rank 0, so a resume on any number of processes works as without a pipeline.
"""
import dataclasses
import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import distributed
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

from digitslite.caffe import caffe_pb2
from digitslite.caffe.partition import BALANCES
from digitslite.engine.batch_stream import Shard
from digitslite.engine.choices import PIPELINE_SCHEDULES
from digitslite.engine.distributed import Ranks
from digitslite.engine.host_memory import retain_freed_memory
from digitslite.engine.net import CaffeNet, runnable_net
from digitslite.engine.pipeline.bubble import TimedStage, ideal_bubble, measured_bubble
from digitslite.engine.pipeline.groups import StageGroups
from digitslite.engine.pipeline.stages import (
    StageModule,
    StagePlan,
    check_losses,
    held_values,
    owned_params,
    plan_following,
    plan_train,
    stage_examples,
)
from digitslite.engine.snapshot import Snapshot
from digitslite.engine.solver import RULES, Solver
from digitslite.engine.speed import to_device
from digitslite.engine.train import (
    LARGEST_LOGGED_BLOB,
    Feeds,
    TrainConfig,
    _blob_value,
    _mean_values,
    _NetSpec,
    _Training,
)
from digitslite.engine.validation import Probe
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.layout import PIPELINE_FILE

SCHEDULES = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}


def schedule_of(config: TrainConfig) -> str:
    """The schedule a run takes: "auto" is 1F1B where it applies (M >= K), GPipe below that. 1F1B
    holds K micro-batches' activations instead of M and is never slower than GPipe when the
    stages' forward and backward times differ (docs/DESIGN-NOTES.md)."""
    if config.pipeline_schedule != "auto":
        return config.pipeline_schedule
    return "1f1b" if config.micro_batches >= config.pipeline_stages else "gpipe"


def check_pipeline(config: TrainConfig) -> None:
    """Refuse what a pipelined run cannot do, in the CLI's words."""
    stages, micro = config.pipeline_stages, config.micro_batches
    if micro < 1:
        raise UserError(f"--micro-batches {micro}: give at least 1")
    if config.pipeline_schedule not in PIPELINE_SCHEDULES:
        raise UserError(f"--pipeline-schedule {config.pipeline_schedule}: give one of "
                        f"{', '.join(PIPELINE_SCHEDULES)}")
    if config.pipeline_balance not in BALANCES:
        raise UserError(f"--pipeline-balance {config.pipeline_balance}: give one of {', '.join(BALANCES)}")
    if config.pipeline_schedule == "1f1b" and micro < stages:
        raise UserError(f"--pipeline-schedule 1f1b with {stages} stages needs at least {stages} "
                        f"micro-batches (--micro-batches is {micro}); give more, or use gpipe")
    if config.nnodes > 1:
        raise UserError(f"--pipeline-stages {stages} runs its stages and replicas on this node; leave out "
                        "--nnodes")
    if config.solver.iter_size not in (1, micro):
        raise UserError(f"iter_size {config.solver.iter_size} with --micro-batches {micro}: a pipelined "
                        "update takes its micro-batches as iter_size does; leave iter_size at 1")
    if config.amp or config.compile or config.sync_batchnorm:
        raise UserError("--amp, --compile and --sync-batchnorm do not combine with --pipeline-stages yet; "
                        "leave them out")


def peak_bytes(device: torch.device) -> int:
    """This process's memory peak so far: the CUDA allocator's on a GPU, the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ForwardPipeline:
    """A net's forward through the stages on one batch, without a gradient (test passes, the final
    display), on torch's GPipe schedule with one micro-batch."""

    def __init__(self, net: CaffeNet, plan: StagePlan, device: torch.device, group: Any,
                 keep: Sequence[str] = ()) -> None:
        self.plan, self.module = plan, StageModule(net, plan, keep)
        inputs, outputs = stage_examples(net, plan, device)
        stage = PipelineStage(self.module, plan.index, plan.count, device, input_args=inputs,
                              output_args=outputs, group=group)
        self.schedule = ScheduleGPipe(stage, 1)

    @torch.no_grad()
    def run(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs and loss blobs this stage made (and the blobs it keeps)."""
        self.module.outputs.clear()
        self.schedule.eval(return_outputs=False, **self.module.input_kwargs([batch]))
        return self.module.outputs[0]


class PipelinedTraining(_Training):
    """_Training on one stage of one replica of a pipeline."""

    def __init__(self, config: TrainConfig, job_dir: Path, feeds: Feeds | None, progress,
                 ranks: Ranks) -> None:
        check_pipeline(config)
        self.groups = StageGroups.join(ranks, config.pipeline_stages)
        solver = caffe_pb2.SolverParameter()
        solver.CopyFrom(config.solver)
        solver.iter_size = config.micro_batches * self.groups.replicas
        self.plans: list[StagePlan] = []
        self.test_plans: list[StagePlan] = []
        super().__init__(dataclasses.replace(config, solver=solver), job_dir, feeds, progress, ranks)
        self.replicas = self.groups.replicas
        if self.device.type == "cpu":
            # the stage runs its layers directly (not CaffeNet's forward, which asks for this): without
            # it every micro-batch faults its activations in afresh (docs/PERFORMANCE.md)
            retain_freed_memory()
        self.module = StageModule(self.train_net, self.plan)
        inputs, outputs = stage_examples(self.train_net, self.plan, self.device)
        self.stage = TimedStage(self.module, self.plan.index, self.plan.count, self.device,
                                input_args=inputs, output_args=outputs, group=self.groups.pipeline)
        self.schedule = SCHEDULES[schedule_of(config)](
            self.stage, config.micro_batches, loss_fn=lambda loss, micro_batch: loss, scale_grads=False)
        self.display_forward = ForwardPipeline(self.train_net, self.plan, self.device, self.groups.pipeline)
        self.test_forwards = [
            ForwardPipeline(net, plan, self.device, self.groups.pipeline,
                            keep=_scored_blobs(net, plan, probe))
            for net, plan, probe in zip(self.test_nets, self.test_plans, self.probes, strict=True)]
        self.forward_s = self.backward_s = self.wall_s = 0.0
        self.updates, self.warmed_up = 0, False
        self._write_stages()

    @property
    def plan(self) -> StagePlan:
        return self.plans[self.groups.stage]

    # ------------------------------------------------------------------------------------------
    # building: only this stage's layers hold blobs

    def _build_net(self, spec: _NetSpec, shapes: dict[str, tuple[int, ...]], seed: int | None) -> CaffeNet:
        runnable = runnable_net(spec.net, spec.phase, stages=spec.stages, state=spec.state,
                                source_map=spec.source_map)
        if spec.phase == "train":
            self.plans = plan_train(runnable, self.groups.stages, tuple(self.config.pipeline_cuts), shapes,
                                    self.config.pipeline_balance)
            plan = self.plan
        else:
            plan = plan_following(runnable, self.plans)[self.groups.stage]
            self.test_plans.append(plan)
        net = CaffeNet(spec.net, spec.phase, stages=spec.stages, state=spec.state, input_shapes=shapes,
                       seed=seed, source_map=spec.source_map, keep=set(plan.layers))
        if spec.phase == "train":
            check_losses(net, self.plans)
        return net

    def _solver(self) -> Solver:
        self.owned = owned_params(self.train_net, self.plan)
        params = self.train_net.learnable_params()
        return Solver(self.param, [params[index] for index in self.owned], joint_sum=self._sum_over_stages)

    def _reads_snapshot(self) -> bool:
        return self.groups.replica == 0

    def _restore(self, snapshot: Snapshot) -> None:
        """This stage's layers from the .caffemodel, its parameters' history from the .solverstate."""
        self.train_net.load_weights(snapshot.caffemodel)
        count, buffers = len(self.train_net.learnable_params()), RULES[self.param.type][1]
        if len(snapshot.history) != count * buffers:
            raise UserError(f"{self.config.resume}: holds {len(snapshot.history)} history blobs but this "
                            f"solver ({self.param.type} on {count} parameters) needs {count * buffers}; "
                            "resume with the same network and solver type")
        mine = [snapshot.history[buffer * count + index] for buffer in range(buffers) for index in self.owned]
        self.solver.restore(snapshot.iteration, snapshot.current_step, mine, source=str(self.config.resume))

    def _share_start(self, tensors: list[torch.Tensor]) -> None:
        self.groups.broadcast_over_replicas(tensors)

    def _shard(self, index: int) -> Shard:
        """Every stage of a replica reads the replica's batches and takes the net inputs its layers read."""
        return Shard(self.groups.replica, self.groups.replicas)

    def _test_passes(self, count: int) -> range:
        return range(self.groups.replica, count, self.groups.replicas)

    def _parallel(self, synced: bool) -> torch.nn.Module:
        return self.train_net

    def _sum_over_stages(self, value: torch.Tensor) -> torch.Tensor:
        # on this rank's device: a stage without parameters computes its zero on the CPU, which NCCL refuses
        total = value.to(self.device, copy=True)
        distributed.all_reduce(total, group=self.groups.pipeline)
        return total.to(value.device)

    def _tensors(self) -> list[torch.Tensor]:
        return [param.tensor for param in self.solver.params]

    # ------------------------------------------------------------------------------------------
    # running

    def step(self) -> tuple[dict[str, Any], int]:
        """One update's micro-batches through the pipeline, the gradients summed over the replicas;
        the loss and the last micro-batch's logged outputs go to rank 0."""
        for tensor in self._tensors():
            tensor.grad = None
        count = self.config.micro_batches
        batches = [to_device(self.train_stream.next(), self.device, self.config.channels_last)
                   for _ in range(count)]
        images = sum(next(iter(batch.values())).shape[0] for batch in batches if batch)
        self.module.outputs.clear()
        losses: list[torch.Tensor] = []
        last = self.plan.is_last
        started, busy = time.perf_counter(), (self.stage.forward_s, self.stage.backward_s)
        self.schedule.step(target=torch.arange(count) if last else None, losses=losses if last else None,
                           return_outputs=False, **self.module.input_kwargs(batches))
        if self.warmed_up:     # the first update (buffers, first kernels) is not the pipeline's rhythm
            self.wall_s += time.perf_counter() - started
            self.forward_s += self.stage.forward_s - busy[0]
            self.backward_s += self.stage.backward_s - busy[1]
            self.updates += 1
        self.warmed_up = True
        self.groups.sum_over_replicas([tensor.grad for tensor in self._tensors()])
        loss = float(torch.stack([value.detach() for value in losses]).sum()) / count if last else None
        values, combined = self._to_root(loss, self.module.outputs[-1])
        if combined is not None:
            self.smoothed.add(torch.tensor(combined))
        return values, images

    def _to_root(self, loss: float | None,
                 outputs: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], float | None]:
        """On rank 0: the logged outputs of every stage and the loss (its parts summed over the
        stages), each averaged over the replicas; ({}, None) elsewhere."""
        logged = {name: _blob_value(value) for name, value in outputs.items()
                  if value.numel() <= LARGEST_LOGGED_BLOB}
        shares = self.ranks.gather((self.groups.replica, loss, logged))
        if shares is None:
            return {}, None
        replicas: dict[int, tuple[list[float], dict[str, Any]]] = {}
        for replica, part, values in shares:
            parts, merged = replicas.setdefault(replica, ([], {}))
            parts.extend([part] if part is not None else [])
            merged.update(values)
        means = _mean_values([merged for _, merged in replicas.values()])
        return means, float(np.mean([sum(parts) for parts, _ in replicas.values()]))

    def _train_values(self, outputs: Mapping[str, Any],
                      **fields: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """The outputs come from _to_root already gathered and averaged."""
        return dict(outputs), fields

    def _display_pass(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], float]:
        outputs = self.display_forward.run(batch)
        values, loss = self._to_root(self.display_forward.module.partial_loss(outputs), outputs)
        return values, loss if loss is not None else float("nan")

    def test_all(self) -> None:
        # stored statistics (BatchNorm) as replica 0 has them, as DDP gives every rank rank 0's buffers
        self.groups.broadcast_over_replicas(self.train_net.buffers())
        super().test_all()

    def _test_forward(self, index: int, batch: Mapping[str, torch.Tensor],
                      keep: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.test_forwards[index].run(batch)

    # ------------------------------------------------------------------------------------------
    # snapshots and the stage table

    def _gathered_state(self) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]] | None:
        """The stages of replica 0 send their layers' weights and their parameters' history to rank 0,
        which puts them together in the whole net's order."""
        mine = (self.train_net.weights(), self.owned, self.solver.history_arrays()) \
            if self.groups.replica == 0 else None
        shares = self.ranks.gather(mine)
        if shares is None:
            return None
        count, buffers = len(self.train_net.learnable_params()), RULES[self.param.type][1]
        weights: dict[str, list[np.ndarray]] = {}
        history: list[np.ndarray | None] = [None] * (count * buffers)
        for share in shares:
            if share is None:
                continue
            stage_weights, owned, stage_history = share
            weights.update(stage_weights)
            for buffer in range(buffers):
                for position, index in enumerate(owned):
                    history[buffer * count + index] = stage_history[buffer * len(owned) + position]
        return weights, history

    def _write_stages(self) -> None:
        """pipeline.json (rank 0): each stage's layers, devices, held parameters and cost, and the
        bubble so far."""
        values, value_bytes = held_values(self.train_net)
        shares = self.ranks.gather((str(self.device), self.forward_s, self.backward_s, self.wall_s,
                                    self.updates, values, value_bytes, peak_bytes(self.device)))
        if shares is None:
            return
        stages = []
        for plan in self.plans:
            mine = shares[plan.index::plan.count]     # this stage in every replica
            _, forward, backward, wall, updates, held, held_bytes, peak = mine[0]
            stages.append({"stage": plan.index, "layers": list(plan.layers),
                           "device": ", ".join(share[0] for share in mine),
                           "receives": list(plan.receives), "sends": list(plan.sends),
                           "inputs": [blob for blob, _ in plan.inputs],
                           "parameters": held, "parameter_bytes": held_bytes, "peak_bytes": peak,
                           "flops": plan.flops, "activation_bytes": plan.activation_bytes,
                           "forward_s": forward, "backward_s": backward, "busy_s": forward + backward,
                           "wall_s": wall, "updates": updates})
        write_json_atomically(self.job_dir / PIPELINE_FILE, {
            "net": self.train_net.name, "micro_batches": self.config.micro_batches,
            "replicas": self.groups.replicas, "schedule": schedule_of(self.config), "stages": stages,
            "bubble": measured_bubble([share[1] + share[2] for share in shares],
                                      [share[3] for share in shares]),
            "ideal_bubble": ideal_bubble(len(self.plans), self.config.micro_batches)})

    def snapshot(self) -> None:
        self._write_stages()
        super().snapshot()


def _scored_blobs(net: CaffeNet, plan: StagePlan, probe: Probe | None) -> tuple[str, ...]:
    """The blobs the test net's probe reads, kept by the stage that holds its layer (none elsewhere)."""
    if probe is None or probe.layer not in plan.layers:
        return ()
    made = {top for layer in net.net_param.layer[plan.start:plan.stop] for top in layer.top}
    held = {*plan.receives, *(blob for blob, _ in plan.inputs)} | made
    missing = [name for name in probe.keep if name not in held]
    if missing:
        raise UserError(f"a pipelined run scores its test net on the stage of layer {probe.layer!r}, which "
                        f"does not hold {', '.join(missing)}; cut the net so that they reach that stage "
                        "(--pipeline-cuts) or train without --pipeline-stages")
    return probe.keep
