"""Inference with a deploy net: image pixels in, output blobs out, big images in tiles.

Preprocessing follows Caffe's DataTransformer: the image becomes a 1xCxHxW float blob in the
net's channel order (gray, RGB or BGR), the per-channel mean is subtracted, THEN the result is
multiplied by the scale: blob = (pixel - mean) * scale.

Tiling rule. A fully convolutional net computes each output pixel from a bounded window of
input pixels. The window is derived from the layer parameters (`footprints`): output pixel x
reads input pixels x - before ... x + after, and every blob's grid repeats every `align` input
pixels (the product of the strides, 32 for FCN-AlexNet). An image wider or taller than `max_tile`
is cut into tiles of at most max_tile x max_tile pixels, whose origins are multiples of `align`
and which overlap so that every output pixel is taken from a tile that holds its whole window
(or reaches the image border where the window does). Each kept pixel is then computed from
exactly the inputs, padding and pooling grid of a whole-image forward: the stitched result
equals the whole-image result up to float rounding, while the activations held at any time are
those of one tile. The stitched outputs themselves take C floats per image pixel.
"""
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from digitslite.caffe import caffe_pb2
from digitslite.caffe.footprint import IDENTITY, Footprint
from digitslite.caffe.geometry import RuleError
from digitslite.caffe.layers import LAYER_TYPES
from digitslite.caffe.prototxt import read_net
from digitslite.caffe.shapes import is_source
from digitslite.engine.choices import CHANNEL_ORDERS, DEFAULT_MAX_TILE
from digitslite.engine.cuda_graphs import GraphedForward
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError

# ----------------------------------------------------------------------------------------------
# Images and preprocessing


def read_image(path: Path, gray: bool) -> np.ndarray:
    """The image as uint8 pixels: [H, W] when `gray`, else [H, W, 3] RGB."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L" if gray else "RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"{path}: cannot read the image ({exc}); give a PNG, JPEG or other file "
                        "that Pillow opens") from exc


def resize_image(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize to height x width (the net's declared input size)."""
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the net's input blob: channel order, then (pixel - mean) * scale.

    `mean` holds one value per channel in the net's channel order (B, G, R for "bgr"), or one value
    for every channel, or nothing.
    """

    channels: str = "bgr"
    mean: tuple[float, ...] = ()
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_ORDERS:
            raise UserError(f"unknown channel order {self.channels!r}; "
                            f"use one of {', '.join(CHANNEL_ORDERS)}")
        if len(self.mean) not in (0, 1, self.num_channels):
            raise UserError(f"the mean has {len(self.mean)} values for {self.num_channels} {self.channels} "
                            f"channels; give {self.num_channels} values (in {self.channels} order) or one")

    @property
    def num_channels(self) -> int:
        return 1 if self.channels == "gray" else 3

    def blob(self, pixels: np.ndarray) -> torch.Tensor:
        """[1, C, H, W] float32 from [H, W] gray or [H, W, 3] RGB uint8 pixels."""
        planes = pixels[None].astype(np.float32) if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if self.channels == "bgr":
            planes = planes[::-1]
        values = planes.astype(np.float32)
        if self.mean:
            values = values - np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        return torch.from_numpy(np.ascontiguousarray(values * np.float32(self.scale)))[None]


# ----------------------------------------------------------------------------------------------
# Footprints: which input pixels each blob position reads


def footprints(net: caffe_pb2.NetParameter, input_name: str) -> dict[str, Footprint | None]:
    """Every blob's footprint over the 4-D input `input_name` (None: not a local map of it)."""
    blobs: dict[str, Footprint | None] = {}
    for layer in net.layer:
        if is_source(layer):
            blobs.update((top, IDENTITY if top == input_name else None) for top in layer.top)
            continue
        try:
            record = LAYER_TYPES.get(layer.type)
            bottoms = [blobs.get(name) for name in layer.bottom]
            footprint = record.footprint(layer, bottoms) if record is not None else None
        except RuleError:
            footprint = None
        blobs.update(dict.fromkeys(layer.top, footprint))
    return blobs


