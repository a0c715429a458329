"""The dataset request fields only colorization reads (digitslite.tasks.colorization names their roles)."""
from typing import Literal

from digitslite.datasets.colorize.bins import BIN_CHOICES
from digitslite.datasets.colorize.colour import SPACES
from digitslite.server.schemas.body import Body


class ColorizationFields(Body):
    space: Literal[SPACES] | None = None
    """colorization: the colour space, lab (default) or yuv"""
    bins: Literal[BIN_CHOICES] | None = None
    """colorization in lab: the ab bins, paper (grid 10 where it occurs; default) or 18x18"""
