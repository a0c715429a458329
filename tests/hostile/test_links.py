"""Item 8: links cannot take a dataset outside the data roots, and link loops end the walk."""
import os
import shutil

from digitslite.datasets import DatasetOptions, check_dataset
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.kinds.dataset import dataset_options
from tests.hostile.conftest import dataset_body


def _job_check_kinds(client, demo, jobs_dir) -> set[str]:
    """Queue the dataset, then run the check its job starts with (as the worker would)."""
    response = client.post("/api/v1/datasets", json=dataset_body(demo))
    assert response.status_code == 201, response.get_data(as_text=True)
    folder = JobFolder(jobs_dir / response.get_json()["jobs"][0]["id"])
    report = check_dataset(dataset_options(folder.spec().params, folder.path))
    return {problem["kind"] for problem in report.to_dict()["problems"]}


def test_an_image_linked_from_outside_the_data_roots_is_refused(client, demo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    image = sorted((demo / "images").iterdir())[0]
    shutil.move(image, outside / image.name)
    (demo / "images" / image.name).symlink_to(outside / image.name)
    assert "outside_roots" in _job_check_kinds(client, demo, tmp_path / "jobs")


def test_links_inside_the_data_roots_still_work(client, demo, data_root):
    shutil.move(demo / "images", data_root / "pool")
    (demo / "images").symlink_to(data_root / "pool", target_is_directory=True)
    assert client.post("/api/v1/datasets", json=dataset_body(demo)).status_code == 201


def test_two_links_to_the_folder_itself_end_as_a_problem_not_a_walk_forever(demo):
    (demo / "images" / "a").symlink_to(".", target_is_directory=True)
    (demo / "images" / "b").symlink_to(".", target_is_directory=True)
    report = check_dataset(DatasetOptions(images=demo / "images", labels=demo / "labels", workers=1))
    kinds = {problem["kind"] for problem in report.to_dict()["problems"]}
    assert "link_loop" in kinds


def test_a_pipe_named_like_an_image_is_a_problem_not_a_request_that_never_ends(client, demo, tmp_path):
    os.mkfifo(demo / "images" / "zz.png")
    os.mkfifo(demo / "labels" / "zz.png")
    assert "unreadable" in _job_check_kinds(client, demo, tmp_path / "jobs")  # blocked forever before
