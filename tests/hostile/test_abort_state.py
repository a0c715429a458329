"""A finished job never reads as having an abort pending, whatever the moment it is read at."""
from digitslite.jobs.folder import JobFolder, create_job_folder
from digitslite.jobs.index import JobIndex
from digitslite.jobs.model import JobSpec, JobState, Status
from digitslite.server.render import job_detail


def test_an_aborted_job_whose_marker_is_not_cleared_yet_has_no_abort_pending(tmp_path):
    spec = JobSpec(id="j1", kind="dataset", name="n", owner="local", created=0.0, params={})
    folder = create_job_folder(tmp_path, spec, JobState().moved_to(Status.RUNNING))
    folder.request_abort()
    index = JobIndex(tmp_path / "index.sqlite")
    index.refresh(folder)
    assert job_detail(folder, index.get("j1"), index)["abort_requested"] is True
    # The scheduler writes the final state first and removes the marker a moment later.
    folder.write_state(folder.state().moved_to(Status.ABORTED))
    detail = job_detail(JobFolder(folder.path), index.get("j1"), index)
    assert detail["status"] == "aborted" and detail["abort_requested"] is False
    index.close()
