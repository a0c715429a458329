"""A network drawn as SVG from its layout (digitslite.viz.netgraph): the page only renders."""
import itertools
from html import escape

from digitslite.caffe import caffe_pb2
from digitslite.viz.netgraph import NODE_HEIGHT, Layout, Node, layout

# In the SVG itself, so it looks the same shown as an image or inline. Classes are the families
# of the layer records.
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
.netgraph .loss rect, .netgraph .evaluation rect { fill: #fde6e7; stroke: #df7378; }
.netgraph .data rect { fill: #eceff3; stroke: #8c96a5; }
"""


def _edge(nodes: list[Node], chain: list[int], blobs: str) -> str:
    """A curve from the bottom of the source box through the waypoints to the top of the target box."""
    points = [(nodes[chain[0]].x, nodes[chain[0]].top + NODE_HEIGHT)]
    points += [(nodes[index].x, nodes[index].top + NODE_HEIGHT / 2) for index in chain[1:-1]]
    points.append((nodes[chain[-1]].x, nodes[chain[-1]].top))
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        middle = (y0 + y1) / 2
        path += f" C{x0:.1f},{middle:.1f} {x1:.1f},{middle:.1f} {x1:.1f},{y1:.1f}"
    return f'<path class="edge" d="{path}" marker-end="url(#arrow)"><title>{escape(blobs)}</title></path>'


def _box(node: Node) -> str:
    left, top = node.x - node.width / 2, node.top
    title, detail = (escape(line) for line in node.lines)
    return (f'<g class="layer {node.family}"><title>{title}: {detail}</title>'
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{node.width:.1f}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{node.x:.1f}" y="{top + 17:.1f}" class="name">{title}</text>'
            f'<text x="{node.x:.1f}" y="{top + 32:.1f}" class="detail">{detail}</text></g>')


def network_svg(net: caffe_pb2.NetParameter) -> str:
    """The SVG document of `net` (already filtered to one phase)."""
    graph: Layout = layout(net)
    width, height = graph.width, graph.height
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="netgraph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="network {escape(net.name)}">',
        f"<style>{STYLE}</style>",
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>',
        *(_edge(graph.nodes, edge.chain, edge.blobs) for edge in graph.edges),
        *(_box(node) for node in graph.nodes if not node.waypoint),
        "</svg>"])
