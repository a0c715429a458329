"""Turn a label image into class indices, in each of the three label modes, reporting what is wrong.

palette: mode-P images; indices are the pixel values, and a palette that differs from the first
         label's is reconciled colour by colour.
rgb:     RGB masks; each colour is looked up exactly in the colour map (nearest only with --nearest).
index:   grayscale L/I (also P and 1) images whose values are the class indices.
The ignore value passes through untouched in every mode.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from digitslite.datasets.colormap import RGB
from digitslite.datasets.options import ClassSpec

Found = list[tuple[str, str]]  # (problem kind, example) pairs, as ProblemLog.extend takes them

ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
ACCEPTED_MODES = {"palette": frozenset({"P"}), "rgb": frozenset({"RGB"}),
                  "index": frozenset({"L", "I", "1", "P"})}
MODE_FOR_IMAGE_MODE = {"P": "palette", "RGB": "rgb", "L": "index", "I": "index", "1": "index"}
COLOURS_LISTED = 3


def palette_of(image: Image.Image) -> bytes:
    """The image's palette as 256 RGB triples (zero-padded), or 768 zero bytes without one."""
    palette = image.getpalette("RGB") or []
    return bytes(palette[:768]).ljust(768, b"\0")


def is_16bit(image: Image.Image) -> bool:
    """True for 16-bit grayscale modes and for 16-bit-per-channel files that Pillow narrows to 8-bit
    RGB as it loads them, which only the not yet loaded file's raw mode reveals: call before load()."""
    return image.mode.startswith("I;16") or any(";16" in str(tile.args) for tile in image.tile)


def _unpack(packed: int) -> RGB:
    return (packed >> 16 & 255, packed >> 8 & 255, packed & 255)


def _pack(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.uint32)
    return pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2]


def _colour_list(colours: np.ndarray, counts: np.ndarray) -> str:
    order = np.argsort(-counts, kind="stable")
    listed = [f"{counts[i]} px of {_unpack(int(colours[i]))}" for i in order[:COLOURS_LISTED]]
    more = len(order) - COLOURS_LISTED
    return ", ".join(listed) + (f" and {more} more colours" if more > 0 else "")


def value_histogram(indices: np.ndarray) -> np.ndarray:
    """Pixels per value 0-255 of an H x W uint8 map. Pillow's counting loop is about three times
    numpy's bincount, which first widens every pixel to a machine integer."""
    return np.array(Image.fromarray(indices).histogram(), dtype=np.int64)


@dataclass(frozen=True)
class DecodedLabel:
    """A label as class indices (H x W uint8), with the pixel count of every value 0-255."""

    indices: np.ndarray
    histogram: np.ndarray

    @classmethod
    def of(cls, indices: np.ndarray) -> "DecodedLabel":
        return cls(indices, value_histogram(indices))


