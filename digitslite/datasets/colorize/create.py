"""Colorization datasets: check a folder of colour photos, or write it as LMDBs, atomically.

Layout (DIGITS' per-split folders, keys `%09d` by position in the split; a skipped grey or unreadable
image leaves its key unused, which Caffe's cursor-order reading does not notice):
  <split>_db/features  the lightness plane (L or Y), 1-channel PNG Datums
  <split>_db/chroma    the two chroma planes (ab or UV), 2-channel PNG Datums (regression targets)
  <split>_db/labels    Lab only: the ab bin of every pixel, 16-bit PNG Datums (classification targets)
  infogain.binaryproto Lab only: H = diag(rebalancing weights) for InfogainLoss
  chroma_histogram.png the training chroma histogram, kept bins marked
  dataset.json         task, colour space and its storage, bins, weights, counts, sources
"""
import datetime
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from digitslite.datasets.colorize.bins import bin_counts, kept_centres, stored_lookup
from digitslite.datasets.colorize.colour import COLOUR_SPACES
from digitslite.datasets.colorize.encoder import (
    CHROMA,
    FEATURES,
    LABELS,
    ImageItem,
    LabelsConfig,
    PlanesConfig,
    PlaneTotals,
)
from digitslite.datasets.colorize.options import ColorizeOptions, ResolvedColorize, resolve_colorize
from digitslite.datasets.colorize.picture import histogram_picture
from digitslite.datasets.colorize.rebalance import (
    LAMBDA,
    SIGMA,
    infogain_blob,
    rebalancing_weights,
    smoothed_distribution,
)
from digitslite.datasets.colorize.report import ColorizeReport
from digitslite.datasets.create import DatasetSummary, publish_checked
from digitslite.datasets.pairing import find_images
from digitslite.datasets.parallel import WorkerPool, chunked
from digitslite.datasets.problems import ProblemLog
from digitslite.datasets.records import record_key
from digitslite.datasets.report import STAGES, SizeStats
from digitslite.datasets.resize import ResizeSpec
from digitslite.datasets.scan import Progress
from digitslite.datasets.split import split_pairs
from digitslite.layout import HISTOGRAM_FILE, INFOGAIN_FILE, DatasetFiles, db_name
from digitslite.tasks.colorization import TASK


class ImageEntry(NamedTuple):
    """A colour image and its relative name (what split_pairs orders by)."""

    name: str
    image: Path


@dataclass
class ColorizePlan:
    resolved: ResolvedColorize
    seed: int
    stages: dict[str, list[ImageEntry]]
    problems: ProblemLog

    @property
    def options(self) -> ColorizeOptions:
        return self.resolved.options


@dataclass
class Bins:
    """The kept ab bins with their training pixels, smoothed distribution and weights, and the bin
    of every stored chroma pair (what counts the pixels and labels the records)."""

    choice: str
    centres: np.ndarray
    lookup: np.ndarray  # (256, 256) uint16, bins.stored_lookup of the centres
    pixels: np.ndarray
    distribution: np.ndarray
    weights: np.ndarray

    def to_dict(self) -> dict:
        return {"choice": self.choice, "count": len(self.centres),
                "centres": [[round(float(a), 4), round(float(b), 4)] for a, b in self.centres],
                "pixels": self.pixels.tolist(), "sigma": SIGMA, "lambda": LAMBDA,
                "distribution": [float(value) for value in self.distribution],
                "weights": [float(value) for value in self.weights]}


@dataclass
class ColorizeOutcome:
    report: ColorizeReport
    totals: PlaneTotals
    bins: Bins | None
    stored: list[tuple[str, bytes]]  # (split, key) of every record written


def make_colorize_plan(options: ColorizeOptions) -> ColorizePlan:
    """Resolve the options, list the images and split them; listing problems go in plan.problems."""
    resolved = resolve_colorize(options)
    problems = ProblemLog()

    def entries(folder: Path) -> list[ImageEntry]:
        found = find_images(folder, problems, options.within)
        return [ImageEntry(name, path) for name, path in sorted(found.items())]

    images = entries(resolved.images)
    val = None if resolved.val_images is None else entries(resolved.val_images)
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    stages = split_pairs(images, val, resolved.val_percent, seed)
    if not stages["train"]:
        problems.add("empty_split", f"train: no images in {resolved.images}")
    if (val is not None or options.val_percent) and not stages["val"]:
        source = resolved.val_images if val is not None else f"{resolved.val_percent}% of {len(images)}"
        problems.add("empty_split", f"val: no images from {source}")
    return ColorizePlan(resolved, seed, stages, problems)


def _bins(plan: ColorizePlan, totals: PlaneTotals) -> Bins | None:
    if plan.resolved.bins is None or not totals.pixels:
        return None
    histogram = totals.chroma_histogram.reshape(256, 256)
    centres = kept_centres(plan.resolved.bins, histogram)
    lookup = stored_lookup(centres)
    pixels = bin_counts(histogram, lookup, len(centres))
    distribution = smoothed_distribution(pixels, centres)
    return Bins(plan.resolved.bins, centres, lookup, pixels, distribution, rebalancing_weights(distribution))


