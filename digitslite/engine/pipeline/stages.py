"""The nets of a pipelined run as stages: which layers, which blobs cross, which parameters each holds.

The train net is cut before it is built (digitslite.caffe.partition on the layers a CaffeNet runs),
and each stage process builds it holding only its own layers' blobs: the other layers are filled
as for the whole net (the same random draws as one process) and let go at once. A test net is cut
where the train net is: each of its layers runs on the stage holding the train layer of its name,
a layer the train net lacks on the stage of the layer before it. Every stage reads the replica's
batches, so each takes the net inputs its layers read (labels, the Crop reference) from its own
copy; only computed blobs travel from stage to stage, and a gradient travels back only for those
that carry one. The last stage returns the net's loss. Parameters belong to the stage of the layer
owning them; one shared by layers of two stages cannot be, so such a cut is refused.
"""
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from digitslite.caffe import caffe_pb2
from digitslite.caffe.partition import crossing_blobs, handed_on, input_copies, partition
from digitslite.caffe.shapes import input_tops
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError


@dataclass(frozen=True)
class StagePlan:
    """Stage `index` of `count`: layers [start, stop) of the net, the blobs in and out."""

    index: int
    count: int
    start: int
    stop: int
    receives: tuple[str, ...]    # computed blobs from the previous stage
    sends: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]   # (blob, net input it is): taken from the stage's own batch
    layers: tuple[str, ...]      # the layers in the range (Splits left out)
    flops: int = 0               # forward, one micro-batch (digitslite.caffe.layer_cost)
    activation_bytes: int = 0
    parameters: int = 0          # blob values of its layers, from the prototxt

    @property
    def is_last(self) -> bool:
        return self.index == self.count - 1


def _plan(net: caffe_pb2.NetParameter, index: int, edges: Sequence[int], **costs: int) -> StagePlan:
    start, stop = edges[index], edges[index + 1]
    count = len(edges) - 1
    copies = input_copies(net)
    needed = input_tops(net) if index == 0 else crossing_blobs(net, start)
    receives = tuple(name for name in needed if name not in copies)
    inputs = tuple((name, copies[name]) for name in needed if name in copies)
    sends = tuple(handed_on(net, stop, copies)) if index < count - 1 else ()
    layers = tuple(layer.name for layer in net.layer[start:stop] if layer.type != "Split")
    return StagePlan(index, count, start, stop, receives, sends, inputs, layers, **costs)


def _check_sharing(net: caffe_pb2.NetParameter, plans: Sequence[StagePlan]) -> None:
    """Refuse a cut between layers sharing a parameter (by ParamSpec name)."""
    stage_of: dict[str, int] = {}
    for plan in plans:
        for layer in net.layer[plan.start:plan.stop]:
            for spec in layer.param:
                if spec.name and stage_of.setdefault(spec.name, plan.index) != plan.index:
                    raise UserError(f"layer '{layer.name}' in pipeline stage {plan.index} shares the "
                                    f"parameter '{spec.name}' with a layer of stage {stage_of[spec.name]}; "
                                    "put the pipeline cuts so that layers sharing parameters stay in one "
                                    "stage")


def plan_train(net: caffe_pb2.NetParameter, count: int, cuts: Sequence[str],
               input_shapes: Mapping[str, Sequence[int]], balance: str = "flops") -> list[StagePlan]:
    """Cut the train net (as digitslite.engine.net.runnable_net gives it) into `count` stages,
    balanced by `balance` (FLOPs, activations or parameters), or at the blobs `cuts`."""
    found = partition(net, None if cuts else count, cuts=cuts, balance=balance, input_shapes=input_shapes)
    if len(found.stages) != count:
        raise UserError(f"--pipeline-cuts {','.join(cuts)} make {len(found.stages)} stages but "
                        f"--pipeline-stages is {count}; give {count - 1} cuts")
    edges = [0, *found.bounds, len(net.layer)]
    plans = [_plan(net, stage.index, edges, flops=stage.flops, activation_bytes=stage.activation_bytes,
                   parameters=stage.parameters) for stage in found.stages]
    _check_sharing(net, plans)
    return plans


def plan_following(net: caffe_pb2.NetParameter, train: Sequence[StagePlan]) -> list[StagePlan]:
    """Cut another net of the model (a test net) where the train net is cut."""
    stage_of = {name: plan.index for plan in train for name in plan.layers}
    edges, current = [0], 0
    for index, layer in enumerate(net.layer):
        stage = current if layer.type == "Split" else stage_of.get(layer.name, current)
        if stage < current:
            phase = caffe_pb2.Phase.Name(net.state.phase).lower()
            raise UserError(f"layer '{layer.name}' of the {phase} net comes after layers of pipeline stage "
                            f"{current} but belongs to stage {stage} in the train net; a pipelined run "
                            "needs its nets' shared layers in the same order")
        edges.extend([index] * (stage - current))
        current = stage
    edges.extend([len(net.layer)] * (len(train) - current))
    plans = [_plan(net, index, edges) for index in range(len(train))]
    _check_sharing(net, plans)
    return plans


