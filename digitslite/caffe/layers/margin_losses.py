"""Margin losses: HingeLoss (one-vs-all SVM) and ContrastiveLoss (siamese pairs)."""
from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.losses import one_label_per_item
from digitslite.caffe.layers.record import Layer, LayerType, count, expect_bottoms, fmt, up_to


def _contrastive_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 3)
    first, second, similar = bottoms
    if first != second or len(first) < 2 or any(dim != 1 for dim in first[2:]):
        raise RuleError(f"the two feature bottoms must be equal (N,C,1,1), got {fmt(first)} and "
                        f"{fmt(second)}")
    if count(similar) != first[0] or similar[0] != first[0]:
        raise RuleError(f"the similarity bottom {fmt(similar)} must hold one value per item (N,1,1,1)")
    return up_to([()], layer)


TYPES = (
    LayerType("HingeLoss", "loss", "One-vs-all hinge Σ max(0, 1 − t·x) (or its square) / N.",
              params=("hinge_loss_param",), tops=one_label_per_item, loss=True),
    LayerType("ContrastiveLoss", "loss", "Siamese pairs: d² when similar, max(margin − d, 0)² when not.",
              params=("contrastive_loss_param",), tops=_contrastive_loss, loss=True),
)
