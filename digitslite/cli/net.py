"""`digitslite net`: look at a network file as Caffe would build it, before training on it.

`shapes` prints every blob's shape, `partition` the stages of a pipeline cut, `table` the stride /
scale / offset table of DIGITS' segmentation post, `crops` the Crop offsets as written against
those derived from the geometry (and writes a corrected copy, comments kept), and `check` runs all
of it (or checks a solver file and the nets it names) and ends with a one-line verdict. All of
them are the shared check of caffe.netcheck in the CLI's words; --classes or --dataset fill
{{num_classes}}, and --dataset also gives the image shape and the values the net must agree with.
"""
from fractions import Fraction
from pathlib import Path

import click

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import CropCheck, StrideRow, stride_table
from digitslite.caffe.netcheck import CheckOptions, NetReport, check_net_text, is_solver_text
from digitslite.caffe.partition import BALANCES, Stage, partition
from digitslite.caffe.prototxt import net_to_text, parse_net_located, parse_solver, read_net
from digitslite.caffe.shapes import Shape, input_tops
from digitslite.caffe.sourcemap import SourceMap
from digitslite.caffe.template import NUM_CLASSES_FIELD, fill_template
from digitslite.caffe.textedit import fix_crop_offsets
from digitslite.cli._dataset import DatasetJson
from digitslite.cli._options import InputShapes, input_shape_option
from digitslite.cli._output import emit_json
from digitslite.errors import UserError
from digitslite.fileio import write_atomically
from digitslite.layout import DatasetFiles

NetFile = click.Path(exists=True, dir_okay=False, path_type=Path)
ASK_CLASSES = "pass --classes N or --dataset DIR"


_phase = click.option("--phase", type=click.Choice(["train", "test"]), default="test", show_default=True,
                      help="Keep the layers of this phase.")
_stage = click.option("--stage", "stages", multiple=True, metavar="S",
                      help="A stage of the net state, e.g. val or deploy (repeatable; default: DIGITS' "
                           "stage of the phase, train or val, when the net uses them).")
_input_shape = input_shape_option(
    "Shape of an input blob; without BLOB= the net's first input. Data layers also take C,H,W "
    "(N from batch_size; crop_size applies) (repeatable).")
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_classes = click.option("--classes", type=click.IntRange(min=1), metavar="N",
                        help="The class count for {{num_classes}} and for unset DIGITS outputs.")
_dataset = click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        metavar="DIR", help="A dataset folder: its class count, image shape and ignore value "
                        "(dataset.json) are checked against the net.")


def _shape_options(command):
    """The options of every command that builds the net's shapes: phase, stages, input shapes, the
    class count or dataset that fills a template, and --json."""
    for option in reversed((_phase, _stage, _input_shape, _classes, _dataset, _as_json)):
        command = option(command)
    return command


@click.group(name="net")
def command() -> None:
    """Inspect and check Caffe network files (prototxt)."""


