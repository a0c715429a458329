"""One baseline engine in its own process, for benchmarks/vs_caffe.py: the real Caffe (run by the
caffe-oracle's python, which has pycaffe and numpy but no torch) or OpenCV's DNN module.

    python baseline_worker.py caffe|opencv WORKDIR THREADS

WORKDIR holds what vs_caffe.py prepared: deploy.prototxt, train.prototxt (the deploy net with a
SoftmaxWithLoss), weights.caffemodel and inputs.npz (data, label). The worker first writes its
results to WORKDIR/<engine>.npz (the deploy outputs; for Caffe also the loss and conv gradients
after one forward+backward), prints "ready", then answers each line "forward" or "train" on stdin
with the seconds one iteration took, timed inside this process; "quit" ends it. Only numpy is
imported besides the engine, so the same file runs under either interpreter.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np


class CaffeEngine:
    def __init__(self, workdir: Path, threads: int) -> None:
        import caffe  # the oracle's pycaffe; OpenBLAS takes its threads from the environment

        caffe.set_mode_cpu()
        inputs = np.load(workdir / "inputs.npz")
        weights = str(workdir / "weights.caffemodel")
        self.deploy = caffe.Net(str(workdir / "deploy.prototxt"), caffe.TEST, weights=weights)
        self.train = caffe.Net(str(workdir / "train.prototxt"), caffe.TEST, weights=weights)
        for net in (self.deploy, self.train):
            net.blobs["data"].data[...] = inputs["data"]
        self.train.blobs["label"].data[...] = inputs["label"].reshape(self.train.blobs["label"].data.shape)

    def forward(self) -> None:
        self.deploy.forward()

    def step(self) -> None:
        self.train.clear_param_diffs()   # what the solver does before each forward+backward
        self.train.forward()
        self.train.backward()

    def results(self) -> dict[str, np.ndarray]:
        self.forward()
        self.step()
        found = {f"out:{name}": self.deploy.blobs[name].data.copy() for name in self.deploy.outputs}
        found["loss"] = np.asarray(self.train.blobs["loss"].data, dtype=np.float32).copy()
        for name, blobs in self.train.params.items():
            found[f"grad:{name}"] = blobs[0].diff.copy()
        return found


class OpenCvEngine:
    def __init__(self, workdir: Path, threads: int) -> None:
        import cv2

        cv2.setNumThreads(threads)
        self.net = cv2.dnn.readNetFromCaffe(str(workdir / "deploy.prototxt"),
                                            str(workdir / "weights.caffemodel"))
        self.data = np.load(workdir / "inputs.npz")["data"]
        self.outputs = self.net.getUnconnectedOutLayersNames()

    def forward(self) -> None:
        self.net.setInput(self.data)
        self.net.forward(self.outputs)

    def step(self) -> None:
        raise SystemExit("OpenCV's DNN module cannot train")

    def results(self) -> dict[str, np.ndarray]:
        self.net.setInput(self.data)
        outputs = self.net.forward(self.outputs)
        return {f"out:{name}": out for name, out in zip(self.outputs, outputs, strict=True)}


def main() -> None:
    engine_name, workdir, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    engine = {"caffe": CaffeEngine, "opencv": OpenCvEngine}[engine_name](workdir, threads)
    results = engine.results()
    temporary = workdir / f".{engine_name}.npz"
    np.savez(temporary, **results)
    os.replace(temporary, workdir / f"{engine_name}.npz")
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        run = engine.forward if command == "forward" else engine.step
        start = time.perf_counter()
        run()
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    main()
