"""The train net as pipeline stages: which layers, which blobs cross, which parameters each owns.

Every stage process builds the whole CaffeNet (the same fillers as one process, so a pipelined run
starts from the same weights) and runs only its range of layers (CaffeNet.run_steps). The first
stage takes the net's inputs, every blob a later stage reads travels from stage to stage (labels
and the Crop reference included), and the last stage returns the net's loss, which the schedule
back-propagates. Parameters belong to the stage of the layers using them; one shared by layers
of two stages cannot be, so such a cut is refused.
"""
from dataclasses import dataclass

import torch
from torch import nn

from digitslite.caffe.partition import crossing_blobs, partition
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError


@dataclass(frozen=True)
class StagePlan:
    """Stage `index` of `count`: steps [start, stop) of the net, blobs in and out, owned parameters."""

    index: int
    count: int
    start: int
    stop: int
    receives: tuple[str, ...]
    sends: tuple[str, ...]
    owned: tuple[int, ...]       # indices into net.learnable_params()
    layers: tuple[str, ...]
    flops: int                   # forward, one micro-batch (digitslite.caffe.layer_cost)
    activation_bytes: int

    @property
    def is_last(self) -> bool:
        return self.index == self.count - 1


def _input_shapes(net: CaffeNet) -> dict[str, tuple[int, ...]]:
    """The shapes the net was built for, by input top."""
    return {top: tuple(shape) for step, shapes in zip(net.steps, net.shapes, strict=True)
            if step.module is None and step.type != "Split" for top, shape in zip(step.tops, shapes.tops,
                                                                                   strict=True)}


def plan_stages(net: CaffeNet, count: int, cuts: tuple[str, ...] = ()) -> list[StagePlan]:
    """Cut the train net into `count` stages (balanced by FLOPs) or at the blobs `cuts`."""
    found = partition(net.net_param, None if cuts else count, cuts=cuts, input_shapes=_input_shapes(net))
    if len(found.stages) != count:
        raise UserError(f"--pipeline-cuts {','.join(cuts)} make {len(found.stages)} stages but "
                        f"--pipeline-stages is {count}; give {count - 1} cuts")
    steps = net.steps
    owner_stage: dict[int, int] = {}
    learnables = {id(p.tensor): index for index, p in enumerate(net.learnable_params())}
    plans = []
    for stage in found.stages:
        owned = []
        for step in steps[stage.start:stage.stop]:
            if step.module is None:
                continue
            for tensor in net.layers[step.module].blobs():
                index = learnables.get(id(tensor))
                if index is None:
                    continue
                if owner_stage.setdefault(index, stage.index) != stage.index:
                    raise UserError(f"layer '{step.name}' in pipeline stage {stage.index} shares a parameter "
                                    f"with a layer of stage {owner_stage[index]}; put the pipeline cuts so "
                                    "that layers sharing parameters stay in one stage")
                if index not in owned:
                    owned.append(index)
        receives = tuple(net.input_names) if stage.index == 0 else tuple(crossing_blobs(net.net_param,
                                                                                          stage.start))
        sends = () if stage.index == count - 1 else tuple(crossing_blobs(net.net_param, stage.stop))
        plans.append(StagePlan(stage.index, count, stage.start, stage.stop, receives, sends,
                               tuple(sorted(owned)), tuple(stage.layers), stage.flops,
                               stage.activation_bytes))
    return plans


def blob_shapes(net: CaffeNet) -> dict[str, tuple[int, ...]]:
    """Every blob's shape in one batch of the train net (a micro-batch)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for step, layer_shapes in zip(net.steps, net.shapes, strict=True):
        shapes.update((top, tuple(shape)) for top, shape in zip(step.tops, layer_shapes.tops, strict=False))
    return shapes


def stage_examples(net: CaffeNet, plan: StagePlan,
                   device: torch.device) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Tensors shaped like one micro-batch's stage inputs and outputs: torch's PipelineStage sizes
    its buffers from them, instead of inferring them by running the layers on uninitialised memory
    (which would also move BatchNorm statistics and draw Dropout masks)."""
    shapes = blob_shapes(net)

    def example(name: str, grad: bool) -> torch.Tensor:
        return torch.empty(shapes[name], device=device).requires_grad_(grad)

    inputs = tuple(example(name, plan.index > 0) for name in plan.receives)
    outputs = tuple(example(name, True) for name in plan.sends) if not plan.is_last else \
        (torch.empty((), device=device, requires_grad=True),)
    return inputs, outputs


class StageModule(nn.Module):
    """The layers of one stage as the module a torch PipelineStage runs: blobs in, blobs out (the
    last stage: the net's loss). The last stage keeps each micro-batch's output blobs to log."""

    def __init__(self, net: CaffeNet, plan: StagePlan) -> None:
        super().__init__()
        self.net, self.plan = net, plan
        self.outputs: list[dict[str, torch.Tensor]] = []

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        blobs = self.net.run_steps(dict(zip(self.plan.receives, tensors, strict=True)), self.plan.start,
                                   self.plan.stop, protect=set(self.plan.sends))
        if not self.plan.is_last:
            # gloo sends dense row-major tensors only; a convolution may have answered channels_last
            return tuple(blobs[name].contiguous() for name in self.plan.sends)
        self.outputs.append({name: blobs[name].detach() for name in self.net.output_names if name in blobs})
        return self.net.loss(blobs)
