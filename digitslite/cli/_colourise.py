"""`digitslite infer` for a colorization model (named by its task record): each image's grey input,
colourised picture and original written to --save-dir."""
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from digitslite.cli._output import emit_json
from digitslite.cli.infer import unique_stems
from digitslite.errors import UserError


def colourise_files(net_path: Path, weights_path: Path, info: dict[str, Any], save_dir: Path | None,
                    temperature: float, device: str, as_json: bool, images: tuple[Path, ...]) -> None:
    """Colourise `images` with the colour coding of the model's dataset.json `info`, on `device`
    (resolved: not "auto")."""
    from digitslite.engine.colorization.coding import stored_colours
    from digitslite.engine.infer import load_predictor, read_image
    from digitslite.jobs.colourise import colourise

    if save_dir is None:
        raise UserError("a colorization model writes pictures: give --save-dir")
    unique_stems(images)
    save_dir.mkdir(parents=True, exist_ok=True)
    predictor = load_predictor(net_path, weights_path, channels="gray", device=device,
                               warn=lambda message: click.echo(f"warning: {message}", err=True))
    items = ((str(image), read_image(image, gray=False)) for image in images)
    coding = replace(stored_colours(info), temperature=temperature)
    results = colourise(coding, predictor.predict, items, save_dir, lambda done: None, named=str(save_dir))
    if as_json:
        emit_json(results)
        return
    for entry in results["images"]:
        quality = f" (PSNR {entry['psnr']:.2f} dB)" if entry.get("psnr") is not None else ""
        click.echo(f"{entry['input']}: -> {entry['colourised']}{quality}")
