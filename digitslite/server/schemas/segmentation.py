"""The dataset request fields only segmentation reads (digitslite.tasks.segmentation names their roles)."""
from typing import Literal

from digitslite.datasets.options import ENCODINGS, LABEL_MODES
from digitslite.server.schemas.body import Body
from digitslite.server.schemas.types import Flag, ServerPath, whole


class SegmentationFields(Body):
    labels: ServerPath | None = None
    train_list: ServerPath | None = None
    """instead of images and labels: a text file of `image_path label_path` lines on the server
    (relative paths are read from its folder)"""
    val_list: ServerPath | None = None
    """validation pairs as such a list"""
    val_labels: ServerPath | None = None
    colormap: ServerPath | None = None
    """the RGB colour of each class (label_mode rgb)"""
    classes: ServerPath | None = None
    """class names, one per line"""
    label_mode: Literal[LABEL_MODES] = "palette"
    nearest: Flag = False
    """map colours missing from the colour map to the nearest one"""
    ignore_label: whole(0, 255) = 255
    encoding: Literal[ENCODINGS] = "png"
    allow_empty_classes: Flag = False
