"""What the stores offer, for the store page, `GET /api/v1/store/models` and `digitslite store list`.

A store that cannot be reached, or an entry whose info.json is broken, becomes a listing with an
error string rather than an exception, so one bad store never blanks the page.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from digitslite.errors import UserError
from digitslite.modelstore import client
from digitslite.modelstore.format import INFO_FILE, MASTER_FILE, ModelInfo, parse_info, parse_master

LISTING_POLICY = client.FetchPolicy(timeout=5.0, retries=0)
_PARALLEL_FETCHES = 8


@dataclass
class ModelSummary:
    """One entry of a store as the listing shows it. `size` is the download in bytes, exact when
    `size_exact`, else including the "approximate size" of remote files."""

    id: str
    name: str
    task: str | None = None
    framework: str | None = None
    classes: list[str] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    size: int | None = None
    size_exact: bool = False
    weights: str = "none"          # "included" (in the store), "remote" (a URL), "none"
    source: str | None = None
    license: str | None = None
    note: str | None = None
    error: str | None = None


@dataclass
class StoreListing:
    """A store: its location and welcome message, and its models, or why it could not be read."""

    url: str
    reachable: bool
    msg: str = ""
    models: list[ModelSummary] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(entry: str, info: ModelInfo) -> ModelSummary:
    """The listing row of a parsed entry."""
    records = info.files.values()
    sizes = [record.size if record.size is not None else record.approximate_size for record in records]
    snapshot = info.files.get(info.snapshot_file) if info.snapshot_file else None
    return ModelSummary(
        id=entry, name=info.name, task=info.task, framework=info.framework, classes=info.classes,
        metrics=info.metrics, size=sum(sizes) if None not in sizes else None,
        size_exact=all(record.size is not None for record in records),
        weights="none" if snapshot is None else "remote" if snapshot.url else "included",
        source=info.data.get("source"), license=info.data.get("license"), note=info.data.get("note"))


def _entry(location: str, entry: str) -> ModelSummary:
    where = client.join(location, entry, INFO_FILE)
    try:
        data = client.read_index_file(where, LISTING_POLICY)
    except UserError as exc:
        return ModelSummary(id=entry, name=entry, error=str(exc))
    try:
        return summarise(entry, parse_info(data, where))
    except UserError as exc:
        name = data.get("name") if isinstance(data, dict) else None
        return ModelSummary(id=entry, name=name if isinstance(name, str) and name else entry, error=str(exc))


def list_store(location: str) -> StoreListing:
    """The models of one store (URL or folder)."""
    try:
        master_location = client.join(location, MASTER_FILE)
        master = parse_master(client.read_index_file(master_location, LISTING_POLICY), master_location)
    except UserError as exc:
        return StoreListing(url=location, reachable=False, error=str(exc))
    with ThreadPoolExecutor(_PARALLEL_FETCHES) as pool:
        models = list(pool.map(lambda entry: _entry(location, entry), master.children))
    return StoreListing(url=location, reachable=True, msg=master.msg, models=models)


def list_stores(locations: list[str]) -> list[StoreListing]:
    """Every store's listing, fetched side by side, in the order given."""
    if not locations:
        return []
    with ThreadPoolExecutor(min(len(locations), _PARALLEL_FETCHES)) as pool:
        return list(pool.map(list_store, locations))
