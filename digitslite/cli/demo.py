"""`digitslite demo`: write the procedural demo folders of a task (urban scenes, or colour scenes)."""
import click

from digitslite.cli._output import emit_json
from digitslite.tasks import DEFAULT_TASK, TASKS


@click.command("demo")
@click.option("--out", required=True, help="Folder to create (must not exist or be empty).")
@click.option("--task", type=click.Choice(tuple(TASKS)), default=DEFAULT_TASK.name, show_default=True,
              help="segmentation: urban scenes with labels; colorization: colour scenes.")
@click.option("--count", type=int, help="Training scenes (default 64; colorization 256).")
@click.option("--val-count", type=int, help="Validation scenes (default 16; colorization 32).")
@click.option("--width", type=int, help="Image width in pixels (default 160; colorization 64).")
@click.option("--height", type=int, help="Image height in pixels (default 120; colorization 64).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same scenes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(out: str, task: str, count: int | None, val_count: int | None, width: int | None,
            height: int | None, seed: int, as_json: bool) -> None:
    """Write urban scenes: images/, labels/ (palette PNG), labels_rgb/ + colormap.txt, classes.txt, val_*/;
    or, with --task colorization, colour scenes in images/ and val_images/."""
    given = {"count": count, "val_count": val_count, "width": width, "height": height}
    writer = TASKS[task].part("demo")  # its own defaults for what is not given
    summary = writer(out, seed=seed, **{name: value for name, value in given.items() if value is not None})
    if as_json:
        emit_json(summary)
        return
    task_flag = "" if task == DEFAULT_TASK.name else f" --task {task}"
    flags = " ".join(f"--{name.replace('_', '-')} {path}" for name, path in summary["dataset_fields"].items())
    click.echo(f"{summary['description']} written to {summary['path']}: {summary['count']} train and "
               f"{summary['val_count']} val scenes of {summary['width']}x{summary['height']}")
    click.echo(f"create a dataset with:\n  digitslite dataset create{task_flag} {flags} -o DATASET_DIR")
