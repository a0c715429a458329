"""One pass over every pair: validate, gather class statistics and, when asked, write the LMDBs.

The same pass serves the dry run (no output folder) and creation (the workers write the records
under keys given by each pair's position in its split). As soon as an error is known the workers
stop encoding and the pass only keeps collecting problems, so a refused dataset costs little more
than its check.
"""
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitslite.datasets.colormap import RGB, default_palette
from digitslite.datasets.encoder import EncoderConfig, WorkItem
from digitslite.datasets.labels import LabelDecoder, find_reference_palette, make_label_decoder
from digitslite.datasets.mean import MeanAccumulator
from digitslite.datasets.options import DatasetOptions, ResolvedOptions, resolve_options
from digitslite.datasets.pairing import Pair, pair_folders, pair_list
from digitslite.datasets.parallel import WorkerPool, chunked
from digitslite.datasets.problems import ProblemLog
from digitslite.datasets.report import STAGES, StageStats, ValidationReport, class_stats
from digitslite.datasets.resize import ResizeSpec
from digitslite.datasets.split import split_pairs

Progress = Callable[[int, int], None]


@dataclass
class Plan:
    """The options resolved into pairs per split, a seed and a label decoder."""

    resolved: ResolvedOptions
    seed: int
    stages: dict[str, list[Pair]]
    problems: ProblemLog
    decoder: LabelDecoder
    palette_source: Path | None

    @property
    def options(self) -> DatasetOptions:
        return self.resolved.options


@dataclass
class ScanOutcome:
    report: ValidationReport
    names: list[str]
    colours: list[RGB]
    ignore_colour: RGB
    mean_bgr: np.ndarray | None


def make_plan(options: DatasetOptions) -> Plan:
    """Resolve the options, pair the folders and split them; pairing problems go in plan.problems."""
    resolved = resolve_options(options)
    problems = ProblemLog()
    if resolved.train_list is not None:
        pairs = pair_list(resolved.train_list, problems, options.within)
        train_source = str(resolved.train_list)
    else:
        pairs = pair_folders(resolved.images, resolved.labels, problems, options.within)
        train_source = f"{resolved.images} and {resolved.labels}"
    val_pairs, val_source = None, None
    if resolved.val_list is not None:
        val_pairs, val_source = pair_list(resolved.val_list, problems, options.within), resolved.val_list
    elif resolved.val_images is not None:
        val_pairs = pair_folders(resolved.val_images, resolved.val_labels, problems, options.within)
        val_source = resolved.val_images
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    stages = split_pairs(pairs, val_pairs, resolved.val_percent, seed)
    if not stages["train"]:
        problems.add("empty_split", f"train: no image/label pairs in {train_source}")
    val_asked = val_pairs is not None or options.val_percent
    if val_asked and not stages["val"]:
        source = val_source if val_pairs is not None else f"{resolved.val_percent}% of {len(pairs)}"
        problems.add("empty_split", f"val: no image/label pairs from {source}")
    reference = None
    if options.label_mode == "palette":
        reference = find_reference_palette([pair.label for stage in STAGES
                                            for pair in sorted(stages[stage], key=lambda pair: pair.name)])
    decoder = make_label_decoder(options.label_mode, resolved.class_spec, options.ignore_label,
                                 options.nearest, reference[0] if reference else None)
    return Plan(resolved, seed, stages, problems, decoder, reference[1] if reference else None)


def _work_items(plan: Plan) -> list[WorkItem]:
    return [WorkItem(stage, position, pair.image, pair.label)
            for stage in STAGES for position, pair in enumerate(plan.stages[stage])]


def scan(plan: Plan, out_dir: Path | None, progress: Progress | None = None) -> ScanOutcome:
    """Process every pair; write the split LMDBs under `out_dir` unless it is None or errors appear."""
    options = plan.options
    writing = out_dir is not None and not plan.problems.has_errors
    resize = None if options.resize == "none" else ResizeSpec(options.resize, options.width, options.height)
    config = EncoderConfig(plan.decoder, resize, options.encoding, out_dir if writing else None, plan.seed)
    items = _work_items(plan)
    stats = {stage: StageStats(pairs=len(plan.stages[stage])) for stage in STAGES}
    done = 0
    if progress:
        progress(0, len(items))
    with WorkerPool(config, plan.resolved.workers) as pool:
        for chunk in pool.results(chunked(items, plan.resolved.workers)):
            if chunk is None:  # none ready yet: a chance to stop
                if progress:
                    progress(done, len(items))
                continue
            for result in chunk:
                plan.problems.extend(result.found)
                stats[result.item.stage].add(result)
            if plan.problems.has_errors:
                pool.stop_encoding()
            done += len(chunk)
            if progress:
                progress(done, len(items))
        mean = MeanAccumulator()
        for part in pool.finish():
            mean.merge(part)
    return _outcome(plan, stats, mean)


def _class_count(plan: Plan, stats: dict[str, StageStats]) -> int:
    """The class list's length, or one past the largest index the labels use."""
    if plan.resolved.class_spec.count is not None:
        return plan.resolved.class_spec.count
    used = sum(stage.pixels for stage in stats.values())
    used[plan.options.ignore_label] = 0
    nonzero = np.flatnonzero(used)
    count = int(nonzero[-1]) + 1 if len(nonzero) else 0
    if count > plan.options.ignore_label:
        plan.problems.add("out_of_range", f"labels use index {count - 1}, above the ignore value "
                                          f"{plan.options.ignore_label} (give a larger [[ignore_label]])")
    return count


def _check_classes(plan: Plan, train: StageStats, names: list[str]) -> None:
    if plan.problems.has_errors or plan.options.allow_empty_classes:
        return
    if not names:
        plan.problems.add("empty_class", f"every label pixel is the ignore value {plan.options.ignore_label}")
    for index, name in enumerate(names):
        if train.pixels[index] == 0:
            plan.problems.add("empty_class", f"{index} {name!r}: 0 px in {train.pairs} training labels")


def _outcome(plan: Plan, stats: dict[str, StageStats], mean: MeanAccumulator) -> ScanOutcome:
    spec, ignore = plan.resolved.class_spec, plan.options.ignore_label
    count = _class_count(plan, stats)
    names = list(spec.names) if spec.names is not None else [f"class {index}" for index in range(count)]
    if spec.colours is not None:
        colours = list(spec.colours)
    elif plan.decoder.reference_palette is not None:
        palette = plan.decoder.reference_palette
        colours = [tuple(palette[3 * index:3 * index + 3]) for index in range(count)]
    else:
        colours = default_palette(count)
    ignore_colour = (tuple(plan.decoder.reference_palette[3 * ignore:3 * ignore + 3])
                     if plan.decoder.reference_palette is not None else (255, 255, 255))
    _check_classes(plan, stats["train"], names)
    report = ValidationReport(
        problems=plan.problems.problems,
        counts={stage: stats[stage].pairs for stage in STAGES},
        classes=class_stats(stats, names, colours),
        ignore_label=ignore,
        ignored_pixels={stage: int(stats[stage].pixels[ignore]) for stage in STAGES},
        image_size={stage: stats[stage].stored_size.to_dict() for stage in STAGES},
        source_image_size={stage: stats[stage].source_size.to_dict() for stage in STAGES},
        seed=plan.seed)
    return ScanOutcome(report, names, colours, ignore_colour, mean.mean_bgr())
