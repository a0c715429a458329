"""What a colorization check found: problems, images per split, sizes, the chroma histogram and the
ab bins kept. JSON-serialisable, like the segmentation report, so the CLI, the API and the pages
show it the same way."""
import base64
from collections.abc import Callable
from dataclasses import dataclass

from digitslite.datasets.controls import as_flags
from digitslite.datasets.problems import ERROR, WARNING, Problem


@dataclass
class ColorizeReport:
    problems: list[Problem]
    counts: dict[str, int]  # images stored per split
    found: dict[str, int]  # images found per split (stored + grey + unreadable)
    image_size: dict[str, dict | None]
    source_image_size: dict[str, dict | None]
    space: str
    bins: dict | None  # {"choice", "count", "centres", "pixels"}; None for yuv or before any pixel
    histogram_png: bytes | None
    seed: int

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == WARNING]

    def summary_line(self, words: Callable[[str], str] = as_flags) -> str:
        """One line naming every error kind with its count, first example and fix; options in `words`
        (the command line's flags unless told), as the segmentation report's."""
        return "; ".join(f"{problem.count} {words(problem.what)} (e.g. {words(problem.examples[0])}): "
                         f"{words(problem.fix)}" for problem in self.errors)

    def to_dict(self) -> dict:
        picture = None if self.histogram_png is None else \
            "data:image/png;base64," + base64.b64encode(self.histogram_png).decode("ascii")
        return {"ok": self.ok, "task": "colorization",
                "problems": [problem.to_dict() for problem in self.problems],
                "counts": self.counts, "found": self.found, "image_size": self.image_size,
                "source_image_size": self.source_image_size, "colour_space": self.space, "bins": self.bins,
                "histogram_picture": picture, "seed": self.seed}
