"""bench/run.py: a tiny `--quick` run prints one JSON object per line, with the keys the results are read by."""
import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def test_quick_run_prints_measurements_and_targets_as_json_lines(flickr8k_dir, squeezenet_file, tmp_path):
    out = tmp_path / "results.jsonl"
    # Decoding and folder captioning cover both kinds of suite (model only; real images and encoder) in seconds.
    finished = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "decode,folder", "--out", str(out), "--data", flickr8k_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
    )  # inherits the KERAS_HOME that conftest seeded with the SqueezeNet weights
    assert finished.returncode == 0, finished.stderr[-2000:]

    records = [json.loads(line) for line in finished.stdout.splitlines()]
    assert out.read_text().splitlines() == finished.stdout.splitlines()
    assert records[0]["name"] == "env" and records[0]["quick"] is True

    measured = [record for record in records if "value" in record]
    assert {record["name"] for record in measured} == {"decode", "folder", "encoder"}
    assert {(record["search"], record["batch"]) for record in measured if record["name"] == "decode"} == {
        ("greedy", 1), ("greedy", 4), ("beam 3", 1), ("beam 3", 4)}
    for record in measured:
        assert {"unit", "median_s", "samples_s", "loadavg_1min"} <= record.keys()
        assert round(record["value"] * record["median_s"]) == 4  # the quick run's images, at the median rate

    targets = {record["target"]: record for record in records if record["name"] == "target"}
    assert len(targets) == 7
    folders = [record for text, record in targets.items() if text.startswith("folder captioning")]
    assert len(folders) == 2  # with and without heatmaps
    for folder in folders:
        assert folder["ratio"] > 0 and isinstance(folder["pass"], bool) and folder["goal"] == "<= 3x"
    assert sum(record["ratio"] is None for record in targets.values()) == 5  # no training, baseline or memory run
    assert "target" in finished.stderr and "folder captioning" in finished.stderr  # the table
