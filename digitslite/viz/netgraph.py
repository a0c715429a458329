"""A network's layered layout (no graphviz): layers as boxes, blobs as edges, in-place layers
(ReLU, Dropout, ...) joined to the box of the layer whose top they change. Each box carries its
layer type's family from the layer records, which the drawing styles by.

Layout, after Sugiyama: each layer's rank is its longest path from an input; an edge spanning
several ranks runs through invisible waypoints, one per rank; a few barycentre sweeps order each
rank to cut crossings; ranks are centred.
"""
import itertools
from dataclasses import dataclass, field

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import RuleError, Window
from digitslite.caffe.layers import LAYER_TYPES

RANK_GAP = 34
NODE_HEIGHT = 42
NODE_GAP = 22
CHAR_WIDTH = 6.6
MARGIN = 16
SWEEPS = 4


@dataclass
class Node:
    """One box (or an invisible waypoint of a long edge); x is its centre once laid out."""

    title: str
    detail: str
    family: str
    rank: int = 0
    waypoint: bool = False
    x: float = 0.0
    extras: list[str] = field(default_factory=list)

    @property
    def lines(self) -> tuple[str, str]:
        return self.title, " + ".join([self.detail, *self.extras])

    @property
    def width(self) -> float:
        return 0.0 if self.waypoint else max(110.0, CHAR_WIDTH * max(map(len, self.lines)) + 20)

    @property
    def top(self) -> float:
        return MARGIN + self.rank * (NODE_HEIGHT + RANK_GAP)


@dataclass(frozen=True)
class Edge:
    """The blobs from one box to another, through the waypoints of the ranks in between."""

    chain: list[int]
    blobs: str


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float


def _window_text(window: Window) -> str:
    """"3×3/2": kernel and stride (a square kernel's one size shown twice)."""
    kernel = window.kernel * 2 if len(window.kernel) == 1 else window.kernel
    return f"{'×'.join(map(str, kernel))}/{window.stride[0]}"


def _detail(layer: caffe_pb2.LayerParameter) -> str:
    """The type, with kernel/stride (and outputs) for windowed layers whose window is known."""
    record = LAYER_TYPES.get(layer.type)
    try:
        window = record.window(layer, None) if record is not None and record.window is not None else None
    except RuleError:  # a bad window is net check's to report; the graph still draws the layer
        window = None
    if window is None:
        return layer.type
    if layer.type == "Pooling":
        method = caffe_pb2.PoolingParameter.PoolMethod.Name(layer.pooling_param.pool)
        return f"{method} pool {_window_text(window)}"
    return f"{layer.type} {_window_text(window)} → {layer.convolution_param.num_output}"


def _is_in_place(layer: caffe_pb2.LayerParameter, producers: dict[str, int]) -> bool:
    return len(layer.top) == 1 and list(layer.bottom) == list(layer.top) and layer.top[0] in producers


def _family(layer: caffe_pb2.LayerParameter) -> str:
    record = LAYER_TYPES.get(layer.type)
    return record.family if record is not None else "other"


def _graph(net: caffe_pb2.NetParameter) -> tuple[list[Node], list[tuple[int, int, str]]]:
    """Nodes (one per layer, in-place ones merged) and edges (from, to, blob)."""
    nodes: list[Node] = []
    edges: dict[tuple[int, int], list[str]] = {}
    producers: dict[str, int] = {}
    for layer in net.layer:
        if _is_in_place(layer, producers):
            nodes[producers[layer.top[0]]].extras.append(layer.type)
            continue
        nodes.append(Node(layer.name, _detail(layer), _family(layer)))
        index = len(nodes) - 1
        for blob in layer.bottom:
            if blob in producers:
                edges.setdefault((producers[blob], index), []).append(blob)
        for blob in layer.top:
            producers[blob] = index
    return nodes, [(source, target, ", ".join(blobs)) for (source, target), blobs in edges.items()]


Ranks = list[list[int]]


def _order(ranks: Ranks, chains: list[list[int]]) -> None:
    """Barycentre sweeps: each node moves to the mean position of its neighbours in the rank before."""
    above: dict[int, list[int]] = {}
    below: dict[int, list[int]] = {}
    for chain in chains:
        for upper, lower in itertools.pairwise(chain):
            below.setdefault(upper, []).append(lower)
            above.setdefault(lower, []).append(upper)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        for rank in range(1, len(ranks)) if downward else range(len(ranks) - 2, -1, -1):
            neighbours = above if downward else below
            reference = ranks[rank - 1] if downward else ranks[rank + 1]
            place = {index: position for position, index in enumerate(reference)}

            def barycentre(index: int, place=place, neighbours=neighbours) -> float:
                linked = neighbours.get(index)
                return sum(place[other] for other in linked) / len(linked) if linked else place.get(index, 0)
            ranks[rank].sort(key=barycentre)


def _layered(nodes: list[Node], edges: list[tuple[int, int, str]]) -> tuple[Ranks, list[list[int]]]:
    """Ranks of node indices (waypoints added to `nodes`), and each edge as its chain of nodes."""
    for source, target, _ in edges:  # layers come in an order where producers precede consumers
        nodes[target].rank = max(nodes[target].rank, nodes[source].rank + 1)
    chains = []
    for source, target, _ in edges:
        chain = [source]
        for rank in range(nodes[source].rank + 1, nodes[target].rank):
            nodes.append(Node("", "", "", rank=rank, waypoint=True))
            chain.append(len(nodes) - 1)
        chains.append([*chain, target])
    ranks: Ranks = [[] for _ in range(max((node.rank for node in nodes), default=-1) + 1)]
    for index, node in enumerate(nodes):
        ranks[node.rank].append(index)
    _order(ranks, chains)
    return ranks, chains


def layout(net: caffe_pb2.NetParameter) -> Layout:
    """The laid-out graph of `net` (already filtered to one phase)."""
    nodes, edges = _graph(net)
    ranks, chains = _layered(nodes, edges)
    widths = [sum(nodes[i].width for i in rank) + NODE_GAP * max(len(rank) - 1, 0) for rank in ranks]
    width = max(widths, default=0) + 2 * MARGIN
    for rank, rank_width in zip(ranks, widths, strict=True):
        x = (width - rank_width) / 2
        for index in rank:
            nodes[index].x = x + nodes[index].width / 2
            x += nodes[index].width + NODE_GAP
    height = len(ranks) * (NODE_HEIGHT + RANK_GAP) - RANK_GAP + 2 * MARGIN
    drawn = [Edge(chain, blobs) for chain, (_, _, blobs) in zip(chains, edges, strict=True)]
    return Layout(nodes=nodes, edges=drawn, width=width, height=height)
