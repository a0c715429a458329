"""What the pages read from job folders besides job.json and state.json: dataset descriptions and
the tail of a log."""
from pathlib import Path
from typing import Any

from digitslite.fileio import read_json
from digitslite.jobs.folder import JobFolder

LOG_TAIL_BYTES = 64 * 1024


def read_json_if_present(path: Path) -> dict[str, Any] | None:
    """A JSON file a job writes as it goes (dataset.json, ranks.json, results.json), or None while
    it does not exist (the job has not got that far)."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return None


def dataset_job_info(folder: JobFolder) -> dict[str, Any] | None:
    return read_json_if_present(folder.dataset.info_file)


def log_tail(folder: JobFolder, max_bytes: int = LOG_TAIL_BYTES) -> tuple[str, int]:
    """The last whole lines of the job's log (at most `max_bytes`), and the log's length in bytes."""
    try:
        with open(folder.log_file, "rb") as fh:
            fh.seek(0, 2)
            end = fh.tell()
            fh.seek(max(0, end - max_bytes))
            data = fh.read(end - fh.tell())
    except FileNotFoundError:
        return "", 0
    if end > max_bytes:
        data = data[data.find(b"\n") + 1:]
    return data.decode("utf-8", errors="replace"), end
