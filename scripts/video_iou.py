"""Pet IoU of a checkpoint or artifact on a video with per-frame ground-truth masks, the way
``segedge run --engine MODEL -s VIDEO --gt-masks MASKS`` measures it (same runner, live loop
and IoU), plus the sample's test-split figures for a checkpoint: one line per model, for the
robust recipe's ablation table.

    python scripts/video_iou.py runs/a/model.pt runs/b/model.pt \\
        --video ../shared/data/video/davis_libby_854x480.mp4 --gt-masks ../shared/data/davis-libby/masks \\
        --data ../shared/data/oxford-iiit-pet-sample
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def video_pet_iou(model: str | Path, video: str | Path, masks: str | Path) -> list[float]:
    """Per-frame pet IoU (fractions, nan where both masks are empty) of ``model`` on ``video``."""
    from segedge.data.sources import open_source
    from segedge.runtime.factory import load_runner
    from segedge.runtime.postprocess import GroundTruth
    from segedge.runtime.video import LiveOptions, run_live

    runner = load_runner(Path(model))
    with open_source(str(video)) as frames, runner:
        stats = run_live(runner, frames, [], LiveOptions(hud=False, pipelined=False), GroundTruth(masks))
    return stats.iou


def video_pet_fraction(model: str | Path, video: str | Path, max_frames: int | None = None) -> float:
    """Mean fraction of pixels (model resolution) labelled pet over the frames of ``video``:
    on a video without any pet, the false-positive rate."""
    import numpy as np

    from segedge.data.sources import open_source
    from segedge.runtime.factory import load_runner
    from segedge.runtime.video import LiveOptions, run_live

    runner = load_runner(Path(model))
    fractions: list[float] = []
    pet = runner.classes.index("pet")
    with open_source(str(video)) as frames, runner:
        run_live(runner, frames, [], LiveOptions(hud=False, pipelined=False, max_frames=max_frames),
                 on_frame=lambda index, mask: fractions.append(float(np.mean(mask == pet))))
    return sum(fractions) / len(fractions)


def test_split_figures(model: str | Path, data: str | Path) -> dict[str, float]:
    """Pixel accuracy, mIoU and pet IoU (fractions) of a checkpoint on the sample's test split."""
    import torch

    from segedge.data.oxford_pet import load_split_arrays
    from segedge.models.checkpoint import load_checkpoint
    from segedge.report.metrics import ConfusionMatrix

    ckpt = load_checkpoint(model)
    images, labels, _ = load_split_arrays(data, "test", ckpt.preprocess)
    matrix = ConfusionMatrix(len(ckpt.classes))
    with torch.no_grad():
        for start in range(0, len(images), 32):
            matrix.update(ckpt.model(torch.from_numpy(images[start : start + 32])).argmax(1).numpy(), labels[start : start + 32])
    return {"pixel_accuracy": matrix.pixel_accuracy(), "miou": matrix.miou(), "pet_iou": float(matrix.iou_per_class()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--video", type=Path, required=True, help="video with per-frame ground truth")
    parser.add_argument("--gt-masks", type=Path, required=True, help="its masks (sorted files, 0 background, >0 pet)")
    parser.add_argument("--data", type=Path, help="Oxford-IIIT Pet root: adds the test-split figures (checkpoints only)")
    parser.add_argument("--pet-fraction", type=Path, nargs="*", default=[],
                        help="videos without a cat or dog: prints the share of pixels labelled pet on each")
    args = parser.parse_args()
    for model in args.models:
        for video in args.pet_fraction:
            print(f"{model} on {video.name}: {100 * video_pet_fraction(model, video):.2f}% of pixels labelled pet", flush=True)
    print("| model | test pixel accuracy | test mIoU | test pet IoU | video pet IoU (mean over frames) |")
    print("|---|---|---|---|---|")
    for model in args.models:
        ious = [v for v in video_pet_iou(model, args.video, args.gt_masks) if not math.isnan(v)]
        video = f"{100 * sum(ious) / len(ious):.2f}% ({len(ious)} frames)" if ious else "n/a"
        test = test_split_figures(model, args.data) if args.data else None
        cells = [f"{100 * test[k]:.2f}%" for k in ("pixel_accuracy", "miou", "pet_iou")] if test else ["", "", ""]
        print(f"| {model} | {' | '.join(cells)} | {video} |", flush=True)


if __name__ == "__main__":
    main()
