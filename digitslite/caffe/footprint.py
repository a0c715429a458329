"""Which input pixels each position of a blob reads (its footprint), in exact fractions.

Inference tiles a big image only when every output pixel depends on a bounded window of input
pixels; each layer type's record says how its tops' footprint follows from its bottoms'. The
building blocks here are the only kinds there are: pixel-wise, a sliding window, a transposed
window, a shift (Crop), or not local at all (None).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import Window


@dataclass(frozen=True)
class Footprint:
    """Position i of a blob along spatial axis a reads the input pixels from i·step[a] + low[a]
    to i·step[a] + high[a] (fractions: upsampled blobs have steps below 1)."""

    step: tuple[Fraction, Fraction]
    low: tuple[Fraction, Fraction]
    high: tuple[Fraction, Fraction]


IDENTITY = Footprint((Fraction(1),) * 2, (Fraction(0),) * 2, (Fraction(0),) * 2)

Footprints = Sequence[Footprint | None]
FootprintRule = Callable[[caffe_pb2.LayerParameter, Footprints], Footprint | None]


def union(bottoms: Footprints) -> Footprint | None:
    """Several bottoms combined pixel by pixel: the union of their windows, if their grids agree."""
    if not bottoms or any(b is None for b in bottoms) or len({b.step for b in bottoms}) != 1:
        return None
    low = tuple(min(b.low[a] for b in bottoms) for a in range(2))
    high = tuple(max(b.high[a] for b in bottoms) for a in range(2))
    return Footprint(bottoms[0].step, low, high)


def pixelwise(layer: caffe_pb2.LayerParameter, bottoms: Footprints) -> Footprint | None:
    """The rule of layers whose top pixel reads the same pixel of every bottom."""
    return union(bottoms)


def not_local(layer: caffe_pb2.LayerParameter, bottoms: Footprints) -> None:
    """The rule of layers whose tops are no local map of the input (losses, reshapes, ...)."""
    return None


def sliding(bottom: Footprint, window: Window) -> Footprint:
    """Output o reads bottom positions o·s - p ... o·s - p + extent - 1."""
    step, low, high = [], [], []
    for a in range(2):
        j, stride, pad, extent = bottom.step[a], window.stride[a], window.pad[a], window.extent[a]
        step.append(j * stride)
        low.append(bottom.low[a] - pad * j)
        high.append(bottom.high[a] + (extent - 1 - pad) * j)
    return Footprint(tuple(step), tuple(low), tuple(high))


def transposed(bottom: Footprint, window: Window) -> Footprint:
    """Deconvolution output o = i·s - p + t (0 <= t < extent): i lies in [(o+p-extent+1)/s, (o+p)/s]."""
    step, low, high = [], [], []
    for a in range(2):
        j, stride, pad, extent = bottom.step[a], window.stride[a], window.pad[a], window.extent[a]
        step.append(j / stride)
        low.append(bottom.low[a] + Fraction(pad - extent + 1, stride) * j)
        high.append(bottom.high[a] + Fraction(pad, stride) * j)
    return Footprint(tuple(step), tuple(low), tuple(high))


def shifted(bottom: Footprint, offsets: Sequence[int]) -> Footprint:
    """Top position o reads bottom position o + offset on each spatial axis (Crop)."""
    shift = [offsets[a] * bottom.step[a] for a in range(2)]
    return Footprint(bottom.step, tuple(b + s for b, s in zip(bottom.low, shift, strict=True)),
                     tuple(b + s for b, s in zip(bottom.high, shift, strict=True)))
