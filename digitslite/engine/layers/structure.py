"""Layers that only rearrange data: Crop, Concat, Slice, Flatten, Reshape, Silence, Tile and
Permute (SSD)."""
import itertools
import math

import torch
from google.protobuf.message import Message

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import canonical_axis, crop_offsets
from digitslite.caffe.layers.structure import permute_order
from digitslite.engine.execution import is_channels_last
from digitslite.engine.layers.base import CaffeLayer, Shape, register


@register("Crop")
class Crop(CaffeLayer):
    """Crop bottom 0 to bottom 1's size on every axis from `axis` on; bottom 1 only supplies a shape.

    top[..., j, ...] = bottom0[..., j + offset, ...]; one offset applies to every cropped axis.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        crop = param.crop_param
        num_axes = len(bottom_shapes[0])
        self.start = canonical_axis(crop.axis, num_axes)
        self.offsets = crop_offsets(crop, num_axes - self.start)

    def _check(self, source: Shape, reference: Shape) -> None:
        """The record checked the declared shapes; bottoms of other sizes are checked here."""
        for index, offset in enumerate(self.offsets):
            axis = self.start + index
            if source[axis] - offset < reference[axis]:
                raise self.user_error(f"on axis {axis} the bottom has size {source[axis]}, too small to crop "
                                      f"{reference[axis]} at offset {offset}",
                                      "reduce the offset or crop against a smaller reference")

    def forward(self, bottom: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor]:
        self._check(tuple(bottom.shape), tuple(reference.shape))
        window = (slice(None),) * self.start + tuple(
            slice(offset, offset + reference.shape[self.start + index])
            for index, offset in enumerate(self.offsets))
        return (_CropFunction.apply(bottom, window),)


class _CropFunction(torch.autograd.Function):
    """A view of the window. The backward writes the gradient into zeros laid out like the bottom
    (one fill, one copy), where autograd of one slice per axis would pad the gradient once per
    cropped axis, in row-major order, and the channels_last layer below would convert it again."""

    @staticmethod
    def forward(ctx, bottom: torch.Tensor, window: tuple[slice, ...]) -> torch.Tensor:
        ctx.window, ctx.shape = window, bottom.shape
        ctx.layout = torch.channels_last if is_channels_last(bottom) else torch.contiguous_format
        return bottom[window]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        full = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.layout).zero_()
        full[ctx.window] = grad
        return full, None


class _AlongAxis(CaffeLayer):
    """Concat and Slice pick their axis from `axis` or the deprecated non-negative `<name>_dim`."""

    @staticmethod
    def resolve_axis(message: Message, legacy: str, num_axes: int) -> int:
        """The axis the record accepted: the legacy field when given, else `axis`."""
        if message.HasField(legacy):
            return getattr(message, legacy)
        return canonical_axis(message.axis, num_axes)


@register("Concat")
class Concat(_AlongAxis):
    """Join the bottoms along one axis; every other axis must agree."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.axis = self.resolve_axis(param.concat_param, "concat_dim", len(bottom_shapes[0]))

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.cat(bottoms, dim=self.axis),)


