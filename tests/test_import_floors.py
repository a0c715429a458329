"""The package's floors (docs/DESIGN-NOTES.md, "Imports only run down"), checked on the source.

Every `import` and `from ... import` in digitslite/, at module level or inside a function, is an edge
of the graph; a rule broken anywhere fails here with the file and line that breaks it.
"""
import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "digitslite"

# Top floor first. A module may import from a lower floor and from its own part; never from a part
# above, nor from another part of its own floor.
FLOORS = (
    ("__main__",),
    ("cli",),
    ("server", "worker"),
    ("jobs",),
    ("engine", "modelstore", "viz"),
    ("datasets", "networks"),
    ("caffe",),
    ("layout", "tasks", "fileio", "diskfull", "archives"),
    ("errors", ""),
)
# Runners are the worker's: only it (and other runners) may import them.
RUNNERS = "digitslite.jobs.runners"
RUNNER_IMPORTERS = ("digitslite.worker", RUNNERS)


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edges() -> list[Edge]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = importer.split(".")[:len(importer.split(".")) - node.level + is_package]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from package import module` imports that module; `from module import name` the module.
                names = [f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base
                         for alias in node.names]
            else:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            found += [Edge(importer, name, where) for name in names
                      if name == "digitslite" or name.startswith("digitslite.")]
    return found


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").is_file() or (PACKAGE.parent / relative).is_dir()


def _part(module: str) -> str:
    """The floor part a module belongs to: its first name below digitslite ("" for digitslite itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _floor(module: str) -> int:
    part = _part(module)
    for number, parts in enumerate(FLOORS):
        if part in parts:
            return number
    raise AssertionError(f"{module}: its part {part!r} is on no floor; add it to FLOORS in {__file__}")


EDGES = _edges()


def test_the_graph_is_read():
    """A broken parser would pass every rule; these edges exist and must be seen."""
    pairs = {(edge.importer, edge.imported) for edge in EDGES}
    assert ("digitslite.worker", "digitslite.jobs.runners") in pairs
    assert ("digitslite.jobs.folder", "digitslite.layout") in pairs


def test_every_import_runs_down():
    upward = sorted({str(edge) for edge in EDGES if _part(edge.importer) != _part(edge.imported)
                     and _floor(edge.imported) <= _floor(edge.importer)})
    assert not upward, "imports that run up or sideways:\n" + "\n".join(upward)


def test_only_the_worker_imports_runners():
    reaching = sorted({str(edge) for edge in EDGES if edge.imported.startswith(RUNNERS)
                       and not edge.importer.startswith(RUNNER_IMPORTERS)})
    assert not reaching, "runners are the worker's; move what others need to jobs.kinds:\n" + \
        "\n".join(reaching)


def test_no_two_modules_import_each_other():
    pairs = {(edge.importer, edge.imported): edge for edge in EDGES}
    mutual = sorted({str(edge) for (importer, imported), edge in pairs.items()
                     if importer != imported and (imported, importer) in pairs})
    assert not mutual, "modules that import each other:\n" + "\n".join(mutual)

