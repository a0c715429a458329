"""The validation report: problems found and class statistics, JSON-serialisable.

It is what `--dry-run` prints, what the job server's Check button shows, and what a refused
creation carries, so a user sees every problem at once instead of one per attempt.
"""
from dataclasses import dataclass, field

import numpy as np

from digitslite.datasets.colormap import RGB
from digitslite.datasets.encoder import ItemResult
from digitslite.datasets.problems import Problem, ProblemVerdict

STAGES = ("train", "val")


@dataclass
class SizeStats:
    """Smallest, largest and mean (width, height) of the images seen."""

    count: int = 0
    min: tuple[int, int] | None = None
    max: tuple[int, int] | None = None
    total: tuple[int, int] = (0, 0)

    def add(self, size: tuple[int, int]) -> None:
        self.count += 1
        self.min = size if self.min is None else (min(self.min[0], size[0]), min(self.min[1], size[1]))
        self.max = size if self.max is None else (max(self.max[0], size[0]), max(self.max[1], size[1]))
        self.total = (self.total[0] + size[0], self.total[1] + size[1])

    def to_dict(self) -> dict | None:
        if not self.count:
            return None
        mean = [round(self.total[0] / self.count, 1), round(self.total[1] / self.count, 1)]
        return {"min": list(self.min), "max": list(self.max), "mean": mean, "uniform": self.min == self.max}


@dataclass
class StageStats:
    """What one split holds: pixels per index value, images per index value, sizes."""

    pairs: int = 0
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    images: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    source_size: SizeStats = field(default_factory=SizeStats)
    stored_size: SizeStats = field(default_factory=SizeStats)

    def add(self, result: ItemResult) -> None:
        if result.source_size is not None:
            self.source_size.add(result.source_size)
        if result.histogram is not None:
            self.pixels += result.histogram
            self.images += result.histogram > 0
            self.stored_size.add(result.stored_size)


@dataclass
class ClassStat:
    index: int
    name: str
    colour: RGB
    pixels: dict[str, int]
    images: dict[str, int]
    frequency: dict[str, float]

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "colour": list(self.colour), "pixels": self.pixels,
                "images": self.images, "frequency": self.frequency}


@dataclass
class ValidationReport(ProblemVerdict):
    """Problems (errors and warnings) and per-class statistics of a planned dataset."""

    problems: list[Problem]
    counts: dict[str, int]
    classes: list[ClassStat]
    ignore_label: int
    ignored_pixels: dict[str, int]
    image_size: dict[str, dict | None]
    source_image_size: dict[str, dict | None]
    seed: int

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": [problem.to_dict() for problem in self.problems],
                "counts": self.counts, "classes": [stat.to_dict() for stat in self.classes],
                "ignore_label": self.ignore_label, "ignored_pixels": self.ignored_pixels,
                "image_size": self.image_size, "source_image_size": self.source_image_size, "seed": self.seed}


def class_stats(stages: dict[str, StageStats], names: list[str], colours: list[RGB]) -> list[ClassStat]:
    """Per-class pixel and image counts, frequencies over the labelled (non-ignored) pixels."""
    count = len(names)
    labelled = {stage: int(stats.pixels[:count].sum()) for stage, stats in stages.items()}

    def frequency(stage: str, index: int) -> float:
        total = labelled[stage]
        return round(int(stages[stage].pixels[index]) / total, 6) if total else 0.0

    return [ClassStat(index, names[index], colours[index],
                      {stage: int(stats.pixels[index]) for stage, stats in stages.items()},
                      {stage: int(stats.images[index]) for stage, stats in stages.items()},
                      {stage: frequency(stage, index) for stage in stages})
            for index in range(count)]