def scan_colorize(plan: ColorizePlan, out_dir: Path | None,
                  progress: Progress | None = None) -> ColorizeOutcome:
    """Pass 1 over every image (check, convert, write planes), then the bins, then pass 2 (labels)."""
    options, resolved = plan.options, plan.resolved
    writing = out_dir is not None and not plan.problems.has_errors
    resize = None if options.resize == "none" else ResizeSpec(options.resize, options.width, options.height)
    items = [ImageItem(stage, position, record_key(position), entry.image)
             for stage in STAGES for position, entry in enumerate(plan.stages[stage])]
    labelled = writing and resolved.bins is not None
    total = len(items) * (2 if labelled else 1)
    done = 0
    if progress:
        progress(0, total)
    found = {stage: len(plan.stages[stage]) for stage in STAGES}
    counts = dict.fromkeys(STAGES, 0)
    sizes = {stage: SizeStats() for stage in STAGES}
    source_sizes = {stage: SizeStats() for stage in STAGES}
    stored: list[tuple[str, bytes]] = []
    config = PlanesConfig(resolved.space, resize, out_dir if writing else None, plan.seed)
    with WorkerPool(config, resolved.workers) as pool:
        for chunk in pool.results(chunked(items, resolved.workers)):
            if chunk is None:  # none ready yet: a chance to stop
                if progress:
                    progress(done, total)
                continue
            for result in chunk:
                plan.problems.extend(result.found)
                stage = result.item.stage
                if result.source_size is not None:
                    source_sizes[stage].add(result.source_size)
                if result.stored_size is not None:
                    counts[stage] += 1
                    sizes[stage].add(result.stored_size)
                    stored.append((stage, result.item.key))
            if plan.problems.has_errors:
                pool.stop_encoding()
            done += len(chunk)
            if progress:
                progress(done, total)
        totals = PlaneTotals()
        for part in pool.finish():
            totals.merge(part)
    if not counts["train"] and not plan.problems.has_errors:
        plan.problems.add("empty_split",
                          f"train: no colour images among {found['train']} in {resolved.images}")
    bins = _bins(plan, totals)
    if labelled and not plan.problems.has_errors:
        done = len(items) + len(items) - len(stored)
        with WorkerPool(LabelsConfig(out_dir, bins.lookup), resolved.workers) as pool:
            for chunk in pool.results(chunked(stored, resolved.workers)):
                done += 0 if chunk is None else len(chunk)
                if progress:
                    progress(done, total)
            pool.finish()
    space = COLOUR_SPACES[resolved.space]
    picture = histogram_picture(totals.chroma_histogram.reshape(256, 256), space,
                                None if bins is None else bins.centres) if totals.pixels else None
    report = ColorizeReport(
        problems=plan.problems.problems, counts=counts, found=found,
        image_size={stage: sizes[stage].to_dict() for stage in STAGES},
        source_image_size={stage: source_sizes[stage].to_dict() for stage in STAGES},
        space=resolved.space, bins=None if bins is None else bins.to_dict(), histogram_png=picture,
        seed=plan.seed)
    return ColorizeOutcome(report, totals, bins, stored)


def check_colorize(options: ColorizeOptions, progress: Progress | None = None) -> ColorizeReport:
    """The dry run: every image checked and converted, the bins and the histogram; nothing written."""
    return scan_colorize(make_colorize_plan(options), None, progress).report


def create_colorize(options: ColorizeOptions, out_dir: Path | str,
                    progress: Progress | None = None) -> DatasetSummary:
    """Check and write the dataset to `out_dir`; raise DatasetInvalidError (with the report) on errors."""
    return publish_checked(out_dir, lambda: make_colorize_plan(options), scan_colorize, _write_extras,
                           progress)


def _write_extras(folder: Path, plan: ColorizePlan, outcome: ColorizeOutcome) -> dict:
    """The infogain matrix, the histogram picture, the per-split source lists and dataset.json."""
    if outcome.bins is not None:
        DatasetFiles(folder).infogain_file.write_bytes(infogain_blob(outcome.bins.weights))
    DatasetFiles(folder).histogram_file.write_bytes(outcome.report.histogram_png)
    written = set(outcome.stored)
    for stage in STAGES:
        keys = [(record_key(position), entry) for position, entry in enumerate(plan.stages[stage])]
        lines = [f"{key.decode()}\t{entry.image}\n" for key, entry in keys if (stage, key) in written]
        if lines:
            (folder / f"{stage}.txt").write_text("".join(lines), encoding="utf-8")
    info = colorize_info(plan, outcome)
    DatasetFiles(folder).info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def colorize_info(plan: ColorizePlan, outcome: ColorizeOutcome) -> dict:
    """dataset.json of a colorization dataset."""
    options, report, bins, totals = plan.options, outcome.report, outcome.bins, outcome.totals
    space = COLOUR_SPACES[plan.resolved.space]
    databases = [FEATURES, CHROMA] + ([LABELS] if bins is not None else [])
    bin_names = [] if bins is None else [f"a {a:g} b {b:g}" for a, b in np.round(bins.centres, 2)]
    return {
        "format": TASK.dataset_format,
        "task": TASK.name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "colour_space": space.to_dict(),
        "channels": 1,
        "mean_value": [round(totals.lightness_sum / totals.pixels, 4)],  # of the stored lightness
        "classes": bin_names,
        "bins": None if bins is None else bins.to_dict(),
        "infogain_file": INFOGAIN_FILE if bins is not None else None,
        "histogram_file": HISTOGRAM_FILE,
        "counts": report.counts,
        "found": report.found,
        "image_size": report.image_size,
        "source_image_size": report.source_image_size,
        "resize": None if options.resize == "none" else
        {"mode": options.resize, "width": options.width, "height": options.height},
        "mean_file": None,
        "databases": {stage: {name: db_name(stage, name) for name in databases}
                      for stage in STAGES if report.counts[stage]},
        "sources": {"images": str(plan.resolved.images), "val_images":
                    None if plan.resolved.val_images is None else str(plan.resolved.val_images)},
        "seed": plan.seed,
        "options": options.to_dict() | {"seed": plan.seed, "val_percent": plan.resolved.val_percent,
                                        "space": plan.resolved.space, "bins": plan.resolved.bins},
        "warnings": [problem.to_dict() for problem in report.warnings],
    }
