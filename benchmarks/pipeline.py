"""Re-materialization memory and pipeline efficiency (issue 16).

Memory: FCN-8s (../shared/peer_nets voc-fcn8s deploy, TRAIN phase so Dropout draws masks) at
1x3x512x512, one forward and backward of sum(score), without and with --recompute. Each mode runs
in a fresh process; on the CPU torch keeps no allocator statistics, so the activation peak is the
peak resident set (ru_maxrss) less the resident set after a small warm-up pass that allocated the
weights and their gradients (glibc's mmap threshold fixed at 128 KiB, so that freed blocks leave
the resident set). On CUDA (--gpu) it is torch.cuda.max_memory_allocated less the memory
allocated before the pass. Goal: recompute <= 0.6x of the plain peak.

Pipeline: fcn_tiny (network_defs) on 2 stages (gloo; NCCL with --gpu and 2 GPUs), in --replicas
data-parallel copies (2 x replicas processes or GPUs), batch 1 per micro-batch, M = 1, 2, 4, 8
micro-batches per update, at each --pipeline-size, on both schedules (GPipe; 1F1B from M = 2). The
measured time per update (wall) is set against GPipe's model: (sum of the stages' busy time)/K x
(M + K - 1)/M, the busy times measured in the same run (torch's forward_one_chunk/
backward_one_chunk). Goal: within 20 % at M = 8. Next to it, the schedule played through with each
stage's own forward and backward seconds (bubble.fill_drain_time): what free hand-overs would give
on these uneven stages. Each row carries the load average at its end (the machine may be shared).

Stage weights: FCN-8s (network_defs) trained one update on 2 stages (cut balancing FLOPs, then
parameters): each stage's parameter bytes
from the partition table and as held by the stage process (pipeline.json), and the process's
memory peak (CUDA allocator on a GPU, resident set on the CPU).

    .venv/bin/python benchmarks/pipeline.py                 # CPU
    .venv/bin/python benchmarks/pipeline.py --gpu           # CUDA: memory, and the pipeline on 2 GPUs
    .venv/bin/python benchmarks/pipeline.py --gpu --replicas 2   # pipeline x DDP on 4 GPUs (NCCL)
    .venv/bin/python benchmarks/pipeline.py --skip-memory   # only the pipeline part
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from digitslite.caffe.layer_cost import BYTES_PER_VALUE
from digitslite.caffe.partition import partition
from digitslite.caffe.prototxt import read_net
from digitslite.datasets.demo import CLASSES
from digitslite.engine.dispatch import train
from digitslite.engine.net import CaffeNet, runnable_net
from digitslite.engine.pipeline.bubble import fill_drain_time
from digitslite.engine.pipeline.training import SCHEDULES
from digitslite.engine.recompute import enable_recompute
from digitslite.engine.train import TrainConfig
from digitslite.layout import PIPELINE_FILE
from digitslite.networks import load_network, load_solver

sys.path.insert(0, str(Path(__file__).parent))
from ddp_scaling import write_scenes

FCN8S = Path(__file__).resolve().parents[2] / "shared" / "peer_nets" / "fcn__voc-fcn8s__deploy.prototxt"
STAGES = 2


def _resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _pass(net: CaffeNet, size: int, device: torch.device) -> None:
    data = torch.rand(1, 3, size, size, device=device) * 255
    net({"data": data})["score"].sum().backward()


def memory_child(recompute: str | None, size: int, device_name: str) -> dict:
    """In a fresh process: the activation peak of one training pass (bytes) and its seconds."""
    device = torch.device(device_name)
    net = CaffeNet(read_net(FCN8S), "train", input_shapes={"data": (1, 3, size, size)}, seed=1).to(device)
    enable_recompute(net, recompute)
    _pass(net, 64, device)   # allocates the gradients; the small activations are freed again
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _resident_bytes()
    started = time.perf_counter()
    _pass(net, size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": peak - base, "seconds": time.perf_counter() - started}


def measure_memory(size: int, device: str, modes: list[str | None]) -> None:
    print(f"FCN-8s at 1x3x{size}x{size}, one forward+backward, device {device}, torch {torch.__version__}")
    plain = None
    for mode in modes:
        command = [sys.executable, __file__, "--memory-child", mode or "none", "--size", str(size),
                   "--device", device]
        # glibc's dynamic mmap threshold would keep freed blocks of up to 32 MB in the heap, which the
        # resident set then counts as in use; a fixed threshold returns every block over 128 KiB
        environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
        child = subprocess.run(command, capture_output=True, text=True, env=environment)
        if child.returncode != 0:
            raise SystemExit(f"the memory pass with recompute {mode or 'off'} failed:\n{child.stderr}")
        result = json.loads(child.stdout)
        peak = result["peak_bytes"] / 2**20
        plain = plain or peak
        print(f"  recompute {mode or 'off':<32} activation peak {peak:9.0f} MiB  ({peak / plain:.2f}x)"
              f"  {result['seconds']:6.1f} s")


def pipeline_run(network: str, dataset: Path, job: Path, device: str, micro_batches: int, iterations: int,
                 replicas: int = 1, balance: str = "flops", schedule: str = "gpipe",
                 cuts: tuple[str, ...] = ()) -> dict:
    """Train `network` (batch 1 per micro-batch) on STAGES stages in `replicas` replicas; pipeline.json."""
    net = load_network(network, len(CLASSES))
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = 1
    solver = load_solver(network)
    solver.max_iter, solver.display, solver.snapshot, solver.test_interval = iterations, 0, 0, 0
    solver.iter_size = 1
    del solver.test_iter[:]
    train(TrainConfig(solver=solver, net=net, device=device, dataset_root=dataset, pipeline_stages=STAGES,
                      micro_batches=micro_batches, ranks=replicas, pipeline_balance=balance,
                      pipeline_schedule=schedule, pipeline_cuts=cuts), job)
    return json.loads((job / PIPELINE_FILE).read_text())


def measure_stage_weights(size: int, device: str, balance: str) -> None:
    """FCN-8s on STAGES stages: each stage's parameter bytes from the partition table (prototxt) and
    as held by the stage process after one update, and that process's memory peak."""
    net = load_network("fcn8s", len(CLASSES))
    shapes = {"data": (1, 3, size, size), "label": (1, 1, size, size)}
    table = partition(runnable_net(net, "train", stages=("train",)), STAGES, balance=balance,
                      input_shapes=shapes)
    whole = sum(stage.parameters for stage in table.stages) * BYTES_PER_VALUE
    print(f"FCN-8s (network_defs) on {STAGES} stages balanced by {balance} at 1x3x{size}x{size}, one update, "
          f"device {device}: whole net {whole / 2**20:.1f} MiB of parameters")
    print("  stage  layers                     partition (MiB)   held (MiB)   process peak (MiB)")
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as folder:
        dataset = write_scenes(Path(folder) / "dataset", 4, size)
        found = pipeline_run("fcn8s", dataset, Path(folder) / "fcn8s", device, 1, 1, balance=balance)
    for planned, stage in zip(table.stages, found["stages"], strict=True):
        layers = f"{stage['layers'][0]} … {stage['layers'][-1]}"
        print(f"  {stage['stage']:<6} {layers:<26} {planned.parameters * BYTES_PER_VALUE / 2**20:12.1f}"
              f"   {stage['parameter_bytes'] / 2**20:10.1f}   {stage['peak_bytes'] / 2**20:14.0f}")


