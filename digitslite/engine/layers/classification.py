"""Softmax, ArgMax and Accuracy: turning class scores into probabilities, predictions and a score."""
import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import canonical_axis
from digitslite.engine.layers.base import CaffeLayer, Shape, register
from digitslite.engine.layers.labels import read_labels, split_at


@register("Softmax")
class Softmax(CaffeLayer):
    """exp(x) / Σ exp(x) along softmax_param.axis; other axes are independent."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.axis = canonical_axis(param.softmax_param.axis, len(bottom_shapes[0]))

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (F.softmax(bottom, dim=self.axis),)


def ranked(values: torch.Tensor, dim: int, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top_k (values, indices) along dim, descending, ties broken towards the larger index."""
    flipped = values.flip(dim)
    order = torch.sort(flipped, dim=dim, descending=True, stable=True).indices.narrow(dim, 0, top_k)
    return flipped.gather(dim, order), values.shape[dim] - 1 - order


@register("ArgMax")
class ArgMax(CaffeLayer):
    """Indices (and with out_max_val the values) of the top_k scores; no gradient.

    Without `axis` each item (first axis) is ranked over all its values and the top has shape
    (N, 1 or 2, top_k, 1, ...) with at least 3 axes; with `axis` that axis is replaced by top_k.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        argmax = param.argmax_param
        self.top_k, self.out_max_val = argmax.top_k, argmax.out_max_val
        self.axis = canonical_axis(argmax.axis, len(bottom_shapes[0])) if argmax.HasField("axis") else None

    @torch.no_grad()
    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        if self.axis is not None:
            values, indices = ranked(bottom, self.axis, self.top_k)
            return ((values if self.out_max_val else indices.to(bottom.dtype)),)
        values, indices = ranked(bottom.reshape(bottom.shape[0], -1), 1, self.top_k)
        rows = [indices.to(bottom.dtype), values] if self.out_max_val else [indices.to(bottom.dtype)]
        top = torch.stack(rows, dim=1)
        return (top.reshape(*top.shape, *([1] * (bottom.dim() - 3))),)


@register("Accuracy")
class Accuracy(CaffeLayer):
    """The fraction of counted positions whose true class is among the top_k scores (ties count wrong).

    An optional second top holds the accuracy per class (0 for a class with no positions).
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        accuracy = param.accuracy_param
        self.axis = canonical_axis(accuracy.axis, len(bottom_shapes[0]))
        self.top_k = accuracy.top_k
        self.ignore_label = accuracy.ignore_label if accuracy.HasField("ignore_label") else None

    @torch.no_grad()
    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outer, classes, inner = split_at(tuple(scores.shape), self.axis)
        grouped = scores.reshape(outer, classes, inner)
        truth, counted = read_labels(self, labels, outer, inner, classes, self.ignore_label)
        true_score = grouped.gather(1, truth.unsqueeze(1))
        at_least_as_good = (grouped >= true_score).sum(dim=1)
        correct = counted & (at_least_as_good - 1 < self.top_k)
        total = counted.sum()
        accuracy = torch.where(total > 0, correct.sum() / total.clamp(min=1), 0.0).to(scores.dtype)
        if self.top_count < 2:
            return (accuracy,)
        per_class_count = torch.bincount(truth[counted], minlength=classes)
        per_class_correct = torch.bincount(truth[correct], minlength=classes)
        per_class = torch.where(per_class_count > 0, per_class_correct / per_class_count.clamp(min=1), 0.0)
        return accuracy, per_class.to(scores.dtype)
