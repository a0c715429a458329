"""A Caffe NetParameter executed as one torch module, with Caffe's Net::Init semantics (caffe-spec §2).

Blobs are names bound to tensors: an in-place layer (top i named like bottom i) rebinds the name to
its out-of-place result, so autograd stays correct and "conv1" after an in-place ReLU is the
post-ReLU value, as pycaffe shows it. Split layers are autograd fan-out: their tops alias the
bottom and autograd sums the gradients, exactly Caffe's Split backward.

Backward follows from autograd: a layer whose tops never reach a loss gets no gradient,
`propagate_down: false` detaches that bottom, `lr_mult: 0` turns the parameter's gradient off.
Parameters shared by ParamSpec name alias one tensor, so their gradients add up in one `.grad`.
"""
import itertools
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import digitslite.engine.layers  # noqa: F401  (registers every layer type in LAYERS)
from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import MatchReport, match_weights, read_caffemodel
from digitslite.caffe.prototxt import check_topology, filter_net, insert_splits
from digitslite.caffe.shapes import LayerShapes, infer_shapes, is_source
from digitslite.engine.host_memory import retain_freed_memory
from digitslite.engine.layers.base import LAYERS, CaffeLayer
from digitslite.errors import UserError

_PARAM_SPEC_DEFAULTS = caffe_pb2.ParamSpec()


@dataclass
class LearnableParam:
    """One owner parameter as the solver sees it (caffe-spec §2.4).

    `name` is the ParamSpec name used for sharing ("" when unnamed); `lr_mult`/`decay_mult` are the
    owner's, or a sharer's explicit value when the owner left them at the default.
    """

    layer: str
    index: int
    tensor: torch.Tensor
    lr_mult: float
    decay_mult: float
    name: str = ""
    lr_explicit: bool = field(default=False, repr=False)
    decay_explicit: bool = field(default=False, repr=False)


