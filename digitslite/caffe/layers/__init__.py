"""The record of every supported Caffe layer type, one module per family (as in engine/layers).

`LAYER_TYPES` maps a type name to its record; every table of type names elsewhere is derived
from it (tests/caffe/test_layer_records.py checks that none keeps its own)."""
from digitslite.caffe.layers import (
    activations,
    affine,
    classification,
    conv,
    data,
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
from digitslite.caffe.layers.record import Coord, LayerType, Source
from digitslite.caffe.layers.refused import REFUSED_TYPES

_FAMILIES = (data, sources, conv, pooling, activations, normalization, affine, inner_product, elementwise,
             structure, selection, reduction, recurrent, classification, losses, margin_losses)


def _registry() -> dict[str, LayerType]:
    registry: dict[str, LayerType] = {}
    for module in _FAMILIES:
        for record in module.TYPES:
            if record.name in registry:
                raise ValueError(f"layer type {record.name!r} is declared twice")
            registry[record.name] = record
    return registry


LAYER_TYPES: dict[str, LayerType] = _registry()


def layer_type(name: str) -> LayerType | None:
    """The record of a Caffe type name, or None when digitslite does not support it."""
    return LAYER_TYPES.get(name)


__all__ = ["LAYER_TYPES", "REFUSED_TYPES", "Coord", "LayerType", "Source", "layer_type"]
