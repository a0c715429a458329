"""The fastest correct way to run each convolution on its device: a rule on the CPU, measured on CUDA.

Every execution computes the same float32 convolution (they differ only in summation order):
  plain          torch's default kernels (oneDNN on the CPU, cuDNN on CUDA) on NCHW tensors;
  channels_last  the same kernels on NHWC tensors, oneDNN's and cuDNN's preferred layout;
  gemm           im2col (`F.unfold`, skipped for 1x1) and one matrix product, without oneDNN;
  image          channels_last, except the weight gradient: im2col and one matrix product.
CPU rule (per-layer numbers in docs/PERFORMANCE.md): a convolution that is a large matrix
product on a small image (fewer output pixels than a quarter of its filter length, like FCN's
fc6, fc7 and score layers) runs as gemm, 1.5-7x faster than oneDNN forward and backward; every
other 2-D convolution and deconvolution runs channels_last, 2.5-6.6x faster forward than NCHW on
FCN's conv1 and its k63/s32 grouped upsampling, and level or a little faster elsewhere; when it
trains a filter over at most IMAGE_CHANNELS input channels (a net's first layer, on the image),
it runs as image: oneDNN's weight gradient over 3 channels is 1.4x (FCN-AlexNet's conv1) to 10x
(FCN-8s' conv1_1) slower than im2col and a matrix product, as Caffe computes it. A rule,
not a measurement, on the CPU: timings on a shared machine flip from run to run, and a choice
that changed between a run and its resume would change the numbers.
On CUDA the winner depends on the GPU, the dtype and cuDNN, so the first call of a layer with a
new key (geometry, input shape and layout, device, dtype, threads, autocast, whether gradients
flow) times each candidate on the real input, interleaved, and keeps the fastest for the life of
the process; layers under MEASURE_MACS multiply-adds, and calls while torch.compile traces, run
plain. `DIGITSLITE_CONV_EXECUTION=plain` (or another name) forces one execution where it applies.
The layers around a convolution keep its layout: `keep_layout` hands each gradient back in the
layout of the tensor it belongs to, because torch's CPU pooling backward on a gradient of the other
layout (or of channels_last with odd strides on a size-1 axis, as oneDNN gives them for a batch
of 1) copies its input-sized gradient twice through a transposition (FCN-8s: 1.1 s of 14 s).
"""
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PLAIN, CHANNELS_LAST, GEMM, IMAGE = "plain", "channels_last", "gemm", "image"
EXECUTIONS = (PLAIN, CHANNELS_LAST, GEMM, IMAGE)
FORCE_VARIABLE = "DIGITSLITE_CONV_EXECUTION"
MEASURE_MACS = 100_000_000      # below this a measured choice cannot pay back its measurement
GEMM_PIXELS_PER_TAP = 0.25      # CPU rule: gemm when output pixels <= this x filter length
IMAGE_CHANNELS = 4              # CPU rule: image when training a filter over at most this many channels
_ROUNDS = 2                     # timed calls per candidate, after one warm-up call each

_choices: dict[tuple, str] = {}


@dataclass(frozen=True)
class ConvCall:
    """One 2-D convolution or transposed convolution, as torch's functional API takes it."""

    transposed: bool
    weight: torch.Tensor
    bias: torch.Tensor | None
    groups: int
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    def out_size(self, batch: torch.Tensor) -> tuple[int, int]:
        """Output height and width of a forward convolution."""
        kernel = self.weight.shape[2:]
        return tuple((size + 2 * pad - dil * (k - 1) - 1) // step + 1 for size, pad, dil, k, step in
                     zip(batch.shape[2:], self.padding, self.dilation, kernel, self.stride, strict=True))

    def macs(self, batch: torch.Tensor) -> int:
        """Multiply-adds: every input (transposed) or output value meets one filter slice."""
        if self.transposed:
            return batch.numel() * self.weight.shape[1] * self.weight[0, 0].numel()
        height, width = self.out_size(batch)
        return batch.shape[0] * height * width * self.weight.numel()


def candidates(call: ConvCall, batch: torch.Tensor) -> tuple[str, ...]:
    """The executions that apply to this call: gemm and image only for an ungrouped forward conv
    on the CPU."""
    if batch.dim() != 4:
        return (PLAIN,)
    if not call.transposed and call.groups == 1 and batch.device.type == "cpu":
        return EXECUTIONS
    return (PLAIN, CHANNELS_LAST)


def run(execution: str, call: ConvCall, batch: torch.Tensor) -> torch.Tensor:
    """The convolution of `batch` by `execution` (one of `candidates`)."""
    options = {"stride": call.stride, "padding": call.padding, "dilation": call.dilation}
    function = F.conv_transpose2d if call.transposed else F.conv2d
    if execution == GEMM:
        return _gemm(call, batch)
    if execution == IMAGE:
        return _ImageConvolution.apply(batch, call.weight, call.bias, call)
    if execution == CHANNELS_LAST:
        weight = call.weight.contiguous(memory_format=torch.channels_last)
        return function(channels_last_view(batch), weight, call.bias, groups=call.groups, **options)
    return function(batch.contiguous(), call.weight.contiguous(), call.bias, groups=call.groups, **options)


