"""Dataset jobs: check the folders, then build the LMDB dataset into <job>/dataset, with the creator
of the task the job's params name.

The check is the job's first phase, never the request's (pixel work stays out of the server): a
dataset with errors ends the job as failed, its whole report in the job's check report file.
"""
from digitslite.datasets import DatasetInvalidError, remove_partials
from digitslite.datasets.controls import as_fields
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.jobs.kinds.dataset import dataset_options
from digitslite.jobs.runners.context import RunContext
from digitslite.tasks import task_of


def run(ctx: RunContext) -> None:
    def progress(done: int, total: int) -> None:
        ctx.check_stop()  # raising here makes create_dataset remove its partial output
        ctx.report(done / total if total else 0.0, f"{done}/{total} images")

    out = ctx.folder.dataset.path
    for stale in remove_partials(out):  # this worker holds the job's lock: no other run writes them
        print(f"removed {stale.name}, left by an earlier run that was killed", flush=True)
    if ctx.folder.dataset.info_file.is_file():
        # Created by an earlier run that was killed before it could report: creation is atomic.
        print(f"dataset already complete in {out}", flush=True)
        return
    report_file = ctx.folder.check_report
    report_file.unlink(missing_ok=True)  # a resumed job checks the (perhaps fixed) folders again
    create = task_of(ctx.params).part("create")
    try:
        summary = create(dataset_options(ctx.params, ctx.job_dir), out, progress)
    except DatasetInvalidError as exc:
        write_json_atomically(report_file, exc.report.to_dict())
        # the job's error is read through the API and the pages: options as fields, not flags
        raise UserError(f"dataset not created: {exc.report.summary_line(as_fields)}") from None
    counts = ", ".join(f"{stage} {count}" for stage, count in summary.info["counts"].items())
    print(f"dataset created in {summary.path}: {counts}", flush=True)
