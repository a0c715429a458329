"""Colour scenes for a CPU-sized colorization demo (`digitslite demo --task colorization`).

Each scene is a pale, nearly grey background with a few objects whose colour follows their shape
and texture: discs are red, squares yellow, triangles blue, striped bars green and rings magenta.
Every object's brightness is jittered over the same range, so lightness alone does not tell the
colours apart but the shapes in the L plane do: a network that sees only L can learn them, and one
that paints everything grey scores visibly worse. Scene i of a split depends only on (seed, split, i).
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digitslite.datasets.create import publishing
from digitslite.errors import UserError
from digitslite.tasks.colorization import TASK

SHAPE_COLOURS = {"disc": (205, 40, 40), "square": (225, 200, 40), "triangle": (40, 80, 215),
                 "bars": (40, 170, 60), "ring": (190, 50, 190)}
BACKGROUND = (196, 200, 204)
BRIGHTNESS = (0.7, 1.15)
NOISE = 4.0
OBJECTS = (2, 5)
MIN_SIZE = 32


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int],
          colour: tuple[int, int, int]) -> None:
    left, top, right, bottom = box
    if shape == "disc":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([((left + right) // 2, top), (right, bottom), (left, bottom)], fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, (right - left) // 5))
    else:  # bars: stripes of the colour over a darker shade of it
        draw.rectangle(box, fill=tuple(channel // 3 for channel in colour))
        for y in range(top, bottom, 4):
            draw.rectangle((left, y, right, min(bottom, y + 1)), fill=colour)


def render_colour_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """H x W x 3 uint8: a few shape-coloured objects on a pale background, with lighting and noise."""
    shade = rng.uniform(0.85, 1.05)
    image = Image.new("RGB", (width, height), tuple(int(channel * shade) for channel in BACKGROUND))
    draw = ImageDraw.Draw(image)
    shapes = list(SHAPE_COLOURS)
    for _ in range(int(rng.integers(OBJECTS[0], OBJECTS[1] + 1))):
        shape = shapes[int(rng.integers(len(shapes)))]
        size = int(rng.integers(min(width, height) // 5, min(width, height) // 2))
        left, top = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        scale = rng.uniform(*BRIGHTNESS)
        colour = tuple(int(min(255, channel * scale)) for channel in SHAPE_COLOURS[shape])
        _draw(draw, shape, (left, top, left + size, top + size), colour)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, NOISE, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_colour_demo(out_dir: Path | str, count: int = 256, val_count: int = 32, width: int = 64,
                      height: int = 64, seed: int = 0) -> dict:
    """Write images/ and val_images/ into `out_dir` (which must not exist or be empty); return a summary."""
    if count < 1 or val_count < 0 or width < MIN_SIZE or height < MIN_SIZE:
        raise UserError(f"demo needs --count >= 1, --val-count >= 0 and an image of at least "
                        f"{MIN_SIZE}x{MIN_SIZE} pixels")
    with publishing(out_dir) as partial:
        for split, number, total in (("images", 0, count), ("val_images", 1, val_count)):
            (partial / split).mkdir()
            for index in range(total):
                pixels = render_colour_scene(np.random.default_rng([seed, number, index]), width, height)
                Image.fromarray(pixels).save(partial / split / f"{index:04d}.png")
    out = Path(out_dir).expanduser().absolute()
    return {"path": str(out), "description": "colour scenes", "task": TASK.name, "count": count,
            "val_count": val_count, "width": width, "height": height, "seed": seed,
            "shapes": {shape: list(colour) for shape, colour in SHAPE_COLOURS.items()},
            "dataset_fields": {name: str(out / name) for name in ("images", "val_images")}}
