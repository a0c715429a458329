"""The one `net check`, for `digitslite net check|shapes` and the custom-network editor alike: the
net as Caffe builds it for a phase, its blob shapes, its Crop offsets against the coordinate map,
and, given a dataset, its class count and ignore value against the dataset's.

A net Caffe runs is never refused: a Crop the coordinate map gives no whole offset for is a
warning, and a net whose data layers read their images at run time is checked with the dataset's
image shape, the shape of a readable data source, or else for its structure only (with a note).
DIGITS' own networks check as DIGITS completes them (digitsnet). Each interface passes its own
words for the fixes (a CLI flag, a form control).
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import CropCheck, crop_report
from digitslite.caffe.digitsnet import (
    complete_digits_net,
    digits_stages,
    supplied_inputs,
    unset_class_outputs,
)
from digitslite.caffe.layers import LAYER_TYPES
from digitslite.caffe.prototxt import check_topology, filter_net, parse_net_located
from digitslite.caffe.pythonlayers import check_python_layers
from digitslite.caffe.shapes import Shape, blob_shapes, input_tops, is_source, refuse_unknown_types
from digitslite.caffe.sourcemap import SourceMap, tokenize
from digitslite.caffe.template import NUM_CLASSES_FIELD, fill_template
from digitslite.errors import UserError

PLACEHOLDER_CLASSES = 2     # the class count a check uses while the dataset's is unknown


@dataclass(frozen=True)
class CheckOptions:
    """What the caller knows besides the text, and its words for the fixes."""

    phase: str = "train"
    stages: tuple[str, ...] = ()
    input_shapes: Sequence[tuple[str | None, Sequence[int]]] = ()   # (blob or None: the first input, dims)
    image_shape: tuple[int, ...] | None = None      # C, H, W of the dataset's images
    num_classes: int | None = None                  # the dataset's class count, checked against the net
    fill_classes: int | None = None                 # without a dataset: the count {{num_classes}} reads as
    ignore_label: int | None = None                 # the dataset's ignore value
    record_shape: Callable[[str], Shape | None] | None = None   # C, H, W of a data source's records
    ask_classes: str = "give the dataset's class count"
    ask_shape: str = "give the input shape"
    fix_crops: str = "write the derived offset"
    fills_missing_crops: bool = False   # the net trains with missing Crop offsets derived (model jobs)


@dataclass
class NetReport:
    """Everything one check found. `error` is the first problem (the net does not build, or trains
    wrongly); each other part is filled as far as it could be worked out."""

    source: str
    state: str
    error: UserError | None = None
    layers: int = 0
    blobs: dict[str, Shape] = field(default_factory=dict)
    supplied: list[str] = field(default_factory=list)    # inputs DIGITS would supply (data, label)
    crops: list[CropCheck] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    class_fixes: list[str] = field(default_factory=list)   # layers whose num_output should be the class count
    scored_classes: int | None = None                    # the count they score instead
    filled_outputs: list[str] = field(default_factory=list)  # InnerProducts DIGITS gives the class count
    net: caffe_pb2.NetParameter | None = None            # the filtered, completed net
    source_map: SourceMap | None = None

    @property
    def digits_style(self) -> bool:
        return bool(self.supplied or self.filled_outputs)


def _state(phase: str, stages: tuple[str, ...]) -> str:
    return phase + "".join(f", stage {stage}" for stage in stages)


def outputs(net: caffe_pb2.NetParameter) -> list[str]:
    """Blobs still available after the last layer, as Caffe lists the net's outputs."""
    available: set[str] = set()
    for layer in net.layer:
        available.difference_update(layer.bottom)
        available.update(layer.top)
    return sorted(available)


def _given(net: caffe_pb2.NetParameter, options: CheckOptions, source: str) -> dict[str, Sequence[int]]:
    inputs = input_tops(net)
    shapes = {}
    for name, dims in options.input_shapes:
        if name is None:
            if not inputs:
                raise UserError(f"{source}: the net has no Input or data layer to give an input shape to")
            name = inputs[0]
        shapes[name] = dims
    return shapes


