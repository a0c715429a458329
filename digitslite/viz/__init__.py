"""Pictures of segmentations: colour maps, overlays, contours, legends, side-by-side panels; and the
layout of a network graph (netgraph) (no torch)."""
from digitslite.viz.compose import comparison, side_by_side
from digitslite.viz.legend import class_name, legend, legend_entries
from digitslite.viz.overlay import as_rgb, contours, overlay
from digitslite.viz.palette import colorize, extend_palette, read_dataset_classes, voc_palette
from digitslite.viz.png import write_label_png, write_rgb_png

__all__ = [
    "as_rgb", "class_name", "colorize", "comparison", "contours", "extend_palette", "legend",
    "legend_entries", "overlay", "read_dataset_classes", "side_by_side", "voc_palette",
    "write_label_png", "write_rgb_png",
]
