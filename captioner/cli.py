"""`captioner caption | attend | train | evaluate`. TensorFlow is imported only once a command runs,
so `--help` and argument errors answer at once."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from . import names
from .config import DEV_SCORES, OBJECTIVES, STRATEGIES, VOCAB_POLICIES, TrainConfig, flag
from .data import READERS, SPLITS

# The registries' names, so that a misspelt one is refused before any data is read.
TRAIN_CHOICES = {"dataset": READERS, "backbone": names.BACKBONES, "attention": names.ATTENTIONS,
                 "score": names.SCORES, "objective": OBJECTIVES, "vocab_policy": VOCAB_POLICIES,
                 "strategy": STRATEGIES, "select_by": DEV_SCORES}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="captioner", description="Show, Attend and Tell image captioning.")
    commands = parser.add_subparsers(dest="command", required=True)

    caption = commands.add_parser("caption", help="caption images and folders, with a heatmap for every word")
    caption.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files and folders")
    caption.add_argument("--out", type=Path, required=True, help="output folder (rerunning skips images done)")
    caption.add_argument("--model", default=None, help="a preset name or model folder (default: the best preset)")
    caption.add_argument("--beam-size", type=int, default=3)
    caption.add_argument("--batch-size", type=int, default=32)
    caption.add_argument("--max-length", type=int, default=None,
                         help="tokens per caption at most, <end> included (default: the model's own)")
    caption.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    caption.add_argument("--no-heatmaps", action="store_true", help="write captions only")
    caption.add_argument("--panel-size", type=int, default=160,
                         help="pixels per heatmap panel in the strips (default: %(default)s; `attend` draws 224)")

    attend = commands.add_parser("attend", help="heatmaps for a caption you give (where did it look for 'dog'?)")
    attend.add_argument("image", type=Path)
    attend.add_argument("--caption", required=True)
    attend.add_argument("--model", default=None)
    attend.add_argument("--out", type=Path, default=None, help="PNG to write (default: IMAGE-attention.png here)")

    train = commands.add_parser("train", help="train a model on cached features")
    train.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        default = getattr(defaults, field.name)
        kind = type(default) if default is not None else (int if field.type == "int | None" else str)
        kind = json.loads if field.name == "attention_options" else kind
        options = {"choices": TRAIN_CHOICES[field.name]} if field.name in TRAIN_CHOICES else {}
        about = {"attention_options": "a JSON object of the attention's own settings, e.g. '{\"gate\": true}' ",
                 "init_from": "a model to fine-tune (a folder or preset): its settings stand for those not given ",
                 }.get(field.name, "")
        if isinstance(default, bool):  # --xla / --no-xla
            options, kind = {"action": argparse.BooleanOptionalAction}, None
        # Settings not given stay out of the namespace: fine-tuning and resuming take them from the model or run.
        train.add_argument(flag(field.name), type=kind, default=argparse.SUPPRESS, help=f"{about}(default: {default})",
                           **options)

    evaluate = commands.add_parser("evaluate", help="decode a split once per image and score it like coco-caption")
    evaluate.add_argument("--model", default=None)
    evaluate.add_argument("--dataset", choices=READERS, required=True)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--images", type=Path, default=None, help="image folder, for a Karpathy split JSON")
    evaluate.add_argument("--split", choices=[split for split in SPLITS if split != "train"], default="dev")
    evaluate.add_argument("--beam-size", type=int, default=3)
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--max-length", type=int, default=None,
                          help="tokens per caption at most, <end> included (default: the model's own)")
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N images")
    evaluate.add_argument("--meteor", choices=names.METEOR_METHODS, default="auto")
    evaluate.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _import_tensorflow_quietly()
    from .efficientnet_lite import WeightsUnavailable

    try:
        return COMMANDS[args.command](args)
    except WeightsUnavailable as error:
        print(f"captioner {args.command}: {error}", file=sys.stderr)
        return 1
    except (FileNotFoundError, FileExistsError, ValueError, PermissionError, NotADirectoryError) as error:
        print(f"captioner {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"captioner {args.command}: interrupted", file=sys.stderr)
        return 130


def _import_tensorflow_quietly() -> None:
    """TensorFlow writes log lines to stderr as it loads, even with TF_CPP_MIN_LOG_LEVEL=3 (tensorflow#100442):
    silence the file descriptor itself while it loads, so users see only our own messages."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _caption(args) -> int:
    from .folder import caption_folder

    return caption_folder(args.paths, args.out, model=args.model, beam_size=args.beam_size,
                          batch_size=args.batch_size, recursive=args.recursive, heatmaps=not args.no_heatmaps,
                          panel_size=args.panel_size, max_length=args.max_length)


def _attend(args) -> int:
    from .api import Captioner
    from .png import save_png
    from .preprocess import ImageError

    captioner = Captioner.load(args.model) if args.model else Captioner.from_preset()
    try:
        caption = captioner.attend(args.image, args.caption)
    except ImageError as error:
        raise ImageError(f"{args.image}: {error}") from None
    out = args.out or Path(f"{args.image.stem}-attention.png")
    save_png(captioner.heatmap(args.image, caption), out)
    print(f"{out}: {caption.text} (log-probability per word {caption.score:.3f})")
    return 0


def _train(args) -> int:
    from .training import train

    given = {field.name for field in dataclasses.fields(TrainConfig)} & vars(args).keys()
    config = TrainConfig(**{name: getattr(args, name) for name in given})
    print(f"best model: {train(config, resume=args.resume, given=given)}")
    return 0


def _evaluate(args) -> int:
    from .api import Captioner
    from .data import read_dataset
    from .evaluate import evaluate, format_table, write_results

    captioner = Captioner.load(args.model, args.max_length) if args.model else Captioner.from_preset(
        max_length=args.max_length)
    records, report = read_dataset(args.dataset, args.data, args.images)
    records = [record for record in records if record.split == args.split][: args.limit]
    if not records:
        raise ValueError(f"{args.data}: no {args.split} images ({report})")
    scores, captions = evaluate(captioner, records, args.beam_size, args.batch_size, meteor=args.meteor)
    write_results(args.out, scores, records, captions, model=str(args.model or "default"), split=args.split,
                  dataset=args.dataset, beam_size=args.beam_size, max_length=captioner.max_length)
    print(format_table(scores))
    return 0


COMMANDS = {"caption": _caption, "attend": _attend, "train": _train, "evaluate": _evaluate}

if __name__ == "__main__":
    sys.exit(main())
