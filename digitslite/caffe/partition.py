"""Cutting a filtered net into K pipeline stages of consecutive layers, at blob boundaries.

A cut before layer b hands on every blob that an earlier layer computed and a later layer reads:
one blob on a plain chain, several across a skip connection (FCN's pool3/pool4 scores waiting for
their Eltwise or Crop). Each stage passes on what later stages need, so blobs for stage s+2
travel through stage s+1. The net's inputs (and Split copies of them) are not handed on: every
stage reads those it needs from its own batch. Cuts are either named (after the layer that last
writes each blob, like `--pipeline-cuts pool2,pool4`) or chosen to balance the stages: the
smallest largest-stage cost (forward FLOPs, activation bytes, or parameters), ties going to the
cut that hands on fewer bytes.
"""
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from digitslite.caffe import caffe_pb2
from digitslite.caffe.layer_cost import BYTES_PER_VALUE, layer_costs
from digitslite.caffe.shapes import blob_shapes, input_tops, is_source
from digitslite.caffe.sourcemap import SourceMap
from digitslite.errors import UserError

# What balanced cuts even out: forward FLOPs (time), activation bytes, or parameter values (the
# weights a stage holds, with their gradients and solver history).
BALANCES = ("flops", "activations", "parameters")


@dataclass(frozen=True)
class Stage:
    """Layers [start, stop) of the net and what they cost; `sends` go on to the next stage, `inputs`
    are the net inputs its layers read from the stage's own batch."""

    index: int
    start: int
    stop: int
    layers: list[str]
    flops: int
    activation_bytes: int
    parameters: int
    receives: list[str]
    sends: list[str]
    send_bytes: int
    inputs: list[str]


@dataclass(frozen=True)
class Partition:
    stages: list[Stage]

    @property
    def bounds(self) -> list[int]:
        """The layer index each stage after the first starts at."""
        return [stage.start for stage in self.stages[1:]]


def crossing_blobs(net: caffe_pb2.NetParameter, boundary: int) -> list[str]:
    """Blobs written before layer `boundary` and read at or after it, in order of first writing."""
    written: dict[str, None] = {}
    for layer in net.layer[:boundary]:
        written.update(dict.fromkeys(layer.top))
    read_later = {name for layer in net.layer[boundary:] for name in layer.bottom}
    return [name for name in written if name in read_later]


def input_copies(net: caffe_pb2.NetParameter) -> dict[str, str]:
    """Each blob that holds a net input as it was read (the input, or a Split's copy of it) -> the
    input; a layer rewriting one in place makes it a computed blob."""
    copies = {name: name for name in input_tops(net)}
    for layer in net.layer:
        if layer.type == "Split" and layer.bottom[0] in copies:
            copies.update(dict.fromkeys(layer.top, copies[layer.bottom[0]]))
        elif not is_source(layer):
            for top in layer.top:
                copies.pop(top, None)
    return copies


def handed_on(net: caffe_pb2.NetParameter, boundary: int, copies: Mapping[str, str]) -> list[str]:
    """The computed blobs a cut before layer `boundary` hands on (`copies`: input_copies(net))."""
    return [name for name in crossing_blobs(net, boundary) if name not in copies]


def last_writers(net: caffe_pb2.NetParameter) -> dict[str, int]:
    """Blob name -> index of the last layer writing it (after in-place layers such as ReLU)."""
    return {top: index for index, layer in enumerate(net.layer) for top in layer.top}


def _named_bounds(net: caffe_pb2.NetParameter, cuts: Sequence[str], allowed: list[int]) -> list[int]:
    writers = last_writers(net)
    bounds = []
    for blob in cuts:
        if blob not in writers:
            raise UserError(f"pipeline cut '{blob}': the net has no such blob; name blobs of: "
                            f"{', '.join(writers)}")
        bound = writers[blob] + 1
        if bound not in allowed:
            raise UserError(f"pipeline cut '{blob}': no layer that computes comes after it (or none "
                            "before it); cut after a blob in the middle of the net")
        bounds.append(bound)
    if bounds != sorted(set(bounds)):
        raise UserError(f"pipeline cuts {','.join(cuts)}: give each cut once, in the order the net "
                        "computes them")
    return bounds


def _balanced_bounds(costs: list[int], crossing: Mapping[int, int], allowed: list[int],
                     stages: int) -> list[int]:
    """K−1 boundaries from `allowed`: least largest stage cost, then least bytes handed on."""
    prefix = [0, *itertools.accumulate(costs)]

    @cache
    def best(stage_count: int, end: int) -> tuple[int, int, tuple[int, ...]]:
        if stage_count == 1:
            return prefix[end], 0, ()
        options = []
        for bound in allowed:
            if bound >= end:
                break
            worst, sent, bounds = best(stage_count - 1, bound)
            largest = max(worst, prefix[end] - prefix[bound])
            options.append((largest, sent + crossing[bound], (*bounds, bound)))
        return min(options) if options else (math.inf, math.inf, ())

    return list(best(stages, len(costs))[2])


def partition(net: caffe_pb2.NetParameter, stages: int | None = None, *, cuts: Sequence[str] = (),
              balance: str = "flops", input_shapes: Mapping[str, Sequence[int]] | None = None,
              source_map: SourceMap | None = None) -> Partition:
    """Cut the filtered `net` into `stages` stages (or at the blobs `cuts`) of consecutive layers."""
    costs = layer_costs(net, input_shapes, source_map)
    sizes = blob_shapes(net, input_shapes, source_map)
    computing = [index for index, layer in enumerate(net.layer)
                 if not is_source(layer) and layer.type != "Split"]
    # a boundary right after a computing layer, with another still to come
    allowed = [index + 1 for index in computing[:-1]]
    copies = input_copies(net)
    crossing = {bound: handed_on(net, bound, copies) for bound in allowed}
    crossing_bytes = {bound: sum(math.prod(sizes[name]) for name in names) * BYTES_PER_VALUE
                      for bound, names in crossing.items()}
    if cuts:
        bounds = _named_bounds(net, cuts, allowed)
        if stages is not None and stages != len(bounds) + 1:
            raise UserError(f"{len(cuts)} pipeline cuts make {len(bounds) + 1} stages, not {stages}; "
                            "give K−1 cuts for K stages, or only one of the two")
    else:
        stages = stages or 1
        if not 1 <= stages <= len(computing):
            raise UserError(f"{stages} pipeline stages: the net has {len(computing)} layers that compute; "
                            f"give between 1 and {len(computing)} stages")
        if balance not in BALANCES:
            raise UserError(f"balance {balance!r}: give one of {', '.join(BALANCES)}")
        weights = [{"flops": cost.flops, "activations": cost.activation_bytes,
                    "parameters": cost.parameters}[balance] for cost in costs]
        bounds = _balanced_bounds(weights, crossing_bytes, allowed, stages)
    edges = [0, *bounds, len(net.layer)]
    result = []
    for index, (start, stop) in enumerate(itertools.pairwise(edges)):
        part = costs[start:stop]
        result.append(Stage(
            index, start, stop,
            [cost.name for cost in part if cost.type != "Split"],
            sum(cost.flops for cost in part), sum(cost.activation_bytes for cost in part),
            sum(cost.parameters for cost in part),
            crossing.get(start, []),
            crossing.get(stop, []),
            crossing_bytes.get(stop, 0),
            list(dict.fromkeys(name for layer in net.layer[start:stop] for name in layer.bottom
                               if name in copies))))
    return Partition(result)
