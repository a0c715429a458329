"""`digitslite demo`: write the procedural urban-scene demo folders."""
import click

from digitslite.cli._output import emit_json
from digitslite.datasets.demo import write_demo


@click.command("demo")
@click.option("--out", required=True, help="Folder to create (must not exist or be empty).")
@click.option("--count", type=int, default=64, show_default=True, help="Training scenes.")
@click.option("--val-count", type=int, default=16, show_default=True, help="Validation scenes.")
@click.option("--width", type=int, default=160, show_default=True, help="Image width in pixels.")
@click.option("--height", type=int, default=120, show_default=True, help="Image height in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same scenes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(out, count, val_count, width, height, seed, as_json) -> None:
    """Write urban scenes: images/, labels/ (palette PNG), labels_rgb/ + colormap.txt, classes.txt, val_*/."""
    summary = write_demo(out, count=count, val_count=val_count, width=width, height=height, seed=seed)
    if as_json:
        emit_json(summary)
        return
    path = summary["path"]
    click.echo(f"demo data written to {path}: {count} train and {val_count} val scenes of {width}x{height}, "
               f"{len(summary['classes'])} classes")
    click.echo(f"create a dataset with:\n  digitslite dataset create --images {path}/images "
               f"--labels {path}/labels --val-images {path}/val_images --val-labels {path}/val_labels "
               f"--classes {path}/classes.txt -o DATASET_DIR")
