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

    from segedge.data.samples import load_split_arrays
    from segedge.models.checkpoint import load_checkpoint
    from segedge.report.metrics import ConfusionMatrix

    ckpt = load_checkpoint(model)
    images, labels, _ = load_split_arrays(data, "test", ckpt.preprocess)
    matrix = ConfusionMatrix(len(ckpt.classes))
    with torch.no_grad():
        for start in range(0, len(images), 32):
            matrix.update(ckpt.model(torch.from_numpy(images[start : start + 32])).argmax(1).numpy(), labels[start : start + 32])
    return {"pixel_accuracy": matrix.pixel_accuracy(), "miou": matrix.miou(), "pet_iou": float(matrix.iou_per_class()[0])}


def pet_separability(model: str | Path, frames: str | Path, masks: str | Path) -> dict[str, float]:
    """How well a checkpoint's pet probability separates the pet from everything else on
    frames with ground truth, pooled over all pixels at the model's input resolution (masks
    area-resized, > 0.5 = pet):

    - ``auc``: area under the ROC curve of the pet softmax probability (0.5 = chance);
    - ``best_iou``: the pet IoU at the best single threshold on that probability, an oracle
      chosen on the ground truth itself: no post-processing of the class map by threshold can
      beat it, so when it is far below a target, only a better model can reach the target;
    - ``best_threshold`` and ``best_pet_fraction`` (share of pixels above it).

    ``frames``/``masks``: folders of images and masks, paired in sorted order."""
    import cv2
    import numpy as np
    import torch

    from segedge.data.transforms import preprocess
    from segedge.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    pet = ckpt.classes.index("pet")
    height, width = ckpt.preprocess.size
    probs, truth = [], []
    for frame, mask in zip(sorted(Path(frames).iterdir()), sorted(Path(masks).iterdir()), strict=True):
        x = preprocess(cv2.imread(str(frame)), ckpt.preprocess)
        with torch.no_grad():
            probs.append(ckpt.model(torch.from_numpy(x)).softmax(1)[0, pet].numpy().ravel())
        gt = cv2.resize((cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 0).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_AREA)
        truth.append(gt.ravel() > 0.5)
    p, g = np.concatenate(probs), np.concatenate(truth)
    order = np.argsort(-p, kind="stable")
    tp, fp = np.cumsum(g[order]), np.cumsum(~g[order])
    auc = float(np.trapezoid(tp / tp[-1], fp / fp[-1]))
    iou = tp / (g.sum() + fp)
    k = int(iou.argmax())
    return {"auc": auc, "best_iou": float(iou[k]), "best_threshold": float(p[order][k]), "best_pet_fraction": (k + 1) / len(p)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--video", type=Path, required=True, help="video with per-frame ground truth")
    parser.add_argument("--gt-masks", type=Path, required=True, help="its masks (sorted files, 0 background, >0 pet)")
    parser.add_argument("--data", type=Path, help="Oxford-IIIT Pet root: adds the test-split figures (checkpoints only)")
    parser.add_argument("--pet-fraction", type=Path, nargs="*", default=[],
                        help="videos without a cat or dog: prints the share of pixels labelled pet on each")
    parser.add_argument("--separability", type=Path, metavar="FRAMES",
                        help="folder of the video's frames (paired with --gt-masks): also print the ROC AUC of the pet "
                             "probability and the oracle best-threshold pet IoU (checkpoints only)")
    args = parser.parse_args()
    for model in args.models if args.separability else []:
        sep = pet_separability(model, args.separability, args.gt_masks)
        print(f"{model}: pet-probability ROC AUC {sep['auc']:.3f}, best-threshold pet IoU {100 * sep['best_iou']:.2f}% "
              f"(p > {sep['best_threshold']:.3f}, {100 * sep['best_pet_fraction']:.1f}% of pixels)", flush=True)
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
