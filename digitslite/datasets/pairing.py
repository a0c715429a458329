"""Match image files to label files by relative path and stem (extensions may differ).

`a/b/0001.jpg` in the image folder pairs with `a/b/0001.png` in the label folder. Files are
found recursively (symlinks followed, like DIGITS); anything unmatched, in either direction, is
reported rather than dropped.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from digitslite.datasets.problems import ProblemLog

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"})


@dataclass(frozen=True)
class Pair:
    """An image and its label; `name` is the shared relative path without extension."""

    name: str
    image: Path
    label: Path


def _inside(path: Path, within: tuple[Path, ...] | None) -> bool:
    if within is None:
        return True
    real = path.resolve()
    return any(real == root or real.is_relative_to(root) for root in within)


def _unvisited(root: str, dirs: list[str], seen: set[tuple[int, int]], problems: ProblemLog) -> list[str]:
    """The subfolders of `root` not walked yet; one reached again through a link is reported."""
    kept = []
    for name in sorted(dirs):
        try:
            info = os.stat(os.path.join(root, name))
        except OSError:
            continue  # a dangling link: no folder to walk
        if (info.st_dev, info.st_ino) in seen:
            problems.add("link_loop", os.path.join(root, name))
            continue
        seen.add((info.st_dev, info.st_ino))
        kept.append(name)
    return kept


def find_images(folder: Path, problems: ProblemLog,
                within: tuple[Path, ...] | None = None) -> dict[str, Path]:
    """Relative name (posix path without extension) -> file, for every image file under `folder`.

    Links are followed, each folder walked once; with `within`, a file whose real path lies outside
    those (resolved) folders is reported instead of read."""
    found: dict[str, Path] = {}
    start = os.stat(folder)
    seen = {(start.st_dev, start.st_ino)}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = _unvisited(root, dirs, seen, problems)
        for file_name in sorted(files):
            path = Path(root) / file_name
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if not _inside(path, within):
                problems.add("outside_roots", f"{path} -> {path.resolve()}")
                continue
            if not path.is_file():  # a pipe or device would block or never end its reading
                problems.add("unreadable", f"{path} (not a regular file)")
                continue
            name = path.relative_to(folder).with_suffix("").as_posix()
            if name in found:
                problems.add("duplicate_name", f"{found[name]} and {path}")
                continue
            found[name] = path
    return found


def pair_folders(images: Path, labels: Path, problems: ProblemLog,
                 within: tuple[Path, ...] | None = None) -> list[Pair]:
    """Pairs sorted by name; unpaired files in either folder go to `problems`."""
    image_files = find_images(images, problems, within)
    label_files = find_images(labels, problems, within)
    for name in sorted(image_files.keys() - label_files.keys()):
        problems.add("unpaired_image", f"{image_files[name]} (no {labels / name}.*)")
    for name in sorted(label_files.keys() - image_files.keys()):
        problems.add("unpaired_label", f"{label_files[name]} (no {images / name}.*)")
    return [Pair(name, image_files[name], label_files[name])
            for name in sorted(image_files.keys() & label_files.keys())]
