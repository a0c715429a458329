"""The custom-network editor's live `net check`: the shared report (caffe.netcheck) rendered as the
editor's JSON (problems with their line and column, the shape of every blob, the stride / offset
table, the Crop offsets), in the words of the page's controls.
"""
import re
from fractions import Fraction
from typing import Any

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import fill_crop_offsets, stride_table
from digitslite.caffe.netcheck import CheckOptions, check_net_text
from digitslite.caffe.sourcemap import SourceMap
from digitslite.caffe.template import NUM_CLASSES_FIELD
from digitslite.caffe.textedit import set_class_count
from digitslite.errors import UserError

SOURCE = "network"
DEFAULT_IMAGE_SHAPE = (3, 224, 224)  # C, H, W for the check until a dataset is chosen
FIX_CROPS = "press \u201cWrite the derived offsets\u201d below the check"
_PLACE = re.compile(rf"^{SOURCE}(?::(\d+))?(?::(\d+))?: ")


def _problem(message: str, exc: UserError | None = None) -> dict[str, Any]:
    """The problem with its line and column, read from the exception or from its message."""
    match = _PLACE.match(message)
    line = getattr(exc, "line", None) or (int(match[1]) if match and match[1] else None)
    column = getattr(exc, "column", None) or (int(match[2]) if match and match[2] else None)
    return {"message": message[match.end():] if match else message, "line": line, "column": column}


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else round(float(value), 4)


def _values(values: tuple | None) -> list | None:
    return None if values is None else [_number(Fraction(value)) for value in values]


def _strides(net: caffe_pb2.NetParameter, source_map: SourceMap) -> dict[str, Any]:
    try:
        table = stride_table(fill_crop_offsets(net, source_map=source_map), source_map=source_map)
    except UserError as exc:
        return {"rows": [], "crop_offset": None, "note": _problem(str(exc))["message"]}
    rows = [{"layer": row.layer, "type": row.type, "stride": _values(row.stride), "pad": _values(row.pad),
             "kernel": _values(row.kernel), "scale": _values(row.scale),
             "cumulative_scale": _values(row.cumulative_scale), "offset": _values(row.offset),
             "cumulative_offset": _values(row.cumulative_offset)} for row in table.rows]
    return {"rows": rows, "crop_offset": table.crop_offset, "note": None}


def _options(num_classes: int, dataset: dict[str, Any] | None) -> CheckOptions:
    """The check in the page's words: without a dataset, a default image shape and `num_classes`."""
    dataset = dataset or {}
    image_shape = tuple(dataset["shape"]) if dataset.get("shape") else DEFAULT_IMAGE_SHAPE
    return CheckOptions(phase="train", image_shape=image_shape, num_classes=dataset.get("classes"),
                        fill_classes=num_classes, ignore_label=dataset.get("ignore"),
                        ask_classes="choose a dataset", ask_shape="choose a dataset", fix_crops=FIX_CROPS,
                        fills_missing_crops=True)


def check_network(text: str, num_classes: int, dataset: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the editor shows for the TRAIN net. `error` is the first problem (None when it builds
    and fits the dataset); each part is filled when it could be worked out, so a wrong Crop offset
    still shows its fix. Without a dataset, data layers read DEFAULT_IMAGE_SHAPE images and the net
    is checked with `num_classes` classes, and nothing is compared with a dataset."""
    options = _options(num_classes, dataset)
    report = check_net_text(text, SOURCE, options)
    return {
        "error": _problem(str(report.error), report.error) if report.error is not None else None,
        "warnings": [_problem(warning) for warning in report.warnings],
        "notes": report.notes, "class_fixes": report.class_fixes, "dataset_classes": options.num_classes,
        "layers": report.layers,
        "blobs": [{"name": name, "shape": list(shape)} for name, shape in report.blobs.items()],
        "crops": [{"layer": check.layer, "written": check.written, "derived": check.derived, "ok": check.ok,
                   "note": check.note} for check in report.crops],
        "strides": _strides(report.net, report.source_map) if report.net is not None else None,
        "image_shape": list(options.image_shape), "from_dataset": bool((dataset or {}).get("shape")),
    }


def fix_classes(text: str, num_classes: int, dataset: dict[str, Any] | None, to_template: bool) -> str:
    """The text with every classifier layer the check flags scoring the dataset's classes: the count
    written in, or {{num_classes}} (which each dataset fills)."""
    options = _options(num_classes, dataset)
    report = check_net_text(text, SOURCE, options)
    if not report.class_fixes:
        return text
    value = NUM_CLASSES_FIELD if to_template else str(options.num_classes)
    return set_class_count(text, SOURCE, report.class_fixes, report.scored_classes, value, num_classes)
