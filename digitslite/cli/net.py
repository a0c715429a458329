"""`digitslite net`: look at a network file as Caffe would build it, before training on it.

`shapes` prints every blob's shape, `partition` the stages of a pipeline cut, `table` the stride /
scale / offset table of DIGITS' segmentation post, `crops` the Crop offsets as written against
those derived from the geometry (and writes a corrected copy), and `check` runs all of it and
ends with a one-line verdict.
"""
from fractions import Fraction
from pathlib import Path

import click

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import CropCheck, StrideRow, crop_report, fill_crop_offsets, stride_table
from digitslite.caffe.partition import BALANCES, Stage, partition
from digitslite.caffe.prototxt import SourceMap, check_topology, filter_net, read_net_located, write_net
from digitslite.caffe.shapes import Shape, blob_shapes, input_tops
from digitslite.cli._options import input_shape_option
from digitslite.cli._output import emit_json
from digitslite.errors import UserError

NetFile = click.Path(exists=True, dir_okay=False, path_type=Path)


_phase = click.option("--phase", type=click.Choice(["train", "test"]), default="test", show_default=True,
                      help="Keep the layers of this phase.")
_stage = click.option("--stage", "stages", multiple=True, metavar="S",
                      help="A stage of the net state, e.g. val or deploy (repeatable).")
_input_shape = input_shape_option(
    "Shape of an input blob; without BLOB= the net's first input. Data layers also take C,H,W "
    "(N from batch_size; crop_size applies) (repeatable).")
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group(name="net")
def command() -> None:
    """Inspect and check Caffe network files (prototxt)."""


def _filtered(path: Path, phase: str, stages: tuple[str, ...]) -> tuple[caffe_pb2.NetParameter, SourceMap]:
    """The net as Caffe would build it for this phase and stages, topology checked."""
    net, source_map = read_net_located(path)
    filtered = filter_net(net, phase=phase, stages=stages, source_map=source_map)
    check_topology(filtered, source_map)
    return filtered, source_map


def _inputs(net: caffe_pb2.NetParameter, given: list[tuple[str | None, list[int]]],
            path: Path) -> dict[str, list[int]]:
    inputs = input_tops(net)
    shapes = {}
    for name, dims in given:
        if name is None:
            if not inputs:
                raise UserError(f"{path}: the net has no Input or data layer to give --input-shape to")
            name = inputs[0]
        shapes[name] = dims
    return shapes


