"""The kinds of job, each declared once in its own module; a new kind adds its module to KIND_MODULES."""
from digitslite.jobs.kinds import dataset, inference, model, pretrained
from digitslite.jobs.kinds.base import JobKind, load

# In the order of the home page's tabs.
KIND_MODULES = (model, dataset, pretrained, inference)
KINDS: dict[str, JobKind] = {module.KIND.name: module.KIND for module in KIND_MODULES}
KIND_NAMES = tuple(KINDS)


def job_kind(name: str) -> JobKind:
    if name not in KINDS:
        raise ValueError(f"no job kind {name!r}; known: {', '.join(KIND_NAMES)}")
    return KINDS[name]


__all__ = ["KINDS", "KIND_NAMES", "JobKind", "job_kind", "load"]
