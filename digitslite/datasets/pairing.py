"""Match image files to label files by relative path and stem (extensions may differ), or read
the pairs from a text-file list.

`a/b/0001.jpg` in the image folder pairs with `a/b/0001.png` in the label folder. Files are
found recursively (symlinks followed, like DIGITS); anything unmatched, in either direction, is
reported rather than dropped. A list (as DIGITS and SegNet's CamVid ship them) holds one
`image_path label_path` line per pair; relative paths are read from the list's folder.
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


def find_images(folder: Path, problems: ProblemLog) -> dict[str, Path]:
    """Relative name (posix path without extension) -> file, for every image file under `folder`."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for file_name in sorted(files):
            path = Path(root) / file_name
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            name = path.relative_to(folder).with_suffix("").as_posix()
            if name in found:
                problems.add("duplicate_name", f"{found[name]} and {path}")
                continue
            found[name] = path
    return found


def pair_folders(images: Path, labels: Path, problems: ProblemLog) -> list[Pair]:
    """Pairs sorted by name; unpaired files in either folder go to `problems`."""
    image_files = find_images(images, problems)
    label_files = find_images(labels, problems)
    for name in sorted(image_files.keys() - label_files.keys()):
        problems.add("unpaired_image", f"{image_files[name]} (no {labels / name}.*)")
    for name in sorted(label_files.keys() - image_files.keys()):
        problems.add("unpaired_label", f"{label_files[name]} (no {images / name}.*)")
    return [Pair(name, image_files[name], label_files[name])
            for name in sorted(image_files.keys() & label_files.keys())]


def _listed(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def pair_list(list_file: Path, problems: ProblemLog) -> list[Pair]:
    """Pairs in the list's order; blank lines and # comments are skipped, bad lines go to `problems`."""
    base = list_file.parent
    pairs, seen = [], set()
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split()
        where = f"{list_file}:{number}"
        if len(fields) != 2:
            problems.add("list_line", f"{where}: {text}")
            continue
        image, label = (_listed(base, field) for field in fields)
        missing = [str(path) for path in (image, label) if not path.is_file()]
        if missing:
            problems.add("listed_missing", f"{where}: {', '.join(missing)}")
            continue
        name = (image.relative_to(base) if image.is_relative_to(base) else image).with_suffix("").as_posix()
        if name in seen:
            problems.add("duplicate_name", f"{where}: {image} is listed twice")
            continue
        seen.add(name)
        pairs.append(Pair(name, image, label))
    return pairs
