"""Jobs as the API shows them: a summary row for lists, the full record for one job."""
from typing import Any

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.index import JobIndex
from digitslite.jobs.job import TERMINAL
from digitslite.jobs.kinds.dataset import check_report

API = "/api/v1"


def job_links(job_id: str, kind: str) -> dict[str, str]:
    base = f"{API}/jobs/{job_id}"
    links = {"self": base, "metrics": f"{base}/metrics", "log": f"{base}/log", "events": f"{base}/events"}
    if kind in ("model", "pretrained"):
        links["infer"] = f"{API}/models/{job_id}/infer"
    if kind == "model":
        links["download"] = f"{API}/models/{job_id}/download"
    return links


def job_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "links": job_links(row["id"], row["kind"])}


def job_detail(folder: JobFolder, row: dict[str, Any], index: JobIndex) -> dict[str, Any]:
    """Everything about one job; status and progress come from its folder, fresher than the index."""
    spec, state = folder.spec(), folder.state()
    return {
        **job_summary(row),
        "status": str(state.status),
        "progress": state.progress,
        "message": state.message,
        "error": state.error,
        "notes": spec.notes,
        "params": spec.params,
        "gpus_requested": spec.gpus,
        "waits_for": spec.waits_for,
        "dependents": index.dependents(spec.id),
        # The marker outlives the final state by a moment; a finished job has no abort pending.
        "abort_requested": state.status not in TERMINAL and folder.abort_requested(),
        "run": {"runs": state.runs, "gpus": state.gpus, "pid": state.pid, "launched_at": state.launched_at,
                "started_at": state.started_at, "finished_at": state.finished_at},
        "history": [{"status": status, "at": at} for status, at in state.history],
        "transitions": len(state.history),
        "snapshots": [{"iteration": snap.iteration, "weights": snap.weights.name,
                       "solverstate": snap.solverstate.name if snap.solverstate else None}
                      for snap in folder.snapshots()],
        "check_report": check_report(folder.path) if spec.kind == "dataset" else None,
    }