def _read_text(path: Path) -> str:
    """The file's prototxt text; a binary NetParameter (a .caffemodel) as text without its weights, so
    places in messages count lines of that text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        net = read_net(path)
        for layer in net.layer:
            del layer.blobs[:]
        return net_to_text(net)


def _dataset_options(dataset: Path | None, classes: int | None) -> dict:
    """The check options a dataset folder (dataset.json) gives; --classes wins over its class count."""
    if dataset is None:
        return {"num_classes": classes}
    dataset_json = DatasetJson.read(dataset)
    count, _ = dataset_json.labels()
    info = dataset_json.info
    size = ((info.get("image_size") or {}).get("train") or {}).get("max")
    first_image = DatasetFiles(dataset).db("train", "features")
    shape = (info.get("channels", 3), size[1], size[0]) if size else _record_shape(str(first_image))
    return {"num_classes": classes or count, "image_shape": shape, "ignore_label": info.get("ignore_label")}


def _record_shape(source: str) -> Shape | None:
    """C, H, W of the first record of an LMDB data source, if it can be read from here."""
    from digitslite.datasets.reader import first_record_shape  # only when a net names a source

    return first_record_shape(Path(source).expanduser())


def _report(path: Path, phase: str, stages: tuple[str, ...], input_shapes: InputShapes,
            dataset: Path | None, classes: int | None, text: str | None = None,
            source: str | None = None) -> NetReport:
    """The shared check of FILE (or of `text`, a net held in it) in the CLI's words. A template (with
    {{num_classes}}) is trained by digitslite, which derives missing Crop offsets, as for
    network_defs/; any other net crops as Caffe does."""
    text = _read_text(path) if text is None else text
    options = CheckOptions(phase=phase, stages=stages, input_shapes=input_shapes, record_shape=_record_shape,
                           ask_classes=ASK_CLASSES,
                           ask_shape="pass --input-shape [BLOB=]C,H,W or --dataset DIR",
                           fix_crops="write the derived offset, or run: digitslite net crops "
                                     f"{path} --fix -o OUT",
                           fills_missing_crops=NUM_CLASSES_FIELD in text,
                           **_dataset_options(dataset, classes))
    return check_net_text(text, source or str(path), options)


def _parsed(path: Path, classes: int | None) -> tuple[caffe_pb2.NetParameter, SourceMap]:
    """The unfiltered net, its template fields filled with --classes."""
    return parse_net_located(fill_template(_read_text(path), classes, str(path), ASK_CLASSES), str(path))


def _shape_text(shape: Shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


@command.command()
@click.argument("file", type=NetFile)
@_shape_options
def shapes(file: Path, phase: str, stages: tuple[str, ...], input_shapes: InputShapes,
           classes: int | None, dataset: Path | None, as_json: bool) -> None:
    """Print the shape of every blob of FILE."""
    report = _report(file, phase, stages, input_shapes, dataset, classes)
    if not report.blobs:
        if report.error is not None:
            raise report.error
        raise UserError(f"{file}: {report.notes[-1]}")
    if as_json:
        emit_json({"blobs": {name: list(shape) for name, shape in report.blobs.items()}})
        return
    width = max((len(name) for name in report.blobs), default=0)
    for name, shape in report.blobs.items():
        click.echo(f"{name:<{width}}  {_shape_text(shape)}")


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def _per_axis(values, convert):
    """A single value as itself, one value per spatial axis as a list."""
    if values is None:
        return None
    converted = [convert(value) for value in values]
    return converted[0] if len(converted) == 1 else converted


def _row_dict(row: StrideRow) -> dict:
    return {"layer": row.layer, "type": row.type, "stride": _per_axis(row.stride, int),
            "pad": _per_axis(row.pad, int), "kernel": _per_axis(row.kernel, int),
            "scale": _per_axis(row.scale, str), "cumulative_scale": _per_axis(row.cumulative_scale, str),
            "offset": _per_axis(row.offset, _number),
            "cumulative_offset": _per_axis(row.cumulative_offset, _number)}


def _cell(value) -> str:
    if value is None:
        return "-"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@command.command()
@click.argument("file", type=NetFile)
@click.option("--from", "from_blob", metavar="BLOB", help="Start of the path (default: the last Crop's "
              "size reference, or the first input).")
@click.option("--to", "to_blob", metavar="BLOB", help="End of the path (default: the blob the last Crop "
              "crops).")
@_classes
@_dataset
@_as_json
def table(file: Path, from_blob: str | None, to_blob: str | None, classes: int | None, dataset: Path | None,
          as_json: bool) -> None:
    """Print stride, pad, kernel, scale and offset of each layer between two blobs of FILE.

    The cumulative offset of the first row is the Crop offset that aligns the two blobs: each
    layer's offset is divided by its cumulative scale and summed from the output back to the input.
    """
    net, source_map = _parsed(file, _dataset_options(dataset, classes)["num_classes"])
    found = stride_table(net, from_blob, to_blob, source_map)
    rows = [_row_dict(row) for row in found.rows]
    crop_offset = _per_axis(found.crop_offset, int)
    if as_json:
        emit_json({"rows": rows, "crop_offset": crop_offset})
        return
    columns = list(rows[0]) if rows else []
    cells = [[_cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(text) for text in (column, *(line[i] for line in cells))) for i, column in
              enumerate(columns)]
    for line in [columns, *cells]:
        click.echo("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())
    click.echo(f"crop offset: {_cell(crop_offset)}" if crop_offset is not None
               else "crop offset: none (the path does not end at scale 1 with a whole offset)")


def _check_dict(check: CropCheck) -> dict:
    return {"layer": check.layer, "written": check.written, "derived": check.derived, "ok": check.ok,
            **({"note": check.note} if check.note else {})}


def _verdict(check: CropCheck) -> str:
    if check.derived is None:
        return "no whole offset derivable: Caffe crops as written"
    return "ok" if check.ok else "missing" if check.written is None else "WRONG"


@command.command()
@click.argument("file", type=NetFile)
@click.option("--fix", is_flag=True, help="Write a copy with missing and wrong offsets replaced (needs -o); "
              "comments and layout are kept.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --fix writes the corrected net.")
@_classes
@_dataset
@_as_json
def crops(file: Path, fix: bool, output: Path | None, classes: int | None, dataset: Path | None,
          as_json: bool) -> None:
    """Compare each Crop offset written in FILE with the one the coordinate map derives."""
    if fix != (output is not None):
        raise click.UsageError("--fix and -o OUT go together")
    report = _report(file, "train", (), (), dataset, classes)
    if report.net is None:
        raise report.error
    checks = report.crops
    if fix:
        count = _dataset_options(dataset, classes)["num_classes"]
        text, changed = fix_crop_offsets(_read_text(file), str(file), count)
        write_atomically(output, text.encode("utf-8"))
    if as_json:
        emit_json({"crops": [_check_dict(check) for check in checks]})
        return
    width = max((len(check.layer) for check in checks), default=0)
    for check in checks:
        click.echo(f"{check.layer:<{width}}  written {_cell(check.written)}  derived "
                   f"{_cell(check.derived)}  {_verdict(check)}")
    if fix:
        click.echo(f"wrote {output} ({changed} offset(s) filled or corrected)")


def _solver_nets(file: Path, solver: caffe_pb2.SolverParameter) -> list[tuple[str, str | None, str]]:
    """(name, prototxt text or None when the file is not found, phase) of each net the solver names
    (relative paths from here, as Caffe opens them, else beside the solver) or holds."""
    named = [(solver.net, "train"), (solver.net, "test")] if solver.net else []
    named += [(solver.train_net, "train")] if solver.train_net else []
    named += [(name, "test") for name in solver.test_net]
    nets = []
    for name, phase in named:
        found = next((path for path in (Path(name), file.parent / name) if path.is_file()), None)
        nets.append((str(found or name), _read_text(found) if found else None, phase))
    held = [("net_param", solver.net_param, phase) for phase in ("train", "test")
            if solver.HasField("net_param")]
    if solver.HasField("train_net_param"):
        held.append(("train_net_param", solver.train_net_param, "train"))
    held += [(f"test_net_param {index + 1}", net, "test") for index, net in enumerate(solver.test_net_param)]
    return nets + [(f"{file} {label}", net_to_text(net), phase) for label, net, phase in held]


def _check_solver_file(file: Path, text: str) -> None:
    """A solver file: every field's range, then each net it names or holds that can be found."""
    from digitslite.engine.solver import check_solver  # torch only for solver files

    solver = parse_solver(text, str(file))
    check_solver(solver, str(file))
    checked, missing = [], []
    for name, net_text, phase in _solver_nets(file, solver):
        if net_text is None:
            if name not in missing:
                click.echo(f"note: {file}: its net '{name}' is not found here or beside it; its fields alone "
                           "were checked", err=True)
            missing.append(name)
            continue
        report = _report(file, phase, (), (), None, None, text=net_text, source=name)
        if report.error is not None:
            raise report.error
        _print_notes(report)
        checked.append(f"{name} ({report.state}) {report.layers} layers")
    nets = f"; nets: {', '.join(checked)}" if checked else ""
    click.echo(f"OK: {file}: solver {solver.type or 'SGD'}, lr_policy {solver.lr_policy or 'none'}, "
               f"max_iter {solver.max_iter}{nets}")


