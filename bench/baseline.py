"""The reference: the TensorFlow tutorial's design on the standard workload, run as its own script, in its own
processes (one for training, one for inference), with its lines renamed to this benchmark's records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from workload import Workload

SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "tutorial_baseline.py"
# The script's metric -> (our record name, unit); its "env" lines are left out.
METRICS = {
    "train_captions_per_s": ("baseline_train", "captions/s"),
    "greedy_images_per_s": ("baseline_greedy", "images/s"),
    "greedy_images_per_s_extra_tffunction_step": ("baseline_greedy_tffunction_step", "images/s"),
    "peak_rss_mb": ("baseline_peak_rss", "MB"),
}


def tutorial(workload: Workload, modes: tuple[str, ...] = ("train", "infer"), run: int = 1,
             script: Path = SCRIPT) -> Iterator[dict]:
    """The script's measurements in `modes`, each record labelled with `run`: the suite runs its training again
    after ours (run 2), so the training ratio compares ours with the tutorial's on both sides of it."""
    if not script.exists():
        raise FileNotFoundError(f"no baseline script at {script}")
    for mode in modes:
        command = [sys.executable, str(script), "--mode", mode, *_options(workload)]
        finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=_tensorflow_defaults())
        if finished.returncode != 0:
            raise RuntimeError(f"the baseline's {mode} run failed (exit {finished.returncode})")
        for line in finished.stdout.splitlines():
            reported = json.loads(line)
            metric = reported.pop("metric")
            reported.pop("baseline")
            if metric in METRICS:
                name, unit = METRICS[metric]
                yield {"name": name, "value": reported.pop("value"), "unit": unit, "mode": mode, "run": run,
                       **reported}


def _tensorflow_defaults() -> dict[str, str]:
    """The tutorial runs as TensorFlow runs it by default: without the oneDNN kernels that importing captioner
    turns on for CPUs where TensorFlow leaves them off."""
    return {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}


def _options(workload: Workload) -> list[str]:
    """The script's own model sizes are the standard workload's; only counts can shrink for `--quick`."""
    batches = ["--batches", *map(str, workload.train_batches)]
    if workload.quick:
        return [*batches, "--warmup", "0", "--reps", "1", "--imgs-per-rep", "1"]
    return [*batches, "--warmup", str(workload.warmup), "--reps", str(workload.reps)]