@register("Slice")
class Slice(_AlongAxis):
    """Cut the bottom along one axis at slice_point, or into equal pieces, one per top."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        slice_param = param.slice_param
        self.axis = self.resolve_axis(slice_param, "slice_dim", len(bottom_shapes[0]))
        self.num_tops = max(len(param.top), 1)
        self.points = tuple(slice_param.slice_point)

    def sizes(self, length: int) -> list[int]:
        """The length of each piece along the slice axis (checked again: the bottom's size may
        differ from the declared one the record checked)."""
        if not self.points:
            if length % self.num_tops:
                raise self.user_error(f"axis size {length} does not split into {self.num_tops} equal pieces",
                                      "give slice_point values or change the number of tops")
            return [length // self.num_tops] * self.num_tops
        bounds = [0, *self.points, length]
        pieces = [end - start for start, end in itertools.pairwise(bounds)]
        if min(pieces) <= 0:
            raise self.user_error(f"slice points {list(self.points)} do not cut axis size {length} into "
                                  "non-empty pieces", "use strictly increasing points below the axis size")
        return pieces

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.split(bottom, self.sizes(bottom.shape[self.axis]), dim=self.axis))


@register("Flatten")
class Flatten(CaffeLayer):
    """Merge axes axis..end_axis (inclusive) into one."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        flatten = param.flatten_param
        num_axes = len(bottom_shapes[0])
        self.start = canonical_axis(flatten.axis, num_axes)
        self.end = canonical_axis(flatten.end_axis, num_axes)

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        shape = bottom.shape
        merged = math.prod(shape[self.start:self.end + 1])
        return (bottom.reshape(*shape[:self.start], merged, *shape[self.end + 1:]),)


@register("Reshape")
class Reshape(CaffeLayer):
    """Replace axes [start, end) by reshape_param.shape; 0 copies a bottom dim, one −1 is inferred."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        reshape = param.reshape_param
        self.dims = tuple(reshape.shape.dim)
        self.axis, self.num_axes = reshape.axis, reshape.num_axes

    def top_shape(self, bottom: Shape) -> Shape:
        """Caffe's reshape rule applied to the bottom's shape at run time (which may differ from the
        declared one the record checked), from plain numbers so that torch.compile can trace it."""
        ndim = len(bottom)
        start = self.axis if self.axis >= 0 else ndim + self.axis + 1
        if not 0 <= start <= ndim:
            raise self.user_error(f"axis {self.axis} is out of range for a {ndim}-axis bottom",
                                  f"use an axis in [{-ndim - 1}, {ndim}]")
        end = ndim if self.num_axes == -1 else start + self.num_axes
        if self.num_axes < -1 or end > ndim:
            raise self.user_error(f"num_axes {self.num_axes} reaches past the bottom's {ndim} axes",
                                  "use -1 (to the end) or a smaller num_axes")
        middle = []
        for index, dim in enumerate(self.dims):
            if dim == 0:
                if start + index >= ndim:
                    raise self.user_error(f"dim {index} is 0 but the bottom has no axis {start + index}",
                                          "replace the 0 with an explicit size")
                dim = bottom[start + index]
            middle.append(dim)
        shape = [*bottom[:start], *middle, *bottom[end:]]
        total = math.prod(bottom)
        if -1 in middle:
            known = math.prod(d for d in shape if d != -1)
            if known == 0 or total % known:
                raise self.user_error(f"cannot infer the -1 dim of {shape} from {total} values",
                                      "make the other dims divide the bottom's count")
            shape[shape.index(-1)] = total // known
        if math.prod(shape) != total:
            raise self.user_error(f"shape {shape} holds {math.prod(shape)} values but the bottom {bottom} "
                                  f"holds {total}", "make the new shape hold the same number of values")
        return tuple(shape)

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (bottom.reshape(self.top_shape(tuple(bottom.shape))),)


@register("Silence")
class Silence(CaffeLayer):
    """Consume bottoms so they are not net outputs; produces nothing, passes no gradient."""

    def forward(self, *bottoms: torch.Tensor) -> tuple[()]:
        return ()


@register("Tile")
class Tile(CaffeLayer):
    """Repeat the bottom `tiles` times along `axis`: each block from `axis` on is copied whole."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        tile = param.tile_param
        self.axis = canonical_axis(tile.axis, len(bottom_shapes[0]))
        self.tiles = tile.tiles

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        repeats = [1] * bottom.dim()
        repeats[self.axis] = self.tiles
        return (bottom.repeat(repeats),)


@register("Permute")
class Permute(CaffeLayer):
    """SSD's Permute: reorder the axes (permute_param.order, the unlisted ones following in order)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.order = permute_order(param.permute_param, len(bottom_shapes[0]))

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (bottom.permute(self.order),)
