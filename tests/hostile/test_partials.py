"""Item 6: partial dataset folders that a killed run left in a job folder are removed by the next run,
whether it creates the dataset or finds it already complete."""
from digitslite.jobs.folder import create_job_folder
from digitslite.jobs.model import JobSpec, JobState
from digitslite.jobs.runners import dataset as dataset_runner
from digitslite.jobs.runners.context import RunContext


def _job(tmp_path, demo):
    paths = {"images": str(demo / "images"), "labels": str(demo / "labels"), "val_images": None,
             "val_labels": None, "colormap": None, "classes": None}
    params = {"source": "server", "paths": paths, "options": {"workers": 1, "val_percent": 25}}
    spec = JobSpec(id="j1", kind="dataset", name="d", owner="local", created=0.0, params=params)
    folder = create_job_folder(tmp_path / "jobs", spec, JobState())
    return RunContext(folder, spec, lambda fraction, message: None, lambda: False)


def _leave_partial(ctx) -> None:
    stale = ctx.job_dir / ".dataset.partial-0badf00d"
    (stale / "train_db" / "features").mkdir(parents=True)
    (stale / "train_db" / "features" / "data.mdb").write_bytes(b"\0" * 4096)


def test_a_killed_runs_partial_folder_goes_when_the_job_runs_again(tmp_path, demo):
    ctx = _job(tmp_path, demo)
    _leave_partial(ctx)
    dataset_runner.run(ctx)
    assert (ctx.job_dir / "dataset" / "dataset.json").is_file()
    assert not list(ctx.job_dir.glob(".dataset.partial-*"))
    _leave_partial(ctx)  # killed after its rename, before it could report: the resume finds it complete
    dataset_runner.run(ctx)
    assert not list(ctx.job_dir.glob(".dataset.partial-*"))
