"""The performance targets as ratios of measurements, and the table a person reads at the end of a run."""
from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from workload import Workload

# Context fields that tell apart records of one name, in the order the table shows them.
LABEL_FIELDS = ("backbone", "grid", "attention", "search", "batch", "xla", "heatmaps", "images", "mode", "run")


@dataclass(frozen=True)
class Target:
    description: str
    compare: str  # ">=" or "<="
    bound: float
    ratio: Callable[[Callable[..., float]], float]  # given a lookup value(name, **fields), the measured ratio

    def check(self, records: list[dict]) -> dict:
        """The target's record: the measured ratio and whether it passes, or why there is none."""
        result = {"name": "target", "target": self.description, "goal": f"{self.compare} {self.bound:g}x"}
        try:
            ratio = self.ratio(lambda name, **fields: _value(records, name, **fields))
        except LookupError as missing:
            return {**result, "ratio": None, "pass": None, "missing": str(missing.args[0])}
        passes = {">=": operator.ge, "<=": operator.le}[self.compare](ratio, self.bound)
        return {**result, "ratio": round(ratio, 2), "pass": passes}


def targets(workload: Workload) -> list[Target]:
    """The issue's targets; each speed ratio is ours over the reference's, each time ratio the slower one over the
    faster one (rates inverted), at the workload's largest batch."""
    train_batch, decode_batch = max(workload.train_batches), max(workload.decode_batches)
    few, many = workload.memory_images

    def training(value, attention, xla=False):
        return value("train", attention=attention, batch=train_batch, xla=xla)

    def tutorial_training(value):  # the mean of its runs before and after ours
        return sum(value("baseline_train", batch=train_batch, run=run) for run in (1, 2)) / 2

    return [
        # The target is for training as users run it; `--xla` is measured too, without a target of its own.
        Target(f"training captions/s, soft, batch {train_batch} / tutorial's", ">=", 4,
               lambda value: training(value, "soft") / tutorial_training(value)),
        *(Target(f"training time per batch of {train_batch}, {kind} / soft", "<=", 1.5,
                 lambda value, kind=kind: training(value, "soft") / training(value, kind))
          for kind in ("hard", "local-global")),
        Target(f"decoding images/s, beam 3 at batch {decode_batch} / tutorial's greedy at batch 1", ">=", 20,
               lambda value: value("decode", search="beam 3", batch=decode_batch) / value("baseline_greedy")),
        *(Target(f"folder captioning time (beam 3{', heatmaps' if heatmaps else ''}) / encoder alone", "<=", 3,
                 lambda value, heatmaps=heatmaps: value("encoder") / value("folder", heatmaps=heatmaps))
          for heatmaps in (True, False)),
        Target(f"peak RSS captioning {many:,} / {few:,} images", "<=", 1.2,
               lambda value: value("peak_rss", images=many) / value("peak_rss", images=few)),
    ]


def print_table(records: list[dict], out: TextIO) -> None:
    measured = [record for record in records if "value" in record]
    checked = [record for record in records if record["name"] == "target"]
    labels = [_label(record) for record in measured]
    width = max(map(len, labels), default=0)
    for label, record in zip(labels, measured):
        print(f"{label:<{width}}  {record['value']:>10,.2f} {record['unit']}", file=out)
    if checked:
        width = max(len(record["target"]) for record in checked)
        print(f"\n{'target':<{width}}  {'goal':>6}  {'measured':>8}  result", file=out)
        for record in checked:
            measured_ratio = "-" if record["ratio"] is None else f"{record['ratio']:.2f}x"
            result = {True: "pass", False: "FAIL", None: f"not measured ({record.get('missing')})"}[record["pass"]]
            print(f"{record['target']:<{width}}  {record['goal']:>6}  {measured_ratio:>8}  {result}", file=out)
    errors = [record for record in records if record["name"] == "error"]
    for record in errors:
        print(f"\n{record['suite']} failed: {record['error']}", file=out)


def _label(record: dict) -> str:
    return " ".join([record["name"], *(f"{field} {record[field]}" for field in LABEL_FIELDS if field in record)])


def _value(records: list[dict], name: str, **fields) -> float:
    matching = [record for record in records
                if record["name"] == name and all(record.get(key) == value for key, value in fields.items())]
    if len(matching) != 1:
        wanted = " ".join([name, *(f"{key}={value}" for key, value in fields.items())])
        raise LookupError(wanted if not matching else f"{wanted} measured {len(matching)} times")
    return matching[0]["value"]