def _blob_text(report: NetReport, name: str) -> str:
    return f"{name} {_shape_text(report.blobs[name])}" if name in report.blobs else name


def _print_notes(report: NetReport) -> None:
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in report.notes:
        click.echo(f"note: {report.source}: {line}", err=True)


@command.command()
@click.argument("file", type=NetFile)
@_shape_options
def check(file: Path, phase: str, stages: tuple[str, ...], input_shapes: InputShapes,
          classes: int | None, dataset: Path | None, as_json: bool) -> None:
    """Parse, upgrade, filter and check FILE (a network or a solver): topology, shapes, Crop offsets and,
    with --dataset or --classes, the class count and ignore value; exit 1 on a problem."""
    text = _read_text(file)
    if is_solver_text(text):
        _check_solver_file(file, text)
        return
    report = _report(file, phase, stages, input_shapes, dataset, classes)
    if report.error is not None:
        raise report.error
    if as_json:
        emit_json({"state": report.state, "digits_style": report.digits_style, "layers": report.layers,
                   "inputs": input_tops(report.net), "outputs": report.outputs,
                   "blobs": {name: list(shape) for name, shape in report.blobs.items()},
                   "crops": [_check_dict(crop) for crop in report.crops],
                   "warnings": report.warnings, "notes": report.notes})
        return
    _print_notes(report)
    underived = sum(check.derived is None for check in report.crops)
    derived = sum(check.written is None and check.derived is not None for check in report.crops)
    matched = len(report.crops) - underived - derived
    counts = [(matched, "match the coordinate map"),
              (derived, "derived from the coordinate map when it trains"),
              (underived, "cannot be derived (warning)")]
    crop_text = (", ".join(f"{count} Crop offset(s) {what}" for count, what in counts if count)
                 or "no Crop layers")
    blob_text = f"{len(report.blobs)} blobs" if report.blobs else "structure only (shapes not checked)"
    kind = "DIGITS-style network, " if report.digits_style else ""
    supplied = ", ".join(_blob_text(report, name) for name in input_tops(report.net))
    inputs = f"; DIGITS supplies: {supplied}" if report.digits_style else ""
    shown = ", ".join(_blob_text(report, name) for name in report.outputs)
    click.echo(f"OK: {file}: {kind}{report.layers} layers ({report.state}), {blob_text}, {crop_text}"
               f"{inputs}; outputs: {shown or 'none'}")


