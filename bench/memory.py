"""Peak memory of folder captioning: each image count in a fresh process, whose peak RSS is its own.

`python bench/memory.py --images N [--quick] [--data DIR]` is the child: it captions N images (beam 3, with
heatmaps) and prints one JSON record.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from measure import record
from workload import SHARED_DATA, Workload, keras_home

BEAM_SIZE = 3


def peak_rss(workload: Workload) -> Iterator[dict]:
    """One record per count in `workload.memory_images`, each from its own child process."""
    for count in workload.memory_images:
        command = [sys.executable, __file__, "--images", str(count), "--data", str(workload.data)]
        if workload.quick:
            command.append("--quick")
        finished = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"the memory benchmark for {count} images failed (exit {finished.returncode})")
        yield json.loads(finished.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "flickr8k")
    args = parser.parse_args(argv)
    workload = Workload.of(args.quick, args.data)
    images = workload.images(args.images)
    with keras_home(), tempfile.TemporaryDirectory(prefix="captioner-bench-memory-") as out:
        from captioner.folder import caption_folder  # Keras must come after keras_home

        captioner = workload.untrained_captioner()
        start = time.perf_counter()
        # caption_folder reports to stdout, which carries the JSON record.
        with contextlib.redirect_stdout(sys.stderr):
            caption_folder(images, out, captioner, beam_size=BEAM_SIZE)
        elapsed = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    print(json.dumps(record("peak_rss", peak_mb, "MB", images=args.images, beam_size=BEAM_SIZE, heatmaps=True,
                            seconds_incl_tracing=round(elapsed, 1))))


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Linux carries getrusage's ru_maxrss across exec, so a child started by a
    benchmark run that had grown to gigabytes would report the parent's peak; /proc's VmHWM starts afresh."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # macOS counts bytes


if __name__ == "__main__":
    main()
