"""Refusals of job operations, typed so that the API can answer with the right status."""
from digitslite.errors import UserError


class JobNotFoundError(UserError):
    """No job with that id (404)."""

    def __init__(self, job_id: str, field: str | None = None):
        super().__init__(f"no job with id {job_id!r}; list the jobs with GET /api/v1/jobs or "
                         "`digitslite jobs list`")
        self.field = field


class JobConflictError(UserError):
    """The job is not in a state that allows the operation (409)."""

    def __init__(self, message: str, related: list[str] | None = None):
        super().__init__(message)
        self.related = related or []
