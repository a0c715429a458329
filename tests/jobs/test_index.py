"""The SQLite index: filters, pages, text search, dependencies, and rebuilding from the folders alone."""
import json
import subprocess
import sys
import time

from digitslite.jobs.folder import JobFolder, create_job_folder
from digitslite.jobs.index import JobFilter, JobIndex
from digitslite.jobs.job import JobSpec, JobState, Status, new_job_id


def make_job(jobs_dir, kind="dataset", status=Status.DONE, created=None, **fields) -> JobFolder:
    spec = JobSpec(id=fields.pop("id", None) or new_job_id(), kind=kind, name=fields.pop("name", "job"),
                   owner=fields.pop("owner", "ann"), created=created or time.time(), params={}, **fields)
    return create_job_folder(jobs_dir, spec, JobState().moved_to(status))


def test_listing_filters_pages_and_searches_newest_first(tmp_path):
    index = JobIndex(tmp_path / "index.sqlite")
    for number in range(30):
        status = Status.FAILED if number % 3 == 0 else Status.DONE
        make_job(tmp_path, kind=("dataset", "model")[number % 2], status=status,
                 created=1000.0 + number, name=f"run {number}", owner=("ann", "bob")[number % 5 == 0],
                 id=f"job-{number:02d}")
    make_job(tmp_path, name="50%_off", created=2000.0, id="job-special")
    assert index.reconcile(tmp_path) == []

    jobs, total = index.list(JobFilter(), page=1, per_page=10)
    assert total == 31 and [job["id"] for job in jobs][:3] == ["job-special", "job-29", "job-28"]
    page3, _ = index.list(JobFilter(), page=4, per_page=10)
    assert [job["id"] for job in page3] == ["job-00"]
    models, total = index.list(JobFilter(kind="model", status="failed"))
    assert total == 5 and all(job["kind"] == "model" and job["status"] == "failed" for job in models)
    assert index.list(JobFilter(owner="bob"))[1] == 6
    assert [job["id"] for job in index.list(JobFilter(text="RUN 2"))[0]][-1] == "job-02"
    # % and _ are literal characters in a search, not wildcards.
    assert [job["id"] for job in index.list(JobFilter(text="0%_"))[0]] == ["job-special"]
    assert index.list(JobFilter(text="%"))[1] == 1


def test_reconcile_picks_up_what_changed_behind_the_servers_back(tmp_path):
    index = JobIndex(tmp_path / "index.sqlite")
    kept = make_job(tmp_path, status=Status.RUNNING)
    gone = make_job(tmp_path)
    index.reconcile(tmp_path)
    kept.write_state(kept.state().moved_to(Status.INTERRUPTED))
    new = make_job(tmp_path, kind="model", depends_on=[kept.id])
    (gone.path / "job.json").unlink()
    gone.path.rename(tmp_path / ".trash-x")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "job.json").write_text("{")
    (tmp_path / "broken" / "state.json").write_text("{}")

    assert index.reconcile(tmp_path) == ["broken"]
    assert index.get(kept.id)["status"] == "interrupted"
    assert index.get(gone.id) is None and index.get(new.id)["kind"] == "model"
    assert index.dependents(kept.id) == [new.id]


def test_reindex_command_rebuilds_the_index_from_the_folders_alone(tmp_path):
    folders = [make_job(tmp_path, name=f"job {number}") for number in range(5)]
    out = subprocess.run([sys.executable, "-m", "digitslite", "jobs", "reindex", "--jobs-dir", str(tmp_path),
                          "--json"], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"jobs": 5, "by_status": {"done": 5}, "unreadable": []}
    index = JobIndex(tmp_path / "index.sqlite")
    assert sorted(job["id"] for job in index.list(JobFilter())[0]) == sorted(folder.id for folder in folders)
