"""The standard networks shipped in network_defs/, rendered for a dataset's class count.

Each network is a folder with an all-in-one `network.prototxt` whose class count is the template
field `{{num_classes}}`, and a `solver.prototxt`. Crop layers are written without offsets; they are
derived here from the coordinate map, so a topology change never leaves a stale hand-typed offset.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import fill_crop_offsets
from digitslite.caffe.prototxt import parse_net, parse_solver
from digitslite.caffe.template import NUM_CLASSES_FIELD
from digitslite.errors import UserError


def network_defs_dir() -> Path:
    """The folder of standard networks: $DIGITSLITE_NETWORK_DEFS, else the package's own network_defs/."""
    configured = os.environ.get("DIGITSLITE_NETWORK_DEFS")
    return Path(configured) if configured else Path(__file__).resolve().parent / "network_defs"


@dataclass(frozen=True)
class StandardNetwork:
    """One folder of network_defs/: its name, the first line of its description, its files."""

    name: str
    title: str
    network_file: Path
    solver_file: Path


def list_networks() -> list[StandardNetwork]:
    """Every standard network, sorted by name."""
    found = []
    for folder in sorted(network_defs_dir().iterdir()):
        network_file = folder / "network.prototxt"
        if network_file.is_file():
            title = network_file.read_text().splitlines()[0].lstrip("# ").strip()
            found.append(StandardNetwork(folder.name, title, network_file, folder / "solver.prototxt"))
    return found


def get_network(name: str) -> StandardNetwork:
    """The standard network called `name`, or a UserError listing the known names."""
    networks = {network.name: network for network in list_networks()}
    if name not in networks:
        raise UserError(f"no standard network named {name!r}; choose one of: {', '.join(sorted(networks))}")
    return networks[name]


def fill_num_classes(text: str, num_classes: int) -> str:
    """Prototxt `text` (a standard network or a user's template) with the class count filled in."""
    if num_classes < 1:
        raise UserError(f"num_classes must be at least 1, got {num_classes}")
    return text.replace(NUM_CLASSES_FIELD, str(num_classes))


def render_network_text(name: str, num_classes: int) -> str:
    """The network's prototxt text with the class count filled in."""
    return fill_num_classes(get_network(name).network_file.read_text(), num_classes)


def load_network(name: str, num_classes: int) -> caffe_pb2.NetParameter:
    """The parsed network for `num_classes` classes, with every Crop offset derived."""
    network = get_network(name)
    net = parse_net(render_network_text(name, num_classes), source=str(network.network_file))
    return fill_crop_offsets(net)


def load_solver(name: str) -> caffe_pb2.SolverParameter:
    """The network's default solver."""
    solver_file = get_network(name).solver_file
    return parse_solver(solver_file.read_text(), source=str(solver_file))
