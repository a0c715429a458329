"""`digitslite report JOB -o report.pdf`: a training job's curves, confusion matrix and per-class IU
as one figure (PDF, PNG or SVG), for a paper or a lab notebook."""
from pathlib import Path

import click

from digitslite.cli._output import emit_json


@click.command()
@click.argument("job_dir", metavar="JOB", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The figure to write: .pdf, .png or .svg.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers the figure shows as JSON.")
def command(job_dir: Path, output: Path, as_json: bool) -> None:
    """Draw a training job's loss and validation curves, confusion matrix and per-class IU into one
    figure, from its folder (a server's model job, or `digitslite train -o`)."""
    from digitslite.viz.report import write_report  # matplotlib loads only when a report is drawn

    summary = write_report(job_dir, output)
    if as_json:
        emit_json(summary)
    else:
        last = summary["last_val"]
        scores = "" if last is None else f"; last validation at iteration {last['iteration']}"
        click.echo(f"wrote {output} ({summary['train_records']} train and {summary['val_records']} "
                   f"validation records{scores})")
