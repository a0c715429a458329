"""Colorization dataset creation: peak memory against the number of photos (it must stay flat).

Writes N demo colour scenes, then creates the dataset in a fresh interpreter with one worker (all
work in that process, so its peak resident size is the whole cost) and prints the peak RSS and the
photos/s for each N. Each LMDB writer holds up to 32 MB of records before it commits
(lmdb_writer.BATCH_BYTES), so the anonymous memory rises with N until those batches fill (a few
thousand small photos) and is flat from there: the largest N must cost what the middle one does.

    .venv/bin/python benchmarks/colorize_dataset_memory.py --counts 500 4000
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from digitslite.datasets.colorize.demo import write_colour_demo

# Peak RSS counts the LMDB pages pass 2 reads through its memory map (file-backed, given back under
# pressure); the anonymous part, sampled every 20 ms, is what the process itself holds.
MEASURE = """
import json, resource, sys, threading, time
from digitslite.datasets.colorize.create import create_colorize
from digitslite.datasets.colorize.options import ColorizeOptions
peak, done = [0], threading.Event()
def sample():
    while not done.wait(0.02):
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak[0] = max(peak[0], int(line.split()[1]))
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
create_colorize(ColorizeOptions(images=sys.argv[1], val_percent=0, seed=1, workers=1), sys.argv[2])
seconds = time.perf_counter() - start
done.set()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_rss_mb": rss / 1024, "peak_anon_mb": peak[0] / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 4000])
    parser.add_argument("--side", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        photos = Path(scratch) / "photos"
        write_colour_demo(photos, count=max(args.counts), val_count=0, width=args.side, height=args.side)
        for count in sorted(args.counts):
            chosen = Path(scratch) / f"photos_{count}"
            chosen.mkdir()
            for path in sorted((photos / "images").iterdir())[:count]:
                (chosen / path.name).symlink_to(path)
            result = json.loads(subprocess.run(
                [sys.executable, "-c", MEASURE, str(chosen), str(Path(scratch) / f"ds_{count}")],
                check=True, capture_output=True, text=True).stdout)
            print(f"{count:6d} photos of {args.side}x{args.side}: peak RSS {result['peak_rss_mb']:.0f} MB, "
                  f"peak anonymous {result['peak_anon_mb']:.0f} MB, {count / result['seconds']:.0f} photos/s")


if __name__ == "__main__":
    main()
