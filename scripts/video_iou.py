"""Object and pet IoU of checkpoints or artifacts on a video with per-frame ground-truth masks,
the way ``segedge run --engine MODEL -s VIDEO --gt-masks MASKS`` measures them (same runner,
live loop, input size and IoU), the share of pixels labelled pet on videos without a cat or
dog, and the sample's test-split pixel accuracy of checkpoints: one line per model, for the
model card and the ablation tables of docs/benchmarks.md.

    python scripts/video_iou.py runs/a/model.pt runs/b/model.pt \\
        --video ../shared/data/video/davis_libby_854x480.mp4 --gt-masks ../shared/data/davis-libby/masks \\
        --data ../shared/data/oxford-iiit-pet-sample --test-sizes 128 256 \\
        --pet-fraction ../shared/data/video/bikes_640x272.mp4

``--short-side S`` feeds a checkpoint that keeps the frame's aspect at short side ``S``
instead of its trained one (the live input size of the same weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path


def _runner(model: str | Path, short_side: int | None = None):
    """A runner for ``model``; a checkpoint fed at ``short_side`` when given."""
    from segedge.runtime.factory import load_runner

    if short_side is None or Path(model).suffix != ".pt":
        return load_runner(Path(model))
    from segedge.models.checkpoint import load_checkpoint
    from segedge.runtime.torch_runner import TorchRunner

    ckpt = load_checkpoint(model)
    ckpt.preprocess = dataclasses.replace(ckpt.preprocess, height=short_side, width=short_side)
    return TorchRunner(ckpt)


def video_ious(model: str | Path, video: str | Path, masks: str | Path, short_side: int | None = None) -> tuple[list[float], list[float]]:
    """Per-frame ``(pet IoU, object IoU)`` lists (fractions, nan where both masks are empty) of
    ``model`` on ``video``; object = pet or border against the whole-animal mask."""
    from segedge.data.sources import open_source
    from segedge.runtime.postprocess import GroundTruth
    from segedge.runtime.video import LiveOptions, run_live

    runner = _runner(model, short_side)
    with open_source(str(video)) as frames, runner:
        stats = run_live(runner, frames, [], LiveOptions(hud=False, pipelined=False), GroundTruth.for_classes(masks, runner.classes))
    return stats.iou, stats.object_iou


def video_pet_fraction(model: str | Path, video: str | Path, max_frames: int | None = None, short_side: int | None = None) -> float:
    """Mean fraction of pixels (model resolution) labelled pet over the frames of ``video``:
    on a video without any pet, the false-positive rate."""
    import numpy as np

    from segedge.data.sources import open_source
    from segedge.runtime.video import LiveOptions, run_live

    runner = _runner(model, short_side)
    fractions: list[float] = []
    pet = runner.classes.index("pet")
    with open_source(str(video)) as frames, runner:
        run_live(runner, frames, [], LiveOptions(hud=False, pipelined=False, max_frames=max_frames),
                 on_frame=lambda index, mask: fractions.append(float(np.mean(mask == pet))))
    return sum(fractions) / len(fractions)


def test_split_figures(model: str | Path, data: str | Path, size: int | None = None) -> dict[str, float]:
    """Pixel accuracy, mIoU and pet IoU (fractions) of a checkpoint on the sample's test split,
    every image resized to ``size x size`` (default: the checkpoint's input size), as
    ``segedge report --data`` scores it."""
    import torch

    from segedge.data.samples import load_split_arrays
    from segedge.models.checkpoint import load_checkpoint
    from segedge.report.metrics import ConfusionMatrix

    ckpt = load_checkpoint(model)
    config = dataclasses.replace(ckpt.preprocess, height=size, width=size) if size else ckpt.preprocess
    images, labels, _ = load_split_arrays(data, "test", config)
    matrix = ConfusionMatrix(len(ckpt.classes))
    with torch.no_grad():
        for start in range(0, len(images), 16):
            matrix.update(ckpt.model(torch.from_numpy(images[start : start + 16])).argmax(1).numpy(), labels[start : start + 16])
    return {"pixel_accuracy": matrix.pixel_accuracy(), "miou": matrix.miou(), "pet_iou": float(matrix.iou_per_class()[0])}


def pet_separability(model: str | Path, frames: str | Path, masks: str | Path) -> dict[str, float]:
    """How well a checkpoint's object probability (pet + border softmax) separates the animal
    from everything else on frames with ground truth, pooled over all pixels at the model's
    input size for each frame (masks area-resized, > 0.5 = animal):

    - ``auc``: area under the ROC curve (0.5 = chance);
    - ``best_iou``: the object IoU at the best single threshold on that probability, an oracle
      chosen on the ground truth itself: no post-processing of the class map by threshold can
      beat it, so when it is far below a target, only a better model can reach the target;
    - ``best_threshold`` and ``best_fraction`` (share of pixels above it).

    ``frames``/``masks``: folders of images and masks, paired in sorted order."""
    import cv2
    import numpy as np
    import torch

    from segedge.data.transforms import preprocess
    from segedge.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    contract = ckpt.contract.replace(dynamic=("batch", "height", "width"))
    background = ckpt.classes.index("background")
    probs, truth = [], []
    for frame, mask in zip(sorted(Path(frames).iterdir()), sorted(Path(masks).iterdir()), strict=True):
        image = cv2.imread(str(frame))
        height, width = contract.input_size_for(*image.shape[:2])
        x = preprocess(image, ckpt.preprocess, size=(height, width))
        with torch.no_grad():
            probs.append(1 - ckpt.model(torch.from_numpy(x)).softmax(1)[0, background].numpy().ravel())
        gt = cv2.resize((cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 0).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_AREA)
        truth.append(gt.ravel() > 0.5)
    p, g = np.concatenate(probs), np.concatenate(truth)
    order = np.argsort(-p, kind="stable")
    tp, fp = np.cumsum(g[order]), np.cumsum(~g[order])
    auc = float(np.trapezoid(tp / tp[-1], fp / fp[-1]))
    iou = tp / (g.sum() + fp)
    k = int(iou.argmax())
    return {"auc": auc, "best_iou": float(iou[k]), "best_threshold": float(p[order][k]), "best_fraction": (k + 1) / len(p)}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--video", type=Path, required=True, help="video with per-frame ground truth")
    parser.add_argument("--gt-masks", type=Path, required=True, help="its masks (sorted files, 0 background, >0 animal)")
    parser.add_argument("--data", type=Path, help="Oxford-IIIT Pet root: adds the test-split pixel accuracy (checkpoints only)")
    parser.add_argument("--test-sizes", type=int, nargs="*", default=[], help="square test-split sizes besides the checkpoint's own")
    parser.add_argument("--short-side", type=int, help="feed checkpoints that keep the frame's aspect at this short side")
    parser.add_argument("--pet-fraction", type=Path, nargs="*", default=[],
                        help="videos without a cat or dog: prints the share of pixels labelled pet on each")
    parser.add_argument("--separability", type=Path, metavar="FRAMES",
                        help="folder of the video's frames (paired with --gt-masks): also print the ROC AUC of the object "
                             "probability and the oracle best-threshold object IoU (checkpoints only)")
    args = parser.parse_args()
    for model in args.models if args.separability else []:
        sep = pet_separability(model, args.separability, args.gt_masks)
        print(f"{model}: object-probability ROC AUC {sep['auc']:.3f}, best-threshold object IoU {100 * sep['best_iou']:.2f}% "
              f"(p > {sep['best_threshold']:.3f}, {100 * sep['best_fraction']:.1f}% of pixels)", flush=True)
    fractions = {model: [video_pet_fraction(model, video, short_side=args.short_side) for video in args.pet_fraction]
                 for model in args.models}
    heads = ["model", "video object IoU", "video pet IoU"] + [f"pet px on {v.name}" for v in args.pet_fraction]
    if args.data:
        heads += ["test pixel acc. (own size)"] + [f"test pixel acc. {s}x{s}" for s in args.test_sizes]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for model in args.models:
        pet, whole = video_ious(model, args.video, args.gt_masks, args.short_side)
        cells = [str(model), f"{100 * _mean(whole):.2f}%", f"{100 * _mean(pet):.2f}%"]
        cells += [f"{100 * f:.2f}%" for f in fractions[model]]
        if args.data:
            cells += [f"{100 * test_split_figures(model, args.data, size)['pixel_accuracy']:.2f}%" for size in [None, *args.test_sizes]]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
