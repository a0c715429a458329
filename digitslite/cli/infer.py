"""`digitslite infer`: run a trained deploy net on image files, print its outputs, save class maps.

Pixels become the net's input as Caffe's transformer makes them: channel order, then
(pixel - mean) * scale. Score maps (N x C x H x W) become class-index PNGs (palette mode, the
VOC/DIGITS label format) and overlays on the input in --save-dir; images larger than --max-tile
are run in overlapping tiles (see digitslite.engine.infer). A colorization model (its
--dataset-json says so) writes each image's grey input, colourised picture and original instead.
"""
from pathlib import Path

import click
import numpy as np

from digitslite.cli._output import emit_json
from digitslite.datasets.colormap import read_class_names
from digitslite.engine.choices import CHANNEL_ORDERS, DEFAULT_MAX_TILE
from digitslite.engine.colorization.decode import DEFAULT_TEMPERATURE
from digitslite.errors import UserError
from digitslite.fileio import read_json
from digitslite.tasks import task_of
from digitslite.viz import (
    class_name,
    overlay,
    read_dataset_classes,
    voc_palette,
    write_label_png,
    write_rgb_png,
)

SMALL_OUTPUT = 1000  # blobs with at most this many values per image are printed in full
File = click.Path(exists=True, dir_okay=False, path_type=Path)


def _parse_mean(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...]:
    if value is None:
        return ()
    try:
        return tuple(float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of numbers "
                                 "(e.g. 104,117,123)") from None


def unique_stems(images: tuple[Path, ...]) -> None:
    """Saved files are named after the image; two images with one name would overwrite each other."""
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen and seen[image.stem] != image:
            raise UserError(f"{image} and {seen[image.stem]} would both save as '{image.stem}_*.png' in "
                            "--save-dir; run them separately or rename one")
        seen[image.stem] = image


def _is_map(value: np.ndarray) -> bool:
    """A C x H x W score map with more than one pixel, as opposed to a vector of class scores."""
    return value.ndim == 3 and value.shape[1] * value.shape[2] > 1


def _describe(image: Path, pixels: np.ndarray, values: dict[str, np.ndarray], names: list[str],
              palette: np.ndarray, save_dir: Path | None, opacity: float) -> dict:
    """The JSON record of one image; writes the class maps and overlays into `save_dir`."""
    record: dict = {"image": str(image), "outputs": {}, "argmax": {}}
    for blob, value in values.items():
        small = value.size <= SMALL_OUTPUT
        record["outputs"][blob] = value.tolist() if small else {"shape": list(value.shape)}
        if _is_map(value):
            classes = value.argmax(axis=0)
            entry: dict = {"shape": list(classes.shape)}
            if save_dir is not None:
                entry["png"] = str(save_dir / f"{image.stem}_{blob}.png")
                write_label_png(Path(entry["png"]), classes, palette)
                if classes.shape == pixels.shape[:2]:
                    entry["overlay"] = str(save_dir / f"{image.stem}_{blob}_overlay.png")
                    write_rgb_png(Path(entry["overlay"]),
                                  overlay(pixels, classes, palette, opacity, hidden_classes=(0,)))
            record["argmax"][blob] = entry
        elif value.ndim >= 1 and value.size == value.shape[0]:
            index = int(value.reshape(-1).argmax())
            record["argmax"][blob] = index
            if names:
                record.setdefault("class_names", {})[blob] = class_name(index, names)
    return record


def _print_record(record: dict) -> None:
    click.echo(f"{record['image']}:")
    for blob, entry in record["argmax"].items():
        if isinstance(entry, int):
            name = record.get("class_names", {}).get(blob)
            click.echo(f"  {blob}: class {entry}" + (f" ({name})" if name else ""))
        else:
            saved = ", ".join(entry[key] for key in ("png", "overlay") if key in entry)
            click.echo(f"  {blob}: {entry['shape'][0]}x{entry['shape'][1]} class map"
                       + (f" -> {saved}" if saved else " (give --save-dir to write it)"))


@click.command(name="infer")
@click.option("--net", "net_path", type=File, required=True, help="Deploy prototxt (an Input layer).")
@click.option("--weights", "weights_path", type=File, required=True, help="Trained .caffemodel.")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiplies each value after the mean is subtracted (e.g. 0.00390625 for MNIST).")
@click.option("--mean", callback=_parse_mean, metavar="B,G,R",
              help="Value(s) subtracted per channel, in the --channels order (one value: every channel).")
@click.option("--channels", type=click.Choice(CHANNEL_ORDERS),
              help="Channel order the net expects [default: gray for 1-channel nets, else bgr].")
@click.option("--resize", is_flag=True, help="Resize each image to the net's declared input size.")
@click.option("--blob", "blobs", multiple=True, metavar="NAME",
              help="Also report this intermediate blob (repeatable); the net outputs are always reported.")
@click.option("--labels", "labels_path", type=File, help="Class names, one per line (line i = class i).")
@click.option("--dataset-json", "dataset_json", type=File,
              help="A dataset's dataset.json: class names and the colours of the saved class maps.")
@click.option("--save-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write <image>_<blob>.png class maps and <image>_<blob>_overlay.png overlays here.")
@click.option("--opacity", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Overlay opacity (class 0, background, is left unpainted).")
@click.option("--max-tile", type=click.IntRange(min=1), default=DEFAULT_MAX_TILE, show_default=True,
              help="Larger images run in overlapping tiles of at most this many pixels a side.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TEMPERATURE,
              show_default=True, help="Colorization over ab bins: the annealed mean's temperature.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per image.")
@click.argument("images", nargs=-1, required=True, type=File)
def command(net_path: Path, weights_path: Path, scale: float, mean: tuple[float, ...], channels: str | None,
            resize: bool, blobs: tuple[str, ...], labels_path: Path | None, dataset_json: Path | None,
            save_dir: Path | None, opacity: float, max_tile: int, device: str, temperature: float,
            as_json: bool, images: tuple[Path, ...]) -> None:
    """Run a trained net on IMAGE files and report each output blob and its argmax class."""
    # only when the command runs: `digitslite --help` must not wait for torch
    from digitslite.engine.host_memory import retain_freed_memory
    from digitslite.engine.infer import load_predictor, read_image, resize_image
    from digitslite.engine.speed import resolve_device

    retain_freed_memory()   # image after image, each forward reuses the last one's pages
    info = read_json(dataset_json) if dataset_json is not None else {}
    if device == "auto":
        device = str(resolve_device(None))
    task = task_of(info)
    if task.cli_inference is not None:  # a task whose outputs are not class maps (colorization: pictures)
        task.part("cli_inference")(net_path, weights_path, info, save_dir, temperature, device, as_json,
                                   images)
        return
    names, palette = read_dataset_classes(dataset_json) if dataset_json else ([], voc_palette())
    if labels_path is not None:
        names = read_class_names(labels_path)
    predictor = load_predictor(
        net_path, weights_path, channels=channels, mean=mean, scale=scale, blobs=blobs, max_tile=max_tile,
        device=device, warn=lambda message: click.echo(f"warning: {message}", err=True))
    if save_dir is not None:
        unique_stems(images)
        save_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for image in images:
        pixels = read_image(image, gray=predictor.preprocessing.channels == "gray")
        if resize:
            pixels = resize_image(pixels, *predictor.input_shape[2:])
        record = _describe(image, pixels, predictor.predict(pixels), names, palette, save_dir, opacity)
        if as_json:
            records.append(record)
        else:
            _print_record(record)
    if as_json:
        emit_json(records)
