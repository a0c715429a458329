"""Class colours and names from the user's text files, and a default palette when there is none.

Two colour-map formats are read: DIGITS style (`R G B [name]`, line i = class i) and CVAT's
labelmap.txt (`name:R,G,B:parts:actions`). Lines starting with `#` and blank lines are skipped.
"""
from dataclasses import dataclass
from pathlib import Path

from digitslite.errors import UserError

RGB = tuple[int, int, int]
MAX_CLASSES = 255  # class indices are stored in 8-bit label PNGs next to the ignore value


@dataclass(frozen=True)
class ColorMap:
    """Colour of each class in index order, with the names the file gave (None where it gave none)."""

    colours: tuple[RGB, ...]
    names: tuple[str | None, ...]


def _read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc}); give a UTF-8 text file") from exc
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]


def _parse_channel(path: Path, number: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise UserError(f"{path}:{number}: colour value {text!r} is not an integer 0-255; "
                        "write each class as 'R G B [name]' (DIGITS) or 'name:R,G,B::' (CVAT)")
    return value


def _parse_digits_line(path: Path, number: int, line: str) -> tuple[RGB, str | None]:
    parts = line.split(maxsplit=3)
    if len(parts) < 3:
        raise UserError(f"{path}:{number}: expected 'R G B [name]', got {line!r}; "
                        "give three integers 0-255 and optionally the class name")
    colour = tuple(_parse_channel(path, number, part) for part in parts[:3])
    return colour, (parts[3].strip() if len(parts) == 4 else None)


def _parse_cvat_line(path: Path, number: int, line: str) -> tuple[RGB, str | None]:
    fields = line.split(":")
    channels = fields[1].split(",") if len(fields) > 1 else []
    if len(channels) != 3 or not fields[0].strip():
        raise UserError(f"{path}:{number}: expected CVAT 'name:R,G,B:parts:actions', got {line!r}; "
                        "give the class name and its colour as three comma-separated integers")
    colour = tuple(_parse_channel(path, number, part.strip()) for part in channels)
    return colour, fields[0].strip()


def read_colormap(path: Path) -> ColorMap:
    """Parse a DIGITS-style or CVAT colour map; refuse duplicate colours, which would be ambiguous."""
    lines = [(number, line) for number, line in _read_lines(path, "colour map")
             if line and not line.startswith("#")]
    if not lines:
        raise UserError(f"{path}: the colour map lists no class; write one 'R G B [name]' line per class")
    is_cvat = any(":" in line for _, line in lines)
    parse = _parse_cvat_line if is_cvat else _parse_digits_line
    colours: list[RGB] = []
    names: list[str | None] = []
    first_line_of: dict[RGB, int] = {}
    for number, line in lines:
        colour, name = parse(path, number, line)
        if colour in first_line_of:
            raise UserError(f"{path}:{number}: colour {colour} is already class {colours.index(colour)} "
                            f"(line {first_line_of[colour]}); give every class its own colour")
        first_line_of[colour] = number
        colours.append(colour)
        names.append(name)
    if len(colours) > MAX_CLASSES:
        raise UserError(f"{path}: {len(colours)} classes; at most {MAX_CLASSES} fit in 8-bit labels")
    return ColorMap(tuple(colours), tuple(names))


def read_class_names(path: Path) -> list[str]:
    """One class name per line, line i naming class i; trailing blank lines are ignored."""
    lines = _read_lines(path, "class names file")
    while lines and not lines[-1][1]:
        lines.pop()
    if not lines:
        raise UserError(f"{path}: the class names file is empty; write one class name per line")
    for number, line in lines:
        if not line:
            raise UserError(f"{path}:{number}: empty line; every line names one class (line i = class i)")
    if len(lines) > MAX_CLASSES:
        raise UserError(f"{path}: {len(lines)} classes; at most {MAX_CLASSES} fit in 8-bit labels")
    return [line for _, line in lines]


def default_palette(count: int) -> list[RGB]:
    """Distinct colours for `count` classes: the bits of the index spread over R, G and B.

    Bit k of the index lands in bit 7-k/3 of one channel, so neighbouring indices differ strongly.
    """
    colours = []
    for index in range(count):
        channels = [0, 0, 0]
        for bit in range(24):
            if index >> bit & 1:
                channels[bit % 3] |= 0x80 >> (bit // 3)
        colours.append((channels[0], channels[1], channels[2]))
    return colours
