"""fcn.berkeleyvision.org and 2015 model-zoo FCN files made to run the way digitslite and DIGITS expect.

Two differences matter (fcn-reference §b, §e): the model-zoo prototxts have Crop layers without
offsets (written for a Caffe branch that centred crops itself; current Caffe reads "no offset" as
0), and the fcn repo's upsampling Deconvolutions are ungrouped C x C x K x K blobs holding bilinear
kernels on the diagonal only, where DIGITS' topology uses the equivalent grouped C x 1 x K x K.
"""
import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import array_to_blob, blob_to_array
from digitslite.caffe.coordmap import crop_report, fill_crop_offsets


def _offsets_text(offsets: list[int]) -> str:
    return ", ".join(map(str, offsets))


def derive_missing_crop_offsets(net: caffe_pb2.NetParameter) -> tuple[caffe_pb2.NetParameter, list[str]]:
    """`net` with every Crop that has no offset given the one the coordinate map derives, and a note
    per Crop changed. A net whose Crops all have offsets comes back unchanged, without a walk."""
    if all(layer.crop_param.offset for layer in net.layer if layer.type == "Crop"):
        return net, []
    notes = [f"Crop layer '{check.layer}': offset {_offsets_text(check.derived)} derived (none was written)"
             for check in crop_report(net) if check.written is None and check.derived is not None]
    return fill_crop_offsets(net), notes


def _diagonal(weight: np.ndarray) -> np.ndarray | None:
    """The per-channel kernels of a C x C x K x K blob that is zero off the diagonal, else None."""
    if weight.ndim != 4 or weight.shape[0] != weight.shape[1] or weight.shape[0] < 2:
        return None
    channels = np.arange(weight.shape[0])
    kernels = weight[channels, channels].copy()
    off_diagonal = weight.copy()
    off_diagonal[channels, channels] = 0
    return None if np.any(off_diagonal) else kernels[:, None]


def group_diagonal_deconvolutions(model: caffe_pb2.NetParameter) -> list[str]:
    """In a weights NetParameter (a read .caffemodel), turn each ungrouped Deconvolution whose blob is
    diagonal into the grouped equivalent, in place; returns the names of the layers changed."""
    changed = []
    for layer in model.layer:
        param = layer.convolution_param
        if layer.type != "Deconvolution" or param.group != 1 or not layer.blobs:
            continue
        kernels = _diagonal(blob_to_array(layer.blobs[0]))
        if kernels is None:
            continue
        param.group = kernels.shape[0]
        layer.blobs[0].CopyFrom(array_to_blob(kernels.astype(np.float32)))
        changed.append(layer.name)
    return changed


def set_groups(net: caffe_pb2.NetParameter, layers: list[str]) -> caffe_pb2.NetParameter:
    """A copy of `net` whose named ungrouped Deconvolutions get one group per output channel."""
    grouped = caffe_pb2.NetParameter()
    grouped.CopyFrom(net)
    for layer in grouped.layer:
        if layer.type == "Deconvolution" and layer.name in layers and layer.convolution_param.group == 1:
            layer.convolution_param.group = layer.convolution_param.num_output
    return grouped
