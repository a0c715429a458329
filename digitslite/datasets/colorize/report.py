"""What a colorization check found: problems, images per split, sizes, the chroma histogram and the
ab bins kept. JSON-serialisable, like the segmentation report, so the CLI, the API and the pages
show it the same way."""
import base64
from dataclasses import dataclass

from digitslite.datasets.problems import Problem, ProblemVerdict


@dataclass
class ColorizeReport(ProblemVerdict):
    problems: list[Problem]
    counts: dict[str, int]  # images stored per split
    found: dict[str, int]  # images found per split (stored + grey + unreadable)
    image_size: dict[str, dict | None]
    source_image_size: dict[str, dict | None]
    space: str
    bins: dict | None  # {"choice", "count", "centres", "pixels"}; None for yuv or before any pixel
    histogram_png: bytes | None
    seed: int

    def to_dict(self) -> dict:
        picture = None if self.histogram_png is None else \
            "data:image/png;base64," + base64.b64encode(self.histogram_png).decode("ascii")
        return {"ok": self.ok, "task": "colorization",
                "problems": [problem.to_dict() for problem in self.problems],
                "counts": self.counts, "found": self.found, "image_size": self.image_size,
                "source_image_size": self.source_image_size, "colour_space": self.space, "bins": self.bins,
                "histogram_picture": picture, "seed": self.seed}
