"""A legend image: one row per class, a colour swatch and the class name."""
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROW_HEIGHT = 20
SWATCH = 14  # square side; drawn at (SWATCH_MARGIN, row top + SWATCH_MARGIN)
SWATCH_MARGIN = 3
TEXT_LEFT = SWATCH + 2 * SWATCH_MARGIN + 2
FONT_SIZE = 12


def class_name(index: int, names: Sequence[str]) -> str:
    """The class's name, or DIGITS' fallback "Class #n" when the names do not reach it."""
    return names[index] if 0 <= index < len(names) else f"Class #{index}"


def legend_entries(labels: np.ndarray, names: Sequence[str] = (),
                   hidden_classes: Iterable[int] = ()) -> dict[int, str]:
    """The classes present in a label map (minus hidden ones), in index order, with their names."""
    hidden = set(hidden_classes)
    present = (int(index) for index in np.unique(np.asarray(labels)))
    return {index: class_name(index, names) for index in present if index not in hidden}


def legend(classes: Sequence[str] | Mapping[int, str], palette: np.ndarray) -> np.ndarray:
    """An [H, W, 3] uint8 image, black text on white, ROW_HEIGHT pixels per class.

    `classes` is either every class name in index order or a {class index: name} selection
    (e.g. `legend_entries` of one prediction).
    """
    entries = classes.items() if isinstance(classes, Mapping) else enumerate(classes)
    entries = list(entries)
    font = ImageFont.load_default(size=FONT_SIZE)
    text_width = max((int(np.ceil(font.getlength(name))) for _, name in entries), default=0)
    canvas = Image.new("RGB", (TEXT_LEFT + text_width + SWATCH_MARGIN, ROW_HEIGHT * len(entries)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (index, name) in enumerate(entries):
        top = row * ROW_HEIGHT
        colour = tuple(int(channel) for channel in palette[index])
        corner = (SWATCH_MARGIN, top + SWATCH_MARGIN)
        draw.rectangle([corner, (corner[0] + SWATCH - 1, corner[1] + SWATCH - 1)], fill=colour)
        draw.text((TEXT_LEFT, top + ROW_HEIGHT // 2), name, fill="black", font=font, anchor="lm")
    return np.asarray(canvas)