@dataclass
class _Step:
    """One layer of the filtered net, ready to run: blob names in, blob names out."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    detach: list[bool]
    module: int | None = None          # index into CaffeNet.layers; None for sources and Splits
    held: bool = True                  # False: another process (pipeline stage) holds its blobs
    blob_refs: list[int] = field(default_factory=list)   # learnable index of each blob
    views: dict[str, tuple[int, ...]] = field(default_factory=dict)   # PERMISSIVE sharing reshapes


def runnable_net(net: caffe_pb2.NetParameter, phase: str = "test", *, level: int = 0,
                 stages: Sequence[str] = (), state: caffe_pb2.NetState | None = None,
                 source_map=None) -> caffe_pb2.NetParameter:
    """The layers a CaffeNet runs, in its order: the net filtered for the phase, Splits inserted
    (a planner cuts this before building the net)."""
    filtered = filter_net(net, phase, level, tuple(stages), state=state, source_map=source_map)
    with_splits = insert_splits(filtered, source_map)
    check_topology(with_splits, source_map)
    return with_splits


class CaffeNet(nn.Module):
    """A Caffe network for one phase/level/stages, built like Caffe's Net::Init.

    `state` is merged over phase/level/stages like a solver's train_state/test_state; `seed` seeds
    the fillers (None: torch's global RNG). `keep`: the layers whose blobs this process holds (a
    pipeline stage's); every other layer is built, so that the fillers draw as for the whole net,
    and then lets its blobs go (they become empty), so it cannot run here.
    """

    def __init__(self, net: caffe_pb2.NetParameter, phase: str = "test", *, level: int = 0,
                 stages: Sequence[str] = (), input_shapes: Mapping[str, Sequence[int]] | None = None,
                 seed: int | None = None, source_map=None, state: caffe_pb2.NetState | None = None,
                 keep: Container[str] | None = None) -> None:
        super().__init__()
        with_splits = runnable_net(net, phase, level=level, stages=stages, state=state, source_map=source_map)
        self.phase = with_splits.state.phase
        self.shapes: list[LayerShapes] = infer_shapes(with_splits, input_shapes, source_map)
        self.name = net.name
        self.force_backward = net.force_backward
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.layers = nn.ModuleList()
        self.input_names: list[str] = []
        self.loss_weights: dict[str, float] = {}
        self.learnables: list[LearnableParam] = []
        self._owners: dict[str, int] = {}
        self._steps: list[_Step] = []
        # The net as Caffe holds it after set-up (phases, default loss weights, forced ParamSpecs):
        # what a snapshot .caffemodel describes.
        self.net_param = caffe_pb2.NetParameter()
        self.net_param.CopyFrom(with_splits)
        for layer, layer_shapes in zip(self.net_param.layer, self.shapes, strict=True):
            self._add_layer(layer, layer_shapes, generator, source_map)
            if keep is not None and layer.name not in keep:
                self._let_go(self._steps[-1])
        self.output_names: list[str] = self._outputs()
        self._release = self._release_plan()
        self._relu_after = self._relu_pairs()
        # step indices after which the forward is cut into recomputed segments (engine.recompute)
        self.recompute_after: tuple[int, ...] = ()

    # ------------------------------------------------------------------------------------------
    # construction

    def _error(self, layer: caffe_pb2.LayerParameter, source_map, problem: str, fix: str) -> UserError:
        where = f"{source_map.where(layer.name)}: " if source_map is not None else ""
        return UserError(f"{where}layer '{layer.name}' ({layer.type}): {problem}; {fix}")

    def _add_layer(self, layer: caffe_pb2.LayerParameter, layer_shapes: LayerShapes,
                   generator: torch.Generator | None, source_map) -> None:
        if not layer.HasField("phase"):
            layer.phase = self.phase
        detach = [not flag for flag in layer.propagate_down] or [False] * len(layer.bottom)
        step = _Step(layer.name, layer.type, list(layer.bottom), list(layer.top), detach)
        self._steps.append(step)
        if is_source(layer):
            self.input_names.extend(top for top in layer.top if top not in self.input_names)
            return
        if layer.type == "Split":
            self._set_loss_weights(layer, step, is_loss=False, source_map=source_map)
            return
        if layer.type not in LAYERS:
            raise self._error(layer, source_map, "the engine has no implementation of this type",
                              f"use one of: {', '.join(sorted(LAYERS))}")
        module: CaffeLayer = LAYERS[layer.type](layer, list(layer_shapes.bottoms), layer.phase, generator)
        step.module = len(self.layers)
        self.layers.append(module)
        if module.is_loss and not layer.top:
            step.tops.append(f"{layer.name} (automatic)")   # Caffe's anonymous loss top
        self._set_loss_weights(layer, step, module.is_loss, source_map)
        self._append_params(layer, module, step, source_map)

    def _set_loss_weights(self, layer: caffe_pb2.LayerParameter, step: _Step, is_loss: bool,
                          source_map) -> None:
        if is_loss and not layer.loss_weight:
            layer.loss_weight.append(1.0)
        if layer.loss_weight and len(layer.loss_weight) != len(step.tops):
            raise self._error(layer, source_map, f"loss_weight has {len(layer.loss_weight)} entries for "
                              f"{len(step.tops)} tops", "give no loss_weight or exactly one per top")
        for top, weight in zip(step.tops, layer.loss_weight, strict=False):
            if weight != 0:
                self.loss_weights[top] = weight

    def _append_params(self, layer: caffe_pb2.LayerParameter, module: CaffeLayer, step: _Step,
                       source_map) -> None:
        """Caffe's AppendParam: owners become learnables, named repeats share the owner's tensor."""
        blobs = module.blobs()
        if len(layer.param) > len(blobs):
            raise self._error(layer, source_map,
                              f"it has {len(layer.param)} param specs but only {len(blobs)} parameter blobs",
                              f"give at most {len(blobs)} param {{ }} entries")
        for index, (blob_name, tensor) in enumerate(zip(module.blob_names, blobs, strict=True)):
            statistic = not isinstance(tensor, nn.Parameter)
            if statistic and index == len(layer.param):
                layer.param.add(lr_mult=0.0)   # Caffe's BatchNorm masks its statistics this way
            spec = layer.param[index] if index < len(layer.param) else _PARAM_SPEC_DEFAULTS
            if statistic and spec.lr_mult != 0:
                raise self._error(layer, source_map, f"blob {index} holds statistics, not a learnable "
                                  f"parameter, but its lr_mult is {spec.lr_mult}",
                                  "set lr_mult: 0 or omit it")
            if not spec.name or spec.name not in self._owners:
                step.blob_refs.append(self._add_owner(layer.name, index, tensor, spec))
            else:
                step.blob_refs.append(self._share(layer, module, blob_name, tensor, spec, step, source_map))
        for ref in step.blob_refs:
            learnable = self.learnables[ref]
            if isinstance(learnable.tensor, nn.Parameter):
                learnable.tensor.requires_grad_(learnable.lr_mult != 0)

    def _add_owner(self, layer_name: str, index: int, tensor: torch.Tensor, spec: caffe_pb2.ParamSpec) -> int:
        self.learnables.append(LearnableParam(
            layer_name, index, tensor, spec.lr_mult, spec.decay_mult, spec.name,
            lr_explicit=spec.HasField("lr_mult"), decay_explicit=spec.HasField("decay_mult")))
        if spec.name:
            self._owners[spec.name] = len(self.learnables) - 1
        return len(self.learnables) - 1

    def _share(self, layer: caffe_pb2.LayerParameter, module: CaffeLayer, blob_name: str,
               tensor: torch.Tensor, spec: caffe_pb2.ParamSpec, step: _Step, source_map) -> int:
        ref = self._owners[spec.name]
        owner = self.learnables[ref]
        if not owner.tensor.numel():    # its owner let it go: the stage holding both checks them
            return ref
        owner_shape, shape = tuple(owner.tensor.shape), tuple(tensor.shape)
        permissive = spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE
        if owner_shape != shape and not (permissive and owner.tensor.numel() == tensor.numel()):
            rule = "count" if permissive else "shape (share_mode STRICT)"
            raise self._error(layer, source_map, f"cannot share param '{spec.name}' owned by layer "
                              f"'{owner.layer}': the {rule} differs, owner {owner_shape} vs {shape}",
                              "give both layers parameters of the same shape, or use different names")
        if isinstance(owner.tensor, nn.Parameter) != isinstance(tensor, nn.Parameter):
            raise self._error(layer, source_map, f"param '{spec.name}' would share a learnable parameter "
                              "with stored statistics", "use different param names")
        if owner_shape == shape:
            setattr(module, blob_name, owner.tensor)
        else:
            step.views[blob_name] = shape
            tensor.requires_grad_(False)
        for attribute, explicit in (("lr_mult", "lr_explicit"), ("decay_mult", "decay_explicit")):
            if not spec.HasField(attribute):
                continue
            value = getattr(spec, attribute)
            if getattr(owner, explicit) and getattr(owner, attribute) != value:
                raise self._error(layer, source_map, f"shared param '{spec.name}' has {attribute} {value} "
                                  f"but its owner '{owner.layer}' has {getattr(owner, attribute)}",
                                  f"give every user of '{spec.name}' the same {attribute}")
            setattr(owner, attribute, value)
            setattr(owner, explicit, True)
        return ref

    def _let_go(self, step: _Step) -> None:
        """Replace the step's blobs by empty ones (another process holds them)."""
        step.held = False
        if step.module is None:
            return
        module = self.layers[step.module]
        for index, (name, ref) in enumerate(zip(module.blob_names, step.blob_refs, strict=True)):
            blob = getattr(module, name)
            empty = torch.empty(0, dtype=blob.dtype)
            if isinstance(blob, nn.Parameter):
                empty = nn.Parameter(empty, requires_grad=False)
            setattr(module, name, empty)
            learnable = self.learnables[ref]
            if (learnable.layer, learnable.index) == (step.name, index):
                learnable.tensor = empty

    def _outputs(self) -> list[str]:
        """Caffe's net outputs: blobs still available (produced, never consumed afterwards), by name."""
        available: set[str] = set()
        for step in self._steps:
            available.difference_update(step.bottoms)
            available.update(top for top in step.tops if not top.endswith(" (automatic)"))
        return sorted(available)

    def _release_plan(self) -> list[list[str]]:
        """For each step, the blob names no later step reads (freed early when only outputs are wanted)."""
        last_read = {name: index for index, step in enumerate(self._steps) for name in step.bottoms}
        keep = set(self.output_names) | set(self.loss_weights)
        plan: list[list[str]] = [[] for _ in self._steps]
        for name, index in last_read.items():
            if name not in keep:
                plan[index].append(name)
        return plan

    def _relu_pairs(self) -> dict[int, bool]:
        """The Convolutions whose ReLU can run inside them when no graph is recorded: index -> whether
        that ReLU is in place. The next step must be a plain ReLU (negative_slope 0) on the conv's
        only top, and nothing else may read the top before the ReLU: it is in place, or the top has
        no other reader and no loss weight (a blob kept by name is checked when the net runs)."""
        pairs = {}
        for index, (step, after) in enumerate(itertools.pairwise(self._steps)):
            if (step.type != "Convolution" or after.type != "ReLU" or step.views or not step.held
                    or not after.held or len(step.tops) != 1 or after.bottoms != step.tops
                    or len(step.bottoms) != 1 or self.layers[after.module].negative_slope != 0):
                continue
            in_place = after.tops == after.bottoms
            top = step.tops[0]
            readers = sum(top in later.bottoms for later in self._steps[index + 1:])
            if in_place or (readers == 1 and top not in self.loss_weights):
                pairs[index] = in_place
        return pairs

    def _fuses_relu(self, index: int, stop: int, protect: set[str] | None) -> bool:
        """Step `index` is a Convolution that runs the ReLU after it (engine.execution.convolve)."""
        in_place = self._relu_after.get(index)
        return (in_place is not None and index + 1 < stop and not torch.is_grad_enabled()
                and (in_place or self._steps[index].tops[0] not in (protect or ())))

    # ------------------------------------------------------------------------------------------
    # running

    def forward(self, inputs: Mapping[str, torch.Tensor],
                keep: Iterable[str] = ()) -> dict[str, torch.Tensor]:
        """Every net output, plus every loss-weighted blob and the blobs named in `keep`."""
        keep = set(keep)
        wanted = [*self.output_names, *(n for n in self.loss_weights if n not in self.output_names),
                  *sorted(keep.difference(self.output_names, self.loss_weights))]
        blobs = self._run(inputs, protect=keep)
        return {name: blobs[name] for name in wanted}

    def _run(self, inputs: Mapping[str, torch.Tensor], protect: set[str]) -> dict[str, torch.Tensor]:
        """Run every layer; blobs no later layer reads are dropped unless protected."""
        blobs: dict[str, torch.Tensor] = {}
        for name in self.input_names:
            if name not in inputs:
                raise UserError(f"net '{self.name}': input '{name}' is missing (given: "
                                f"{', '.join(inputs) or 'nothing'}); feed every input: "
                                f"{', '.join(self.input_names)}")
            blob = inputs[name]
            if (self.force_backward and torch.is_grad_enabled() and blob.is_floating_point()
                    and blob.is_leaf and not blob.requires_grad):
                blob.requires_grad_(True)
            blobs[name] = blob
            if torch.is_grad_enabled() and blob.device.type == "cpu" and not torch.compiler.is_compiling():
                retain_freed_memory()
        return self.run_steps(blobs, 0, len(self._steps), protect)

    def run_steps(self, blobs: Mapping[str, torch.Tensor], start: int, stop: int,
                  protect: set[str] | None) -> dict[str, torch.Tensor]:
        """Steps [start, stop) on the named blobs (a new dict). With `recompute_after` set and a graph
        being recorded, each segment between those step indices keeps only its inputs for the backward
        pass and runs again there (torch.utils.checkpoint, which replays the RNG: same Dropout masks)."""
        cuts = [index for index in self.recompute_after if start < index < stop] \
            if torch.is_grad_enabled() else []
        if not cuts:
            return self._run_range(blobs, start, stop, protect)
        bounds = [start, *cuts, stop]
        for low, high in itertools.pairwise(bounds):
            blobs = checkpoint(self._run_range, blobs, low, high, protect, use_reentrant=False)
        return blobs

    def _run_range(self, given: Mapping[str, torch.Tensor], start: int, stop: int,
                   protect: set[str] | None) -> dict[str, torch.Tensor]:
        blobs = dict(given)    # a recomputation starts again from the same `given`
        relu_done = False      # the step before, a Convolution, ran this step's ReLU
        for index in range(start, stop):
            step = self._steps[index]
            if step.module is None and step.type != "Split":
                continue
            bottoms = [blobs[name].detach() if cut else blobs[name]
                       for name, cut in zip(step.bottoms, step.detach, strict=True)]
            if step.module is None or relu_done:
                tops = bottoms * len(step.tops)
                relu_done = False
            elif step.views:
                tops = self._call_sharing(step, bottoms)
            elif self._fuses_relu(index, stop, protect):
                tops = self.layers[step.module](*bottoms, relu=True)
                relu_done = True
            else:   # called inline: a separate frame would make torch.compile recompile it per layer
                tops = self.layers[step.module](*bottoms)
            blobs.update(zip(step.tops, tops, strict=False))
            for name in self._release[index]:
                if name not in protect:
                    blobs.pop(name, None)
        return blobs

    def _call_sharing(self, step: _Step, bottoms: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """A layer sharing a parameter PERMISSIVE-ly runs on a view of the owner in its own shape."""
        module = self.layers[step.module]
        shared = {name: self.learnables[step.blob_refs[module.blob_names.index(name)]].tensor.view(shape)
                  for name, shape in step.views.items()}
        return torch.func.functional_call(module, shared, tuple(bottoms))

    def loss(self, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Σ w · sum(top) over the loss-weighted tops (Caffe's net loss), in float32."""
        total = None
        for name, weight in self.loss_weights.items():
            term = outputs[name].float().sum() * weight
            total = term if total is None else total + term
        if total is None:   # a net without loss: Caffe still steps it (weight decay, momentum)
            device = next(iter(outputs.values())).device if outputs else None
            return torch.zeros((), device=device)
        return total

    # ------------------------------------------------------------------------------------------
    # parameters and weights

    def learnable_params(self) -> list[LearnableParam]:
        """The owner parameters in net order: what the solver updates and a .solverstate lists."""
        return list(self.learnables)

    def _layer_blobs(self, step: _Step) -> list[torch.Tensor]:
        """The layer's blobs as Caffe sees them (shared ones in this layer's own shape)."""
        module = self.layers[step.module]
        return [self.learnables[ref].tensor.view(step.views[name]) if name in step.views else blob
                for name, blob, ref in zip(module.blob_names, module.blobs(), step.blob_refs, strict=True)]

    @property
    def steps(self) -> list[_Step]:
        """The layers in run order (sources and Splits included); read-only views for planners."""
        return list(self._steps)

    def _module_steps(self) -> list[_Step]:
        """The steps that run a layer and whose blobs this process holds."""
        return [step for step in self._steps if step.module is not None and step.held]

    def weights(self) -> dict[str, list[np.ndarray]]:
        """Every layer's blobs by layer name as float32 arrays (shared ones under every user)."""
        return {step.name: [blob.detach().float().cpu().numpy().copy() for blob in self._layer_blobs(step)]
                for step in self._module_steps() if step.blob_refs}

    def blob_shapes(self) -> dict[str, list[tuple[int, ...]]]:
        """Layer name -> its blob shapes; [] for layers without blobs (the target of weight matching).
        Layers whose blobs another process holds are left out, so their weights are not asked for."""
        shapes = {step.name: [] for step in self._steps if step.held}
        for step in self._module_steps():
            shapes[step.name] = [tuple(blob.shape) for blob in self._layer_blobs(step)]
        return shapes

    @torch.no_grad()
    def load_weights(self, source: str | Path | Mapping[str, Sequence[np.ndarray]]) -> MatchReport:
        """Copy weights by layer name like Caffe's CopyTrainedLayersFrom (shared blobs: last copy wins)."""
        if isinstance(source, str | Path):
            report = match_weights(read_caffemodel(source), self.blob_shapes(), source_name=str(source))
        else:
            report = match_weights(source, self.blob_shapes())
        steps = {step.name: step for step in self._module_steps()}
        for name, arrays in report.weights.items():
            for blob, array in zip(self._layer_blobs(steps[name]), arrays, strict=True):
                # np.array, not np.ascontiguousarray: the latter turns a 0-d blob (PReLU channel_shared,
                # Scale/Bias num_axes 0) into shape (1,), which cannot be copied into a scalar.
                blob.copy_(torch.from_numpy(np.array(array, dtype=np.float32)))
        return report

    def share_weights_from(self, other: "CaffeNet") -> None:
        """Alias this net's blobs to `other`'s for every layer name both have (Caffe's
        ShareTrainedLayersWith: a test net evaluates the train net's current weights)."""
        theirs = {step.name: step for step in other._module_steps()}
        for step in self._module_steps():
            source = theirs.get(step.name)
            if source is None or not step.blob_refs:
                continue
            mine, given = self._layer_blobs(step), other._layer_blobs(source)
            if [blob.shape for blob in mine] != [blob.shape for blob in given] or step.views or source.views:
                raise UserError(f"net '{self.name}': layer '{step.name}' cannot share the weights of the "
                                f"{'train' if other.phase == caffe_pb2.TRAIN else 'test'} net's layer of "
                                "that name: their blobs differ in number or shape; make them match")
            module = self.layers[step.module]
            for name, ref, blob in zip(module.blob_names, step.blob_refs, given, strict=True):
                setattr(module, name, blob)
                self.learnables[ref].tensor = blob

    def _apply(self, fn, recurse: bool = True):
        """After .to()/.cuda()/.float() buffers are new tensors: point the learnables (and the layers
        sharing them) at the converted ones. Share with another net only after moving both."""
        result = super()._apply(fn, recurse)
        steps = self._module_steps()
        for step in steps:
            module = self.layers[step.module]
            for index, (name, ref) in enumerate(zip(module.blob_names, step.blob_refs, strict=True)):
                learnable = self.learnables[ref]
                if (learnable.layer, learnable.index) == (step.name, index):
                    learnable.tensor = getattr(module, name)
        for step in steps:
            module = self.layers[step.module]
            for name, ref in zip(module.blob_names, step.blob_refs, strict=True):
                if name not in step.views:
                    setattr(module, name, self.learnables[ref].tensor)
        return result
