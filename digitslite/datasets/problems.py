"""What can be wrong with a user's folders, and a log that counts it.

Every check in dataset creation reports through one catalogue of problem kinds, so the report
table, the JSON API and the one-line error all say the same thing with the same fix. The texts name
options as [[name]] (datasets.controls), each interface in its own words.
"""
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from digitslite.datasets.controls import as_fields, as_flags

ERROR = "error"
WARNING = "warning"
EXAMPLES_KEPT = 5


class ProblemKind(NamedTuple):
    severity: str
    what: str
    fix: str


KINDS: dict[str, ProblemKind] = {
    "unreadable": ProblemKind(
        ERROR, "files that cannot be read as images", "replace the file or remove it (and its partner)"),
    "unpaired_image": ProblemKind(
        ERROR, "images without a label",
        "add a label with the same relative path and name (any extension) or remove the image"),
    "unpaired_label": ProblemKind(
        ERROR, "labels without an image",
        "add the image with the same relative path and name (any extension) or remove the label"),
    "list_line": ProblemKind(
        ERROR, "list lines that are not one image path and one label path",
        "write each line as `image_path label_path` (relative paths are read from the list's folder)"),
    "listed_missing": ProblemKind(
        ERROR, "listed files that do not exist",
        "fix the path (a relative one is read from the list's folder) or remove the line"),
    "outside_roots": ProblemKind(
        ERROR, "files that link to a place outside the folders this server may read",
        "copy the file into the data root instead of linking to it"),
    "link_loop": ProblemKind(
        ERROR, "folders reached a second time through a link (a loop, or two links to one folder)",
        "remove the link"),
    "duplicate_name": ProblemKind(
        ERROR, "files sharing one relative name with different extensions",
        "keep one file per name in each folder"),
    "size_mismatch": ProblemKind(
        ERROR, "labels whose size differs from their image",
        "save the label at exactly the image's width and height"),
    "label_alpha": ProblemKind(
        ERROR, "labels with an alpha channel (RGBA, LA, PA)",
        "save labels without transparency, as palette PNG, RGB or grayscale"),
    "label_16bit": ProblemKind(
        ERROR, "16-bit labels", "save labels with 8 bits per channel"),
    "label_mode": ProblemKind(
        ERROR, "labels whose image mode does not fit [[label_mode]]",
        "choose the [[label_mode]] that matches the files (palette: mode P, rgb: RGB with [[colormap]], "
        "index: grayscale L/I)"),
    "unknown_colour": ProblemKind(
        ERROR, "label colours that are not in the colour map",
        "add the colour to the colour map, repaint those pixels, or turn on [[nearest]]"),
    "palette_colour": ProblemKind(
        ERROR, "palette colours that the reference palette (first label) does not hold",
        "save every label with the same palette"),
    "out_of_range": ProblemKind(
        ERROR, "class indices outside the class list",
        "fix the label values, or list more classes ([[classes]] or [[colormap]]); the ignore value is "
        "allowed"),
    "empty_class": ProblemKind(
        ERROR, "classes without a single pixel in the training split",
        "add labelled examples, drop the class from [[classes]] or [[colormap]], or turn on "
        "[[allow_empty_classes]]"),
    "empty_split": ProblemKind(
        ERROR, "splits without any image pair", "add image/label pairs or change [[val_percent]]"),
    "palette_remapped": ProblemKind(
        WARNING, "labels whose palette differs from the first label's; indices were remapped by colour",
        "none needed; save all labels with one palette to silence this"),
    "grey_image": ProblemKind(
        WARNING, "grayscale images, skipped (they carry no colour to learn from)",
        "none needed; remove them from the folder to silence this"),
    "nearest_colour": ProblemKind(
        WARNING, "label colours not in the colour map, matched to the nearest class colour ([[nearest]])",
        "none needed; add the colours to the colour map to silence this"),
}


@dataclass
class Problem:
    """One kind of problem with how many items it hit and the first few of them."""

    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return KINDS[self.kind].severity

    @property
    def what(self) -> str:
        return as_flags(KINDS[self.kind].what)

    @property
    def fix(self) -> str:
        return as_flags(KINDS[self.kind].fix)

    @property
    def shown_examples(self) -> list[str]:
        """The examples as the command line shows them."""
        return [as_flags(example) for example in self.examples]

    def to_dict(self) -> dict:
        """For the API: options named as its fields, and the marked texts a page words itself."""
        kind = KINDS[self.kind]
        return {"kind": self.kind, "severity": self.severity, "what": as_fields(kind.what),
                "fix": as_fields(kind.fix), "what_template": kind.what, "fix_template": kind.fix,
                "count": self.count, "examples": [as_fields(example) for example in self.examples],
                "examples_template": list(self.examples)}


class ProblemLog:
    """Problems grouped by kind in the order first seen, keeping EXAMPLES_KEPT examples of each."""

    def __init__(self) -> None:
        self._by_kind: dict[str, Problem] = {}

    def add(self, kind: str, example: str) -> None:
        if kind not in KINDS:
            raise KeyError(f"unknown problem kind {kind!r}")
        problem = self._by_kind.setdefault(kind, Problem(kind))
        problem.count += 1
        if len(problem.examples) < EXAMPLES_KEPT:
            problem.examples.append(example)

    def extend(self, found: list[tuple[str, str]]) -> None:
        for kind, example in found:
            self.add(kind, example)

    @property
    def problems(self) -> list[Problem]:
        return list(self._by_kind.values())

    @property
    def has_errors(self) -> bool:
        return any(problem.severity == ERROR for problem in self._by_kind.values())


class ProblemVerdict:
    """The verdict every task's report gives over its `problems`: one definition of ok, errors,
    warnings and the one-line summary, so a dataset of any task is refused in the same words."""

    problems: list[Problem]

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
        (the command line's flags unless told; identity keeps the [[name]] marks)."""
        return "; ".join(f"{problem.count} {words(KINDS[problem.kind].what)} "
                         f"(e.g. {words(problem.examples[0])}): {words(KINDS[problem.kind].fix)}"
                         for problem in self.errors)
