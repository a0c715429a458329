"""`digitslite demo`: write the procedural demo folders (urban scenes, or colour scenes)."""
import click

from digitslite.cli._output import emit_json
from digitslite.datasets.demo import write_demo
from digitslite.datasets.tasks import COLORIZATION, DATASET_TASKS, SEGMENTATION

# count, val count, width, height when not given
DEFAULTS = {SEGMENTATION: (64, 16, 160, 120), COLORIZATION: (256, 32, 64, 64)}


@click.command("demo")
@click.option("--out", required=True, help="Folder to create (must not exist or be empty).")
@click.option("--task", type=click.Choice(DATASET_TASKS), default=SEGMENTATION, show_default=True,
              help="segmentation: urban scenes with labels; colorization: colour scenes.")
@click.option("--count", type=int, help="Training scenes (default 64; colorization 256).")
@click.option("--val-count", type=int, help="Validation scenes (default 16; colorization 32).")
@click.option("--width", type=int, help="Image width in pixels (default 160; colorization 64).")
@click.option("--height", type=int, help="Image height in pixels (default 120; colorization 64).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same scenes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(out, task, count, val_count, width, height, seed, as_json) -> None:
    """Write urban scenes: images/, labels/ (palette PNG), labels_rgb/ + colormap.txt, classes.txt, val_*/;
    or, with --task colorization, colour scenes in images/ and val_images/."""
    given = (count, val_count, width, height)
    count, val_count, width, height = (value if value is not None else default
                                       for value, default in zip(given, DEFAULTS[task], strict=True))
    if task == COLORIZATION:
        from digitslite.datasets.colorize.demo import write_colour_demo as writer
    else:
        writer = write_demo
    summary = writer(out, count=count, val_count=val_count, width=width, height=height, seed=seed)
    if as_json:
        emit_json(summary)
        return
    path = summary["path"]
    if task == COLORIZATION:
        click.echo(f"colour scenes written to {path}: {count} train and {val_count} val scenes of "
                   f"{width}x{height}")
        click.echo(f"create a dataset with:\n  digitslite dataset create --task colorization --images "
                   f"{path}/images --val-images {path}/val_images -o DATASET_DIR")
        return
    click.echo(f"demo data written to {path}: {count} train and {val_count} val scenes of {width}x{height}, "
               f"{len(summary['classes'])} classes")
    click.echo(f"create a dataset with:\n  digitslite dataset create --images {path}/images "
               f"--labels {path}/labels --val-images {path}/val_images --val-labels {path}/val_labels "
               f"--classes {path}/classes.txt -o DATASET_DIR")
