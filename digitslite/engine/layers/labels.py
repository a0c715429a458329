"""What Softmax-style loss and Accuracy layers share: the outer×C×inner view and reading labels."""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.layers.record import count
from digitslite.engine.layers.base import CaffeLayer, Shape

Norm = caffe_pb2.LossParameter


def split_at(shape: Shape, axis: int) -> tuple[int, int, int]:
    """(outer, classes, inner): count(0, axis), shape[axis], count(axis + 1, end)."""
    return count(shape, 0, axis), shape[axis], count(shape, axis + 1)


def read_labels(layer: CaffeLayer, labels: torch.Tensor, outer: int, inner: int, classes: int,
                ignore_label: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels truncated to int as (outer, inner), clamped into range, and the mask of counted positions.

    A label outside [0, classes) that is not the ignore_label is a user error (Caffe leaves it
    undefined; on a GPU it would abort the device).
    """
    if labels.numel() != outer * inner:
        raise layer.user_error(f"it got {labels.numel()} labels for {outer}×{inner} scored positions",
                               "feed one label per position of the scores")
    values = labels.detach().reshape(outer, inner).long()
    counted = (values != ignore_label if ignore_label is not None
               else torch.ones_like(values, dtype=torch.bool))
    # The range check reads a value back from the device; a compiled graph skips it (dataset creation
    # already refuses out-of-range labels, and the metrics count any that remain).
    bad = counted & ((values < 0) | (values >= classes))
    if not torch.compiler.is_compiling() and bool(bad.any()):
        example = int(values[bad][0])
        raise layer.user_error(f"label {example} is outside the {classes} classes [0, {classes})",
                               "fix the labels, or set ignore_label for the value to skip")
    return values.clamp(0, classes - 1), counted


def normalization_mode(loss_param: caffe_pb2.LossParameter, default: int) -> int:
    """Explicit `normalization`, else the legacy `normalize` (true VALID, false BATCH_SIZE), else default."""
    if loss_param.HasField("normalization"):
        return loss_param.normalization
    if loss_param.HasField("normalize"):
        return Norm.VALID if loss_param.normalize else Norm.BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int, counted: torch.Tensor) -> torch.Tensor:
    """The loss divisor for the mode, clamped to at least 1 so an all-ignored batch gives 0."""
    if mode == Norm.VALID:
        return counted.sum().clamp(min=1)
    size = {Norm.FULL: outer * inner, Norm.BATCH_SIZE: outer, Norm.NONE: 1}[mode]
    return torch.tensor(max(size, 1), device=counted.device)
