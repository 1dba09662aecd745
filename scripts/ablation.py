"""Ablation of the robust recipe: train with one augmentation removed at a time and measure
each run on the targets of the recipe (pet IoU on a real video with ground truth, pixel
accuracy and mIoU on the sample's test split). One row per variant, as a Markdown table.

    OMP_NUM_THREADS=1 python scripts/ablation.py ../shared/data/oxford-iiit-pet-sample \\
        --init segedge/models/weights/segnet-dsc.pt --epochs 12 --lr 5e-4 --out runs/ablation \\
        --variants full no-paste no-recolour --background-video ../shared/data/video/bikes_640x272.mp4

Variants: ``article`` (the article's recipe, same schedule), ``full`` (robust, every part),
``no-paste``, ``no-onto-image`` (composites only on pet-free backgrounds), ``no-recolour``,
``no-zoom``, ``no-jitter``, ``no-blur``, ``no-video`` (no video backgrounds), ``empty`` (adds
pet-free scenes, p=0.2, and pastes onto other images less often, 0.25), ``synthetic``
(half the pet-free backgrounds are dead-leaves scenes), ``mesh`` (wire mesh and poles, p=0.3),
``scene-recolour`` (whole image recoloured, p=0.3), ``scene`` (the last three together). Each run writes
``OUT/VARIANT/`` and resumes there if interrupted (``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

VARIANTS = {
    "article": {"recipe": "article"},
    "full": {},
    "no-paste": {"p_paste": 0.0},
    "no-onto-image": {"p_onto_image": 0.0},
    "no-recolour": {"p_recolour": 0.0},
    "no-zoom": {"p_zoom": 0.0},
    "no-jitter": {"jitter": False},
    "no-blur": {"blur": False},
    "no-video": {"background_video": None},
    "empty": {"p_empty": 0.2, "p_onto_image": 0.25},
    "scene": {"p_synthetic": 0.5, "p_mesh": 0.3, "p_scene_recolour": 0.3},
    "synthetic": {"p_synthetic": 0.5},
    "mesh": {"p_mesh": 0.3},
    "scene-recolour": {"p_scene_recolour": 0.3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="Oxford-IIIT Pet root")
    parser.add_argument("--variants", nargs="+", default=["full", "no-paste", "no-recolour"], choices=sorted(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--model", default="segnet-dsc")
    parser.add_argument("--init", help="start every run from this checkpoint (fine-tune ablation)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--background-video", type=Path, help="pet-free video for backgrounds (robust)")
    parser.add_argument("--video", type=Path, default=Path("../shared/data/video/davis_libby_854x480.mp4"))
    parser.add_argument("--gt-masks", type=Path, default=Path("../shared/data/davis-libby/masks"))
    parser.add_argument("--size", default="128x128", help="training input HEIGHTxWIDTH (e.g. 128x224 for 16:9 video)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    from segedge.contract import PreprocessConfig
    from segedge.training.loop import TrainConfig, train

    height, width = (int(v) for v in args.size.lower().split("x"))

    here = Path(__file__).resolve().parent
    import sys

    sys.path.insert(0, str(here))
    from video_iou import test_split_figures, video_pet_iou

    rows = []
    for name in args.variants:
        base = TrainConfig(model=args.model, epochs=args.epochs, lr=args.lr, recipe="robust", amp="auto", init_from=args.init,
                           background_video=str(args.background_video) if args.background_video else None,
                           preprocess=PreprocessConfig(height=height, width=width))
        config = dataclasses.replace(base, **VARIANTS[name])
        out = args.out / name
        train(args.data, out, config, resume=args.resume and (out / "checkpoint.pt").is_file())
        ious = [v for v in video_pet_iou(out / "model.pt", args.video, args.gt_masks) if not math.isnan(v)]
        test = test_split_figures(out / "model.pt", args.data)
        rows.append((name, test, sum(ious) / len(ious)))
        print(f"{name}: test pixel accuracy {100 * test['pixel_accuracy']:.2f}%, mIoU {100 * test['miou']:.2f}%, "
              f"video pet IoU {100 * rows[-1][2]:.2f}%", flush=True)
    print(f"| variant ({args.epochs} epochs, lr {args.lr:g}{', from ' + Path(args.init).name if args.init else ''}) "
          "| test pixel accuracy | test mIoU | test pet IoU | video pet IoU |")
    print("|---|---|---|---|---|")
    for name, test, iou in rows:
        print(f"| {name} | {100 * test['pixel_accuracy']:.2f}% | {100 * test['miou']:.2f}% | {100 * test['pet_iou']:.2f}% | {100 * iou:.2f}% |")


if __name__ == "__main__":
    main()
