"""Small generated image/label folders for the dataset tests, and a plain LMDB reader."""
import io
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from digitslite.caffe import caffe_pb2
from digitslite.datasets import DatasetOptions

COLOURS = [(0, 0, 0), (200, 30, 30), (30, 200, 30), (30, 30, 200)]
IGNORE = 255


def palette_for(colours) -> list[int]:
    flat = [channel for colour in colours for channel in colour]
    flat += [0] * (765 - len(flat))
    return [*flat, 255, 255, 255]  # the ignore index 255 is white


def scene(rng: np.random.Generator, width: int = 12, height: int = 10,
          classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Random RGB pixels and random class indices, every class present in the first pixels."""
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    indices = rng.integers(0, classes, (height, width), dtype=np.uint8)
    indices.flat[:classes] = np.arange(classes)
    return pixels, indices


def save_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def save_palette_label(path: Path, indices: np.ndarray, colours=COLOURS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    label = Image.fromarray(indices).convert("P")
    label.putpalette(palette_for(colours))
    label.save(path)


def save_rgb_label(path: Path, indices: np.ndarray, colours=COLOURS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.array([*colours, *[(0, 0, 0)] * (256 - len(colours))], dtype=np.uint8)
    Image.fromarray(table[indices]).save(path)


def save_index_label(path: Path, indices: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(indices).save(path)


SAVERS = {"palette": save_palette_label, "rgb": save_rgb_label, "index": save_index_label}


Written = dict[str, tuple[np.ndarray, np.ndarray]]


def make_folders(root: Path, count: int, mode: str = "palette", seed: int = 0, width: int = 12,
                 height: int = 10, classes: int = 3, prefix: str = "") -> Written:
    """Write `count` pairs into root/<prefix>images and root/<prefix>labels; return name -> arrays."""
    rng = np.random.default_rng(seed)
    written = {}
    for index in range(count):
        name = f"{index:03d}"
        pixels, indices = scene(rng, width, height, classes)
        save_image(root / f"{prefix}images" / f"{name}.png", pixels)
        SAVERS[mode](root / f"{prefix}labels" / f"{name}.png", indices)
        written[name] = (pixels, indices)
    return written


def write_colormap(path: Path, colours=COLOURS, names=None) -> Path:
    lines = [f"{r} {g} {b}" + (f" {names[i]}" if names else "") for i, (r, g, b) in enumerate(colours)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_lmdb(path: Path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an LMDB folder, in key order, read with py-lmdb directly."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return list(txn.cursor())
    finally:
        env.close()


def datum(value: bytes) -> caffe_pb2.Datum:
    return caffe_pb2.Datum.FromString(value)


def decoded(datum_value: caffe_pb2.Datum) -> np.ndarray:
    """Pixels of an encoded Datum as PIL decodes them (H x W x C, or H x W)."""
    with Image.open(io.BytesIO(datum_value.data)) as image:
        return np.asarray(image)


def sources_by_key(dataset: Path, stage: str) -> dict[bytes, str]:
    """Record key -> source pair name, from the dataset's <stage>.txt list."""
    keys = {}
    for line in (dataset / f"{stage}.txt").read_text().splitlines():
        key, image, _ = line.split("\t")
        keys[key.encode()] = Path(image).stem
    return keys


def leftovers(parent: Path) -> list[str]:
    """Hidden partial folders a failed creation might have left next to its output."""
    return [path.name for path in parent.iterdir() if ".partial-" in path.name]


def options_for(root: Path, **overrides) -> DatasetOptions:
    """Options for the folders make_folders wrote under `root`: no validation split, one worker."""
    values = {"images": root / "images", "labels": root / "labels", "val_percent": 0, "seed": 5, "workers": 1}
    return DatasetOptions(**(values | overrides))
