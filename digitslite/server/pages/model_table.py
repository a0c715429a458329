"""The home page's model table: each model job's dataset, network, best validation mean IU and
elapsed time, read from its folder, and the orders by those columns (the job index holds none of
them, so those orders sort the matching jobs here)."""
import json
import threading
import time
from pathlib import Path
from typing import Any

from digitslite.server.pages.timeline import job_timeline
from digitslite.server.services import services

DETAIL_SORTS = ("dataset", "network", "mean_iu", "elapsed")


class _BestMeanIU:
    """The best validation mean IU in each metrics.jsonl, reading only what was appended since the
    last look (the files only grow, or are replaced when a job resumes)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, float | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, metrics_file: Path) -> float | None:
        try:
            size = metrics_file.stat().st_size
        except OSError:
            return None
        with self._lock:
            offset, best = self._seen.get(metrics_file, (0, None))
            if size < offset:  # replaced: read it again
                offset, best = 0, None
            with open(metrics_file, "rb") as stream:
                stream.seek(offset)
                for line in stream.read(size - offset).splitlines(keepends=True):
                    if not line.endswith(b"\n"):
                        break  # a record still being written: read it next time
                    offset += len(line)
                    best = _better(best, line)
            self._seen[metrics_file] = (offset, best)
            return best


def _better(best: float | None, line: bytes) -> float | None:
    if b'"val"' not in line:
        return best
    try:
        value = json.loads(line).get("mean_iu")
    except ValueError:
        return best
    return value if isinstance(value, float | int) and (best is None or value > best) else best


best_mean_iu = _BestMeanIU()


def network_label(network: dict[str, Any]) -> str:
    """How the table names a model's network: the standard one's name, or where it came from."""
    kind = network.get("kind")
    if kind == "standard":
        return network.get("name", "")
    origins = {"prototxt": "custom", "pretrained": "pretrained", "snapshot": "from a model"}
    return origins.get(kind, kind or "")


def with_details(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with `dataset` (id, name), `network`, `mean_iu` and `elapsed` added."""
    svc, now = services(), time.time()
    detailed = []
    for row in rows:
        folder = svc.scheduler.folder(row["id"])
        try:
            spec, state = folder.spec(), folder.state()
        except (OSError, ValueError):  # deleted since the index was read
            continue
        dataset_id = spec.params.get("dataset")
        dataset = svc.index.get(dataset_id) if dataset_id else None
        detailed.append({**row, "dataset": {"id": dataset_id, "name": dataset["name"] if dataset else None},
                         "network": network_label(spec.params.get("network", {})),
                         "mean_iu": best_mean_iu(folder.metrics_file),
                         "elapsed": job_timeline(state, now).elapsed})
    return detailed


def sorted_by_detail(rows: list[dict[str, Any]], column: str, descending: bool) -> list[dict[str, Any]]:
    """`rows` (with details) in the order of `column`; rows without a value last either way."""
    def value(row: dict[str, Any]) -> Any:
        found = row[column]
        return (found["name"] or "").lower() if column == "dataset" else found

    known = [row for row in rows if value(row) not in (None, "")]
    unknown = [row for row in rows if value(row) in (None, "")]
    return sorted(known, key=value, reverse=descending) + unknown
