"""Engine layers, one module per family; importing this package registers every type in LAYERS."""
from digitslite.engine.layers.base import LAYERS, CaffeLayer, register

__all__ = ["LAYERS", "CaffeLayer", "register"]
