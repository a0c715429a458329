"""Element-wise neuron layers: ReLU, Sigmoid, TanH, ELU, PReLU, Power, Dropout, AbsVal, BNLL, Exp,
Log, Threshold, Clip and Swish."""
import math

import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, filler_or, register


class _Neuron(CaffeLayer):
    """One bottom, one top of the same shape (the record checks the bottom count)."""


@register("ReLU")
class ReLU(_Neuron):
    """max(x, 0) + negative_slope·min(x, 0); at x = 0 the gradient takes the slope branch."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.negative_slope = param.relu_param.negative_slope

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        slope = self.negative_slope
        return (F.leaky_relu(bottom, slope) if slope else F.relu(bottom),)


@register("Sigmoid")
class Sigmoid(_Neuron):
    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.sigmoid(bottom),)


@register("TanH")
class TanH(_Neuron):
    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.tanh(bottom),)


@register("ELU")
class ELU(_Neuron):
    """max(x, 0) + alpha·(exp(min(x, 0)) − 1)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.alpha = param.elu_param.alpha

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (F.elu(bottom, self.alpha),)


@register("PReLU")
class PReLU(_Neuron):
    """ReLU with learned negative slopes, one per channel (axis 1) or one shared scalar."""

    blob_names = ("slope",)

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        prelu = param.prelu_param
        filler = filler_or(prelu.filler, prelu.HasField("filler"), type="constant", value=0.25)
        self.slope = self.new_param(self.blob_shapes[0], filler, generator, "filler")

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        slope = self.slope.reshape(-1, *([1] * (bottom.dim() - 2))) if self.slope.dim() else self.slope
        return (torch.where(bottom > 0, bottom, bottom * slope),)


@register("Power")
class Power(_Neuron):
    """(shift + scale·x)^power; when power·scale is 0 the output is a constant with no gradient."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        power_param = param.power_param
        self.power, self.scale, self.shift = power_param.power, power_param.scale, power_param.shift

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        power, scale, shift = self.power, self.scale, self.shift
        if power * scale == 0:
            return (torch.full_like(bottom, shift).pow(power),)
        base = shift + scale * bottom
        return (base if power == 1 else base.pow(power),)


@register("Dropout")
class Dropout(_Neuron):
    """Inverted dropout in the TRAIN phase (kept values scaled by 1/(1 − ratio)); identity in TEST.

    The Bernoulli mask comes from torch's global RNG (seeded by the solver), not from the layer's
    generator, so the mask can be drawn on the tensor's own device.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.ratio = param.dropout_param.dropout_ratio
        if not 0.0 <= self.ratio < 1.0:
            raise self.user_error(f"dropout_ratio {self.ratio} is outside [0, 1)",
                                  "use a ratio of at least 0 and below 1")

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        if self.phase == caffe_pb2.TRAIN:
            return (F.dropout(bottom, self.ratio, training=True),)
        return (bottom,)


@register("AbsVal")
class AbsVal(_Neuron):
    """|x|; the gradient is sign(x), 0 at 0."""

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (bottom.abs(),)


@register("BNLL")
class BNLL(_Neuron):
    """log(1 + e^x) (binomial normal log likelihood); the gradient is sigmoid(x)."""

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (F.softplus(bottom),)


def _log_of_base(base: float) -> float:
    """ln(base), with Caffe's base -1 meaning e."""
    return 1.0 if base == -1 else math.log(base)


@register("Exp")
class Exp(_Neuron):
    """base^(shift + scale·x), computed as Caffe does: base^shift · e^(ln(base)·scale·x)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        exp = param.exp_param
        log_base = _log_of_base(exp.base)
        self.inner_scale = log_base * exp.scale
        self.outer_scale = 1.0 if exp.shift == 0 else math.exp(log_base * exp.shift)

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        top = torch.exp(bottom * self.inner_scale) if self.inner_scale != 1 else torch.exp(bottom)
        return (top * self.outer_scale if self.outer_scale != 1 else top,)


@register("Log")
class Log(_Neuron):
    """log_base(shift + scale·x), i.e. ln(shift + scale·x) / ln(base)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        log = param.log_param
        self.base_scale = 1.0 / _log_of_base(log.base)
        self.scale, self.shift = log.scale, log.shift

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        inner = bottom * self.scale if self.scale != 1 else bottom
        top = torch.log(inner + self.shift if self.shift else inner)
        return (top * self.base_scale if self.base_scale != 1 else top,)


@register("Threshold")
class Threshold(_Neuron):
    """1 where x > threshold, else 0; Caffe has no backward for it, so the top carries no gradient."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.threshold = param.threshold_param.threshold

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return ((bottom.detach() > self.threshold).to(bottom.dtype),)


@register("Clip")
class Clip(_Neuron):
    """min(max(x, min), max); the gradient passes where min ≤ x ≤ max."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.low, self.high = param.clip_param.min, param.clip_param.max

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (bottom.clamp(self.low, self.high),)


@register("Swish")
class Swish(_Neuron):
    """x·sigmoid(beta·x)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.beta = param.swish_param.beta

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        return (bottom * torch.sigmoid(bottom * self.beta),)
