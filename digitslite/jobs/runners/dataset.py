"""Dataset jobs: unpack an uploaded archive, check the folders, then build the LMDB dataset into
<job>/dataset, with the creator of the task the job's params name.

Unpacking and the check are the job's first phases, never the request's (no archive is unpacked and
no pixel decoded in the server): a dataset with errors ends the job as failed, its whole report in
the job's check report file.
"""
from digitslite.archives import UnsafeArchiveError, extract_archive
from digitslite.datasets import DatasetInvalidError, remove_partials
from digitslite.datasets.controls import as_fields
from digitslite.datasets.create import publishing
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.jobs.kinds.dataset import dataset_options
from digitslite.jobs.runners.context import RunContext
from digitslite.tasks import task_of

MIB = 1 << 20


def unpack_upload(ctx: RunContext) -> None:
    """Unpack the uploaded archive into inputs/, whole or not at all, with the limits the request
    checked the archive's declared sizes against (now applied to the bytes written)."""
    archive = ctx.params["archive"]
    inputs = ctx.folder.inputs_dir
    for stale in remove_partials(inputs):
        print(f"removed {stale.name}, left by an earlier run that was killed while unpacking", flush=True)
    if inputs.is_dir():
        print(f"{archive['name']} already unpacked into {inputs}", flush=True)
        return
    source = ctx.folder.upload_dir / archive["name"]
    if not source.is_file():
        raise UserError(f"the uploaded archive {archive['name']} is gone from {source.parent}; upload it "
                        "again as a new dataset")
    total_mib = max(archive["declared_bytes"], 1) / MIB

    def written(size: int) -> None:
        ctx.check_stop()  # raising here removes the partial folder
        ctx.report(0.0, f"unpacking {archive['name']}: {size / MIB:.0f} of {total_mib:.0f} MiB")

    try:
        with publishing(inputs) as partial:
            extract_archive(source, partial, field="archive", max_bytes=archive["max_bytes"],
                            max_members=archive["max_members"], written=written)
    except UnsafeArchiveError as exc:
        reason = str(exc).removeprefix(f"{exc.field}: ")
        raise UnsafeArchiveError(f"the uploaded archive {archive['name']} cannot be unpacked: {reason}; "
                                 "pack the files again and upload them as a new dataset", exc.field) from None
    print(f"unpacked {archive['name']} into {inputs}", flush=True)


def run(ctx: RunContext) -> None:
    def progress(done: int, total: int) -> None:
        ctx.check_stop()  # raising here makes create_dataset remove its partial output
        ctx.report(done / total if total else 0.0, f"{done}/{total} images")

    if "archive" in ctx.params:  # jobs from an upload made before the job unpacked it have inputs/
        unpack_upload(ctx)
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
