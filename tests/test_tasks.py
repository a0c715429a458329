"""Each task's record names its parts on other floors by module path and its templates by name; a
wrong one would only fail when that part is first used, so every reference is resolved here, and the
fields the record gives its datasets are checked against the classes that take them."""
import dataclasses
from pathlib import Path

import pydantic
import pytest

import digitslite
from digitslite.server.schemas.requests import DatasetRequest
from digitslite.tasks import DEFAULT_TASK, TASKS, task_of

SERVER = Path(digitslite.__file__).parent / "server"
PARTS = ("options", "check", "create", "report_text", "summary_text", "demo", "probe", "inference",
         "request_fields", "pages")
PAGE_FUNCTIONS = ("form_check", "dataset_context", "record_picture", "inference_context")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_tasks_record_names_parts_that_exist(name):
    task = TASKS[name]
    for field in PARTS:
        assert task.part(field) is not None, field
    assert task.cli_inference is None or callable(task.part("cli_inference"))
    pages = task.part("pages")
    assert all(callable(getattr(pages, function)) for function in PAGE_FUNCTIONS)
    for template in (task.model_view, task.dataset_view, task.inference_view):
        assert (SERVER / "templates" / template).is_file(), template
    assert (SERVER / "static" / task.inference_script).is_file()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_tasks_dataset_fields_are_its_options_and_its_request_fields(name):
    task = TASKS[name]
    options = {field.name for field in dataclasses.fields(task.part("options"))}
    assert set(task.dataset_fields.names) <= options, set(task.dataset_fields.names) - options
    request = set(DatasetRequest.model_fields)
    assert set(task.dataset_fields.names) <= request
    own = set(task.part("request_fields").model_fields)
    assert own <= set(task.dataset_fields.names)  # a field of its own schema has a role in its record
    assert set(task.dataset_fields.required) <= set(task.dataset_fields.folders)


def test_older_jobs_and_datasets_are_the_default_task_and_an_unknown_one_is_refused():
    assert task_of({}) is DEFAULT_TASK and task_of({"task": "colorization"}) is TASKS["colorization"]
    with pytest.raises(ValueError, match="no task 'depth'"):
        task_of({"task": "depth"})


def test_a_request_refuses_the_fields_of_another_task():
    with pytest.raises(pydantic.ValidationError, match="space does not apply to task segmentation"):
        DatasetRequest.model_validate({"images": "a", "labels": "b", "space": "yuv"})
    with pytest.raises(pydantic.ValidationError, match="labels does not apply to task colorization"):
        DatasetRequest.model_validate({"task": "colorization", "images": "a", "labels": "b"})
