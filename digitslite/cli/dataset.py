"""`digitslite dataset create`: folders of images and labels -> an LMDB segmentation dataset, or a
folder of colour photos -> a colorization dataset (`--task colorization`)."""
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from digitslite.cli._output import emit_json
from digitslite.datasets import DatasetInvalidError
from digitslite.datasets.colorize.bins import BIN_CHOICES
from digitslite.datasets.colorize.colour import SPACES
from digitslite.datasets.options import DEFAULT_VAL_PERCENT, ENCODINGS, LABEL_MODES, RESIZE_MODES
from digitslite.errors import UserError
from digitslite.tasks import DEFAULT_TASK, TASKS


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


# The flags that name a dataset field by another word, those of the command itself, and the options
# every task's datasets take beside their task's fields.
FIELD_OF_FLAG = {"ignore_value": "ignore_label"}
COMMAND_FLAGS = ("task", "dry_run", "as_json", "out")
OPTIONS_OF_EVERY_TASK = ("workers",)


@command.command("create")
@click.option("--task", type=click.Choice(tuple(TASKS)), default=DEFAULT_TASK.name, show_default=True,
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
def create(task: str, dry_run: bool, as_json: bool, out: str | None, **flags: Any) -> None:
    """Validate image/label folders (or text-file lists of pairs), or a folder of colour photos, and write
    train_db/ and val_db/ LMDBs and dataset.json."""
    record = TASKS[task]
    fields = record.dataset_fields
    given = {FIELD_OF_FLAG.get(name, name): value for name, value in flags.items()}
    own = {*fields.names, *OPTIONS_OF_EVERY_TASK}
    _refuse_other_task_flags(task, own)
    if not fields.lists:  # with lists of pairs, the options say what stands in for which folder
        for name in fields.required:
            if given[name] is None:
                raise UserError(f"--{name} is required for --task {task}")
    paths = (*fields.paths, *fields.lists)
    options = record.part("options")(**{name: _path(given[name]) if name in paths else given[name]
                                         for name in own})
    report_text = record.part("report_text")
    if dry_run:
        with _progress_bar("checking") as progress:
            report = record.part("check")(options, progress)
        _emit(report.to_dict(), report_text(report), as_json)
        if not report.ok:
            raise UserError(f"the check found problems: {report.summary_line()}")
        return
    if not out:
        raise UserError("give the output folder with -o/--out (or check only with --dry-run)")
    try:
        with _progress_bar("encoding") as progress:
            summary = record.part("create")(options, out, progress)
    except DatasetInvalidError as exc:
        _emit(exc.report.to_dict(), report_text(exc.report), as_json, err=True)
        raise
    _emit(summary.to_dict(), record.part("summary_text")(summary), as_json)


def _refuse_other_task_flags(task: str, own: set[str]) -> None:
    """A flag of another task's datasets, given on the command line, is refused by name."""
    context = click.get_current_context()
    for name in context.params:
        field = FIELD_OF_FLAG.get(name, name)
        if field not in own and name not in COMMAND_FLAGS and \
                context.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} does not apply to --task {task}; drop it")


def _emit(document: dict, text: str, as_json: bool, err: bool = False) -> None:
    if as_json:
        emit_json(document)
    else:
        click.echo(text, err=err)


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)