def _gemm(call: ConvCall, batch: torch.Tensor) -> torch.Tensor:
    """im2col and one (batched) matrix product, pixels by filter taps, so that the output comes out
    channels_last like every other execution's on the CPU; a 1x1 unit-stride unpadded conv needs no
    im2col (a channels_last batch already is its pixels-by-channels matrix)."""
    n, channels, height, width = batch.shape
    out_channels, _, kernel_h, kernel_w = call.weight.shape
    out_h, out_w = call.out_size(batch)
    if (kernel_h, kernel_w) == (1, 1) and call.stride == (1, 1) and call.padding == (0, 0):
        pixels = batch.permute(0, 2, 3, 1).reshape(n, height * width, channels)
    else:
        pixels = F.unfold(batch, (kernel_h, kernel_w), dilation=call.dilation, padding=call.padding,
                          stride=call.stride).transpose(1, 2)
    out = pixels @ call.weight.reshape(out_channels, -1).t()
    if call.bias is not None:
        out = out + call.bias
    return out.view(n, out_h, out_w, out_channels).permute(0, 3, 1, 2)


class _ImageConvolution(torch.autograd.Function):
    """channels_last forward and input gradient; the weight gradient as Caffe computes it: the
    output gradient, (L, O) in channels_last, times the im2col columns (C·kh·kw, L)."""

    @staticmethod
    def forward(ctx, batch: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                call: ConvCall) -> torch.Tensor:
        ctx.save_for_backward(batch, weight)
        ctx.geometry = (call.stride, call.padding, call.dilation)
        ctx.has_bias = bias is not None
        return run(CHANNELS_LAST, call, batch)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        batch, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        grad = in_layout(grad, channels_last=True)
        grad_batch = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            layout = torch.channels_last
            grad_batch = torch.ops.aten.convolution_backward(
                grad, channels_last_view(batch), weight.contiguous(memory_format=layout), None,
                list(stride), list(padding), list(dilation), False, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            columns = F.unfold(batch, weight.shape[2:], dilation=dilation, padding=padding, stride=stride)
            by_pixel = grad.permute(0, 2, 3, 1).reshape(grad.shape[0], -1, grad.shape[1])   # (N, L, O) view
            grad_weight = torch.bmm(columns, by_pixel).sum(0).t().reshape(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_batch, grad_weight, grad_bias, None


def keep_layout(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` (a view of it when a graph is recorded) whose gradient arrives in its own layout."""
    if tensor.dim() != 4 or not (torch.is_grad_enabled() and tensor.requires_grad):
        return tensor
    return _KeepLayout.apply(tensor)


def channels_last_view(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` channels_last with the canonical strides (a view when it is channels_last already).
    A pooling output of a batch of 1 has an odd stride on N; torch's convolution then takes the
    input for NCHW and returns NCHW, and a 1x1 convolution's output is NCHW as well (FCN-8s'
    score_pool3 and score_pool4 took 15x their time and the copies around them more)."""
    n, c, h, w = tensor.shape
    return tensor.permute(0, 2, 3, 1).flatten().view(n, h, w, c).permute(0, 3, 1, 2)


def is_channels_last(tensor: torch.Tensor) -> bool:
    """Laid out channels_last and not also row-major (a 4-D tensor with C or H·W of 1 is both)."""
    return (tensor.dim() == 4 and not tensor.is_contiguous()
            and tensor.is_contiguous(memory_format=torch.channels_last))


def in_layout(tensor: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """`tensor` with the canonical strides of that layout: a free view when only the strides of
    size-1 axes differ, else a copy."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if not tensor.is_contiguous(memory_format=layout):
        return tensor.contiguous(memory_format=layout)
    _, c, h, w = tensor.shape
    strides = (h * w * c, 1, w * c, c) if channels_last else (c * h * w, h * w, w, 1)
    if tensor.stride() == strides:
        return tensor
    return tensor.as_strided(tensor.shape, strides, tensor.storage_offset())


class _KeepLayout(torch.autograd.Function):
    """Identity forward; the backward returns the gradient in the forward tensor's layout."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.channels_last = is_channels_last(tensor)
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return in_layout(grad, ctx.channels_last)


class PackedWeight:
    """One layer's weight reordered into oneDNN's own blocked layout for one input shape, kept while
    the weight is unchanged: torch's channels_last convolution reorders it on every call (FCN-8s:
    59 MB a forward). Every writer of a weight (loading, the solver) writes in place through torch,
    which counts the tensor's versions; a copy of the layer starts with an empty cache."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._packed: torch.Tensor | None = None

    def __reduce__(self):
        return (PackedWeight, ())

    def get(self, call: ConvCall, batch: torch.Tensor) -> torch.Tensor:
        weight = call.weight
        key = (weight.data_ptr(), weight._version, tuple(batch.shape))
        if key != self._key:
            self._packed = torch.ops.mkldnn._reorder_convolution_weight(
                weight.detach(), list(call.padding), list(call.stride), list(call.dilation), call.groups,
                list(batch.shape))
            self._key = key
        return self._packed


def convolve(call: ConvCall, batch: torch.Tensor, relu: bool = False,
             packed: PackedWeight | None = None) -> torch.Tensor:
    """The convolution by the execution chosen for this key (measured on first use), followed by a
    ReLU when `relu` (asked only while no graph is recorded). With `packed`, a channels_last
    convolution that records no graph runs as oneDNN's with the cached packed weight and the ReLU
    fused into it: the same kernel and summation order as channels_last, without the weight's
    reorder and a second pass over the output."""
    execution = choose(call, batch)
    if packed is not None and execution == CHANNELS_LAST and _packs(call, batch):
        return torch.ops.mkldnn._convolution_pointwise(
            channels_last_view(batch), packed.get(call, batch), call.bias, list(call.padding),
            list(call.stride), list(call.dilation), call.groups, "relu" if relu else "none", [], "")
    out = run(execution, call, batch)
    return out.relu_() if relu else out


def _packs(call: ConvCall, batch: torch.Tensor) -> bool:
    """A forward float32 convolution on the CPU, outside autocast and torch.compile, with no graph."""
    return (not call.transposed and not torch.is_grad_enabled() and batch.device.type == "cpu"
            and batch.dtype == call.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling() and torch.backends.mkldnn.is_available())


def choose(call: ConvCall, batch: torch.Tensor) -> str:
    options = candidates(call, batch)
    forced = os.environ.get(FORCE_VARIABLE)
    if forced:
        return forced if forced in options else PLAIN
    if len(options) == 1 or torch.compiler.is_compiling():
        return PLAIN
    if batch.device.type == "cpu":
        return _cpu_rule(call, batch, options)
    if call.macs(batch) < MEASURE_MACS:
        return PLAIN
    key = _key(call, batch)
    choice = _choices.get(key)
    if choice is None:
        choice = _choices[key] = _fastest(call, batch, options)
    return choice


def _cpu_rule(call: ConvCall, batch: torch.Tensor, options: tuple[str, ...]) -> str:
    """gemm for a matrix product on a small image, image for training a filter on few channels,
    channels_last for everything else."""
    if GEMM in options:
        height, width = call.out_size(batch)
        if batch.shape[0] * height * width <= GEMM_PIXELS_PER_TAP * call.weight[0].numel():
            return GEMM
        if call.weight.shape[1] <= IMAGE_CHANNELS and _trains_in_float32(call, batch):
            return IMAGE
    return CHANNELS_LAST


def _trains_in_float32(call: ConvCall, batch: torch.Tensor) -> bool:
    """The weight learns, in float32 and without autocast (what image's weight gradient computes)."""
    return (torch.is_grad_enabled() and call.weight.requires_grad and call.weight.dtype == torch.float32
            and batch.dtype == torch.float32 and not torch.is_autocast_enabled(batch.device.type))


def _training(call: ConvCall, batch: torch.Tensor) -> bool:
    tensors = [batch, call.weight] + ([call.bias] if call.bias is not None else [])
    return torch.is_grad_enabled() and any(tensor.requires_grad for tensor in tensors)


def _key(call: ConvCall, batch: torch.Tensor) -> tuple:
    autocast = torch.is_autocast_enabled(batch.device.type)
    return (call.transposed, tuple(call.weight.shape), call.bias is not None, call.groups, call.stride,
            call.padding, call.dilation, tuple(batch.shape), batch.is_contiguous(), str(batch.device),
            batch.dtype, torch.get_num_threads(), _training(call, batch),
            torch.get_autocast_dtype(batch.device.type) if autocast else None)


def _fastest(call: ConvCall, batch: torch.Tensor, options: tuple[str, ...]) -> str:
    """Time each candidate on copies of the real tensors (forward, plus backward when training)."""
    training = _training(call, batch)

    def leaf(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.detach().requires_grad_(training and tensor.requires_grad)

    probe = ConvCall(call.transposed, leaf(call.weight), leaf(call.bias), call.groups, call.stride,
                     call.padding, call.dilation)
    probe_batch = leaf(batch)
    sync = torch.cuda.synchronize if batch.device.type == "cuda" else (lambda: None)

    def once(execution: str) -> Callable[[], None]:
        def step() -> None:
            with torch.enable_grad() if training else torch.no_grad():
                out = run(execution, probe, probe_batch)
                if training:
                    out.backward(torch.ones_like(out))
        return step

    steps = {execution: once(execution) for execution in options}
    best = {execution: float("inf") for execution in options}
    # the probes keep what they save for their own backward: inside a recomputed segment
    # (torch.utils.checkpoint) the segment's hooks would count it, and the recomputation, which
    # finds the choice made, would save a different sequence of tensors
    with torch.autograd.graph.saved_tensors_hooks(_kept, _kept):
        for step in steps.values():
            step()
        for _ in range(_ROUNDS):
            for execution, step in steps.items():
                sync()
                start = time.perf_counter()
                step()
                sync()
                best[execution] = min(best[execution], time.perf_counter() - start)
    return min(options, key=best.__getitem__)


def _kept(tensor: torch.Tensor) -> torch.Tensor:
    return tensor