@dataclass(frozen=True)
class LabelDecoder:
    """Decodes label images of one label mode; picklable, so worker processes each get a copy."""

    mode: str
    ignore_label: int
    num_classes: int | None
    colour_keys: np.ndarray | None = None     # sorted packed RGB of the colour map
    colour_classes: np.ndarray | None = None  # class index of each sorted key
    class_colours: np.ndarray | None = None   # (classes, 3), for --nearest
    nearest: bool = False
    reference_palette: bytes | None = None
    reference_index: dict[bytes, int] = field(default_factory=dict)

    def decode(self, label: Image.Image, where: Path) -> tuple[DecodedLabel | None, Found]:
        """(the class indices and their histogram, problems); None when the label is unusable."""
        refusal = self._refuse_mode(label, where)
        if refusal:
            return None, [refusal]
        if self.mode == "palette":
            decoded, found = self._palette_indices(label, where)
        elif self.mode == "rgb":
            decoded, found = self._rgb_indices(label, where)
        else:
            decoded, found = self._index_values(label, where)
        if decoded is not None and self.num_classes is not None:
            found += self._range_problems(decoded.histogram, where)
        if any(kind not in ("palette_remapped", "nearest_colour") for kind, _ in found):
            return None, found
        return decoded, found

    def _refuse_mode(self, label: Image.Image, where: Path) -> tuple[str, str] | None:
        if label.mode in ALPHA_MODES:
            return "label_alpha", f"{where} (mode {label.mode})"
        if label.mode.startswith("I;16"):
            return "label_16bit", f"{where} (mode {label.mode})"
        if label.mode in ACCEPTED_MODES[self.mode]:
            return None
        fitting = MODE_FOR_IMAGE_MODE.get(label.mode)
        advice = f"use [[label_mode]] {fitting}" if fitting else "save it as palette PNG, RGB or grayscale"
        return "label_mode", f"{where} is mode {label.mode}, not read by [[label_mode]] {self.mode}: {advice}"

    def _palette_indices(self, label: Image.Image, where: Path) -> tuple[DecodedLabel | None, Found]:
        counts = np.array(label.histogram(), dtype=np.int64)  # pixels per palette index
        indices = np.asarray(label)
        palette = palette_of(label)
        changed = [int(i) for i in np.flatnonzero(counts) if i != self.ignore_label
                   and palette[3 * i:3 * i + 3] != self.reference_palette[3 * i:3 * i + 3]]
        if not changed:
            return DecodedLabel(indices, counts), []
        remap = np.arange(256, dtype=np.uint8)
        moves, missing = [], []
        for index in changed:
            colour = palette[3 * index:3 * index + 3]
            target = self.reference_index.get(colour)
            if target is None:
                missing.append(f"index {index} colour {tuple(colour)} ({counts[index]} px)")
            else:
                remap[index] = target
                moves.append(f"{index}->{target}")
        if missing:
            return None, [("palette_colour", f"{where}: {', '.join(missing)}")]
        remapped = np.bincount(remap, weights=counts, minlength=256).astype(np.int64)
        return DecodedLabel(remap[indices], remapped), [("palette_remapped",
                                                         f"{where}: indices {', '.join(moves)}")]

    def _rgb_indices(self, label: Image.Image, where: Path) -> tuple[DecodedLabel | None, Found]:
        packed = _pack(np.asarray(label))
        position = np.minimum(np.searchsorted(self.colour_keys, packed), len(self.colour_keys) - 1)
        known = self.colour_keys[position] == packed
        indices = self.colour_classes[position]
        if known.all():
            return DecodedLabel.of(indices), []
        unknown, counts = np.unique(packed[~known], return_counts=True)
        if not self.nearest:
            return None, [("unknown_colour", f"{where}: {_colour_list(unknown, counts)}")]
        rgb = np.stack([unknown >> 16 & 255, unknown >> 8 & 255, unknown & 255], axis=1).astype(np.int64)
        distances = ((rgb[:, None, :] - self.class_colours[None, :, :].astype(np.int64)) ** 2).sum(axis=2)
        nearest_class = distances.argmin(axis=1).astype(np.uint8)
        indices[~known] = nearest_class[np.searchsorted(unknown, packed[~known])]
        return DecodedLabel.of(indices), [("nearest_colour", f"{where}: {_colour_list(unknown, counts)}")]

    def _index_values(self, label: Image.Image, where: Path) -> tuple[DecodedLabel | None, Found]:
        if label.mode in ("L", "P"):  # 8-bit values: Pillow counts them as they are
            return DecodedLabel(np.asarray(label), np.array(label.histogram(), dtype=np.int64)), []
        values = np.asarray(label)
        outside = (values < 0) | (values > 255)
        if outside.any():
            example = int(values[outside][0])
            return None, [("out_of_range", f"{where}: {int(outside.sum())} px outside 0-255 "
                                           f"(e.g. {example})")]
        return DecodedLabel.of(values.astype(np.uint8)), []

    def _range_problems(self, histogram: np.ndarray, where: Path) -> Found:
        counts = histogram.copy()
        counts[self.ignore_label] = 0
        bad = np.flatnonzero(counts[self.num_classes:]) + self.num_classes
        if not len(bad):
            return []
        listed = ", ".join(f"{counts[i]} px of {i}" for i in bad[:COLOURS_LISTED])
        more = f" and {len(bad) - COLOURS_LISTED} more values" if len(bad) > COLOURS_LISTED else ""
        return [("out_of_range", f"{where}: {listed}{more} (classes 0-{self.num_classes - 1}, "
                                 f"ignore {self.ignore_label})")]


def find_reference_palette(label_paths: list[Path]) -> tuple[bytes, Path] | None:
    """The palette of the first readable mode-P label, which every other label is compared to."""
    for path in label_paths:
        try:
            with Image.open(path) as label:
                if label.mode == "P":
                    return palette_of(label), path
        except OSError:
            continue
    return None


def make_label_decoder(mode: str, spec: ClassSpec, ignore_label: int, nearest: bool,
                       reference_palette: bytes | None) -> LabelDecoder:
    """A decoder for `mode`; palette mode needs the reference palette, rgb mode the spec's colours."""
    if mode == "rgb":
        colours = np.array(spec.colours, dtype=np.uint8)
        keys = _pack(colours)
        order = np.argsort(keys)
        return LabelDecoder(mode, ignore_label, spec.count, keys[order], order.astype(np.uint8),
                            colours, nearest)
    if mode == "palette":
        reference = reference_palette or bytes(768)
        first_index: dict[bytes, int] = {}
        for index in range(256):
            first_index.setdefault(reference[3 * index:3 * index + 3], index)
        return LabelDecoder(mode, ignore_label, spec.count, reference_palette=reference,
                            reference_index=first_index)
    return LabelDecoder(mode, ignore_label, spec.count)
