"""Re-materialization: recomputed segments change memory, never the numbers (Dropout included)."""
import numpy as np
import pytest
import torch

from digitslite.caffe.prototxt import parse_net
from digitslite.engine import execution
from digitslite.engine.dispatch import train
from digitslite.engine.net import CaffeNet
from digitslite.engine.recompute import enable_recompute, recompute_points
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError
from tests.engine.test_train import assert_same_weights, final_weights, records, solver, without_timing
from tests.engine.test_train_support import fcn_net, feed_batches

DROPOUT_HALF = fcn_net().replace("dropout_ratio: 0.1", "dropout_ratio: 0.5")


def train_net() -> CaffeNet:
    return CaffeNet(parse_net(DROPOUT_HALF), "train", stages=("train",),
                    input_shapes={"data": (4, 3, 12, 12), "label": (4, 1, 12, 12)}, seed=3)


def step_names(net: CaffeNet, points) -> list[str]:
    """The layer each segment ends with."""
    return [net.steps[point - 1].name for point in points]


def test_cuts_every_n_layers_auto_and_after_named_blobs():
    net = train_net()
    # computing layers: conv1 relu1 pool1 conv2 relu2 drop2 score_fr upscore score loss (10)
    assert step_names(net, recompute_points(net, "3")) == ["pool1", "drop2", "score"]
    # auto: ceil(sqrt(10)) = 4 layers per segment
    assert step_names(net, recompute_points(net, "auto")) == ["conv2", "upscore"]
    # "conv1" is rewritten in place by relu1: the cut follows the last writer
    assert step_names(net, recompute_points(net, "conv1,pool1")) == ["relu1", "pool1"]


def test_unknown_blob_is_refused_in_the_options_words():
    with pytest.raises(UserError, match=r"--recompute: the train net has no blob 'pool9'.*pool1"):
        recompute_points(train_net(), "pool1,pool9")


def gradients(recompute: str | None, counted: list[int]) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(11)
    net = train_net()
    enable_recompute(net, recompute)
    net.layers[0].register_forward_hook(lambda *_: counted.append(1))
    batch = feed_batches(4, 1)[0]
    loss = net.loss(net(batch))
    loss.backward()
    grads = [p.tensor.grad.clone() for p in net.learnable_params() if p.tensor.grad is not None]
    return float(loss.detach()), grads


def test_a_recomputed_backward_runs_the_segment_again_and_gives_identical_gradients():
    plain_calls, recompute_calls = [], []
    plain_loss, plain = gradients(None, plain_calls)
    loss, recomputed = gradients("pool1,score_fr", recompute_calls)
    assert (len(plain_calls), len(recompute_calls)) == (1, 2)   # conv1 ran again in the backward pass
    assert loss == plain_loss
    assert len(recomputed) == len(plain) > 0
    for a, b in zip(plain, recomputed, strict=True):
        assert torch.equal(a, b)


def test_a_convolution_measured_at_its_first_call_recomputes_the_same(monkeypatch):
    """On CUDA a convolution times its candidates at its first call, which is inside a recomputed
    segment; the recomputation finds the choice made and must still give the same gradients. Here
    the CPU's rule is wrapped in that measurement, so the probes run where they run on CUDA."""
    rule, measured = execution._cpu_rule, set()

    def measure_first(call, batch, options):
        key = execution._key(call, batch)
        if key not in measured:
            measured.add(key)
            execution._fastest(call, batch, options)
        return rule(call, batch, options)

    monkeypatch.delenv(execution.FORCE_VARIABLE, raising=False)
    monkeypatch.setattr(execution, "_cpu_rule", measure_first)
    plain_loss, plain = gradients(None, [])
    measured.clear()
    loss, recomputed = gradients("pool1,score_fr", [])
    assert loss == plain_loss
    for a, b in zip(plain, recomputed, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("recompute", ["1", "auto", "pool1,score_fr"])
def test_training_with_recompute_is_bit_identical_with_dropout(recompute, tmp_path):
    runs = {}
    for name, value in (("plain", None), ("recompute", recompute)):
        config = TrainConfig(solver=solver("max_iter: 8 display: 1"), net=parse_net(DROPOUT_HALF),
                             device="cpu", recompute=value)
        runs[name] = train(config, tmp_path / name, feeds={"train": feed_batches(16, 1)})
    assert without_timing(records(tmp_path / "plain")) == without_timing(records(tmp_path / "recompute"))
    assert_same_weights(final_weights(runs["plain"]), final_weights(runs["recompute"]))
    assert not np.isnan(runs["plain"].loss)


def test_the_cli_takes_recompute_alone_or_with_cuts_and_refuses_unknown_blobs(tmp_path):
    from click.testing import CliRunner

    from digitslite.cli import main
    from tests.engine.test_train_support import write_dataset

    dataset = write_dataset(tmp_path / "dataset", train_count=4, val_count=4)
    net = tmp_path / "net.prototxt"
    net.write_text(fcn_net())
    common = ["train", "--dataset", str(dataset), "--net", str(net), "--max-iter", "2", "--batch-size", "2",
              "--seed", "1", "--cpu"]
    done = CliRunner().invoke(main, [*common, "--recompute", "-o", str(tmp_path / "auto"), "--json"])
    assert done.exit_code == 0, done.output
    refused = CliRunner().invoke(main, [*common, "--recompute", "pool1,fc9", "-o", str(tmp_path / "bad")])
    assert refused.exit_code == 1
    assert "error: --recompute: the train net has no blob 'fc9'" in refused.stderr