def check_losses(net: CaffeNet, plans: Sequence[StagePlan]) -> None:
    """Refuse a loss computed before the last stage: the schedule back-propagates only the last
    stage's output (an auxiliary loss there would neither be logged whole nor trained)."""
    last = plans[-1]
    for index, step in enumerate(net.steps[:last.start]):
        for top in step.tops:
            if top in net.loss_weights:
                stage = next(plan.index for plan in plans if plan.start <= index < plan.stop)
                raise UserError(f"layer '{step.name}' computes a loss ('{top}') in pipeline stage {stage}, "
                                f"before the last ({last.index}); cut the net after every loss layer's "
                                "inputs, e.g. with --pipeline-cuts, so that the losses are in the last stage")


def owned_params(net: CaffeNet, plan: StagePlan) -> list[int]:
    """Indices into net.learnable_params() of the parameters whose owner layer is in the stage."""
    layers = set(plan.layers)
    return [index for index, param in enumerate(net.learnable_params()) if param.layer in layers]


def held_values(net: CaffeNet) -> tuple[int, int]:
    """The blob values this process holds for the net's layers, and their bytes (measured on the
    tensors; a blob shared by two layers counts for each, as the partition table counts it)."""
    blobs = [blob for step in net.steps if step.module is not None
             for blob in net.layers[step.module].blobs()]
    return sum(blob.numel() for blob in blobs), sum(blob.numel() * blob.element_size() for blob in blobs)


def blob_shapes(net: CaffeNet) -> dict[str, tuple[int, ...]]:
    """Every blob's shape in one batch of the net (a micro-batch)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for step, layer_shapes in zip(net.steps, net.shapes, strict=True):
        shapes.update((top, tuple(shape)) for top, shape in zip(step.tops, layer_shapes.tops, strict=False))
    return shapes


def carries_gradient(net: CaffeNet) -> set[str]:
    """The blobs a gradient flows back through: those a layer with a trained parameter (lr_mult ≠ 0)
    writes, or writes from such a blob over a bottom that propagate_down does not cut. Net inputs
    carry none (no stage sends them). A layer without a gradient of its own (ArgMax) counts as
    carrying one: torch then sends zeros, which is only wasted, while the reverse would be wrong."""
    learnables = net.learnable_params()
    carrying: set[str] = set()
    for step in net.steps:
        trained = any(learnables[ref].lr_mult != 0 for ref in step.blob_refs)
        if trained or any(name in carrying for name, cut in zip(step.bottoms, step.detach, strict=True)
                          if not cut):
            carrying.update(step.tops)
        else:
            carrying.difference_update(step.tops)
    return carrying


def stage_examples(net: CaffeNet, plan: StagePlan,
                   device: torch.device) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Tensors shaped like one micro-batch's received and sent blobs: torch's PipelineStage sizes
    its buffers from them, instead of inferring them by running the layers on uninitialised memory
    (which would also move BatchNorm statistics and draw Dropout masks). Whether one requires a
    gradient decides whether a gradient buffer is sent back for it."""
    shapes, carrying = blob_shapes(net), carries_gradient(net)

    def example(name: str) -> torch.Tensor:
        return torch.empty(shapes[name], device=device).requires_grad_(name in carrying)

    inputs = tuple(example(name) for name in plan.receives)
    outputs = tuple(example(name) for name in plan.sends) if not plan.is_last else \
        (torch.empty((), device=device, requires_grad=True),)
    return inputs, outputs


class StageModule(nn.Module):
    """The layers of one stage as the module a torch PipelineStage runs: received blobs (positional)
    and the stage's net inputs (by blob name) in, blobs out (the last stage: the net's loss). Each
    call keeps the net's outputs and loss blobs the stage made (and the blobs of `keep`) in
    `outputs`, to log."""

    def __init__(self, net: CaffeNet, plan: StagePlan, keep: Sequence[str] = ()) -> None:
        super().__init__()
        self.net, self.plan = net, plan
        made = set(net.output_names) | set(net.loss_weights)
        self.reported = made.difference(plan.receives, (blob for blob, _ in plan.inputs)) | set(keep)
        self.outputs: list[dict[str, torch.Tensor]] = []

    def forward(self, *received: torch.Tensor,
                **inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        given = {**dict(zip(self.plan.receives, received, strict=True)), **inputs}
        blobs = self.net.run_steps(given, self.plan.start, self.plan.stop,
                                   protect=set(self.plan.sends) | self.reported)
        self.outputs.append({name: blobs[name].detach() for name in self.reported if name in blobs})
        if not self.plan.is_last:
            # gloo sends dense row-major tensors only; a convolution may have answered channels_last
            return tuple(blobs[name].contiguous() for name in self.plan.sends)
        return self.net.loss(blobs)

    def input_kwargs(self, batches: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The stage's net inputs from the batches of one update (the schedule splits them again)."""
        return {blob: torch.cat([batch[source] for batch in batches]) for blob, source in self.plan.inputs}

    def partial_loss(self, outputs: Mapping[str, torch.Tensor]) -> float:
        """The part of the net's loss from the loss blobs in `outputs` (this stage's)."""
        return math.fsum(float(outputs[name].double().sum()) * weight
                         for name, weight in self.net.loss_weights.items() if name in outputs)
