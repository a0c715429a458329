"""What declares a kind of job: one record that the worker, the API, the pages and the templates read.

The parts of a kind live on different floors (its runner in jobs.runners, run by the worker; its
request planner and API routes in the server; its page in server.pages), so the record names them
by module path and each floor loads only the part it owns: nothing here imports upwards.
"""
import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobKind:
    name: str           # job.json's "kind"
    title: str          # what a page calls one job of this kind: "Pretrained model"
    tab: str            # the home page's tab (?tab=) that lists them
    tab_title: str      # that tab's label
    runner: str         # module with run(ctx), imported by the worker only
    planner: str        # "module:function" that turns an API request into jobs (server)
    api: str            # "module:blueprint" of its API routes, under /api/v1 (server)
    page: str           # the Flask endpoint of one job's page
    page_module: str    # module that attaches that page's routes (server.pages)
    # "module:Name" of the schema (server.schemas.requests) that declares its API request body.
    request_schema: str | None = None


def load(reference: str) -> Any:
    """The object a "module:name" reference names (or the module, without ":name")."""
    module, _, name = reference.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, name) if name else loaded
