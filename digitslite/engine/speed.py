"""The GPU speed knobs of modern-anchors §3.4 (AMP, channels_last, torch.compile, cuDNN autotuner).

All are off unless asked for: each trades Caffe's exact float32 arithmetic for speed. AMP keeps
the parameters, gradients and solver in float32 (only the forward runs in the low precision);
fp16 needs loss scaling, bf16 does not.
"""
import contextlib
import math
from collections.abc import Mapping

import torch

from digitslite.errors import UserError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # keyed by choices.AMP_MODES


def resolve_device(name: str | None) -> torch.device:
    """The requested device, or CUDA when available and the CPU otherwise."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r} is unknown; use \"cpu\" or \"cuda\"") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("a CUDA device was asked for but none is available; train on the CPU (--cpu)")
    return device


def check_amp(amp: str | None) -> None:
    if amp is not None and amp not in AMP_DTYPES:
        raise UserError(f"amp {amp!r} is unknown; use one of {', '.join(AMP_DTYPES)} or leave it off")


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass, or nothing."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device,
              channels_last: bool) -> dict[str, torch.Tensor]:
    """Move a batch to the device; 4-D float inputs go channels_last when asked for."""
    moved = {}
    for name, tensor in batch.items():
        tensor = torch.as_tensor(tensor).to(device, non_blocking=True)
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            tensor = tensor.float()
        if channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        moved[name] = tensor
    return moved


class LossScaler:
    """Dynamic loss scaling for fp16: scale up the loss, unscale the gradients before the solver,
    skip updates whose gradients overflowed and halve the scale; double it after `interval` clean
    steps. Disabled it is the identity."""

    def __init__(self, enabled: bool, scale: float = 2.0**16, interval: int = 2000) -> None:
        self.enabled, self.scale, self.interval = enabled, scale, interval
        self.clean_steps = 0

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale if self.enabled else loss

    @torch.no_grad()
    def unscale(self, tensors: list[torch.Tensor]) -> bool:
        """Divide the gradients by the scale; False (and a smaller scale) when any is not finite."""
        if not self.enabled:
            return True
        grads = [t.grad for t in tensors if t.grad is not None]
        finite = not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())  # one sync
        if not finite:
            self.scale /= 2
            self.clean_steps = 0
            return False
        for g in grads:
            g.div_(self.scale)
        self.clean_steps += 1
        if self.clean_steps % self.interval == 0 and math.isfinite(self.scale * 2):
            self.scale *= 2
        return True

    def state(self) -> dict:
        return {"scale": self.scale, "clean_steps": self.clean_steps}

    def load(self, state: dict) -> None:
        self.scale, self.clean_steps = state["scale"], state["clean_steps"]


def configure_backends(cudnn_benchmark: bool) -> None:
    torch.backends.cudnn.benchmark = cudnn_benchmark
