"""`digitslite surgery`: carry trained weights into another network (e.g. AlexNet -> FCN-AlexNet)."""
import click

from digitslite.caffe.surgery import transplant_files
from digitslite.cli._options import InputShapes, input_shape_option
from digitslite.cli._output import emit_json


def _shape_text(shape) -> str:
    return "-" if shape is None else "x".join(map(str, shape)) or "scalar"


@click.command()
@click.option("--src-net", required=True, type=click.Path(dir_okay=False), help="Source network prototxt.")
@click.option("--src-weights", required=True, type=click.Path(dir_okay=False),
              help="Source weights (.caffemodel) trained with --src-net.")
@click.option("--dst-net", required=True, type=click.Path(dir_okay=False),
              help="Destination network prototxt.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the destination weights (.caffemodel).")
@click.option("--interp", multiple=True, metavar="LAYER",
              help="Give this destination layer bilinear upsampling weights (repeatable).")
@click.option("--expand-score", multiple=True, metavar="LAYER",
              help="Copy the classes both nets have into this score layer and zero the rest (repeatable).")
@input_shape_option("Shape of an input blob of both nets as NAME=N,C,H,W, where they cannot say it "
                    "themselves (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-layer report as JSON.")
def command(src_net: str, src_weights: str, dst_net: str, output: str, interp: tuple[str, ...],
            expand_score: tuple[str, ...], input_shapes: InputShapes, as_json: bool) -> None:
    """Transplant weights by layer name, coercing InnerProduct into Convolution where the numbers fit.

    Every layer with parameters is reported as copied, coerced, expanded, interpolated,
    left-initialised (no source weights: the destination's filler decides) or dropped (only in the
    source). Deconvolutions without source weights get bilinear weights.
    """
    if any(name is None for name, _ in input_shapes):
        raise click.BadParameter("name the blob, e.g. data=1,3,227,227: it applies to both nets",
                                 param_hint="--input-shape")
    actions = transplant_files(
        src_net, src_weights, dst_net, output,
        interp=interp, expand_score=expand_score, input_shapes=dict(input_shapes),
    )
    if as_json:
        emit_json({"layers": [action.as_dict() for action in actions]})
        return
    width = max((len(action.layer) for action in actions), default=0)
    for action in actions:
        shapes = f"{_shape_text(action.src_shape)} -> {_shape_text(action.dst_shape)}"
        click.echo(f"{action.layer:<{width}}  {action.action:<16}  {shapes}")
    click.echo(f"wrote {output}")
