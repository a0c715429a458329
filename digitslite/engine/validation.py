"""What a test pass scores besides the net's own outputs, per task: a probe finds the blobs to keep
in a test net, and its tally sums them over the pass (and over the ranks, by merging)."""
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from digitslite.caffe.geometry import canonical_axis
from digitslite.engine.metrics import ConfusionMatrix
from digitslite.engine.net import CaffeNet
from digitslite.tasks import segmentation


class Tally(Protocol):
    def update(self, outputs: Mapping[str, torch.Tensor]) -> None: ...
    def merge(self, other: "Tally") -> "Tally": ...
    def fields(self) -> dict[str, Any]: ...


class Probe(Protocol):
    layer: str                  # the loss or accuracy layer it reads (a pipeline scores on its stage)
    keep: tuple[str, ...]

    def tally(self) -> Tally: ...


class _ConfusionTally:
    """A confusion matrix of argmax predictions; fields: the FCN scores and the matrix."""

    def __init__(self, probe: "SegmentationProbe") -> None:
        self.probe = probe
        self.matrix = ConfusionMatrix(probe.classes, probe.ignore_label)

    def update(self, outputs: Mapping[str, torch.Tensor]) -> None:
        prediction = outputs[self.probe.score].argmax(self.probe.axis)
        self.matrix.update(prediction, outputs[self.probe.label].reshape(prediction.shape))

    def merge(self, other: "_ConfusionTally") -> "_ConfusionTally":
        self.matrix.merge(other.matrix)
        return self

    def fields(self) -> dict[str, Any]:
        summary = self.matrix.summary()
        return {**{key: summary[key] for key in segmentation.TASK.metrics},
                "confusion_matrix": self.matrix.matrix.tolist()}   # rows: truth, columns: prediction


@dataclass(frozen=True)
class SegmentationProbe:
    """Where a segmentation test net keeps its scores and labels, for the confusion matrix."""

    layer: str
    score: str
    label: str
    axis: int
    classes: int
    ignore_label: int | None

    @property
    def keep(self) -> tuple[str, ...]:
        return (self.score, self.label)

    def tally(self) -> _ConfusionTally:
        return _ConfusionTally(self)


def segmentation_probe(net: CaffeNet, info: Mapping[str, Any] | None = None) -> SegmentationProbe | None:
    """The first SoftmaxWithLoss or Accuracy layer whose scores have spatial axes after the class axis
    (the class count comes from the net, so the dataset's description is not needed)."""
    for layer, shapes in zip(net.net_param.layer, net.shapes, strict=True):
        if layer.type not in ("SoftmaxWithLoss", "Accuracy") or len(layer.bottom) < 2:
            continue
        scores = shapes.bottoms[0]
        loss = layer.type == "SoftmaxWithLoss"
        axis = canonical_axis(layer.softmax_param.axis if loss else layer.accuracy_param.axis, len(scores))
        if axis == len(scores) - 1:
            continue
        holder = layer.loss_param if loss else layer.accuracy_param
        ignore = holder.ignore_label if holder.HasField("ignore_label") else None
        return SegmentationProbe(layer.name, layer.bottom[0], layer.bottom[1], axis, scores[axis], ignore)
    return None