def _shape_text(shape: Shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


@command.command()
@click.argument("file", type=NetFile)
@_phase
@_stage
@_input_shape
@_as_json
def shapes(file: Path, phase: str, stages: tuple[str, ...], input_shapes, as_json: bool) -> None:
    """Print the shape of every blob of FILE."""
    net, source_map = _filtered(file, phase, stages)
    found = blob_shapes(net, _inputs(net, input_shapes, file), source_map)
    if as_json:
        emit_json({"blobs": {name: list(shape) for name, shape in found.items()}})
        return
    width = max((len(name) for name in found), default=0)
    for name, shape in found.items():
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
@_as_json
def table(file: Path, from_blob: str | None, to_blob: str | None, as_json: bool) -> None:
    """Print stride, pad, kernel, scale and offset of each layer between two blobs of FILE.

    The cumulative offset of the first row is the Crop offset that aligns the two blobs.
    """
    net, source_map = read_net_located(file)
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
    return {"layer": check.layer, "written": check.written, "derived": check.derived, "ok": check.ok}


@command.command()
@click.argument("file", type=NetFile)
@click.option("--fix", is_flag=True, help="Write a copy with missing and wrong offsets replaced (needs -o).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --fix writes the corrected net.")
@_as_json
def crops(file: Path, fix: bool, output: Path | None, as_json: bool) -> None:
    """Compare each Crop offset written in FILE with the one the coordinate map derives."""
    if fix != (output is not None):
        raise click.UsageError("--fix and -o OUT go together")
    net, source_map = read_net_located(file)
    checks = crop_report(net, source_map)
    if fix:
        write_net(fill_crop_offsets(net, correct=True, source_map=source_map), output)
    if as_json:
        emit_json({"crops": [_check_dict(check) for check in checks]})
        return
    width = max((len(check.layer) for check in checks), default=0)
    for check in checks:
        verdict = "ok" if check.ok else "missing" if check.written is None else "WRONG"
        click.echo(f"{check.layer:<{width}}  written {_cell(check.written)}  derived "
                   f"{_cell(check.derived)}  {verdict}")
    if fix:
        changed = sum(not check.ok or check.written is None for check in checks)
        click.echo(f"wrote {output} ({changed} offset(s) filled or corrected)")


def _outputs(net: caffe_pb2.NetParameter) -> list[str]:
    """Blobs still available after the last layer, as Caffe lists the net's outputs."""
    available: set[str] = set()
    for layer in net.layer:
        available.difference_update(layer.bottom)
        available.update(layer.top)
    return sorted(available)


@command.command()
@click.argument("file", type=NetFile)
@_phase
@_stage
@_input_shape
def check(file: Path, phase: str, stages: tuple[str, ...], input_shapes) -> None:
    """Parse, upgrade, filter and check FILE: topology, shapes and Crop offsets; exit 1 on a problem."""
    net, source_map = _filtered(file, phase, stages)
    found = blob_shapes(net, _inputs(net, input_shapes, file), source_map)
    checks = crop_report(net, source_map)
    for crop in checks:
        if not crop.ok:
            written = _cell(crop.written) if crop.written is not None else "none (read as 0)"
            raise UserError(f"{source_map.where(crop.layer)}: layer '{crop.layer}' (Crop) has offset "
                            f"{written} but the coordinate map gives {_cell(crop.derived)}; write the "
                            f"derived offset, or run: digitslite net crops {file} --fix -o OUT")
    state = phase + "".join(f", stage {stage}" for stage in stages)
    crop_text = f"{len(checks)} Crop offset(s) match the coordinate map" if checks else "no Crop layers"
    outputs = ", ".join(f"{name} {_shape_text(found[name])}" for name in _outputs(net))
    click.echo(f"OK: {file}: {len(net.layer)} layers ({state}), {len(found)} blobs, {crop_text}; "
               f"outputs: {outputs or 'none'}")


def _stage_dict(stage: Stage) -> dict:
    return {"stage": stage.index, "layers": stage.layers, "parameters": stage.parameters,
            "flops": stage.flops, "activation_bytes": stage.activation_bytes, "receives": stage.receives,
            "sends": stage.sends, "send_bytes": stage.send_bytes}


@command.command(name="partition")
@click.argument("file", type=NetFile)
@click.option("--stages", "stage_count", type=click.IntRange(min=1), help="Number of pipeline stages, "
              "balanced by cost (default: one more than the cuts given).")
@click.option("--pipeline-cuts", "cuts", metavar="BLOB,BLOB",
              help="Cut after these blobs instead (e.g. pool2,pool4), as train --pipeline-cuts does.")
@click.option("--balance", type=click.Choice(BALANCES), default="flops", show_default=True,
              help="What the stages are balanced by.")
@_phase
@_stage
@_input_shape
@_as_json
def partition_command(file: Path, stage_count: int | None, cuts: str | None, balance: str, phase: str,
                      stages: tuple[str, ...], input_shapes, as_json: bool) -> None:
    """Cut FILE into pipeline stages: each stage's layers, parameters, FLOPs and activation memory."""
    if stage_count is None and not cuts:
        raise click.UsageError("give --stages K or --pipeline-cuts BLOB,BLOB")
    net, source_map = _filtered(file, phase, stages)
    names = [name.strip() for name in cuts.split(",") if name.strip()] if cuts else []
    found = partition(net, stage_count, cuts=names, balance=balance,
                      input_shapes=_inputs(net, input_shapes, file), source_map=source_map)
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
