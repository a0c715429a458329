"""Every error the server answers is JSON {"error": {"message", "field"}} with a 4xx or 5xx status."""
import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from digitslite.datasets.controls import as_fields
from digitslite.diskfull import disk_full_message, is_disk_full
from digitslite.errors import UserError
from digitslite.jobs.errors import JobConflictError, JobNotFoundError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra


def error_response(status: int, message: str, field: str | None = None, **extra: Any) -> tuple[Response, int]:
    body = {"error": {"message": message, "field": field, **extra}}
    return jsonify(body), status


def disk_full_response(exc: Exception) -> tuple[Response, int] | None:
    """A 507 that says "disk full" with the jobs directory, when that is what `exc` means; else None."""
    jobs_dir = current_app.extensions["digitslite"].config.jobs_dir
    if not is_disk_full(exc, jobs_dir):
        return None
    log.warning("%s %s: %s", request.method, request.path, exc)
    return error_response(507, disk_full_message(jobs_dir))


def unexpected_error_response(exc: Exception) -> tuple[Response, int]:
    """A full disk's 507, else a 500 whose details go to the server log, not to the client."""
    full = disk_full_response(exc)
    if full is not None:
        return full
    log.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(500, "internal server error; the server log has the details")


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.field, **exc.extra)

    @app.errorhandler(JobNotFoundError)
    def _not_found(exc: JobNotFoundError):
        return error_response(404, str(exc), exc.field)

    @app.errorhandler(JobConflictError)
    def _conflict(exc: JobConflictError):
        return error_response(409, str(exc), None, related=exc.related)

    @app.errorhandler(UserError)
    def _user_error(exc: UserError):
        template = getattr(exc, "template", None)  # options marked [[name]]: the API's words, and the marks
        if template is None:
            return error_response(422, str(exc), getattr(exc, "field", None))
        return error_response(422, as_fields(template), getattr(exc, "field", None), template=template)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        limit_mib = (request.max_content_length or 0) // (1024 * 1024)
        if request.max_content_length != app.config.get("MAX_CONTENT_LENGTH"):
            return error_response(413, f"the request body is larger than {limit_mib} MiB, the limit for "
                                       "anything but a file upload; send files as multipart/form-data")
        return error_response(413, f"the upload is larger than the server's limit of {limit_mib} MiB; send "
                                   "fewer or smaller files, or raise DIGITSLITE_MAX_UPLOAD_MB")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        """JSON, keeping the exception's own headers (a 416's Content-Range, a 405's Allow)."""
        response, status = error_response(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    app.errorhandler(Exception)(unexpected_error_response)
