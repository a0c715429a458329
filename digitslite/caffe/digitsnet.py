"""DIGITS' conventions for the networks it completes, so that its own files check and train here.

- The training net is built with stage "train" and the validation net with stage "val" (DIGITS'
  standard networks include their Data layers by stage, not by phase).
- A network without data layers whose layers read `data` (and `label`) gets them from DIGITS:
  one Data layer per input and phase, fed from the dataset.
- An InnerProduct layer without num_output gets the dataset's class count, as DIGITS writes in the
  comments of its standard networks.
"""
from digitslite.caffe import caffe_pb2
from digitslite.caffe.shapes import is_source

STAGE_OF_PHASE = {"train": "train", "test": "val"}
PHASE_OF_STAGE = {"train": caffe_pb2.TRAIN, "val": caffe_pb2.TEST}
SUPPLIED_INPUTS = ("data", "label")


def digits_stages(net: caffe_pb2.NetParameter, phase: str, stages: tuple[str, ...]) -> tuple[str, ...]:
    """The stages a net is built with: the caller's, else DIGITS' stage for the phase when the net's
    rules name DIGITS' stages."""
    rules = [rule for layer in net.layer for rule in (*layer.include, *layer.exclude)]
    uses = any(stage in PHASE_OF_STAGE for rule in rules for stage in (*rule.stage, *rule.not_stage))
    return stages or ((STAGE_OF_PHASE[phase],) if uses else ())


def supplied_inputs(net: caffe_pb2.NetParameter) -> list[str]:
    """The blobs DIGITS feeds this net: data (and label) when no layer of it is a data source."""
    if any(is_source(layer) for layer in net.layer) or net.input:
        return []
    produced = {top for layer in net.layer for top in layer.top}
    read = {bottom for layer in net.layer for bottom in layer.bottom}
    return [name for name in SUPPLIED_INPUTS if name in read and name not in produced]


def unset_class_outputs(net: caffe_pb2.NetParameter) -> list[str]:
    """InnerProduct layers whose num_output DIGITS fills with the class count."""
    return [layer.name for layer in net.layer
            if layer.type == "InnerProduct" and not layer.inner_product_param.HasField("num_output")]


def complete_digits_net(net: caffe_pb2.NetParameter, num_classes: int) -> caffe_pb2.NetParameter:
    """A copy with DIGITS' additions: the class count in unset InnerProduct outputs, and Data layers
    (TRAIN and TEST, sources left for the dataset) for the inputs DIGITS supplies."""
    completed = caffe_pb2.NetParameter()
    completed.CopyFrom(net)
    for layer in completed.layer:
        if layer.name in unset_class_outputs(net):
            layer.inner_product_param.num_output = num_classes
    inputs = supplied_inputs(net)
    if inputs:
        layers = list(completed.layer)
        del completed.layer[:]
        for phase, stage in ((caffe_pb2.TRAIN, "train"), (caffe_pb2.TEST, "val")):
            for top in inputs:   # one layer per LMDB, as DIGITS' segmentation networks read images and labels
                data = completed.layer.add(name=f"{stage}-{top}", type="Data", top=[top])
                data.include.add(phase=phase)
                data.data_param.batch_size = 1
        completed.layer.extend(layers)
    return completed


def data_layer_phase(layer: caffe_pb2.LayerParameter) -> int | None:
    """The one phase a Data layer is included in, by phase or by DIGITS' train/val stage; None if unclear."""
    phases = {rule.phase for rule in layer.include if rule.HasField("phase")}
    stages = {stage for rule in layer.include for stage in rule.stage}
    phases |= {PHASE_OF_STAGE[stage] for stage in stages if stage in PHASE_OF_STAGE}
    return phases.pop() if len(phases) == 1 else None
