"""LRN, BatchNorm and MVN, each with Caffe's exact formulas (and BatchNorm's stored statistics)."""
import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, register, upcast

Lrn = caffe_pb2.LRNParameter


@register("LRN")
class LRN(CaffeLayer):
    """Local response normalisation of an N×C×H×W bottom.

    ACROSS_CHANNELS: y = x·(k + alpha/n · Σ x² over n neighbouring channels)^−beta.
    WITHIN_CHANNEL: y = x·(1 + alpha/n² · Σ x² over an n×n zero-padded square)^−beta; Caffe's own
    engine ignores k here (its internal power layer has shift 1), and so does this layer.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        lrn = param.lrn_param
        self.size, self.alpha, self.beta, self.k = lrn.local_size, lrn.alpha, lrn.beta, lrn.k
        self.across_channels = lrn.norm_region == Lrn.ACROSS_CHANNELS

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        x = upcast(bottom)
        squares = x * x
        half = (self.size - 1) // 2
        if self.across_channels:
            padded = F.pad(squares, (0, 0, 0, 0, half, half))
            sums = padded.unfold(1, self.size, 1).sum(dim=-1)
            scale = self.k + (self.alpha / self.size) * sums
        else:
            means = F.avg_pool2d(squares, self.size, 1, half, count_include_pad=True)
            scale = 1.0 + self.alpha * means
        return ((x * scale.pow(-self.beta)).to(bottom.dtype),)


@register("BatchNorm")
class BatchNorm(CaffeLayer):
    """Per-channel normalisation with Caffe's stored statistics (no learned γ/β; a Scale layer adds them).

    The blobs are unnormalised running sums plus a scale factor: mean = mean_sum / scale_factor and
    variance = var_sum / scale_factor (0 when the factor is 0). Each TRAIN step updates
    factor ← λ·factor + 1, mean_sum ← μ + λ·mean_sum, var_sum ← m/(m−1)·σ² + λ·var_sum, where σ² is
    the biased batch variance over the m values per channel.
    """

    blob_names = ("mean_sum", "var_sum", "scale_factor")

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        bn = param.batch_norm_param
        self.use_global_stats = bn.use_global_stats if bn.HasField("use_global_stats") else (
            phase == caffe_pb2.TEST)
        self.fraction = bn.moving_average_fraction
        self.eps = bn.eps
        for name, shape in zip(self.blob_names, self.blob_shapes, strict=True):
            self.register_buffer(name, torch.zeros(shape))

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        channels = self.mean_sum.shape[0]
        grouped = upcast(bottom).reshape(bottom.shape[0], channels, -1)
        if self.use_global_stats:
            factor = torch.where(self.scale_factor == 0, 0.0, 1.0 / self.scale_factor)
            mean, variance = self.mean_sum * factor, self.var_sum * factor
        else:
            mean = grouped.mean(dim=(0, 2))
            variance = (grouped - mean[:, None]).square().mean(dim=(0, 2))
            self._accumulate(mean.detach(), variance.detach(), grouped.shape[0] * grouped.shape[2])
        normalised = (grouped - mean[:, None]) / torch.sqrt(variance[:, None] + self.eps)
        return (normalised.reshape(bottom.shape).to(bottom.dtype),)

    @torch.no_grad()
    def _accumulate(self, mean: torch.Tensor, variance: torch.Tensor, per_channel: int) -> None:
        correction = per_channel / (per_channel - 1) if per_channel > 1 else 1.0
        self.scale_factor.mul_(self.fraction).add_(1.0)
        self.mean_sum.mul_(self.fraction).add_(mean.to(self.mean_sum.dtype))
        self.var_sum.mul_(self.fraction).add_(correction * variance.to(self.var_sum.dtype))


class _VarianceNormalize(torch.autograd.Function):
    """y = (x − mean) / (std + eps) per row, with Caffe's backward
    (dy − mean(dy) − y·mean(y·dy)) / (std + eps), which treats eps as if it were 0 in the
    derivative of std (autograd of the forward would differ by a factor std/(std + eps))."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, eps: float) -> torch.Tensor:
        centred = rows - rows.mean(dim=1, keepdim=True)
        divisor = centred.square().mean(dim=1, keepdim=True).sqrt() + eps
        top = centred / divisor
        ctx.save_for_backward(top, divisor)
        return top

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        top, divisor = ctx.saved_tensors
        correction = grad.mean(dim=1, keepdim=True) + top * (top * grad).mean(dim=1, keepdim=True)
        return (grad - correction) / divisor, None


@register("MVN")
class MVN(CaffeLayer):
    """Mean (and variance) normalisation over each item's channel (or, across_channels, each item).

    Caffe's variance is the mean of squared deviations, and eps is added to the standard deviation.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        mvn = param.mvn_param
        self.first_axes = 1 if mvn.across_channels else 2
        self.normalize_variance, self.eps = mvn.normalize_variance, mvn.eps

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        rows = upcast(bottom).reshape(*bottom.shape[:self.first_axes], -1).flatten(0, self.first_axes - 1)
        if self.normalize_variance:
            top = _VarianceNormalize.apply(rows, self.eps)
        else:
            top = rows - rows.mean(dim=1, keepdim=True)
        return (top.reshape(bottom.shape).to(bottom.dtype),)
