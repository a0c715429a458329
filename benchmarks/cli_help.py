"""Start-up time of `digitslite --help` (a fresh interpreter each run), against a bare interpreter
and against one that only imports torch: the help must cost far less than torch. Goal: < 0.5 s.

    .venv/bin/python benchmarks/cli_help.py --runs 7
"""
import argparse
import statistics
import subprocess
import sys
import time


def seconds(args: list[str], runs: int) -> float:
    """Median wall time of `python ARGS` over `runs` runs (after one warm-up for the file cache)."""
    subprocess.run([sys.executable, *args], capture_output=True, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    bare = seconds(["-c", "pass"], runs)
    torch = seconds(["-c", "import torch"], runs)
    help_ = seconds(["-m", "digitslite", "--help"], runs)
    print(f"bare interpreter      {bare:.3f} s")
    print(f"import torch          {torch:.3f} s")
    print(f"digitslite --help     {help_:.3f} s  (goal < 0.5 s; {help_ / torch:.2f} of importing torch)")


if __name__ == "__main__":
    main()
