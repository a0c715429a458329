"""Engine layers, one module per family; importing this package registers every type in LAYERS."""
from digitslite.engine.layers import (  # noqa: F401  (imported to register their layer types)
    activations,
    affine,
    classification,
    conv,
    elementwise,
    inner_product,
    losses,
    margin_losses,
    normalization,
    pooling,
    recurrent,
    reduction,
    selection,
    sources,
    structure,
)
from digitslite.engine.layers.base import LAYERS, CaffeLayer, register

__all__ = ["LAYERS", "CaffeLayer", "register"]
