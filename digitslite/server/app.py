"""The Flask application factory: one jobs directory, its index, its scheduler, its users."""
import logging
import os
import secrets
from pathlib import Path

from flask import Flask, request

from digitslite.errors import UserError
from digitslite.jobs.index import JobIndex
from digitslite.jobs.lock import JobLock
from digitslite.jobs.scheduler import Scheduler, SchedulerSettings
from digitslite.server.api import api
from digitslite.server.auth import install_auth
from digitslite.server.config import INDEX_FILE, MAX_JSON_BODY_BYTES, USERS_FILE, ServerConfig
from digitslite.server.create_dataset import datasets_api
from digitslite.server.create_inference import inference_api
from digitslite.server.create_model import models_api
from digitslite.server.create_pretrained import pretrained_api
from digitslite.server.download import download_api
from digitslite.server.errors import install_error_handlers
from digitslite.server.hosts import install_host_check
from digitslite.server.pages import pages
from digitslite.server.schemas.openapi import openapi_api
from digitslite.server.services import Services
from digitslite.server.sse import events_api
from digitslite.server.store.routes import store_api
from digitslite.server.store.tree import store_tree
from digitslite.server.users import UserStore

SECRET_FILE = ".secret_key"
SERVER_LOCK_FILE = ".server.lock"


def _secret_key(jobs_dir: Path) -> bytes:
    """Kept in the jobs directory so that sessions survive a restart; readable by the owner only."""
    path = jobs_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def _claim_jobs_dir(jobs_dir: Path) -> JobLock:
    """Only one scheduler may run per jobs directory: two would start every job twice."""
    lock = JobLock(jobs_dir / SERVER_LOCK_FILE)
    if not lock.acquire(blocking=False):
        raise UserError(f"another digitslite server is already running with the jobs directory {jobs_dir}; "
                        "stop it, or give this one another --jobs-dir")
    return lock


def _limit_body() -> None:
    """Only file uploads (multipart) may use the upload limit; a JSON or form body is parsed in
    memory and gets a small one."""
    if request.mimetype != "multipart/form-data":
        request.max_content_length = MAX_JSON_BODY_BYTES


def create_app(config: ServerConfig | None = None) -> Flask:
    """Build the app; with `config.scheduler` it also recovers the jobs and starts scheduling."""
    config = (config or ServerConfig.from_env()).resolved()
    config.jobs_dir.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(config.jobs_dir),
        MAX_CONTENT_LENGTH=config.max_upload_bytes,
        SESSION_COOKIE_NAME="digitslite_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("DIGITSLITE_SECURE_COOKIES") == "1",
    )
    app.json.sort_keys = False
    server_lock = _claim_jobs_dir(config.jobs_dir) if config.scheduler else None
    index = JobIndex(config.jobs_dir / INDEX_FILE)
    settings = SchedulerSettings(gpus=list(config.gpus or []), cpu_slots=config.cpu_slots,
                                 abort_grace_s=config.abort_grace_s, poll_interval_s=config.poll_interval_s)
    scheduler = Scheduler(config.jobs_dir, index, settings)
    app.extensions["digitslite"] = Services(config, index, scheduler, UserStore(config.jobs_dir / USERS_FILE),
                                            server_lock)
    install_error_handlers(app)
    # Each request thread's SQLite connection ends with its request, not when the collector finds it.
    app.teardown_appcontext(lambda exc: index.close())
    install_auth(app)
    install_host_check(app)
    app.before_request(_limit_body)
    app.register_blueprint(pages)
    app.register_blueprint(store_tree)
    for blueprint in (api, datasets_api, models_api, inference_api, pretrained_api, download_api, events_api,
                      openapi_api, store_api):
        app.register_blueprint(blueprint, url_prefix="/api/v1")
    if config.scheduler:
        scheduler.start()
    else:
        index.reconcile(config.jobs_dir)
    logging.getLogger(__name__).info("jobs directory %s, GPUs %s, %d CPU slots", config.jobs_dir,
                                     ", ".join(config.gpus or []) or "none", config.cpu_slots)
    return app

