"""Margin losses: HingeLoss (one-vs-all SVM) and ContrastiveLoss (siamese pairs)."""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, register, upcast
from digitslite.engine.layers.labels import read_labels

Hinge = caffe_pb2.HingeLossParameter


@register("HingeLoss")
class HingeLoss(CaffeLayer):
    """Σ max(0, 1 − t·x)^p / N over N items, t = +1 for the label's class and −1 elsewhere; p = 1
    (norm L1) or 2 (L2). The labels get no gradient."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.squared = param.hinge_loss_param.norm == Hinge.L2

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor]:
        items = scores.shape[0]
        rows = upcast(scores).reshape(items, -1)
        truth, _ = read_labels(self, labels, items, 1, rows.shape[1], None)
        signs = torch.ones_like(rows).scatter_(1, truth, -1.0)
        margins = torch.relu(1 + signs * rows)
        return ((margins.square() if self.squared else margins).sum() / items,)


class _ContrastiveFunction(torch.autograd.Function):
    """Caffe's contrastive loss with its own gradient: for dissimilar pairs the non-legacy backward
    divides by (d + 1e-4), not d, so it is not autograd of the forward."""

    @staticmethod
    def forward(ctx, first: torch.Tensor, second: torch.Tensor, similar: torch.Tensor, margin: float,
                legacy: bool) -> torch.Tensor:
        difference = first - second
        squared = difference.square().sum(dim=1)
        gap = margin - squared if legacy else margin - squared.sqrt()
        apart = gap.clamp(min=0) if legacy else gap.clamp(min=0).square()
        ctx.save_for_backward(difference, squared, similar)
        ctx.margin, ctx.legacy = margin, legacy
        return torch.where(similar, squared, apart).sum() / (2 * first.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        difference, squared, similar = ctx.saved_tensors
        alpha = grad / difference.shape[0]
        if ctx.legacy:
            push = torch.where(ctx.margin - squared > 0, -1.0, 0.0)
        else:
            distance = squared.sqrt()
            gap = ctx.margin - distance
            push = torch.where(gap > 0, -gap / (distance + 1e-4), 0.0)
        factor = torch.where(similar, 1.0, push).to(difference.dtype)[:, None] * alpha
        return factor * difference, -factor * difference, None, None, None


@register("ContrastiveLoss")
class ContrastiveLoss(CaffeLayer):
    """(1/2N) Σ [similar: d²; else: max(margin − d, 0)²], d = ‖a − b‖ (legacy_version: max(margin − d², 0)).

    A pair is similar when its third-bottom value, truncated to an integer, is non-zero.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        contrastive = param.contrastive_loss_param
        self.margin, self.legacy = contrastive.margin, contrastive.legacy_version

    def forward(self, first: torch.Tensor, second: torch.Tensor,
                similar: torch.Tensor) -> tuple[torch.Tensor]:
        items = first.shape[0]
        pairs = similar.detach().reshape(items).long() != 0
        loss = _ContrastiveFunction.apply(upcast(first).reshape(items, -1), upcast(second).reshape(items, -1),
                                          pairs, self.margin, self.legacy)
        return (loss,)
