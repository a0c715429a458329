"""Colorization's inference job (named by its task record): each image's lightness in, its grey,
colourised and original pictures out (digitslite.jobs.colourise), with the colour scores."""
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from digitslite.engine.colorization.coding import stored_colours
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.jobs.colourise import colourise
from digitslite.jobs.runners.context import RunContext
from digitslite.jobs.runners.inference import items, nothing_ran, report_progress, unreadable

if TYPE_CHECKING:  # torch loads with the predictor the runner is given
    from digitslite.engine.infer import Predictor


def colourise_images(ctx: RunContext, predictor: "Predictor", info: dict[str, Any]) -> None:
    """Colourise the job's images with the colour coding of the model's dataset."""
    unread: list[dict[str, str]] = []

    def readable() -> Iterator[tuple[str, np.ndarray]]:
        for name, pixels, _ in items(ctx):
            if pixels is None:
                unread.append(unreadable(name))
            else:
                yield name, pixels

    def progress(done: int) -> None:
        ctx.check_stop()
        report_progress(ctx, done)

    results = colourise(stored_colours(info), predictor.predict, readable(), ctx.folder.outputs_dir, progress)
    if not results["images"]:
        raise UserError(nothing_ran(unread))
    write_json_atomically(ctx.folder.results_file, {**results, "unreadable": unread})
    print(f"colourised {len(results['images'])} images", flush=True)
