"""`digitslite dataset create`: folders of images and labels -> an LMDB segmentation dataset, or a
folder of colour photos -> a colorization dataset (`--task colorization`)."""
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from click.core import ParameterSource

from digitslite.cli._output import emit_json
from digitslite.datasets import DatasetInvalidError, DatasetOptions, check_dataset, create_dataset
from digitslite.datasets.colorize.bins import BIN_CHOICES
from digitslite.datasets.colorize.colour import SPACES
from digitslite.datasets.options import DEFAULT_VAL_PERCENT, ENCODINGS, LABEL_MODES, RESIZE_MODES
from digitslite.datasets.report_text import format_report, format_summary
from digitslite.datasets.tasks import COLORIZATION, DATASET_TASKS, SEGMENTATION
from digitslite.errors import UserError


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawing a click progress bar on a terminal's stderr (None elsewhere)."""
    stderr = sys.stderr
    if not stderr.isatty():
        yield None
        return
    bars = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(click.progressbar(length=total, label=label, file=stderr))
            bars[0].__enter__()
        bars[0].update(done - bars[0].pos)

    try:
        yield update
    finally:
        if bars:
            bars[0].__exit__(None, None, None)


@click.group("dataset")
def command() -> None:
    """Create and check segmentation and colorization datasets."""


SEGMENTATION_ONLY = ("labels", "train_list", "val_list", "val_labels", "label_mode", "colormap", "classes",
                     "nearest", "ignore_value", "encoding", "allow_empty_classes")
COLORIZATION_ONLY = ("space", "bins")


@command.command("create")
@click.option("--task", type=click.Choice(DATASET_TASKS), default=SEGMENTATION, show_default=True,
              help="segmentation: images and label maps; colorization: colour photos, targets derived.")
@click.option("--images", help="Folder of images (searched recursively).")
@click.option("--labels", help="Folder of labels, paired by relative path and name (segmentation).")
@click.option("--train-list", help="Instead of --images/--labels: a text file of 'image_path label_path' "
              "lines (relative paths are read from the file's folder), as DIGITS and SegNet use.")
@click.option("--val-list", help="Validation pairs as such a list (instead of --val-images/--val-labels).")
@click.option("--val-images", help="Separate validation images (with --val-labels).")
@click.option("--val-labels", help="Separate validation labels (with --val-images).")
@click.option("--val-percent", type=int,
              help=f"Percent of the pairs drawn for validation (default {DEFAULT_VAL_PERCENT}).")
@click.option("--label-mode", type=click.Choice(LABEL_MODES), default="palette", show_default=True,
              help="palette: mode-P PNGs; rgb: RGB masks with --colormap; index: grayscale class indices.")
@click.option("--colormap", help="Colour map: 'R G B [name]' per line (DIGITS) or CVAT labelmap.txt.")
@click.option("--classes", help="Class names, one per line (line i = class i).")
@click.option("--nearest", is_flag=True, help="rgb mode: map unknown colours to the nearest class colour.")
@click.option("--ignore-value", type=int, default=255, show_default=True,
              help="Label value left out of the loss.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="png", show_default=True,
              help="How images are stored in the features LMDB.")
@click.option("--resize", type=click.Choice(RESIZE_MODES), default="none", show_default=True,
              help="Resize mode (labels always by nearest neighbour).")
@click.option("--width", type=int, help="Target width for --resize.")
@click.option("--height", type=int, help="Target height for --resize.")
@click.option("--seed", type=int, help="Seed of the split and record order (recorded; random if not given).")
@click.option("--workers", type=int, help="Encoder processes (default: one per CPU).")
@click.option("--allow-empty-classes", is_flag=True, help="Accept classes without training pixels.")
@click.option("--space", type=click.Choice(SPACES), help="colorization: colour space (default lab).")
@click.option("--bins", type=click.Choice(BIN_CHOICES),
              help="colorization, lab: ab bins, the paper's grid 10 where it occurs or a fixed 18x18 "
                   "(default paper).")
@click.option("--dry-run", is_flag=True, help="Only check: print the report and class statistics.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (or the report) as JSON.")
@click.option("-o", "--out", help="Output folder of the dataset (must not exist).")
def create(task, images, labels, train_list, val_list, val_images, val_labels, val_percent, label_mode,
           colormap, classes, nearest, ignore_value, encoding, resize, width, height, seed, workers,
           allow_empty_classes, space, bins, dry_run, as_json, out) -> None:
    """Validate image/label folders (or text-file lists of pairs), or a folder of colour photos, and write
    train_db/ and val_db/ LMDBs and dataset.json."""
    _refuse_other_task_flags(task)
    if task == COLORIZATION:
        if images is None:
            raise UserError("--images is required for --task colorization (a folder of colour photos)")
        from digitslite.datasets.colorize.options import ColorizeOptions
        _colorize(ColorizeOptions(images=Path(images), val_images=_path(val_images), val_percent=val_percent,
                                  space=space, bins=bins, resize=resize, width=width, height=height,
                                  seed=seed, workers=workers), dry_run, as_json, out)
        return
    options = DatasetOptions(
        images=_path(images), labels=_path(labels), train_list=_path(train_list), val_list=_path(val_list),
        val_images=_path(val_images), val_labels=_path(val_labels),
        val_percent=val_percent, label_mode=label_mode, colormap=_path(colormap), classes=_path(classes),
        nearest=nearest,
        ignore_label=ignore_value, encoding=encoding, resize=resize, width=width, height=height, seed=seed,
        workers=workers, allow_empty_classes=allow_empty_classes)
    if dry_run:
        _check(options, as_json)
        return
    if not out:
        raise UserError("give the output folder with -o/--out (or check only with --dry-run)")
    try:
        with _progress_bar("encoding") as progress:
            summary = create_dataset(options, out, progress)
    except DatasetInvalidError as exc:
        if as_json:
            emit_json(exc.report.to_dict())
        else:
            click.echo(format_report(exc.report), err=True)
        raise
    if as_json:
        emit_json(summary.to_dict())
    else:
        click.echo(format_summary(summary))


def _refuse_other_task_flags(task: str) -> None:
    context = click.get_current_context()
    other = COLORIZATION_ONLY if task == SEGMENTATION else SEGMENTATION_ONLY
    for name in other:
        if context.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} does not apply to --task {task}; drop it")


def _colorize(options, dry_run: bool, as_json: bool, out: str | None) -> None:
    from digitslite.datasets.colorize.create import check_colorize, create_colorize
    from digitslite.datasets.colorize.report_text import format_colorize_report, format_colorize_summary
    if dry_run:
        with _progress_bar("checking") as progress:
            report = check_colorize(options, progress)
        _emit(report.to_dict(), format_colorize_report(report), as_json)
        if not report.ok:
            raise UserError(f"the check found problems: {report.summary_line()}")
        return
    if not out:
        raise UserError("give the output folder with -o/--out (or check only with --dry-run)")
    try:
        with _progress_bar("encoding") as progress:
            summary = create_colorize(options, out, progress)
    except DatasetInvalidError as exc:
        _emit(exc.report.to_dict(), format_colorize_report(exc.report), as_json, err=True)
        raise
    _emit(summary.to_dict(), format_colorize_summary(summary), as_json)


def _emit(document: dict, text: str, as_json: bool, err: bool = False) -> None:
    if as_json:
        emit_json(document)
    else:
        click.echo(text, err=err)


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _check(options: DatasetOptions, as_json: bool) -> None:
    with _progress_bar("checking") as progress:
        report = check_dataset(options, progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(format_report(report))
    if not report.ok:
        raise UserError(f"the check found problems: {report.summary_line()}")
