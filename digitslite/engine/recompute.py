"""Re-materialization: where the train net is cut into segments whose activations are recomputed.

A segment keeps only the blobs that enter it for the backward pass and runs its layers again there
(CaffeNet.run_steps with torch.utils.checkpoint), trading one more forward for the memory of
everything inside. The option names the cuts: "auto" (every ceil(sqrt(L)) layers of the L that
compute, Chen et al.'s sqrt(n) rule), a whole number N (every N layers), or blob names (after the
layer that last writes each blob, e.g. "pool1,pool2,pool3").
"""
import math

from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError

AUTO = "auto"


def _computing(net: CaffeNet) -> list[int]:
    """Indices of the steps that run a layer (not data sources, not Split fan-outs)."""
    return [index for index, step in enumerate(net.steps) if step.module is not None]


def recompute_points(net: CaffeNet, spec: str) -> tuple[int, ...]:
    """The step indices after which a new segment starts, for the --recompute value `spec`."""
    text = spec.strip()
    computing = _computing(net)
    if text == AUTO or text.isdigit():
        every = max(1, math.ceil(math.sqrt(len(computing)))) if text == AUTO else int(text)
        if every < 1:
            raise UserError("--recompute 0: give a number of layers per segment of at least 1, "
                            "blob names, or auto")
        return tuple(computing[position] + 1 for position in range(every - 1, len(computing) - 1, every))
    writers: dict[str, int] = {}
    for index, step in enumerate(net.steps):
        for top in step.tops:
            writers[top] = index
    points = []
    for blob in (name.strip() for name in text.split(",")):
        if blob not in writers:
            known = ", ".join(name for name in writers if not name.endswith(" (automatic)"))
            raise UserError(f"--recompute: the train net has no blob '{blob}' to cut after; give a "
                            f"number of layers per segment, auto, or blobs of: {known}")
        points.append(writers[blob] + 1)
    return tuple(sorted(set(point for point in points if point < len(net.steps))))


def enable_recompute(net: CaffeNet, spec: str | None) -> None:
    """Cut `net` for recomputation as `spec` says (None: keep every activation)."""
    net.recompute_after = recompute_points(net, spec) if spec else ()
