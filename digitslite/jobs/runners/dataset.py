"""Dataset jobs: build the LMDB dataset into <job>/dataset with the datasets package."""
from digitslite.datasets import create_dataset, remove_partials
from digitslite.jobs.kinds.dataset import dataset_options
from digitslite.jobs.runners.context import RunContext


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
    summary = create_dataset(dataset_options(ctx.params, ctx.job_dir), out, progress)
    counts = ", ".join(f"{stage} {count}" for stage, count in summary.info["counts"].items())
    print(f"dataset created in {summary.path}: {counts}", flush=True)