@dataclass(frozen=True)
class TileGeometry:
    """Per spatial axis (rows, columns): input pixels needed before/after an output pixel, grid period."""

    before: tuple[int, int]
    after: tuple[int, int]
    align: tuple[int, int]


def tile_geometry(net: caffe_pb2.NetParameter, input_name: str,
                  outputs: Iterable[str]) -> TileGeometry | None:
    """How `outputs` may be tiled, or None when one of them is not a per-pixel map of the input."""
    prints = footprints(net, input_name)
    wanted = [prints.get(name) for name in outputs]
    if not wanted or any(p is None or p.step != IDENTITY.step for p in wanted):
        return None
    known = [p for p in prints.values() if p is not None]
    return TileGeometry(
        before=tuple(max(0, math.ceil(max(-p.low[a] for p in wanted))) for a in range(2)),
        after=tuple(max(0, math.ceil(max(p.high[a] for p in wanted))) for a in range(2)),
        align=tuple(math.lcm(*(p.step[a].numerator for p in known)) for a in range(2)))


@dataclass(frozen=True)
class Span:
    """One tile along one axis: input [start, stop) is fed, output [keep_start, keep_stop) is kept."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def tile_spans(length: int, tile: int, before: int, after: int, align: int) -> list[Span]:
    """Cover [0, length) with tiles of at most `tile` pixels starting at multiples of `align`.

    A tile keeps the outputs whose window [x - before, x + after] it holds, or that lie on its
    side of the image border; the next tile starts as late as the alignment allows.
    """
    if tile < before + after + align:
        raise UserError(f"tiles of {tile} pixels are too small for this net: each output pixel reads "
                        f"{before} pixels before and {after} after it, on a grid of {align}; give a "
                        f"maximum tile size of at least {before + after + align}")
    spans: list[Span] = []
    done = 0
    while done < length:
        start = max(0, (done - before) // align * align)
        stop = min(start + tile, length)
        keep_stop = length if stop == length else stop - after
        spans.append(Span(start, stop, done, keep_stop))
        done = keep_stop
    return spans


# ----------------------------------------------------------------------------------------------
# Running the net


class Predictor:
    """A deploy net with its weights, ready to map one image to its output blobs.

    `blobs` names the blobs to report (default: the net outputs). Images larger than `max_tile`
    on a side are tiled when every reported blob is a per-pixel map of the input (module doc).
    """

    def __init__(self, net: CaffeNet, preprocessing: Preprocessing, *, blobs: Sequence[str] = (),
                 max_tile: int = DEFAULT_MAX_TILE, device: str | torch.device = "cpu") -> None:
        if len(net.input_names) != 1:
            raise UserError(f"net '{net.name}' has inputs {', '.join(net.input_names) or 'none'}; inference "
                            "feeds one image blob: give a deploy net with a single Input")
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.input_name = net.input_names[0]
        self.input_shape = _declared_shapes(net)[self.input_name]
        if len(self.input_shape) != 4 or self.input_shape[1] != preprocessing.num_channels:
            raise UserError(f"net '{net.name}' takes input '{self.input_name}' of shape "
                            f"{list(self.input_shape)}, but {preprocessing.channels} images have "
                            f"{preprocessing.num_channels} channel(s); choose the channel order that "
                            "matches the net (--channels)")
        self.preprocessing = preprocessing
        known = {top for layer in net.net_param.layer for top in layer.top}
        unknown = [name for name in blobs if name not in known]
        if unknown:
            raise UserError(f"net '{net.name}' has no blob named {', '.join(map(repr, unknown))}; "
                            f"its blobs are: {', '.join(sorted(known))}")
        self.blob_names = list(dict.fromkeys([*net.output_names, *blobs]))
        self.max_tile = max_tile
        self.geometry = tile_geometry(net.net_param, self.input_name, self.blob_names)
        self._run = GraphedForward(self.net, self.blob_names)

    def predict(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Each reported blob for one image, without the batch axis, as float32 arrays."""
        blob = self.preprocessing.blob(pixels)
        height, width = blob.shape[-2:]
        if self.geometry is None or (height <= self.max_tile and width <= self.max_tile):
            return {name: value[0] for name, value in self._forward(blob).items()}
        return self._tiled(blob)

    def _forward(self, blob: torch.Tensor) -> dict[str, np.ndarray]:
        try:
            with torch.inference_mode():
                outputs = self._run({self.input_name: blob.to(self.device)})
        except RuntimeError as exc:
            if tuple(blob.shape[-2:]) == self.input_shape[2:]:
                raise
            declared = "x".join(str(d) for d in self.input_shape[2:])
            raise UserError(f"net '{self.net.name}' cannot run on a {blob.shape[-2]}x{blob.shape[-1]} image "
                            f"({exc}); its input is declared {declared}: resize the image to that size "
                            "(--resize)") from exc
        return {name: outputs[name].float().cpu().numpy() for name in self.blob_names}

    def _tiled(self, blob: torch.Tensor) -> dict[str, np.ndarray]:
        geometry, (height, width) = self.geometry, blob.shape[-2:]
        rows = tile_spans(height, self.max_tile, geometry.before[0], geometry.after[0], geometry.align[0])
        columns = tile_spans(width, self.max_tile, geometry.before[1], geometry.after[1], geometry.align[1])
        stitched: dict[str, np.ndarray] = {}
        for row in rows:
            for column in columns:
                tile = blob[:, :, row.start:row.stop, column.start:column.stop]
                for name, value in self._forward(tile).items():
                    if value.ndim != 4 or value.shape[-2:] != tile.shape[-2:]:
                        raise UserError(f"blob '{name}' of net '{self.net.name}' is {list(value.shape)} "
                                        f"for a {list(tile.shape)} tile, not a per-pixel map of it, so the "
                                        "image cannot be tiled; raise the maximum tile size above its size")
                    target = stitched.setdefault(name, np.empty((value.shape[1], height, width), np.float32))
                    target[:, row.keep_start:row.keep_stop, column.keep_start:column.keep_stop] = value[
                        0, :, row.keep_start - row.start:row.keep_stop - row.start,
                        column.keep_start - column.start:column.keep_stop - column.start]
        return stitched


