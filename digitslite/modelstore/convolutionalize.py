"""Net surgery built in: a classifier's weights (e.g. BVLC AlexNet) made into the initial weights of a
fully convolutional network (DIGITS' FCN-AlexNet), the step DIGITS left to an offline script.

Convolutions are copied and fc6/fc7 are coerced into convolutions (digitslite.caffe.surgery). Only
those carried layers are written: the score layer and the bilinear upsampling come from the FCN
network's own fillers, so the same weights start a training for any number of classes.
"""
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import read_caffemodel, write_caffemodel
from digitslite.caffe.deploy import deploy_net
from digitslite.caffe.prototxt import net_to_text, read_net, write_net
from digitslite.caffe.surgery import LayerAction, SurgeryError, check_transplant, transplant
from digitslite.errors import UserError
from digitslite.fileio import read_json
from digitslite.layout import DEPLOY_FILE, SOLVER_FILE, TRAIN_VAL_FILE
from digitslite.modelstore.entries import write_info
from digitslite.modelstore.format import INFO_FILE, SEGMENTATION, ModelInfo, parse_info
from digitslite.networks import get_network, load_network

CARRIED = frozenset({"copied", "coerced"})
DEPLOY_INPUT = (1, 3, 500, 500)


@dataclass(frozen=True)
class Convolutionalized:
    """The folder made (a store entry), its weights file and what surgery did to each layer."""

    path: Path
    weights: Path
    actions: list[LayerAction]


def convolutionalize_weights(classifier_net: caffe_pb2.NetParameter, classifier_weights: Path,
                             fcn_deploy: caffe_pb2.NetParameter, out: Path) -> list[LayerAction]:
    """Write to `out` the classifier's weights that the FCN (a deploy net) takes over by name."""
    surgery = transplant(classifier_net, read_caffemodel(classifier_weights), fcn_deploy,
                         src_name=str(classifier_weights), dst_name=f"network '{fcn_deploy.name}'")
    _require_carried(surgery.actions, classifier_weights, fcn_deploy)
    carried = {action.layer: surgery.weights[action.layer] for action in surgery.actions
               if action.action in CARRIED}
    write_caffemodel(out, fcn_deploy, carried)
    return surgery.actions


def fcn_deploy(network: str, num_classes: int) -> tuple[caffe_pb2.NetParameter, caffe_pb2.NetParameter]:
    """The standard `network` for `num_classes` classes (all-in-one) and its deploy net."""
    fcn = load_network(network, num_classes)
    return fcn, deploy_net(fcn, DEPLOY_INPUT)


def check_convolutionalize(classifier_net: Path, network: str, num_classes: int) -> None:
    """The SurgeryError convolutionalize() would meet, found from the layer shapes before any weights
    are read: a classifier whose layers do not fit the FCN (LeNet into fcn_alexnet) is refused at once."""
    _, deploy = fcn_deploy(network, num_classes)
    actions = check_transplant(read_net(classifier_net), deploy, src_name=str(classifier_net),
                               dst_name=f"network '{deploy.name}'")
    _require_carried(actions, classifier_net, deploy)


def _require_carried(actions: list[LayerAction], classifier: Path,
                     fcn_deploy: caffe_pb2.NetParameter) -> None:
    if not any(action.action in CARRIED for action in actions):
        raise SurgeryError(f"{classifier}: no layer fits network '{fcn_deploy.name}' (layers pair by name, "
                           "e.g. conv1..conv5, fc6, fc7); choose a classifier with those layer names")


def convolutionalize(classifier_net: Path, classifier_weights: Path, dest: Path, *, num_classes: int = 21,
                     network: str = "fcn_alexnet", about: ModelInfo | None = None) -> Convolutionalized:
    """A new store-entry folder `dest` holding the standard `network` for `num_classes` classes (all-in-one
    network, deploy net, solver) and initial weights made from the classifier by net surgery.

    `about` is the classifier's info.json, for the name, source and license of the result.
    """
    dest = Path(dest)
    if dest.exists():
        raise UserError(f"{dest} already exists; choose another destination or remove it")
    fcn, deploy = fcn_deploy(network, num_classes)
    weights_name = f"{network}.caffemodel"
    staging = dest.with_name(f".{dest.name}.convolutionalizing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        actions = convolutionalize_weights(read_net(classifier_net), classifier_weights, deploy,
                                           staging / weights_name)
        (staging / TRAIN_VAL_FILE).write_text(net_to_text(fcn), encoding="utf-8")
        write_net(deploy, staging / DEPLOY_FILE)
        shutil.copyfile(get_network(network).solver_file, staging / SOLVER_FILE)
        write_info(staging, _info(network, num_classes, weights_name, actions, about))
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Convolutionalized(dest, dest / weights_name, actions)


def convolutionalize_model(classifier_dir: Path, dest: Path, *, num_classes: int = 21,
                           network: str = "fcn_alexnet") -> Convolutionalized:
    """convolutionalize() from an imported classifier folder (its info.json names the files)."""
    classifier_dir = Path(classifier_dir)
    info_path = classifier_dir / INFO_FILE
    try:
        about = parse_info(read_json(info_path), str(info_path))
    except FileNotFoundError:
        raise UserError(f"{classifier_dir}: no {INFO_FILE}, so not an imported model; import the classifier "
                        "from a store first (`digitslite store import`)") from None
    if not about.snapshot_file:
        raise UserError(f'{info_path}: the classifier has no weights ("snapshot file"); import one that has')
    net_file = about.deploy_file or about.network_file
    return convolutionalize(classifier_dir / net_file, classifier_dir / about.snapshot_file, dest,
                            num_classes=num_classes, network=network, about=about)


def _info(network: str, num_classes: int, weights_name: str, actions: list[LayerAction],
          about: ModelInfo | None) -> dict:
    origin = about.name if about else "a classifier"
    source = about.data.get("source") if about else None
    carried = [action.layer for action in actions if action.action in CARRIED]
    return {
        "name": f"{network} from {origin}",
        "framework": "caffe",
        "task": SEGMENTATION,
        "model file": TRAIN_VAL_FILE,
        "train_val file": TRAIN_VAL_FILE,
        "deploy file": DEPLOY_FILE,
        "solver file": SOLVER_FILE,
        "snapshot file": weights_name,
        "input size": {"channels": DEPLOY_INPUT[1], "height": DEPLOY_INPUT[2], "width": DEPLOY_INPUT[3]},
        "mean": None,
        "source": f"net surgery on {origin}" + (f" ({source})" if source else ""),
        "license": about.data.get("license") if about else None,
        "note": f"Initial weights for training {network}: {', '.join(carried)} carried over; the score "
                f"layers ({num_classes} classes) start from the network's fillers.",
        "surgery": [action.as_dict() for action in actions],
    }