def _stage_dict(stage: Stage) -> dict:
    return {"stage": stage.index, "layers": stage.layers, "parameters": stage.parameters,
            "flops": stage.flops, "activation_bytes": stage.activation_bytes, "receives": stage.receives,
            "sends": stage.sends, "send_bytes": stage.send_bytes, "inputs": stage.inputs}


@command.command(name="partition")
@click.argument("file", type=NetFile)
@click.option("--stages", "stage_count", type=click.IntRange(min=1), help="Number of pipeline stages, "
              "balanced by cost (default: one more than the cuts given).")
@click.option("--pipeline-cuts", "cuts", metavar="BLOB,BLOB",
              help="Cut after these blobs instead (e.g. pool2,pool4), as train --pipeline-cuts does.")
@click.option("--balance", type=click.Choice(BALANCES), default="flops", show_default=True,
              help="What the stages are balanced by.")
@_shape_options
def partition_command(file: Path, stage_count: int | None, cuts: str | None, balance: str, phase: str,
                      stages: tuple[str, ...], input_shapes: InputShapes, classes: int | None,
                      dataset: Path | None, as_json: bool) -> None:
    """Cut FILE into pipeline stages: each stage's layers, parameters, FLOPs and activation memory."""
    if stage_count is None and not cuts:
        raise click.UsageError("give --stages K or --pipeline-cuts BLOB,BLOB")
    report = _report(file, phase, stages, input_shapes, dataset, classes)
    if report.error is not None:
        raise report.error
    if not report.blobs:
        raise UserError(f"{file}: {report.notes[-1]}")
    names = [name.strip() for name in cuts.split(",") if name.strip()] if cuts else []
    given = {top: report.blobs[top] for top in input_tops(report.net)}
    found = partition(report.net, stage_count, cuts=names, balance=balance, input_shapes=given,
                      source_map=report.source_map)
    if as_json:
        emit_json({"cuts": [stage.sends for stage in found.stages[:-1]],
                   "stages": [_stage_dict(stage) for stage in found.stages]})
        return
    mib = 2 ** 20
    click.echo(f"{'stage':<6} {'layers':<28} {'count':>5} {'params':>12} {'GFLOPs':>9} "
               f"{'act. MiB':>9}  sends")
    for stage in found.stages:
        span = f"{stage.layers[0]} .. {stage.layers[-1]}" if stage.layers else "-"
        click.echo(f"{stage.index:<6} {span:<28} {len(stage.layers):>5} {stage.parameters:>12,} "
                   f"{stage.flops / 1e9:>9.2f} {stage.activation_bytes / mib:>9.1f}  "
                   f"{', '.join(stage.sends) or '-'}"
                   f"{f' ({stage.send_bytes / mib:.1f} MiB)' if stage.sends else ''}")
    read = list(dict.fromkeys(name for stage in found.stages for name in stage.inputs))
    if read:
        click.echo(f"Each stage reads the net inputs it needs ({', '.join(read)}) from its own batch.")