def _declared_shapes(net: CaffeNet) -> dict[str, tuple[int, ...]]:
    """The shape each net input was built for (Input layer shape or the input_shapes given)."""
    return {top: tuple(shape)
            for layer, entry in zip(net.net_param.layer, net.shapes, strict=True) if is_source(layer)
            for top, shape in zip(layer.top, entry.tops, strict=True)}


def load_predictor(net_path: Path, weights_path: Path, *, channels: str | None = None,
                   mean: Sequence[float] = (), scale: float = 1.0,
                   warn: Callable[[str], None] | None = None, **options) -> Predictor:
    """A Predictor for a deploy prototxt and a .caffemodel; `options` go to Predictor.

    Without `channels`, Caffe's convention decides from the net's input: 1 channel is gray, else BGR.
    """
    net = CaffeNet(read_net(net_path), "test")
    report = net.load_weights(weights_path)
    if report.missing and not report.weights:
        raise UserError(f"{weights_path}: holds weights for none of the layers of {net_path} (it needs "
                        f"{', '.join(report.missing)}); give the snapshot trained with this network")
    if report.missing and warn is not None:
        warn(f"{weights_path} has no weights for layer(s) {', '.join(report.missing)}; "
             "they keep their filler values")
    if channels is None:
        shape = _declared_shapes(net).get(net.input_names[0]) if net.input_names else None
        channels = "gray" if shape is not None and len(shape) > 1 and shape[1] == 1 else "bgr"
    preprocessing = Preprocessing(channels=channels, mean=tuple(mean), scale=scale)
    return Predictor(net, preprocessing, **options)
