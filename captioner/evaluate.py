"""Scores by real decoding: each image captioned once, by search, then scored like coco-caption."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .api import Captioner
from .data import Record
from .metrics import METRICS, score


def decode_records(captioner: Captioner, records: Sequence[Record], beam_size: int = 3, batch_size: int = 64,
                   features: np.ndarray | None = None, progress: bool = True) -> list[str]:
    """One caption per record: from cached features (N, L, C) when given, else from the image files."""
    bar = tqdm(total=len(records), desc="Decoding", unit="image", disable=not progress)
    captions = []
    if features is not None:
        for first in range(0, len(records), batch_size):
            captions += [c.text for c in captioner.decode(features[first:first + batch_size], beam_size)]
            bar.update(len(captions) - bar.n)
    else:
        for result in captioner.stream((record.image for record in records), beam_size, batch_size):
            if result.error is not None:
                raise ValueError(f"{result.image}: {result.error}")
            captions.append(result.caption.text)
            bar.update()
    bar.close()
    return captions


def evaluate(captioner: Captioner, records: Sequence[Record], beam_size: int = 3, batch_size: int = 64,
             features: np.ndarray | None = None, meteor: str = "auto", progress: bool = True) -> tuple[dict, list[str]]:
    """Decode every record's image once and score the captions against its references."""
    captions = decode_records(captioner, records, beam_size, batch_size, features, progress)
    references = {record.image_id: list(record.captions) for record in records}
    candidates = {record.image_id: caption for record, caption in zip(records, captions)}
    return score(references, candidates, meteor=meteor), captions


def write_results(out: Path, scores: dict, records: Sequence[Record], captions: Sequence[str], **about) -> None:
    """`scores.json` (the metrics and what was scored) and `captions.json` in the COCO results format."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps({**scores, **about, "images": len(records)}, indent=2) + "\n")
    results = [{"image_id": record.image_id, "caption": caption} for record, caption in zip(records, captions)]
    (out / "captions.json").write_text(json.dumps(results, indent=1) + "\n")


def format_table(scores: dict) -> str:
    cells = [(name, "skipped" if scores.get(name) is None else f"{scores[name]:.4f}") for name in METRICS]
    widths = [max(len(name), len(value)) for name, value in cells]
    header = "  ".join(name.rjust(width) for (name, _), width in zip(cells, widths))
    values = "  ".join(value.rjust(width) for (_, value), width in zip(cells, widths))
    return f"{header}\n{values}\nMETEOR: {scores.get('METEOR-method', 'unknown')}"