def _input_shapes(net: caffe_pb2.NetParameter, options: CheckOptions, report: NetReport) -> dict | None:
    """The shapes to infer from: the caller's, the dataset's image shape for the first data top, or
    a readable data source's record shape; None when a data layer's shape cannot be known."""
    given = _given(net, options, report.source)
    first = next((layer for layer in net.layer if is_source(layer) and layer.type != "Input"), None)
    if first is None or not first.top or any(top in given for top in first.top):
        return given
    if options.image_shape is not None:
        return given | {first.top[0]: tuple(options.image_shape)}
    source = first.data_param.source or first.image_data_param.source
    record = options.record_shape(source) if source and options.record_shape else None
    if record is not None:
        shown = "x".join(map(str, record))
        report.notes.append(f"input '{first.top[0]}' has the {shown} records of {source}")
        return given | {first.top[0]: tuple(record)}
    report.notes.append(f"shapes not checked: layer '{first.name}' ({first.type}) reads its images when it "
                        f"runs; {options.ask_shape}")
    return None


def _params(layer: caffe_pb2.LayerParameter) -> list:
    """The parameter messages the layer's record reads."""
    record = LAYER_TYPES.get(layer.type)
    return [getattr(layer, name) for name in (record.params if record is not None else ())]


def _num_output_param(layer: caffe_pb2.LayerParameter):
    """The message holding the layer's num_output (convolution_param, inner_product_param), or None."""
    return next((param for param in _params(layer) if "num_output" in param.DESCRIPTOR.fields_by_name), None)


def _label_comparison(layer: caffe_pb2.LayerParameter) -> tuple[int, object] | None:
    """(class axis, message with ignore_label) of a layer that scores classes against labels: one
    reading accuracy_param, or softmax_param with loss_param (SoftmaxWithLoss); None for others."""
    names = LAYER_TYPES[layer.type].params if layer.type in LAYER_TYPES else ()
    if "accuracy_param" in names:
        return layer.accuracy_param.axis, layer.accuracy_param
    if "softmax_param" in names and "loss_param" in names:
        return layer.softmax_param.axis, layer.loss_param
    return None


