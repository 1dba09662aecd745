"""Train one model per variant of a recipe and print the table that compares them on real
video and on the sample's test split (the ablation tables of docs/benchmarks.md).

Each variant is ``NAME=JSON``: TrainConfig fields that override the model's own recipe
(``TrainConfig.for_model``), plus ``size`` (the input's short side) and ``resize``
(``stretch`` | ``aspect``) for the preprocessing. The empty object is the recipe itself.

    python scripts/ablation.py ../shared/data/oxford-iiit-pet-sample --model segnet-lite0 -o runs/ablation \\
        --video ../shared/data/video/davis_libby_854x480.mp4 --gt-masks ../shared/data/davis-libby/masks \\
        --pet-fraction ../shared/data/video/bikes_640x272.mp4 --short-sides 256 320 --test-sizes 128 320 \\
        --variant 'recipe={}' --variant 'bilinear={"model": "segnet-lite0-bilinear"}' \\
        --variant 'encoder-lr-1={"encoder_lr_scale": 1.0}'

Columns: object and pet IoU on the video (mean over frames, through the live loop, the model
fed at each short side given), the share of pixels labelled pet on each ``--pet-fraction``
video, the test-split pixel accuracy at each ``--test-sizes`` square size, training minutes.
A finished variant (``OUT/NAME/model.pt`` exists) is evaluated again, not retrained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, raw = text.partition("=")
    try:
        overrides = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--variant {text!r}: not NAME=JSON ({exc})") from None
    if not name or not isinstance(overrides, dict):
        raise SystemExit(f"--variant {text!r}: expected NAME=JSON-object")
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="Oxford-IIIT Pet root")
    parser.add_argument("--model", default="segnet-lite0", help="registry name whose recipe the variants change")
    parser.add_argument("--out", "-o", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON overrides (repeatable)")
    parser.add_argument("--video", type=Path, required=True, help="video with per-frame ground truth (never trained on)")
    parser.add_argument("--gt-masks", type=Path, required=True)
    parser.add_argument("--pet-fraction", type=Path, nargs="*", default=[], help="videos without a cat or dog")
    parser.add_argument("--short-sides", type=int, nargs="*", default=[], help="live short sides to evaluate (default: the model's)")
    parser.add_argument("--test-sizes", type=int, nargs="*", default=[128], help="square test-split sizes")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from video_iou import test_split_figures, video_ious, video_pet_fraction

    from segedge.training.loop import TrainConfig, train

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return sum(finite) / len(finite) if finite else float("nan")

    rows = []
    for name, overrides in map(parse_variant, args.variant or ["recipe={}"]):
        overrides = dict(overrides)
        model = overrides.pop("model", args.model)
        size, resize = overrides.pop("size", None), overrides.pop("resize", None)
        config = TrainConfig.for_model(model, **overrides)
        changes = {k: v for k, v in (("height", size), ("width", size), ("resize", resize)) if v is not None}
        config = dataclasses.replace(config, preprocess=dataclasses.replace(config.preprocess, **changes))
        out = args.out / name
        started = time.perf_counter()
        if not (out / "model.pt").is_file():
            train(args.data, out, config)
        minutes = (time.perf_counter() - started) / 60
        cells = [name]
        for side in args.short_sides or [None]:
            pet, whole = video_ious(out / "model.pt", args.video, args.gt_masks, side)
            cells += [f"{100 * mean(whole):.1f}%", f"{100 * mean(pet):.1f}%"]
        cells += [f"{100 * video_pet_fraction(out / 'model.pt', v, short_side=(args.short_sides or [None])[-1]):.2f}%"
                  for v in args.pet_fraction]
        cells += [f"{100 * test_split_figures(out / 'model.pt', args.data, s)['pixel_accuracy']:.2f}%" for s in args.test_sizes]
        cells.append(f"{minutes:.0f}")
        rows.append(cells)
        print(" | ".join(cells), flush=True)
    sides = [str(s) for s in args.short_sides] or ["own"]
    heads = ["variant"] + [f"{kind} IoU @{s}" for s in sides for kind in ("object", "pet")]
    heads += [f"pet px {v.name}" + (f" @{sides[-1]}" if args.short_sides else "") for v in args.pet_fraction]
    heads += [f"test acc. {s}x{s}" for s in args.test_sizes] + ["train min"]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
