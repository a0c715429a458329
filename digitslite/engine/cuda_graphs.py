"""Inference on CUDA replayed from captured CUDA graphs, one per input shape.

At batch 1 a fast GPU finishes an FCN's kernels sooner than the host can launch them one layer at
a time: FCN-AlexNet at 500x500 took 1.8 ms on one H200 machine and 3.3 ms on another with the
same GPU, and its training step slowed by the same quarter (docs/PERFORMANCE.md). A replayed
graph launches the whole forward at once, so the time is the GPU's. The first call of a shape
runs the net eagerly twice (cuDNN's autotuner and the engine's measured convolution choices settle
there), then captures it; later calls copy the input into the captured one and replay. A forward
that cannot be captured (a layer that reads a value back to the host, say) runs eagerly for that
shape from then on, as it does under autocast, whose cast cache a graph cannot hold.
"""
from collections.abc import Mapping, Sequence

import torch

from digitslite.engine.net import CaffeNet

_WARMUP_CALLS = 2


class _Captured:
    """One shape's graph: the inputs it reads, the outputs it writes."""

    def __init__(self, run, inputs: Mapping[str, torch.Tensor]) -> None:
        self.inputs = {name: tensor.clone() for name, tensor in inputs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_CALLS):
                run(self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = run(self.inputs)

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for name, tensor in inputs.items():
            self.inputs[name].copy_(tensor)
        self.graph.replay()
        return {name: tensor.clone() for name, tensor in self.outputs.items()}


class GraphedForward:
    """`net.forward(inputs, keep=keep)` without gradients, replayed from a graph on CUDA."""

    def __init__(self, net: CaffeNet, keep: Sequence[str] = ()) -> None:
        self.net, self.keep = net, tuple(keep)
        self._captured: dict[tuple, _Captured | None] = {}    # None: runs eagerly

    def _eager(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.net.forward(inputs, keep=self.keep)

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = next(iter(inputs.values())).device
        if (device.type != "cuda" or torch.is_grad_enabled()
                or torch.is_autocast_enabled(device.type)):
            return self._eager(inputs)
        key = (torch.is_inference_mode_enabled(), *((name, tuple(tensor.shape), tensor.dtype, tensor.stride(),
                                                       tensor.device) for name, tensor in inputs.items()))
        if key not in self._captured:
            try:
                self._captured[key] = _Captured(self._eager, inputs)
            except RuntimeError:     # not capturable: this shape stays eager
                torch.cuda.synchronize(device)
                self._captured[key] = None
        captured = self._captured[key]
        return self._eager(inputs) if captured is None else captured(inputs)
