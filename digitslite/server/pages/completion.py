"""Path completion for the forms: the folders and files under a typed prefix, never outside the
server's data roots."""
import os
from pathlib import Path

MAX_ENTRIES = 50


def complete_path(prefix: str, roots: tuple[Path, ...], *, folders_only: bool) -> list[str]:
    """Paths that continue `prefix` (absolute, or relative to the first root), folders ending in "/".

    An empty prefix lists the roots themselves. Nothing outside the roots is ever listed.
    """
    if not prefix:
        return [f"{root}/" for root in roots]
    typed = Path(prefix).expanduser()
    typed = typed if typed.is_absolute() else (roots[0] / typed if roots else typed)
    folder, start = (typed, "") if prefix.endswith("/") else (typed.parent, typed.name)
    real = folder.resolve()
    if not any(real == root or real.is_relative_to(root) for root in roots) or not real.is_dir():
        return []
    found = []
    with os.scandir(real) as entries:
        for entry in sorted(entries, key=lambda entry: entry.name):
            if not entry.name.startswith(start) or entry.name.startswith("."):
                continue
            is_dir = entry.is_dir()
            if is_dir or not folders_only:
                found.append(f"{folder / entry.name}{'/' if is_dir else ''}")
            if len(found) >= MAX_ENTRIES:
                break
    return found
