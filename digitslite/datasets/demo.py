"""A procedural urban-scene generator: the embedded demo dataset for `make run` and the tests.

Each scene has a horizon, sky, a row of buildings, a road running to a vanishing point with
sidewalks and grass beside it, and cars, pedestrians, trees, poles and signs drawn back to front,
each object scaled by its distance. Colours are jittered per object and the image gets lighting
and sensor noise, so colour alone does not give the class away; every class appears in every
scene, so a majority-class guess scores a low mean IU. Scene i of a split depends only on (seed,
split, i), never on the count.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digitslite.datasets.create import publishing
from digitslite.errors import UserError

CLASSES = ("sky", "building", "road", "sidewalk", "grass", "tree", "car", "pedestrian", "pole", "sign")
CLASS_COLOURS = ((70, 130, 180), (140, 60, 40), (128, 64, 128), (244, 200, 232), (150, 210, 90),
                 (20, 110, 30), (0, 0, 200), (220, 20, 60), (160, 160, 160), (250, 220, 0))
IGNORE_COLOUR = (255, 255, 255)
SKY, BUILDING, ROAD, SIDEWALK, GRASS, TREE, CAR, PEDESTRIAN, POLE, SIGN = range(len(CLASSES))
JPEG_QUALITY = 92
MAX_ATTEMPTS = 20


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    shifted = np.clip(np.array(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return tuple(int(value) for value in shifted)


class _Painter:
    """Draws every shape on the photo and on the label at once, so their edges agree exactly."""

    def __init__(self, photo: Image.Image) -> None:
        self.photo = photo
        self.label = Image.new("L", photo.size, SKY)
        self._photo_draw = ImageDraw.Draw(photo)
        self._label_draw = ImageDraw.Draw(self.label)

    def shape(self, kind: str, geometry, cls: int, colour: tuple[int, int, int]) -> None:
        getattr(self._photo_draw, kind)(geometry, fill=colour)
        getattr(self._label_draw, kind)(geometry, fill=cls)

    def detail(self, kind: str, geometry, colour: tuple[int, int, int]) -> None:
        """Texture on the photo only (windows, lane marks): the class underneath stays."""
        getattr(self._photo_draw, kind)(geometry, fill=colour)


@dataclass(frozen=True)
class _Ground:
    """Where the ground is: horizon row, vanishing point and the road/sidewalk edges at the bottom."""

    horizon: float
    vanish_x: float
    road_left: float
    road_right: float
    walk_left: float
    walk_right: float
    height: int

    def depth(self, y: float) -> float:
        """0 at the horizon, 1 at the bottom row: how near (and so how big) things at row y are."""
        return max(0.02, (y - self.horizon) / (self.height - self.horizon))

    def x_at(self, bottom_x: float, y: float) -> float:
        """Column at row y of the ground line through (bottom_x, bottom) and the vanishing point."""
        return self.vanish_x + (bottom_x - self.vanish_x) * self.depth(y)


def _sky(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    top = np.array(_jitter(rng, (90, 140, 210), 30), dtype=np.float32)
    bottom = np.array(_jitter(rng, (200, 215, 230), 25), dtype=np.float32)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    gradient = top * (1 - rows) + bottom * rows
    return Image.fromarray(np.broadcast_to(gradient, (height, width, 3)).astype(np.uint8))


def _ground(rng: np.random.Generator, painter: _Painter, width: int, height: int) -> _Ground:
    horizon = height * rng.uniform(0.38, 0.5)
    vanish_x = width * rng.uniform(0.4, 0.6)
    road_left, road_right = width * rng.uniform(0.0, 0.25), width * rng.uniform(0.75, 1.0)
    walk = width * rng.uniform(0.12, 0.25)
    ground = _Ground(horizon, vanish_x, road_left, road_right, road_left - walk, road_right + walk, height)
    bottom = height - 1
    painter.shape("rectangle", (0, horizon, width, height), GRASS, _jitter(rng, (80, 140, 50), 25))
    painter.shape("polygon", [(vanish_x, horizon), (ground.walk_left, bottom), (road_left, bottom)],
                  SIDEWALK, _jitter(rng, (185, 180, 170), 20))
    painter.shape("polygon", [(vanish_x, horizon), (road_right, bottom), (ground.walk_right, bottom)],
                  SIDEWALK, _jitter(rng, (185, 180, 170), 20))
    painter.shape("polygon", [(vanish_x, horizon), (road_left, bottom), (road_right, bottom)],
                  ROAD, _jitter(rng, (75, 75, 80), 15))
    mark = _jitter(rng, (235, 235, 220), 15)
    for start in np.arange(0.05, 1.0, 0.18):
        top, end = horizon + (height - horizon) * start, horizon + (height - horizon) * min(1, start + 0.08)
        half_top, half_end = 0.6 * ground.depth(top), 0.6 * ground.depth(end)
        painter.detail("polygon", [(vanish_x - half_top, top), (vanish_x + half_top, top),
                                   (vanish_x + half_end, end), (vanish_x - half_end, end)], mark)
    return ground


def _buildings(rng: np.random.Generator, painter: _Painter, ground: _Ground, width: int) -> None:
    x = -rng.uniform(0, 20)
    while x < width:
        building_width = rng.uniform(0.12, 0.3) * width
        if rng.random() < 0.2:  # a gap that shows the sky
            x += building_width * 0.5
            continue
        top = ground.horizon - rng.uniform(0.15, 0.75) * ground.horizon
        box = (x, top, x + building_width, ground.horizon + 1)
        painter.shape("rectangle", box, BUILDING, _jitter(rng, (150, 120, 100), 50))
        window = _jitter(rng, (60, 70, 90), 30)
        step_x, step_y = max(4.0, building_width / 5), max(4.0, (ground.horizon - top) / 6)
        for wx in np.arange(x + step_x / 3, x + building_width - step_x / 2, step_x):
            for wy in np.arange(top + step_y / 3, ground.horizon - step_y / 2, step_y):
                painter.detail("rectangle", (wx, wy, wx + step_x / 2, wy + step_y / 2), window)
        x += building_width


def _tree(rng, painter: _Painter, x: float, y: float, size: float) -> None:
    trunk = max(1.5, size * 0.08)
    painter.shape("rectangle", (x - trunk, y - size * 0.6, x + trunk, y), TREE,
                  _jitter(rng, (90, 60, 30), 20))
    radius = size * rng.uniform(0.25, 0.35)
    crown = (x - radius, y - size * 0.6 - radius * 1.6, x + radius, y - size * 0.45)
    painter.shape("ellipse", crown, TREE, _jitter(rng, (40, 110, 40), 30))


def _pole_with_sign(rng, painter: _Painter, x: float, y: float, size: float) -> None:
    half = max(1.0, size * 0.025)
    top = y - size * 0.9
    painter.shape("rectangle", (x - half, top, x + half, y), POLE, _jitter(rng, (120, 120, 125), 20))
    sign = max(3.0, size * 0.12)
    colour = _jitter(rng, [(200, 30, 30), (30, 60, 190), (230, 200, 30)][rng.integers(3)], 20)
    shape = rng.integers(3)
    if shape == 0:
        painter.shape("ellipse", (x - sign, top - sign, x + sign, top + sign), SIGN, colour)
    elif shape == 1:
        painter.shape("rectangle", (x - sign, top - sign, x + sign, top + sign * 0.6), SIGN, colour)
    else:
        corners = [(x, top - sign), (x + sign, top + sign * 0.7), (x - sign, top + sign * 0.7)]
        painter.shape("polygon", corners, SIGN, colour)


def _pedestrian(rng, painter: _Painter, x: float, y: float, size: float) -> None:
    height = size * 0.5
    half = max(1.0, height * 0.13)
    legs = _jitter(rng, (50, 50, 70), 30)
    painter.shape("rectangle", (x - half, y - height * 0.45, x + half, y), PEDESTRIAN, legs)
    painter.shape("rectangle", (x - half * 1.3, y - height * 0.85, x + half * 1.3, y - height * 0.45),
                  PEDESTRIAN, _jitter(rng, (150, 90, 90), 90))
    head = max(1.0, half * 0.9)
    painter.shape("ellipse", (x - head, y - height - head * 0.4, x + head, y - height * 0.83), PEDESTRIAN,
                  _jitter(rng, (200, 160, 130), 30))


def _car(rng, painter: _Painter, x: float, y: float, size: float) -> None:
    length, body = size * 0.55, size * 0.16
    body_colour = _jitter(rng, (128, 128, 128), 120)
    painter.shape("rectangle", (x - length / 2, y - body, x + length / 2, y - body * 0.25), CAR, body_colour)
    cabin = [(x - length * 0.3, y - body), (x - length * 0.18, y - body * 1.8),
             (x + length * 0.2, y - body * 1.8), (x + length * 0.33, y - body)]
    painter.shape("polygon", cabin, CAR, body_colour)
    painter.detail("polygon", [(x - length * 0.25, y - body * 1.05), (x - length * 0.16, y - body * 1.65),
                               (x + length * 0.18, y - body * 1.65), (x + length * 0.27, y - body * 1.05)],
                   _jitter(rng, (40, 50, 70), 20))
    wheel = max(1.5, body * 0.35)
    for wheel_x in (x - length * 0.3, x + length * 0.3):
        painter.shape("ellipse", (wheel_x - wheel, y - wheel * 1.6, wheel_x + wheel, y + wheel * 0.4), CAR,
                      _jitter(rng, (25, 25, 25), 10))


def _objects(rng: np.random.Generator, ground: _Ground, width: int, height: int) -> list[tuple]:
    """(row, draw function, column) for every object; each kind at least once, placed by kind."""
    span = height - ground.horizon
    objects = []
    counts = {_car: rng.integers(1, 4), _pedestrian: rng.integers(1, 4), _tree: rng.integers(1, 4),
              _pole_with_sign: rng.integers(1, 3)}
    for draw, count in counts.items():
        for _ in range(count):
            y = ground.horizon + span * rng.uniform(0.35, 1.0)
            side = rng.integers(2)
            if draw is _car:
                low, high = ground.x_at(ground.road_left, y), ground.x_at(ground.road_right, y)
            elif draw is _tree:
                low, high = ((0, ground.x_at(ground.walk_left, y)) if side == 0
                             else (ground.x_at(ground.walk_right, y), width))
            elif side == 0:
                low, high = ground.x_at(ground.walk_left, y), ground.x_at(ground.road_left, y)
            else:
                low, high = ground.x_at(ground.road_right, y), ground.x_at(ground.walk_right, y)
            x = rng.uniform(min(low, high), max(low, high))
            objects.append((y, draw, x))
    return sorted(objects, key=lambda entry: entry[0])


def render_scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 photo, H x W uint8 class indices) of one scene holding every class."""
    for _ in range(MAX_ATTEMPTS):
        painter = _Painter(_sky(rng, width, height))
        ground = _ground(rng, painter, width, height)
        _buildings(rng, painter, ground, width)
        for y, draw, x in _objects(rng, ground, width, height):
            draw(rng, painter, x, y, height * 0.9 * ground.depth(y))
        labels = np.asarray(painter.label)
        if len(np.unique(labels)) == len(CLASSES):
            break
    photo = np.asarray(painter.photo, dtype=np.float32)
    light = np.linspace(rng.uniform(0.75, 1.1), rng.uniform(0.75, 1.1), width, dtype=np.float32)
    photo = photo * light[None, :, None] + rng.normal(0, rng.uniform(4, 12), photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8), labels.copy()


