"""`digitslite store`: list, import, publish, convolutionalize, index and serve model stores."""
import logging
import time
from pathlib import Path

import click

from digitslite.cli._output import emit_json
from digitslite.cli._server import address_options, listening
from digitslite.modelstore.client import FetchPolicy
from digitslite.modelstore.convolutionalize import convolutionalize_model
from digitslite.modelstore.entries import index_store
from digitslite.modelstore.importer import import_model
from digitslite.modelstore.listing import StoreListing, list_stores
from digitslite.modelstore.locations import store_locations
from digitslite.modelstore.publish import publish_job
from digitslite.server.modelstore.tree import create_store_app

_MB = 1_000_000
STORE_PORT = 8000  # what `store serve` listens on unless told


def _size_text(size: int | None, exact: bool = True) -> str:
    if size is None:
        return "?"
    return f"{'' if exact else '~'}{size / _MB:.1f} MB"


class _ProgressLine:
    """One self-overwriting stderr line per file, at most twice a second."""

    def __init__(self) -> None:
        self.file: str | None = None
        self.shown = 0.0

    def __call__(self, name: str, done: int, total: int | None) -> None:
        finished = total is not None and done >= total
        now = time.monotonic()
        if not finished and name == self.file and now - self.shown < 0.5:
            return
        self.file, self.shown = name, now
        share = f" ({100 * done // total}%)" if total else ""
        click.echo(f"\r{name}: {_size_text(done)} of {_size_text(total)}{share}", err=True, nl=finished)


@click.group(name="store")
def command() -> None:
    """Model stores: DIGITS-compatible trees of pretrained models, each file checksummed."""


@command.command(name="list")
@click.argument("locations", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the listings as JSON.")
def list_command(locations: tuple[str, ...], as_json: bool) -> None:
    """List the models of stores (URLs or folders).

    Without LOCATIONS: the embedded store, then those in $DIGITSLITE_STORE_URLS.
    """
    listings = list_stores(list(locations) or store_locations())
    if as_json:
        emit_json({"stores": [listing.to_dict() for listing in listings]})
        return
    for listing in listings:
        _print_listing(listing)


def _print_listing(listing: StoreListing) -> None:
    if not listing.reachable:
        click.echo(f"{listing.url}: unreachable: {listing.error}")
        return
    click.echo(f"{listing.url}: {listing.msg}" if listing.msg else listing.url)
    for model in listing.models:
        if model.error:
            click.echo(f"  {model.id}: cannot be imported: {model.error}")
            continue
        classes = f"{len(model.classes)} classes" if model.classes else "classes not listed"
        mean_iu = model.metrics.get("mean_iu")
        score = f", mean IU {mean_iu:.3g}" if isinstance(mean_iu, int | float) else ""
        click.echo(f"  {model.id}: {model.name} ({model.task}, {classes}{score}, "
                   f"{_size_text(model.size, model.size_exact)}, weights {model.weights}, "
                   f"license {model.license or 'not given'})")


@command.command(name="import")
@click.argument("store")
@click.argument("name")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to create for the model [default: ./NAME].")
@click.option("--weights-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A copy of the weights you already have, used instead of downloading (still verified).")
@click.option("--group-upscores", is_flag=True,
              help="Make ungrouped diagonal upsampling layers (fcn.berkeleyvision.org) DIGITS' grouped ones.")
@click.option("--timeout", type=float, default=FetchPolicy.timeout, show_default=True,
              help="Seconds to wait for a connection or for data.")
@click.option("--json", "as_json", is_flag=True, help="Print the imported model as JSON.")
def import_command(store: str, name: str, dest: Path | None, weights_file: Path | None, group_upscores: bool,
                   timeout: float, as_json: bool) -> None:
    """Import model NAME from STORE (a URL or folder), verifying every checksum.

    An interrupted download resumes when the same command runs again. Without internet access,
    point DIGITSLITE_STORE_URLS at a mirror, or pass --weights-file.
    """
    imported = import_model(store, name, dest or Path(name), progress=_ProgressLine(),
                            local_files={"snapshot file": weights_file} if weights_file else None,
                            group_upscores=group_upscores, policy=FetchPolicy(timeout=timeout))
    if as_json:
        emit_json(imported.to_dict())
        return
    for note in imported.conversions:
        click.echo(f"converted: {note}")
    click.echo(f"imported {imported.info.name} into {imported.path}")


@command.command(name="publish")
@click.argument("job_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("store_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
@click.option("--dataset", required=True, type=click.Path(exists=True, path_type=Path),
              help="The dataset folder the job trained on (holding dataset.json).")
@click.option("--iteration", type=int, default=None, help="Snapshot to publish [default: the newest].")
@click.option("--title", default=None, help="Display name [default: the job's name].")
@click.option("--note", default=None, help="A line about the model for the listing.")
@click.option("--license", "license_", default=None, help="The weights' license.")
@click.option("--source", default=None, help="Where the model comes from [default: the job id].")
@click.option("--json", "as_json", is_flag=True, help="Print the entry's info.json.")
def publish_command(job_dir: Path, store_dir: Path, name: str, dataset: Path, iteration: int | None,
                    title: str | None, note: str | None, license_: str | None, source: str | None,
                    as_json: bool) -> None:
    """Publish the finished training in JOB_DIR as entry NAME of the store folder STORE_DIR."""
    info = publish_job(job_dir, store_dir, name, dataset=dataset, iteration=iteration, title=title, note=note,
                       license=license_, source=source)
    if as_json:
        emit_json(info.to_dict())
        return
    click.echo(f"published {info.name} as {store_dir / name} ({len(info.files)} files, checksummed)")


@command.command(name="convolutionalize")
@click.argument("classifier_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--classes", "num_classes", type=int, default=21, show_default=True,
              help="Class count of the network written (the weights themselves fit any count).")
@click.option("--network", default="fcn_alexnet", show_default=True, help="Standard FCN network to make.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-layer surgery report as JSON.")
def convolutionalize_command(classifier_dir: Path, dest: Path, num_classes: int, network: str,
                             as_json: bool) -> None:
    """Make FCN initial weights in DEST from an imported classifier (e.g. bvlc_alexnet) by net surgery."""
    made = convolutionalize_model(classifier_dir, dest, num_classes=num_classes, network=network)
    if as_json:
        emit_json({"path": str(made.path), "weights": str(made.weights),
                   "layers": [action.as_dict() for action in made.actions]})
        return
    for action in made.actions:
        click.echo(f"{action.layer:<20} {action.action}")
    click.echo(f"wrote {made.path}")


@command.command(name="index")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the new master.json.")
def index_command(store_dir: Path, as_json: bool) -> None:
    """Recompute the checksums of every entry of STORE_DIR and list its entries in master.json."""
    master = index_store(store_dir)
    if as_json:
        emit_json(master.to_dict())
        return
    click.echo(f"indexed {len(master.children)} entries: {', '.join(master.children)}")


@command.command(name="serve")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@address_options(STORE_PORT)
@click.option("--verbose", is_flag=True, help="Log every request.")
def serve_command(store_dir: Path, host: str, port: int, verbose: bool) -> None:
    """Serve the store folder STORE_DIR over HTTP, with byte ranges so downloads resume."""
    if not verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with listening(host, port, create_store_app(store_dir)) as server:
        click.echo(f"serving http://{host}:{server.port}/ (store {store_dir})")
        server.serve_forever()
