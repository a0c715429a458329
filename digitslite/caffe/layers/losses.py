"""Loss layers: Caffe gives their first top a loss_weight of 1 unless the prototxt says otherwise."""
from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.classification import check_labels
from digitslite.caffe.layers.record import Layer, LayerType, count, expect_bottoms, fmt, up_to


def first_dims_match(bottoms: list[Shape]) -> None:
    """Caffe's LossLayer check: predictions and labels share their first axis."""
    if not bottoms[0] or not bottoms[1] or bottoms[0][0] != bottoms[1][0]:
        raise RuleError(f"the two bottoms must share their first axis (batch size), got "
                        f"{fmt(bottoms[0])} and {fmt(bottoms[1])}")


def _softmax_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    first_dims_match(bottoms)
    check_labels(bottoms[0], bottoms[1], layer.softmax_param.axis)
    return up_to([(), bottoms[0]], layer)


def _euclidean_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    first_dims_match(bottoms)
    if count(bottoms[0], 1) != count(bottoms[1], 1):
        raise RuleError(f"both bottoms need the same number of values per item, got "
                        f"{fmt(bottoms[0])} and {fmt(bottoms[1])}")
    return up_to([()], layer)


def _sigmoid_cross_entropy_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    first_dims_match(bottoms)
    if count(bottoms[0]) != count(bottoms[1]):
        raise RuleError(f"logits {fmt(bottoms[0])} and targets {fmt(bottoms[1])} need the same count")
    return up_to([()], layer)


def _infogain_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2, 3)
    scores = bottoms[0]
    axis = check_labels(scores, bottoms[1], layer.infogain_loss_param.axis)
    classes = scores[axis]
    if len(bottoms) == 3 and count(bottoms[2]) != classes * classes:
        raise RuleError(f"the infogain matrix {fmt(bottoms[2])} must hold {classes}x{classes} values")
    if len(bottoms) == 2 and not layer.infogain_loss_param.source:
        raise RuleError("give the infogain matrix as a third bottom or as infogain_loss_param { source: "
                        "\"H.binaryproto\" }")
    return up_to([(), scores], layer)


def one_label_per_item(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """MultinomialLogisticLoss and HingeLoss: scores (N, ...) and one label per item."""
    expect_bottoms(bottoms, 2)
    first_dims_match(bottoms)
    if count(bottoms[1]) != bottoms[1][0]:
        raise RuleError(f"the labels {fmt(bottoms[1])} must hold one value per item (N,1,1,1)")
    return up_to([()], layer)


TYPES = (
    LayerType("SoftmaxWithLoss", "loss", "Multinomial logistic loss of the softmax, with ignore_label.",
              params=("softmax_param", "loss_param"), tops=_softmax_loss, loss=True),
    LayerType("EuclideanLoss", "loss", "Sum of squared differences / (2·N).",
              params=(), tops=_euclidean_loss, loss=True),
    LayerType("SigmoidCrossEntropyLoss", "loss", "Cross-entropy of sigmoid(x) against targets in [0, 1].",
              params=("loss_param",), tops=_sigmoid_cross_entropy_loss, loss=True),
    LayerType("InfogainLoss", "loss", "−Σ H[label, k]·log softmax_k: a softmax loss weighted by a matrix H.",
              params=("infogain_loss_param", "loss_param"), tops=_infogain_loss, loss=True),
    LayerType("MultinomialLogisticLoss", "loss", "−Σ log p[label] / N over given probabilities.",
              tops=one_label_per_item, loss=True),
)
