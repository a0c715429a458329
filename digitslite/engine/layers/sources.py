"""Layers that produce blobs without bottoms: Parameter (a learnable blob as a top) and DummyData."""
import torch
from torch import nn

from digitslite.caffe import caffe_pb2
from digitslite.caffe.layers import LAYER_TYPES
from digitslite.engine.fillers import fill
from digitslite.engine.layers.base import CaffeLayer, Shape, register


@register("Parameter")
class Parameter(CaffeLayer):
    """Its one blob is its top, so whatever reaches the top as a gradient trains the blob.

    Caffe leaves the blob uninitialised (zeros); a .caffemodel usually supplies it.
    """

    blob_names = ("blob",)

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.blob = nn.Parameter(torch.zeros(self.blob_shapes[0]))

    def forward(self) -> tuple[torch.Tensor]:
        return (self.blob,)


@register("DummyData")
class DummyData(CaffeLayer):
    """Tops of fixed shapes filled by data_filler (none: constant 0; one: for every top).

    Constant tops are filled once; the others are redrawn at every forward pass, as in Caffe.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        shapes = LAYER_TYPES[param.type].tops(param, [])   # checked by the base class already
        dummy = param.dummy_data_param
        fillers = list(dummy.data_filler) or [caffe_pb2.FillerParameter()]
        self.fillers = [fillers[index if len(fillers) > 1 else 0] for index in range(len(shapes))]
        self.generator = generator
        for index, (shape, filler) in enumerate(zip(shapes, self.fillers, strict=True)):
            top = torch.empty(shape)
            fill(top, filler, generator, context=f"layer '{param.name}' (DummyData) data_filler")
            self.register_buffer(f"top{index}", top, persistent=False)

    def forward(self) -> tuple[torch.Tensor, ...]:
        tops = []
        for index, filler in enumerate(self.fillers):
            top = getattr(self, f"top{index}")
            if filler.type != "constant":
                fill(top, filler, self.generator,
                     context=f"layer '{self.param.name}' (DummyData) data_filler")
            tops.append(top.clone())
        return tuple(tops)
