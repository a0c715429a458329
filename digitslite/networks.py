"""The standard networks shipped in network_defs/, rendered for a dataset's class count.

Each network is a folder with an all-in-one `network.prototxt` whose class count is the template
field `{{num_classes}}` and whose loss and Accuracy layers skip the dataset's ignore value,
`{{ignore_label}}`, and a `solver.prototxt`. Crop layers are written without offsets; they are
derived here from the coordinate map, so a topology change never leaves a stale hand-typed offset.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import fill_crop_offsets
from digitslite.caffe.prototxt import parse_net, parse_solver
from digitslite.caffe.template import DEFAULT_IGNORE_LABEL, fill_template
from digitslite.errors import UserError
from digitslite.layout import NETWORK_FILE, SOLVER_FILE


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
        network_file = folder / NETWORK_FILE
        if network_file.is_file():
            title = network_file.read_text().splitlines()[0].lstrip("# ").strip()
            found.append(StandardNetwork(folder.name, title, network_file, folder / SOLVER_FILE))
    return found


def get_network(name: str) -> StandardNetwork:
    """The standard network called `name`, or a UserError listing the known names."""
    networks = {network.name: network for network in list_networks()}
    if name not in networks:
        raise UserError(f"no standard network named {name!r}; choose one of: {', '.join(sorted(networks))}")
    return networks[name]


def render_network_text(name: str, num_classes: int, ignore_label: int = DEFAULT_IGNORE_LABEL) -> str:
    """The network's prototxt text with the class count and ignore value filled in."""
    network_file = get_network(name).network_file
    return fill_template(network_file.read_text(), num_classes, str(network_file), ignore_label=ignore_label)


def load_network(name: str, num_classes: int,
                 ignore_label: int = DEFAULT_IGNORE_LABEL) -> caffe_pb2.NetParameter:
    """The parsed network for `num_classes` classes skipping `ignore_label`, every Crop offset derived."""
    network = get_network(name)
    net = parse_net(render_network_text(name, num_classes, ignore_label), source=str(network.network_file))
    return fill_crop_offsets(net)


def load_solver(name: str) -> caffe_pb2.SolverParameter:
    """The network's default solver."""
    solver_file = get_network(name).solver_file
    return parse_solver(solver_file.read_text(), source=str(solver_file))