def palette_bytes() -> list[int]:
    """The labels' PNG palette: class colours, zeros, and white at the ignore index 255."""
    palette = [channel for colour in CLASS_COLOURS for channel in colour]
    palette += [0] * (765 - len(palette))
    return palette + list(IGNORE_COLOUR)


def _write_scene(folder: Path, split: str, name: str, photo: np.ndarray, labels: np.ndarray) -> None:
    prefix = "" if split == "train" else "val_"
    Image.fromarray(photo).save(folder / f"{prefix}images" / f"{name}.jpg", quality=JPEG_QUALITY)
    indexed = Image.fromarray(labels).convert("P")
    indexed.putpalette(palette_bytes())
    indexed.save(folder / f"{prefix}labels" / f"{name}.png")
    colours = np.array(CLASS_COLOURS, dtype=np.uint8)[labels]
    Image.fromarray(colours).save(folder / f"{prefix}labels_rgb" / f"{name}.png")


def write_demo(out_dir: Path | str, count: int = 64, val_count: int = 16, width: int = 160,
               height: int = 120, seed: int = 0) -> dict:
    """Write the demo folders into `out_dir` (which must not exist or be empty); return a summary."""
    out = Path(out_dir).expanduser().absolute()
    if count < 1 or val_count < 0 or width < 32 or height < 32:
        raise UserError("demo needs --count >= 1, --val-count >= 0 and an image of at least 32x32 pixels")
    with publishing(out) as partial:
        for prefix in ("", "val_"):
            for folder in ("images", "labels", "labels_rgb"):
                (partial / f"{prefix}{folder}").mkdir(parents=True)
        for split, number, total in (("train", 0, count), ("val", 1, val_count)):
            for index in range(total):
                photo, labels = render_scene(np.random.default_rng([seed, number, index]), width, height)
                _write_scene(partial, split, f"{index:04d}", photo, labels)
        (partial / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
        (partial / "colormap.txt").write_text("".join(f"{r} {g} {b} {name}\n" for (r, g, b), name
                                                      in zip(CLASS_COLOURS, CLASSES, strict=True)))
    folders = {name: str(out / name) for name in ("images", "labels", "val_images", "val_labels")}
    return {"path": str(out), "description": f"demo data ({len(CLASSES)} classes)", "count": count,
            "val_count": val_count, "width": width, "height": height, "seed": seed, "classes": list(CLASSES),
            "dataset_fields": folders | {"classes": str(out / "classes.txt")}}
