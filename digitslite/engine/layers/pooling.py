"""Pooling with Caffe's output size (ceil, clipped only when padded) and Caffe's AVE divisor; SPP,
and SegNet's Upsample (unpooling by the MAX mask).

torch's own ceil_mode clips even without padding and refuses pad > kernel/2, so the layer pads
explicitly to exactly the extent Caffe's windows cover and pools with no implicit padding, unless
the layer has no pad and torch's ceil_mode gives Caffe's windows (it then reads only the image, as
the -FLT_MAX or zero padding would let it): that saves a padded copy and its gradient. The
window and the output size come from the layer's record (digitslite.caffe.layers.pooling).
"""
import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import pooled_size
from digitslite.caffe.layers.pooling import spp_level, upsample_size
from digitslite.engine.execution import keep_layout
from digitslite.engine.layers.base import CaffeLayer, Shape, register

Pool = caffe_pb2.PoolingParameter


def ave_divisors(size: int, pooled: int, kernel: int, stride: int, pad: int) -> torch.Tensor:
    """Caffe's AVE divisor along one axis: the window clipped to the padded image, not the image."""
    starts = torch.arange(pooled) * stride - pad
    return torch.minimum(starts + kernel, torch.tensor(size + pad)) - starts


@register("Pooling")
class Pooling(CaffeLayer):
    """MAX or AVE pooling over H×W of an N×C×H×W bottom; an optional second top holds the MAX mask."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        pool = param.pooling_param
        self.method = pool.pool
        if self.method == Pool.STOCHASTIC:
            raise self.user_error("STOCHASTIC pooling is not supported", "use pool: MAX or pool: AVE")
        self.global_pooling = pool.global_pooling
        self.kernel = self.window.kernel
        self.pad = self.window.pad
        self.stride = self.window.stride
        self.ceil = pool.round_mode == Pool.CEIL
        if len(param.top) > 1 and self.method != Pool.MAX:
            raise self.user_error("a second (mask) top is only produced by MAX pooling",
                                  "remove the second top or use pool: MAX")

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor, ...]:
        size = tuple(bottom.shape[2:])
        kernel = size if self.global_pooling else self.kernel
        clip = any(self.pad)
        pooled = tuple(pooled_size(size[d], kernel[d], self.stride[d], self.pad[d], self.ceil, clip)
                       for d in range(2))
        # Pad left by `pad` and right so that exactly `pooled` windows fit (a negative amount trims).
        right = [(pooled[d] - 1) * self.stride[d] + kernel[d] - size[d] - self.pad[d] for d in range(2)]
        ceil = not any(self.pad) and all(
            pooled[d] == pooled_size(size[d], kernel[d], self.stride[d], 0, True, True) for d in range(2))
        padding = (0, 0, 0, 0) if ceil else (self.pad[1], right[1], self.pad[0], right[0])
        if self.method == Pool.MAX:
            return self._max(bottom, kernel, padding, size, ceil)
        return (keep_layout(self._average(bottom, kernel, padding, size, pooled, ceil)),)

    def _max(self, bottom, kernel, padding, size, ceil: bool) -> tuple[torch.Tensor, ...]:
        # The padding value is -FLT_MAX (Caffe's initial maximum), so padded cells never beat real
        # ones and a window lying wholly outside the image yields -FLT_MAX as in Caffe.
        padded = F.pad(bottom, padding, value=torch.finfo(bottom.dtype).min) if any(padding) else bottom
        top, flat = F.max_pool2d(padded, kernel, self.stride, ceil_mode=ceil, return_indices=True)
        top = keep_layout(top)
        if self.top_count < 2:
            return (top,)
        padded_width = padded.shape[3]
        row, col = flat // padded_width - self.pad[0], flat % padded_width - self.pad[1]
        outside = (row < 0) | (row >= size[0]) | (col < 0) | (col >= size[1])
        mask = torch.where(outside, -1, row * size[1] + col)
        return top, mask.to(bottom.dtype)

    def _average(self, bottom, kernel, padding, size, pooled, ceil: bool) -> torch.Tensor:
        padded = F.pad(bottom, padding) if any(padding) else bottom
        sums = F.avg_pool2d(padded, kernel, self.stride, ceil_mode=ceil, divisor_override=1)
        rows = ave_divisors(size[0], pooled[0], kernel[0], self.stride[0], self.pad[0])
        cols = ave_divisors(size[1], pooled[1], kernel[1], self.stride[1], self.pad[1])
        divisor = torch.outer(rows, cols).to(device=bottom.device, dtype=bottom.dtype)
        return sums / divisor


@register("SPP")
class SPP(CaffeLayer):
    """Spatial pyramid pooling: level l pools into 2^l × 2^l bins; the levels are flattened and
    concatenated per item (a single level keeps its N×C×1×1 shape, as in Caffe)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        spp = param.spp_param
        height, width = bottom_shapes[0][2:]
        self.levels = torch.nn.ModuleList()
        for level in range(spp.pyramid_height):
            (kernel_h, pad_h), (kernel_w, pad_w) = spp_level(height, 2 ** level), spp_level(width, 2 ** level)
            pooling = caffe_pb2.LayerParameter(name=param.name, type="Pooling", top=[param.name])
            pooling.pooling_param.pool = spp.pool
            for field, value in (("kernel_h", kernel_h), ("kernel_w", kernel_w), ("stride_h", kernel_h),
                                 ("stride_w", kernel_w), ("pad_h", pad_h), ("pad_w", pad_w)):
                setattr(pooling.pooling_param, field, value)
            self.levels.append(Pooling(pooling, bottom_shapes, phase, generator))

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        if len(self.levels) == 1:
            return self.levels[0](bottom)
        return (torch.cat([level(bottom)[0].flatten(1) for level in self.levels], dim=1),)


@register("Upsample")
class Upsample(CaffeLayer):
    """SegNet's unpooling: each value goes to the position its MAX Pooling mask (second bottom)
    recorded, in an output of zeros; the gradient reads back from the same positions."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.size = upsample_size(param.upsample_param, *bottom_shapes[0][2:])

    def forward(self, bottom: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor]:
        positions = mask.detach().flatten(2).long()
        cells = self.size[0] * self.size[1]
        if not torch.compiler.is_compiling() and bool(((positions < 0) | (positions >= cells)).any()):
            raise self.user_error(f"a mask index is outside the {self.size[0]}x{self.size[1]} output",
                                  "make the scale match the pooling layer that produced the mask")
        flat = bottom.new_zeros((*bottom.shape[:2], cells)).scatter(2, positions, bottom.flatten(2))
        return (flat.reshape(*bottom.shape[:2], *self.size),)
