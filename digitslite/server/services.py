"""What the request handlers share: settings, the index, the scheduler, the users and the running
checks."""
from dataclasses import dataclass, field

from flask import current_app

from digitslite.jobs.index import JobIndex
from digitslite.jobs.lock import JobLock
from digitslite.jobs.scheduler import Scheduler
from digitslite.server.check_tasks import CheckTasks
from digitslite.server.config import ServerConfig
from digitslite.server.throttle import LoginThrottle
from digitslite.server.users import UserStore


@dataclass
class Services:
    config: ServerConfig
    index: JobIndex
    scheduler: Scheduler
    users: UserStore
    server_lock: JobLock | None  # held for the server's life when it schedules
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    checks: CheckTasks = field(default_factory=CheckTasks)


def services() -> Services:
    return current_app.extensions["digitslite"]
