"""Each job kind's record names parts on other floors by module path; a wrong path would only fail
when that part is first used, so every reference is resolved here."""
import pydantic
import pytest
from flask import Blueprint

from digitslite.jobs.kinds import KINDS, load
from digitslite.server.app import create_app
from digitslite.server.config import ServerConfig


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_kinds_record_names_parts_that_exist(kind, tmp_path):
    record = KINDS[kind]
    assert callable(load(record.runner).run)
    assert callable(load(record.planner))
    assert isinstance(load(record.api), Blueprint)
    assert issubclass(load(record.request_schema), pydantic.BaseModel)
    app = create_app(ServerConfig(jobs_dir=tmp_path, scheduler=False, gpus=[]))
    assert record.page in app.view_functions
    home = app.test_client().get(f"/?tab={record.tab}")
    assert home.status_code == 200 and record.tab_title in home.get_data(as_text=True)


def test_kinds_and_tabs_are_one_each():
    assert len({record.tab for record in KINDS.values()}) == len(KINDS)
    assert all(name == record.name for name, record in KINDS.items())
