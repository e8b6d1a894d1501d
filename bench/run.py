"""Benchmarks of captioner against the TensorFlow tutorial's design, as JSON lines on stdout and a table on stderr.

    python bench/run.py [--quick] [--only train,decode,...] [--out results.jsonl]

Suites, in the order they run: baseline (the tutorial, in its own processes), train (followed by the tutorial's
training again, when both run), decode, folder, encoders, cache (in this process, each after a warm-up), memory (a fresh
process per image count). Every line is a JSON object with a
"name": "env" first, then measurements ("value" and "unit"), then "target" lines (the issue's performance targets
as measured ratios, with "pass"), and an "error" line for any suite that failed. The exit status is 1 if any did.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import json
import os
import platform
import sys
import traceback
from pathlib import Path

import captioner  # noqa: F401  before anything imports TensorFlow: it turns TensorFlow's oneDNN kernels on
from report import print_table, targets
from workload import SHARED_DATA, Workload, keras_home

SUITES = ("baseline", "train", "decode", "folder", "encoders", "cache", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.data / "Images").is_dir():
        parser.error(f"--data {args.data} is not a Flickr8k folder: it has no Images/")
    workload = Workload.of(args.quick, args.data)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would bury the table
    records = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(keras_home())
        files = [sys.stdout] + ([stack.enter_context(args.out)] if args.out else [])

        def emit(record: dict) -> None:
            records.append(record)
            for file in files:
                print(json.dumps(record), file=file, flush=True)

        emit(_environment(workload))
        runners = _runners()
        for suite in args.only:
            _run_suite(suite, runners[suite], workload, emit)
            if suite == "train" and "baseline" in args.only:
                # The tutorial trains again right after ours, and the training ratio takes the mean of its two runs:
                # on these machines speed drifts by 20% or more between suites, and so both sides drift alike.
                _run_suite("baseline", functools.partial(runners["baseline"], modes=("train",), run=2), workload, emit)
        for target in targets(workload):
            emit(target.check(records))
    if workload.quick:
        print("--quick: tiny sizes and counts, so these numbers say nothing about speed\n", file=sys.stderr)
    print_table(records, sys.stderr)
    return 1 if any(record["name"] == "error" for record in records) else 0


def _run_suite(suite: str, runner, workload: Workload, emit) -> None:
    try:
        for record in runner(workload):
            emit(record)
    except Exception as error:  # one suite failing should not lose the others' numbers
        traceback.print_exc()
        emit({"name": "error", "suite": suite, "error": f"{type(error).__name__}: {error}"})


def _runners() -> dict:
    # Imported here, inside keras_home: Keras reads KERAS_HOME once, when it is first imported.
    import baseline
    import memory
    import throughput

    return {"baseline": baseline.tutorial, "train": throughput.training, "decode": throughput.decoding,
            "folder": throughput.folder_captioning, "encoders": throughput.encoders, "cache": throughput.cache_build,
            "memory": memory.peak_rss}


def _environment(workload: Workload) -> dict:
    versions = {package: importlib.metadata.version(package) for package in ("tensorflow", "keras", "numpy")}
    return {"name": "env", "quick": workload.quick, "python": platform.python_version(), **versions,
            "cpu_count": os.cpu_count(), "loadavg": [round(load, 2) for load in os.getloadavg()]}


def _suites(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SUITES]
    if unknown or not chosen:
        wrong = ", ".join(unknown) or repr(text)
        raise argparse.ArgumentTypeError(f"unknown suite {wrong}; choose from {', '.join(SUITES)}")
    return [name for name in SUITES if name in chosen]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts: checks the benchmarks run, "
                        "its numbers mean nothing")
    parser.add_argument("--only", type=_suites, default=list(SUITES), metavar="NAME[,NAME]",
                        help=f"run only these suites, of: {', '.join(SUITES)}")
    parser.add_argument("--out", type=argparse.FileType("w"), help="also write the JSON lines to this file")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "flickr8k",
                        help="a Flickr8k folder: Flickr8k.token.txt and Images/ (default: %(default)s)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
