"""Caffe's BatchNorm with its batch statistics taken over the batches of every rank.

On W ranks with batch B each, a synchronised layer normalises with the mean and variance of all
W·B samples and updates its stored sums with them (m = W·B·H·W values per channel in the
unbiased correction), so it computes what one process with the batch W·B computes. The sums
travel by all_reduce, and the gradient flows back through them to every rank's samples.
"""
import torch
from torch import distributed

from digitslite.engine.layers.base import upcast
from digitslite.engine.layers.normalization import BatchNorm
from digitslite.engine.net import CaffeNet


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: d(Σ_r x_r)/dx_r = 1, so the incoming gradients are summed
    over the ranks too (each rank's loss depends on every rank's samples through the statistics)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        distributed.all_reduce(total)
        return total


class SyncedBatchNorm(BatchNorm):
    """A TRAIN-phase BatchNorm whose statistics are those of the batches of all ranks together."""

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        if self.use_global_stats:
            return super().forward(bottom)
        channels = self.mean_sum.shape[0]
        grouped = upcast(bottom).reshape(bottom.shape[0], channels, -1)
        local_count = grouped.new_full((1,), grouped.shape[0] * grouped.shape[2])
        sums = _SumOverRanks.apply(torch.cat([grouped.sum(dim=(0, 2)), local_count]))
        count = sums[channels:].detach()
        mean = sums[:channels] / count
        centred = grouped - mean[:, None]
        variance = _SumOverRanks.apply(centred.square().sum(dim=(0, 2))) / count
        # Caffe's unbiased correction m/(m-1) (1 when m = 1), computed on the device: reading the count
        # back would stall the host at every layer. Passed pre-corrected, with m = 1 (no correction).
        correction = count / (count - 1).clamp(min=1)
        self._accumulate(mean.detach(), (variance * correction).detach(), 1)
        normalised = centred / torch.sqrt(variance[:, None] + self.eps)
        return (normalised.reshape(bottom.shape).to(bottom.dtype),)


def synchronise_batch_norm(net: CaffeNet) -> int:
    """Replace the net's BatchNorm layers that compute batch statistics by synchronised ones holding
    the same statistics tensors (the solver and the test nets keep seeing them); returns how many."""
    replaced = 0
    for index, layer in enumerate(net.layers):
        if type(layer) is not BatchNorm or layer.use_global_stats:
            continue
        synced = SyncedBatchNorm(layer.param, [(1, layer.mean_sum.shape[0])], layer.phase)
        for name in layer.blob_names:
            setattr(synced, name, getattr(layer, name))
        net.layers[index] = synced
        replaced += 1
    return replaced
