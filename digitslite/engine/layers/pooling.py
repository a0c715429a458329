"""Pooling with Caffe's output size (ceil, clipped only when padded) and Caffe's AVE divisor; SPP,
and SegNet's Upsample (unpooling by the MAX mask).

torch's own ceil_mode clips even without padding and refuses pad > kernel/2, so the layer pads
explicitly to exactly the extent Caffe's windows cover and pools with no implicit padding.
"""
import math

import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.caffe.shapes import RuleError, layer_tops, upsample_size
from digitslite.engine.layers.base import CaffeLayer, Shape, register

Pool = caffe_pb2.PoolingParameter


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool, clip: bool) -> int:
    """Caffe's number of windows along one axis; `clip` drops a last window that starts in the right pad."""
    span = (size + 2 * pad - kernel) / stride
    pooled = (math.ceil(span) if ceil else math.floor(span)) + 1
    if clip and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


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
        self.require_bottoms(bottom_shapes, 1, 1)
        self.require_4d(bottom_shapes[0])
        pool = param.pooling_param
        self.method = pool.pool
        if self.method == Pool.STOCHASTIC:
            raise self.user_error("STOCHASTIC pooling is not supported", "use pool: MAX or pool: AVE")
        self.global_pooling = pool.global_pooling
        self.kernel = self._kernel(pool)
        self.pad = self._pair(pool, "pad", 0)
        self.stride = self._pair(pool, "stride", 1)
        self.ceil = pool.round_mode == Pool.CEIL
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.user_error("global_pooling is combined with pad or stride",
                                  "remove pad and stride (global pooling uses pad 0, stride 1)")
        if min(self.kernel) <= 0 and not self.global_pooling:
            raise self.user_error("the kernel size is 0", "set kernel_size (or kernel_h and kernel_w) > 0")
        if min(self.stride) <= 0:
            raise self.user_error("the stride is 0", "set stride > 0")
        if any(p >= k for p, k in zip(self.pad, self.kernel, strict=True)) and not self.global_pooling:
            raise self.user_error(f"pad {self.pad} is not smaller than kernel {self.kernel}",
                                  "use a pad smaller than the kernel")
        if len(param.top) > 1 and self.method != Pool.MAX:
            raise self.user_error("a second (mask) top is only produced by MAX pooling",
                                  "remove the second top or use pool: MAX")

    def _kernel(self, pool: caffe_pb2.PoolingParameter) -> tuple[int, int]:
        has_square = pool.HasField("kernel_size")
        has_rect = pool.HasField("kernel_h") or pool.HasField("kernel_w")
        if self.global_pooling:
            if has_square or has_rect:
                raise self.user_error("global_pooling is combined with a kernel size",
                                      "remove kernel_size / kernel_h / kernel_w")
            return (0, 0)
        has_both = pool.HasField("kernel_h") and pool.HasField("kernel_w")
        if has_square == has_rect or (has_rect and not has_both):
            raise self.user_error("the kernel is not given exactly once",
                                  "give either kernel_size or both kernel_h and kernel_w")
        return (pool.kernel_size,) * 2 if has_square else (pool.kernel_h, pool.kernel_w)

    def _pair(self, pool: caffe_pb2.PoolingParameter, name: str, default: int) -> tuple[int, int]:
        h, w = f"{name}_h", f"{name}_w"
        if pool.HasField(h) or pool.HasField(w):
            if pool.HasField(name) or not (pool.HasField(h) and pool.HasField(w)):
                raise self.user_error(f"{name} is given inconsistently",
                                      f"give either {name} or both {h} and {w}")
            return (getattr(pool, h), getattr(pool, w))
        value = getattr(pool, name) if pool.HasField(name) else default
        return (value, value)

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor, ...]:
        size = tuple(bottom.shape[2:])
        kernel = size if self.global_pooling else self.kernel
        clip = self.pad != (0, 0)
        pooled = tuple(pooled_size(size[d], kernel[d], self.stride[d], self.pad[d], self.ceil, clip)
                       for d in range(2))
        # Pad left by `pad` and right so that exactly `pooled` windows fit (a negative amount trims).
        right = [(pooled[d] - 1) * self.stride[d] + kernel[d] - size[d] - self.pad[d] for d in range(2)]
        padding = (self.pad[1], right[1], self.pad[0], right[0])
        if self.method == Pool.MAX:
            return self._max(bottom, kernel, padding, size)
        return (self._average(bottom, kernel, padding, size, pooled),)

    def _max(self, bottom, kernel, padding, size) -> tuple[torch.Tensor, ...]:
        # The padding value is -FLT_MAX (Caffe's initial maximum), so padded cells never beat real
        # ones and a window lying wholly outside the image yields -FLT_MAX as in Caffe.
        padded = F.pad(bottom, padding, value=torch.finfo(bottom.dtype).min) if any(padding) else bottom
        top, flat = F.max_pool2d(padded, kernel, self.stride, return_indices=True)
        if self.top_count < 2:
            return (top,)
        padded_width = padded.shape[3]
        row, col = flat // padded_width - self.pad[0], flat % padded_width - self.pad[1]
        outside = (row < 0) | (row >= size[0]) | (col < 0) | (col >= size[1])
        mask = torch.where(outside, -1, row * size[1] + col)
        return top, mask.to(bottom.dtype)

    def _average(self, bottom, kernel, padding, size, pooled) -> torch.Tensor:
        padded = F.pad(bottom, padding) if any(padding) else bottom
        sums = F.avg_pool2d(padded, kernel, self.stride, divisor_override=1)
        rows = ave_divisors(size[0], pooled[0], kernel[0], self.stride[0], self.pad[0])
        cols = ave_divisors(size[1], pooled[1], kernel[1], self.stride[1], self.pad[1])
        divisor = torch.outer(rows, cols).to(device=bottom.device, dtype=bottom.dtype)
        return sums / divisor


def spp_level(size: int, bins: int) -> tuple[int, int]:
    """Caffe's SPP window along one axis for `bins` bins: kernel = ceil(size / bins), stride = kernel,
    pad = (kernel·bins − size + 1) // 2."""
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


@register("SPP")
class SPP(CaffeLayer):
    """Spatial pyramid pooling: level l pools into 2^l × 2^l bins; the levels are flattened and
    concatenated per item (a single level keeps its N×C×1×1 shape, as in Caffe)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.require_bottoms(bottom_shapes, 1, 1)
        self.require_4d(bottom_shapes[0])
        spp = param.spp_param
        if spp.pyramid_height < 1:
            raise self.user_error("pyramid_height is missing or 0", "set spp_param.pyramid_height >= 1")
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
        try:
            layer_tops(param, bottom_shapes)
        except RuleError as problem:
            raise self.user_error(str(problem), "fix the bottoms or upsample_param") from None
        self.size = upsample_size(param.upsample_param, *bottom_shapes[0][2:])

    def forward(self, bottom: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor]:
        positions = mask.detach().flatten(2).long()
        cells = self.size[0] * self.size[1]
        if not torch.compiler.is_compiling() and bool(((positions < 0) | (positions >= cells)).any()):
            raise self.user_error(f"a mask index is outside the {self.size[0]}x{self.size[1]} output",
                                  "make the scale match the pooling layer that produced the mask")
        flat = bottom.new_zeros((*bottom.shape[:2], cells)).scatter(2, positions, bottom.flatten(2))
        return (flat.reshape(*bottom.shape[:2], *self.size),)
