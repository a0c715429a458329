"""The `digitslite` command.

Each sub-command is a module of this package that defines a click command named `command`; the
group discovers them by module name and imports one only when it runs, so a new command touches
no shared file and `digitslite --help` stays fast.
"""
import importlib
import pkgutil
import sys

import click

from digitslite import __version__
from digitslite.errors import UserError


class _ModuleGroup(click.Group):
    """A click group whose sub-commands are the public modules of digitslite.cli."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = (info.name for info in pkgutil.iter_modules(__path__))
        return sorted(name.replace("_", "-") for name in names if not name.startswith("_"))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"{__name__}.{cmd_name.replace('-', '_')}")
        return module.command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_ModuleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digitslite")
def main() -> None:
    """digitslite: train Caffe-format segmentation networks (FCN) on PyTorch."""