def _producers(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    found = {}
    for layer in net.layer:
        for top in layer.top:
            found.setdefault(top, layer)
    return found


def _classifier_chain(net: caffe_pb2.NetParameter, blobs: dict[str, Shape], score: str,
                      count: int) -> list[str]:
    """The layers with num_output `count` whose outputs reach `score` through blobs of `count` channels."""
    producers, seen, chain, todo = _producers(net), set(), [], [score]
    while todo:
        blob = todo.pop()
        layer = producers.get(blob)
        if layer is None or layer.name in seen or len(blobs.get(blob, ())) < 2 or blobs[blob][1] != count:
            continue
        seen.add(layer.name)
        param = _num_output_param(layer)
        if param is not None:
            chain.append(layer.name)
            if param.num_output != count:
                continue
        todo.extend(layer.bottom)
    return sorted(chain, key=[layer.name for layer in net.layer].index)


def _check_classes(report: NetReport, options: CheckOptions) -> None:
    """Every per-pixel classifier scores the dataset's classes; losses ignore the dataset's void value."""
    net, where = report.net, report.source_map
    for layer in net.layer:
        comparison = _label_comparison(layer)
        if comparison is None or not layer.bottom:
            continue
        (axis, labels), shape = comparison, report.blobs.get(layer.bottom[0], ())
        scored = shape[axis] if len(shape) > axis else None
        if options.num_classes is not None and scored is not None and scored != options.num_classes:
            report.class_fixes = _classifier_chain(net, report.blobs, layer.bottom[0], scored)
            report.scored_classes = scored
            layers = (", ".join(f"'{name}'" for name in report.class_fixes)
                      or f"the layer making '{layer.bottom[0]}'")
            grouped = any(getattr(_num_output_param(other), "group", 0) == scored
                          for other in net.layer if other.name in report.class_fixes)
            group = f" (and group, where it is {scored})" if grouped else ""
            raise UserError(f"{where.where(layer.name)}: layer '{layer.name}' ({layer.type}) gets scores for "
                            f"{scored} classes but the dataset has {options.num_classes}: set "
                            f"num_output{group} of {layers} to {options.num_classes}, or write "
                            f"{NUM_CLASSES_FIELD} there")
        ignore, has_ignore = labels.ignore_label, labels.HasField("ignore_label")
        if options.ignore_label is None:
            continue
        if has_ignore and ignore != options.ignore_label:
            raise UserError(f"{where.where(layer.name)}: layer '{layer.name}' ({layer.type}) ignores label "
                            f"{ignore} but the dataset marks void pixels with {options.ignore_label}: set "
                            f"ignore_label: {options.ignore_label}")
        if not has_ignore:
            report.warnings.append(f"{where.where(layer.name)}: layer '{layer.name}' ({layer.type}) ignores "
                                   "no label, but the dataset marks void pixels with "
                                   f"{options.ignore_label}: add ignore_label: {options.ignore_label} if the "
                                   "dataset has void pixels")


def _check_crops(report: NetReport, options: CheckOptions) -> None:
    report.crops = crop_report(report.net, report.source_map)
    for crop in report.crops:
        where = report.source_map.where(crop.layer)
        if crop.derived is None:
            written = ",".join(map(str, crop.written)) if crop.written else "0 (the default)"
            report.warnings.append(f"{where}: layer '{crop.layer}' (Crop) crops at offset {written}, as "
                                   "Caffe does; the coordinate map gives no whole offset to compare: "
                                   f"{crop.note}")
        elif not crop.ok and not (crop.written is None and options.fills_missing_crops):
            written = ",".join(map(str, crop.written)) if crop.written is not None else "none (read as 0)"
            raise UserError(f"{where}: layer '{crop.layer}' (Crop) has offset {written} but the coordinate "
                            f"map gives {','.join(map(str, crop.derived))}; {options.fix_crops}")


def _build(text: str, source: str, options: CheckOptions, report: NetReport) -> None:
    """Parse, complete as DIGITS does, filter for the phase, and check what Caffe checks on setup."""
    count = options.num_classes or options.fill_classes
    net, source_map = parse_net_located(fill_template(text, count, source, options.ask_classes), source)
    report.source_map = source_map
    stages = digits_stages(net, options.phase, options.stages)
    report.state = _state(options.phase, stages)
    report.filled_outputs = unset_class_outputs(net)
    if report.filled_outputs:
        shown = ("the dataset's" if options.num_classes
                 else f"{count or PLACEHOLDER_CLASSES} classes for now ({options.ask_classes})")
        report.notes.append(f"num_output of {', '.join(report.filled_outputs)} is the class count, as DIGITS "
                            f"fills it: checked with {shown}")
    built = filter_net(net, phase=options.phase, stages=stages, source_map=source_map)
    report.supplied = supplied_inputs(built)
    if report.supplied:
        report.notes.append(f"a DIGITS-style network: DIGITS supplies {' and '.join(report.supplied)} from "
                            "the dataset")
    report.net = filter_net(complete_digits_net(net, count or PLACEHOLDER_CLASSES),
                            phase=options.phase, stages=stages, source_map=source_map)
    check_python_layers(report.net, source_map)
    check_topology(report.net, source_map)
    report.layers = len(report.net.layer)
    report.outputs = outputs(report.net)
    refuse_unknown_types(report.net, source_map)


def check_net_text(text: str, source: str, options: CheckOptions = CheckOptions()) -> NetReport:
    """Check a network's prototxt text; see the module docstring."""
    report = NetReport(source=source, state=options.phase)
    try:
        _build(text, source, options, report)
        given = _input_shapes(report.net, options, report)
        if given is not None:
            report.blobs = blob_shapes(report.net, given, report.source_map)
            _check_classes(report, options)
    except UserError as exc:
        report.error = exc
    if report.net is None:
        return report
    try:  # shown even when the net has another problem: a wrong offset still shows its fix
        _check_crops(report, options)
    except UserError as exc:
        report.error = report.error or exc
    return report


def is_solver_text(text: str) -> bool:
    """Whether prototxt text is a SolverParameter: a top-level field only a solver has."""
    solver_only = set(caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name) - set(
        caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name)
    depth, tokens = 0, tokenize(text)
    for index, token in enumerate(tokens):
        depth += {"{": 1, "}": -1}.get(token.text, 0)
        follows = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if depth == 0 and token.kind == "word" and follows in (":", "{"):
            if token.text in solver_only:
                return True
            if token.text in ("layer", "layers"):
                return False
    return False
