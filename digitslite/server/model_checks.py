"""What a model request is checked for before it is queued, beyond the types of its fields: the
network builds (the editor's net check), and training it fits this machine's memory."""
import os
from typing import Any

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import set_batch_size
from digitslite.caffe.memory import training_memory
from digitslite.caffe.netcheck import CheckOptions, check_net_text
from digitslite.caffe.prototxt import filter_net, parse_net
from digitslite.caffe.shapes import input_tops
from digitslite.caffe.template import fill_template
from digitslite.errors import UserError
from digitslite.fileio import read_json
from digitslite.jobs.folder import JobFolder
from digitslite.networks import load_network
from digitslite.server.errors import ApiError

CHECK_CLASSES = 2  # the class count does not change whether a net builds; the dataset may not be done
DEFAULT_IMAGE_SHAPE = (3, 224, 224)  # C, H, W until the dataset is made, as in the editor's check
GIB = 1 << 30


def check_prototxt(text: str, image_shape: tuple[int, int, int]) -> None:
    """Refuse a network that would fail in the worker (the net check that `digitslite net check` and
    the editor run): unknown layer types, undefined or cyclic bottoms, impossible shapes such as
    kernel_size 0."""
    options = CheckOptions(phase="train", image_shape=image_shape, fill_classes=CHECK_CLASSES,
                           fills_missing_crops=True)
    error = check_net_text(text, "network_prototxt", options).error
    if error is not None:
        message = str(error)
        raise ApiError(422, message if message.startswith("network_prototxt") else
                       f"network_prototxt: {message}", "network_prototxt")


def dataset_image_shape(dataset: JobFolder) -> tuple[int, int, int]:
    """(C, H, W) of the dataset's largest training image, or the net check's default before it is made."""
    try:
        info = read_json(dataset.dataset.info_file)
        width, height = info["image_size"]["train"]["max"]
        return int(info.get("channels") or 3), int(height), int(width)
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_IMAGE_SHAPE


def _train_net(network: dict[str, Any]) -> caffe_pb2.NetParameter | None:
    if network["kind"] == "standard":
        return filter_net(load_network(network["name"], CHECK_CLASSES), phase="train")
    if network["kind"] == "prototxt":
        text = fill_template(network["text"], CHECK_CLASSES, "network_prototxt")
        return filter_net(parse_net(text, "network_prototxt"), phase="train")
    return None  # another job's network: it trained already


def _with_batch(net: caffe_pb2.NetParameter, batch: int | None) -> caffe_pb2.NetParameter:
    if batch is None:
        return net
    sized = caffe_pb2.NetParameter()
    sized.CopyFrom(net)
    set_batch_size(sized, batch)
    return sized


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(network: dict[str, Any], batch: int | None, image_shape: tuple[int, int, int]) -> None:
    """Refuse a training that cannot fit this machine's memory, naming its largest blob."""
    net = _train_net(network)
    if net is None:
        return
    net = _with_batch(net, batch)
    tops = input_tops(net)
    try:
        estimate = training_memory(net, {tops[0]: image_shape} if tops else None)
    except UserError:
        return  # shapes it cannot know before the data: the worker checks them
    available = machine_memory_bytes()
    if estimate.total_bytes > available:
        field = "batch_size" if batch is not None else "network_prototxt"
        size = f"{image_shape[1]}x{image_shape[2]}"
        raise ApiError(422, f"{field}: training needs about {estimate.total_bytes / GIB:.1f} GiB at this "
                            f"batch size and {size} images ({estimate.largest} alone "
                            f"{estimate.largest_bytes / GIB:.1f} GiB), more than this machine's "
                            f"{available / GIB:.1f} GiB; lower batch_size or the network's num_output", field)