def pipeline_row(found: dict, micro: int, schedule: str) -> str:
    """One run's wall time per update against the two models, from its pipeline.json."""
    stages = found["stages"]
    updates = stages[0]["updates"]     # the first update (warm-up) is not counted
    wall = max(stage["wall_s"] for stage in stages) / updates     # replica 0's stages
    busy = sum(stage["busy_s"] for stage in stages) / updates
    model = busy / STAGES * (micro + STAGES - 1) / micro
    forward = [stage["forward_s"] / updates / micro for stage in stages]
    backward = [stage["backward_s"] / updates / micro for stage in stages]
    uneven = fill_drain_time(forward, backward, micro, schedule)
    split = "  ".join(f"{1e3 * f:.0f}, {1e3 * b:.0f}" for f, b in zip(forward, backward, strict=True))
    return (f"{micro:<3} {wall:8.3f} s  {model:9.3f} s  {model / wall:10.2f}  {uneven / wall:15.2f}      "
            f"{split:<30}  {found['bubble']:.2f}, {found['ideal_bubble']:.2f}  {os.getloadavg()[0]:10.1f}")


def measure_pipeline(sizes: list[int], device: str, iterations: int, replicas: int,
                     cuts: tuple[str, ...]) -> None:
    print(f"fcn_tiny on {STAGES} stages x {replicas} replica(s), cut {','.join(cuts) or 'by FLOPs'}, batch 1 "
          f"per micro-batch, {iterations} updates, device {device}, {os.environ.get('OMP_NUM_THREADS')} "
          f"thread(s) per stage, {os.cpu_count()} cores")
    print("  size  schedule  M   wall/update  model/update  model/measured  fill-drain/measured  "
          "forward, backward per stage (ms)   bubble (measured, GPipe)  load")
    runs = [(schedule, micro) for schedule in SCHEDULES for micro in (1, 2, 4, 8)
            if schedule == "gpipe" or micro >= STAGES]     # 1F1B needs M >= K
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as folder:
        for size in sizes:
            dataset = write_scenes(Path(folder) / f"dataset{size}", 64, size)
            for schedule, micro in runs:
                found = pipeline_run("fcn_tiny", dataset, Path(folder) / f"{size}{schedule}{micro}", device,
                                     micro, iterations, replicas, schedule=schedule, cuts=cuts)
                print(f"  {size:<5} {schedule:<9} {pipeline_row(found, micro, schedule)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="measure on CUDA (NCCL for the pipeline)")
    parser.add_argument("--size", type=int, default=512, help="FCN-8s input size")
    parser.add_argument("--pipeline-size", type=int, action="append", help="fcn_tiny scene size "
                        "(repeatable; default 192, 256 and 384)")
    parser.add_argument("--pipeline-cuts", default="", help="blobs to cut fcn_tiny after (default: the "
                        "FLOP-balanced cut)")
    parser.add_argument("--iterations", type=int, default=11, help="updates per pipeline run (the first "
                        "is a warm-up)")
    parser.add_argument("--recompute", action="append", help="a --recompute value to measure (repeatable; "
                        "default: after each pooling stage, and auto)")
    parser.add_argument("--replicas", type=int, default=1, help="data-parallel replicas of the pipeline "
                        f"(--gpu: {STAGES} x replicas GPUs)")
    parser.add_argument("--stage-size", type=int, default=64, help="FCN-8s input size for the stage weights")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-stage-weights", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(None if args.memory_child == "none" else args.memory_child, args.size,
                                      args.device)))
        return
    device = "cuda" if args.gpu else "cpu"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.skip_memory:
        modes = args.recompute or ["pool1,pool2,pool3,pool4,pool5", "auto"]
        measure_memory(args.size, device, [None, *modes])
    needed = STAGES * args.replicas
    if device == "cuda" and torch.cuda.device_count() < needed:
        print(f"pipeline and stage weights: skipped, {needed} GPUs are needed and "
              f"{torch.cuda.device_count()} are visible")
        return
    if not args.skip_pipeline:
        cuts = tuple(name for name in args.pipeline_cuts.split(",") if name)
        measure_pipeline(args.pipeline_size or [192, 256, 384], device, args.iterations, args.replicas, cuts)
    if not args.skip_stage_weights:
        for balance in ("flops", "parameters"):
            measure_stage_weights(args.stage_size, device, balance)


if __name__ == "__main__":
    main()
