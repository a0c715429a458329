"""The markdown table of benchmarks/gpu_suite.sh, from the JSON its steps wrote into one folder.

    python suite_table.py RAW_FOLDER DEVICE > table.md
"""
import json
import platform
import sys
import time
from pathlib import Path

import torch

GOALS_MS = {"fcn_alexnet": 2.5, "fcn8s": 8.0}   # 500x500 inference on an H100/H200-class GPU


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main() -> None:
    raw, device = Path(sys.argv[1]), sys.argv[2]
    speed = json.loads((raw / "fcn_speed.json").read_text())
    loader = json.loads((raw / "loader.json").read_text())
    versus = json.loads((raw / "vs_caffe.json").read_text())
    title = f"# gpu_suite: {_device_name(device)}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
    lines = [title, "", "| measure | value | goal |", "| --- | --- | --- |"]
    on_gpu = device.startswith("cuda")
    for result in speed:
        size = f"{result['size']}x{result['size']}"
        for row in result["inference"]:
            name = f"{result['net']} {size} inference {row['precision']}"
            if "error" in row:
                lines.append(f"| {name} | not available: {row['error']} | |")
                continue
            goal = GOALS_MS.get(result["net"]) if result["size"] == 500 and on_gpu else None
            verdict = "" if goal is None else f"<= {goal} ms: {'met' if row['ms'] <= goal else 'NOT met'}"
            agreement = "" if row["precision"] == "fp32 eager" else \
                f" (max rel diff {row['max_rel_diff']:.1e}, argmax {100 * row['argmax_agree']:.2f}% agree)"
            lines.append(f"| {name} | {row['ms']:.2f} ms{agreement} | {verdict} |")
        rate = result["training"]["images_per_s"]
        lines.append(f"| {result['net']} {size} training | {rate:.2f} images/s | |")
    for result in loader:
        met = "met" if result["ratio"] >= 0.8 else "NOT met"
        lines.append(f"| loader {result['set']} to {result['device']}, {result['workers']} workers | "
                     f"{result['stream']:.1f} images/s = {result['ratio']:.2f} of raw decode x workers | "
                     f">= 0.8: {met} |")
    for result in versus:
        shape = "x".join(map(str, result["input"]))
        for key, ms in sorted(result["ms"].items()):
            engine, command = key.split()
            if engine == "digitslite":
                continue
            ours = result["ms"][f"digitslite {command}"]
            lines.append(f"| vs_caffe {result['net']} {shape} {command}: digitslite on {device} / {engine} "
                         f"on the CPU | {ours:.1f} / {ms:.1f} ms = {ours / ms:.3f} | |")
        for note in result["notes"]:
            lines.append(f"| vs_caffe {result['net']} | {note} | |")
    if on_gpu:
        lines.append("| vs_caffe | no GPU Caffe is available: the baselines ran on the CPU | |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
