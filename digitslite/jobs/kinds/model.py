"""Model jobs: train a network on a dataset job's LMDBs."""
from digitslite.jobs.kinds.base import JobKind

KIND = JobKind(name="model", title="Model", tab="models", tab_title="Models",
               runner="digitslite.jobs.runners.model", planner="digitslite.server.create_model:plan_model",
               api="digitslite.server.create_model:models_api", page="pages.model",
               page_module="digitslite.server.pages.models",
               request_schema="digitslite.server.schemas.requests:ModelRequest")
