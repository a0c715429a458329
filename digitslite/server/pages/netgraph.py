"""A network drawn as SVG: layers as boxes, blobs as edges, in a layered layout of its own (no
graphviz). In-place layers (ReLU, Dropout, ...) join the box of the layer whose top they change.

Layout, after Sugiyama: each layer's rank is its longest path from an input; an edge spanning
several ranks runs through invisible waypoints, one per rank; a few barycentre sweeps order each
rank to cut crossings; ranks are centred.
"""
import itertools
from dataclasses import dataclass, field
from html import escape

from digitslite.caffe import caffe_pb2
from digitslite.caffe.shapes import Window, conv_window, pool_window

RANK_GAP = 34
NODE_HEIGHT = 42
NODE_GAP = 22
CHAR_WIDTH = 6.6
MARGIN = 16
SWEEPS = 4
# In the SVG itself, so it looks the same shown as an image or inline.
STYLE = """
svg.netgraph { font: 11px system-ui, "DejaVu Sans", sans-serif; }
.netgraph .edge { fill: none; stroke: #8a96a8; stroke-width: 1.4; }
.netgraph .arrowhead { fill: #8a96a8; }
.netgraph rect { fill: #eef2f8; stroke: #9aa8bd; }
.netgraph text { text-anchor: middle; fill: #1b2230; }
.netgraph .name { font-weight: 700; }
.netgraph .detail { fill: #4a5566; font-size: 10px; }
.netgraph .conv rect { fill: #e3ecff; stroke: #6d8fe0; }
.netgraph .deconv rect { fill: #fff0dd; stroke: #e0a04c; }
.netgraph .pool rect { fill: #e2f5e9; stroke: #5db382; }
.netgraph .crop rect { fill: #f1e6ff; stroke: #a47be0; }
.netgraph .merge rect { fill: #dff5f4; stroke: #46b0a8; }
.netgraph .loss rect { fill: #fde6e7; stroke: #df7378; }
.netgraph .data rect { fill: #eceff3; stroke: #8c96a5; }
"""
FAMILIES = {"Data": "data", "Input": "data", "ImageData": "data", "Convolution": "conv",
            "Deconvolution": "deconv", "Pooling": "pool", "Crop": "crop", "Eltwise": "merge",
            "Concat": "merge", "SoftmaxWithLoss": "loss", "Accuracy": "loss", "EuclideanLoss": "loss",
            "SigmoidCrossEntropyLoss": "loss", "DummyData": "data", "HDF5Data": "data",
            "InfogainLoss": "loss", "MultinomialLogisticLoss": "loss", "HingeLoss": "loss",
            "ContrastiveLoss": "loss"}


@dataclass
class _Node:
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


def _window_text(window: Window) -> str:
    """"3×3/2": kernel and stride (a square kernel's one size shown twice)."""
    kernel = window.kernel * 2 if len(window.kernel) == 1 else window.kernel
    return f"{'×'.join(map(str, kernel))}/{window.stride[0]}"


def _detail(layer: caffe_pb2.LayerParameter) -> str:
    if layer.type in ("Convolution", "Deconvolution"):
        window = conv_window(layer.convolution_param)
        return f"{layer.type} {_window_text(window)} → {layer.convolution_param.num_output}"
    if layer.type == "Pooling":
        method = caffe_pb2.PoolingParameter.PoolMethod.Name(layer.pooling_param.pool)
        return f"{method} pool {_window_text(pool_window(layer.pooling_param))}"
    return layer.type


def _is_in_place(layer: caffe_pb2.LayerParameter, producers: dict[str, int]) -> bool:
    return len(layer.top) == 1 and list(layer.bottom) == list(layer.top) and layer.top[0] in producers


def _graph(net: caffe_pb2.NetParameter) -> tuple[list[_Node], list[tuple[int, int, str]]]:
    """Nodes (one per layer, in-place ones merged) and edges (from, to, blob)."""
    nodes: list[_Node] = []
    edges: dict[tuple[int, int], list[str]] = {}
    producers: dict[str, int] = {}
    for layer in net.layer:
        if _is_in_place(layer, producers):
            nodes[producers[layer.top[0]]].extras.append(layer.type)
            continue
        nodes.append(_Node(layer.name, _detail(layer), FAMILIES.get(layer.type, "other")))
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


def _layered(nodes: list[_Node], edges: list[tuple[int, int, str]]) -> tuple[Ranks, list[list[int]]]:
    """Ranks of node indices (waypoints added to `nodes`), and each edge as its chain of nodes."""
    for source, target, _ in edges:  # layers come in an order where producers precede consumers
        nodes[target].rank = max(nodes[target].rank, nodes[source].rank + 1)
    chains = []
    for source, target, _ in edges:
        chain = [source]
        for rank in range(nodes[source].rank + 1, nodes[target].rank):
            nodes.append(_Node("", "", "", rank=rank, waypoint=True))
            chain.append(len(nodes) - 1)
        chains.append([*chain, target])
    ranks: Ranks = [[] for _ in range(max((node.rank for node in nodes), default=-1) + 1)]
    for index, node in enumerate(nodes):
        ranks[node.rank].append(index)
    _order(ranks, chains)
    return ranks, chains


def _top(rank: int) -> float:
    return MARGIN + rank * (NODE_HEIGHT + RANK_GAP)


def _edge(nodes: list[_Node], chain: list[int], blobs: str) -> str:
    """A curve from the bottom of the source box through the waypoints to the top of the target box."""
    points = [(nodes[chain[0]].x, _top(nodes[chain[0]].rank) + NODE_HEIGHT)]
    points += [(nodes[index].x, _top(nodes[index].rank) + NODE_HEIGHT / 2) for index in chain[1:-1]]
    points.append((nodes[chain[-1]].x, _top(nodes[chain[-1]].rank)))
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        middle = (y0 + y1) / 2
        path += f" C{x0:.1f},{middle:.1f} {x1:.1f},{middle:.1f} {x1:.1f},{y1:.1f}"
    return f'<path class="edge" d="{path}" marker-end="url(#arrow)"><title>{escape(blobs)}</title></path>'


def _box(node: _Node) -> str:
    left, top = node.x - node.width / 2, _top(node.rank)
    title, detail = (escape(line) for line in node.lines)
    return (f'<g class="layer {node.family}"><title>{title}: {detail}</title>'
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{node.width:.1f}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{node.x:.1f}" y="{top + 17:.1f}" class="name">{title}</text>'
            f'<text x="{node.x:.1f}" y="{top + 32:.1f}" class="detail">{detail}</text></g>')


def network_svg(net: caffe_pb2.NetParameter) -> str:
    """The SVG document of `net` (already filtered to one phase)."""
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
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="netgraph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="network {escape(net.name)}">',
        f"<style>{STYLE}</style>",
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>',
        *(_edge(nodes, chain, blobs) for chain, (_, _, blobs) in zip(chains, edges, strict=True)),
        *(_box(node) for node in nodes if not node.waypoint),
        "</svg>"])
