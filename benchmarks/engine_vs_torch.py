"""CaffeNet against the same network written by hand in torch: what the Caffe layer runs cost.

The DIGITS FCN-AlexNet deploy prototxt (21 classes) runs through CaffeNet and through an
nn.Module with the same layers (conv1 pad 100 ... fc6 as a 6x6 convolution, fc7 1x1, score_fr,
grouped upscore deconvolution k63 s32 without bias, crop 18), both with the same random weights,
in the same process. Each iteration is one forward and one backward of sum(score * g); the two
nets alternate iteration by iteration, and the medians are compared. Goal: ratio <= 1.03.

    .venv/bin/python benchmarks/engine_vs_torch.py                     # CPU: 1x3x256x256, 8 reps
    .venv/bin/python benchmarks/engine_vs_torch.py --device cuda       # GPU: 1x3x500x500, 50 reps
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitslite.caffe.prototxt import read_net
from digitslite.engine.net import CaffeNet

PROTOTXT = (Path(__file__).resolve().parents[1].parent / "shared" / "peer_nets"
            / "digits__semantic-segmentation__fcn_alexnet.deploy.prototxt")
CLASSES = 21


class HandFcnAlexNet(nn.Module):
    """FCN-AlexNet in plain torch, layer for layer as in the prototxt (test phase: no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4, padding=100)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.fc6 = nn.Conv2d(256, 4096, 6)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.score_fr_21classes = nn.Conv2d(4096, CLASSES, 1)
        self.upscore_21classes = nn.ConvTranspose2d(CLASSES, CLASSES, 63, stride=32, groups=CLASSES,
                                                    bias=False)
        self.upscore_21classes.weight.requires_grad_(False)  # lr_mult: 0 in the prototxt
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        x = data - 116.0
        x = self.norm(self.pool(torch.relu(self.conv1(x))))
        x = self.norm(self.pool(torch.relu(self.conv2(x))))
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.conv4(x))
        x = self.pool(torch.relu(self.conv5(x)))
        x = torch.relu(self.fc6(x))
        x = torch.relu(self.fc7(x))
        x = self.upscore_21classes(self.score_fr_21classes(x))
        return x[:, :, 18:18 + data.shape[2], 18:18 + data.shape[3]]


def random_weights(net: CaffeNet, seed: int) -> dict[str, list[np.ndarray]]:
    """He-scaled gaussian weights and small biases, so activations neither vanish nor blow up."""
    generator = np.random.default_rng(seed)
    weights = {}
    for layer, shapes in net.blob_shapes().items():
        if shapes:
            fan_in = int(np.prod(shapes[0][1:]))
            arrays = [generator.normal(0, np.sqrt(2 / fan_in), shapes[0]).astype(np.float32)]
            arrays += [generator.normal(0, 0.01, shape).astype(np.float32) for shape in shapes[1:]]
            weights[layer] = arrays
    return weights


def step(run, data: torch.Tensor, grad: torch.Tensor, params: list[torch.Tensor],
         device: torch.device) -> float:
    """Seconds for one forward + backward of sum(score * grad)."""
    for param in params:
        param.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    (run(data) * grad).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _close(ours: torch.Tensor, theirs: torch.Tensor, what: str, tolerance: float) -> str:
    """'max |diff| of |max|' for the report; exits when `ours` is not allclose to `theirs`."""
    scale = theirs.abs().max().item()
    worst = (ours - theirs).abs().max().item() if ours.shape == theirs.shape else float("inf")
    if worst > tolerance * scale:
        raise SystemExit(f"{what} differ: max |diff| {worst:.3g} for values up to {scale:.3g}")
    return f"{what}: max |diff| {worst:.2e} of {scale:.3g}"


def check_equal(run_caffe, hand: nn.Module, data: torch.Tensor, grad: torch.Tensor,
                caffe_conv1: torch.Tensor, hand_conv1: torch.Tensor) -> None:
    """Both nets give the same score map and the same gradients, or the benchmark stops."""
    results = []
    for run, conv1 in ((run_caffe, caffe_conv1), (hand, hand_conv1)):
        data.grad = conv1.grad = None
        score = run(data)
        (score * grad).sum().backward()
        results.append((score.detach(), data.grad.clone(), conv1.grad.clone()))
    data.grad = None
    (caffe_score, caffe_data, caffe_w), (hand_score, hand_data, hand_w) = results
    print(_close(caffe_score, hand_score, "score", 1e-4))
    print(_close(caffe_data, hand_data, "d loss / d data", 1e-3))
    print(_close(caffe_w, hand_w, "d loss / d conv1 weights", 1e-3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, help="input height and width (default 256 on CPU, 500 on GPU)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, help="timed iterations per net (default 8 on CPU, 50 on GPU)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    size = args.size or (500 if on_gpu else 256)
    reps = args.reps or (50 if on_gpu else 8)
    shape = (args.batch, 3, size, size)

    caffe_net = CaffeNet(read_net(PROTOTXT), "test", input_shapes={"data": shape})
    weights = random_weights(caffe_net, seed=0)
    caffe_net.load_weights(weights)
    hand = HandFcnAlexNet()
    with torch.no_grad():
        for name, arrays in weights.items():
            layer = getattr(hand, name)
            layer.weight.copy_(torch.from_numpy(arrays[0]))
            if len(arrays) > 1:
                layer.bias.copy_(torch.from_numpy(arrays[1]))
    caffe_net.to(device)
    hand.to(device).eval()

    generator = torch.Generator().manual_seed(1)
    data = (torch.rand(shape, generator=generator) * 255).to(device)
    grad = torch.randn((args.batch, CLASSES, size, size), generator=generator).to(device)
    data.requires_grad_(True)

    def run_caffe(blob: torch.Tensor) -> torch.Tensor:
        return caffe_net.forward({"data": blob})["score"]

    caffe_params = [p for p in caffe_net.parameters() if p.requires_grad]
    hand_params = [p for p in hand.parameters() if p.requires_grad]
    caffe_conv1 = next(p.tensor for p in caffe_net.learnable_params() if (p.layer, p.index) == ("conv1", 0))
    check_equal(run_caffe, hand, data, grad, caffe_conv1, hand.conv1.weight)

    times: dict[str, list[float]] = {"caffenet": [], "torch": []}
    runs = {"caffenet": (run_caffe, caffe_params), "torch": (hand, hand_params)}
    for rep in range(args.warmup + reps):
        order = ["caffenet", "torch"] if rep % 2 == 0 else ["torch", "caffenet"]
        for name in order:
            run, params = runs[name]
            elapsed = step(run, data, grad, [*params, data], device)
            if rep >= args.warmup:
                times[name].append(elapsed)
    caffe_ms = statistics.median(times["caffenet"]) * 1e3
    torch_ms = statistics.median(times["torch"]) * 1e3
    print(f"device {device} ({torch.get_num_threads()} threads)" if not on_gpu else
          f"device {torch.cuda.get_device_name(device)}")
    print(f"input {list(shape)}, forward+backward, {reps} interleaved reps, median")
    print(f"caffenet {caffe_ms:9.1f} ms/iter")
    print(f"torch    {torch_ms:9.1f} ms/iter")
    print(f"ratio    {caffe_ms / torch_ms:9.3f} (goal <= 1.03)")


if __name__ == "__main__":
    main()
