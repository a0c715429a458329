"""What the JSON API answers, declared for the OpenAPI document (the views build plain dicts; a test
reads real answers against these)."""
from typing import Any, Literal

from pydantic import BaseModel, Field

from digitslite.jobs.job import Status
from digitslite.jobs.kinds import KIND_NAMES

StatusName = Literal[tuple(str(status) for status in Status)]


class ErrorDetail(BaseModel):
    message: str
    field: str | None
    """the request field to correct, where one is to blame"""


class Error(BaseModel):
    """Every refusal: the message says why and what to change. One refused for several paths carries
    error.fields, a {field, message} for each. A message naming options also comes as error.template,
    with each option marked [[field]], for a page to name its own controls."""

    error: ErrorDetail


class JobSummary(BaseModel):
    id: str
    kind: Literal[KIND_NAMES]
    status: StatusName
    name: str | None = None
    owner: str | None = None
    group: str | None = None
    priority: int | None = None
    created: float | None = None
    updated: float | None = None
    progress: float | None = None
    message: str | None = None
    error: Any = None
    depends_on: list[str] = []
    links: dict[str, str] = {}


class StatusChange(BaseModel):
    status: StatusName
    at: float


class Snapshot(BaseModel):
    iteration: int
    weights: str
    solverstate: str | None


class JobDetail(JobSummary):
    params: dict[str, Any] = {}
    notes: str | None = None
    gpus_requested: int | list[str] = 0
    waits_for: list[str] = []
    dependents: list[str] = []
    abort_requested: bool = False
    run: dict[str, Any] = {}
    history: list[StatusChange] = []
    transitions: int = 0
    snapshots: list[Snapshot] = []
    check_report: dict[str, Any] | None = None
    """a dataset job whose check found errors: the whole validation report (problems, fixes, counts)"""


class JobList(BaseModel):
    jobs: list[JobSummary]
    total: int
    page: int
    per_page: int
    pages: int


class Created(BaseModel):
    """The jobs made (one, or a sweep's)."""

    jobs: list[JobSummary]


class Records(BaseModel):
    metrics: list[dict[str, Any]]
    next: int
    """the `after` of the following call"""


class StoreModel(BaseModel):
    id: str = Field(description="the entry's folder: the `name` to import")
    name: str | None
    task: str | None
    framework: str | None
    classes: list[str] | None
    metrics: dict[str, Any]
    size: int | None = Field(description="bytes to download")
    size_exact: bool = Field(description="false: includes approximate sizes")
    weights: Literal["included", "remote", "none"]
    source: str | None
    license: str | None
    note: str | None
    error: str | None = Field(description="why the entry cannot be imported")


class Store(BaseModel):
    url: str = Field(description="the `store` to give POST /store/import")
    reachable: bool
    msg: str
    error: str | None = Field(description="why the store could not be read")
    models: list[StoreModel]


class StoreList(BaseModel):
    stores: list[Store]


class Published(BaseModel):
    store_dir: str
    name: str
    info: dict[str, Any] = Field(description="the entry's info.json, with a checksum per file")


class System(BaseModel):
    version: str
    gpus: list[dict[str, Any]]
    cpu_slots: int
    queue: dict[str, int]
    users: Literal["single-user", "multi-user"]
    you: str
    versions: dict[str, str | None]
