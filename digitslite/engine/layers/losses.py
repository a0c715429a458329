"""Loss layers: SoftmaxWithLoss, EuclideanLoss, SigmoidCrossEntropyLoss, InfogainLoss and
MultinomialLogisticLoss; each outputs a scalar."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import read_blob_file
from digitslite.caffe.geometry import canonical_axis
from digitslite.engine.layers.base import CaffeLayer, Shape, register, upcast
from digitslite.engine.layers.labels import (
    Norm,
    normalization_mode,
    normalizer,
    read_labels,
    split_at,
)

FLT_MIN = 1.1754943508222875e-38


class _SoftmaxLossFunction(torch.autograd.Function):
    """−Σ log(max(p_label, FLT_MIN)) / normalizer with Caffe's gradient (p − onehot)/normalizer.

    Autograd of the clamped forward would zero the gradient where p underflows; Caffe does not.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor, truth: torch.Tensor, counted: torch.Tensor,
                divisor: torch.Tensor) -> torch.Tensor:
        log_prob = torch.log_softmax(scores, dim=1)
        picked = log_prob.gather(1, truth.unsqueeze(1)).squeeze(1).clamp(min=math.log(FLT_MIN))
        ctx.save_for_backward(log_prob, truth, counted, divisor)
        return -torch.where(counted, picked, 0.0).sum() / divisor

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        log_prob, truth, counted, divisor = ctx.saved_tensors
        diff = log_prob.exp()
        diff.scatter_add_(1, truth.unsqueeze(1), torch.full_like(diff[:, :1], -1.0))
        diff *= counted.unsqueeze(1) * (grad / divisor)
        return diff, None, None, None


class _LabelledLoss(CaffeLayer):
    """Loss layers take (prediction, target) and never send a gradient to the target."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        loss = param.loss_param
        self.ignore_label = loss.ignore_label if loss.HasField("ignore_label") else None


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(_LabelledLoss):
    """Multinomial logistic loss of the softmax along softmax_param.axis; optional second top = prob.

    Normalisation defaults to VALID; gradients from the prob top are ignored, as in Caffe.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.axis = canonical_axis(param.softmax_param.axis, len(bottom_shapes[0]))
        self.mode = normalization_mode(param.loss_param, Norm.VALID)

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outer, classes, inner = split_at(tuple(scores.shape), self.axis)
        truth, counted = read_labels(self, labels, outer, inner, classes, self.ignore_label)
        grouped = upcast(scores).reshape(outer, classes, inner)
        divisor = normalizer(self.mode, outer, inner, counted).to(grouped.dtype)
        loss = _SoftmaxLossFunction.apply(grouped, truth, counted, divisor)
        if self.top_count < 2:
            return (loss,)
        return loss, F.softmax(scores.detach(), dim=self.axis)


@register("EuclideanLoss")
class EuclideanLoss(CaffeLayer):
    """Σ (a − b)² / (2N) with N = the first dim; both inputs may receive a gradient."""

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor]:
        difference = upcast(predicted) - upcast(target).reshape(predicted.shape)
        return (difference.square().sum() / (2 * predicted.shape[0]),)


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(_LabelledLoss):
    """Σ max(x,0) − x·t + log(1 + e^−|x|) over counted elements / normalizer (default BATCH_SIZE).

    torch's binary_cross_entropy_with_logits has exactly this value and Caffe's gradient
    sigmoid(x) − t, including at x = 0 where autograd of the written formula would differ.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.mode = normalization_mode(param.loss_param, Norm.BATCH_SIZE)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor]:
        logits = upcast(logits)
        targets = targets.detach().reshape(logits.shape).to(logits.dtype)
        counted = (targets.long() != self.ignore_label if self.ignore_label is not None
                   else torch.ones_like(targets, dtype=torch.bool))
        elementwise = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        outer = logits.shape[0] if logits.dim() else 1
        divisor = normalizer(self.mode, outer, logits.numel() // max(outer, 1), counted).to(logits.dtype)
        return (torch.where(counted, elementwise, 0.0).sum() / divisor,)


LOG_THRESHOLD = 1e-20   # Caffe's kLOG_THRESHOLD: probabilities are clamped to it before the log


def floored_log_softmax(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """log(max(softmax, 1e-20)) with the unclamped gradient: Caffe's infogain backward is
    p·Σ_k H[label, k] − H[label, :], whatever the clamp did to the value."""
    logs = torch.log_softmax(scores, dim=dim)
    return logs + (logs.clamp(min=math.log(LOG_THRESHOLD)) - logs).detach()


def thresholded(probabilities: torch.Tensor) -> torch.Tensor:
    """max(p, 1e-20) whose gradient is still 1, so log() of it has Caffe's gradient 1/max(p, 1e-20)."""
    return probabilities + (probabilities.clamp(min=LOG_THRESHOLD) - probabilities).detach()


@register("InfogainLoss")
class InfogainLoss(_LabelledLoss):
    """−Σ_k H[label, k]·log softmax_k(x) per position / normalizer (default VALID); H comes from a third
    bottom or from the BlobProto file infogain_loss_param.source. With H = I it is SoftmaxWithLoss.
    Optional second top: the softmax. Neither the labels nor H get a gradient."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        infogain = param.infogain_loss_param
        self.axis = canonical_axis(infogain.axis, len(bottom_shapes[0]))
        self.mode = normalization_mode(param.loss_param, Norm.VALID)
        classes = bottom_shapes[0][self.axis]
        self.register_buffer("matrix", None)
        if len(bottom_shapes) == 2:   # the record made sure that the source is given
            values = read_blob_file(infogain.source, "the infogain matrix H",
                                    "give infogain_loss_param.source as a Caffe .binaryproto holding H")
            if values.size != classes * classes:
                raise self.user_error(f"the matrix in {infogain.source} holds {values.size} values",
                                      f"store a {classes}x{classes} matrix H")
            self.matrix = torch.from_numpy(values.astype(np.float32).reshape(classes, classes))

    def forward(self, scores: torch.Tensor, labels: torch.Tensor,
                matrix: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        outer, classes, inner = split_at(tuple(scores.shape), self.axis)
        truth, counted = read_labels(self, labels, outer, inner, classes, self.ignore_label)
        grouped = upcast(scores).reshape(outer, classes, inner)
        gains = self.matrix if matrix is None else matrix.detach()
        gains = gains.reshape(classes, classes).to(grouped.dtype)
        log_prob = floored_log_softmax(grouped, dim=1)
        weights = gains[truth].permute(0, 2, 1)            # (outer, classes, inner): H[label, k]
        per_position = -(weights * log_prob).sum(dim=1)
        divisor = normalizer(self.mode, outer, inner, counted).to(grouped.dtype)
        loss = torch.where(counted, per_position, 0.0).sum() / divisor
        if self.top_count < 2:
            return (loss,)
        return loss, F.softmax(scores.detach(), dim=self.axis)


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(CaffeLayer):
    """−Σ log(max(p[label], 1e-20)) / N over N items of probabilities (N, C, 1, 1); no softmax."""

    def forward(self, probabilities: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor]:
        items = probabilities.shape[0]
        rows = upcast(probabilities).reshape(items, -1)
        truth, _ = read_labels(self, labels, items, 1, rows.shape[1], None)
        picked = rows.gather(1, truth).squeeze(1)
        return (-thresholded(picked).log().sum() / items,)
