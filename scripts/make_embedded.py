"""Turn a finished training run into the embedded default model and its model card.

    python scripts/make_embedded.py runs/segnet-dsc/model.pt --data ../shared/data/oxford-iiit-pet-sample

Writes ``segedge/models/weights/segnet-dsc.pt`` (weights and deployment contract only, no
optimiser state) and ``segedge/models/weights/MODEL_CARD.md`` with the recipe, the epochs and
the pixel accuracy / mIoU / IoU per class measured here on the data's test split.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np
import torch

from segedge._io import atomic_write_text
from segedge.data.oxford_pet import load_split_arrays
from segedge.models.checkpoint import EMBEDDED_CHECKPOINT, load_checkpoint, save_checkpoint
from segedge.report.evaluate import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.pt of a finished `segedge train` run")
    parser.add_argument("--data", type=Path, required=True, help="Oxford-IIIT Pet root used for training")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model)
    images, labels, _ = load_split_arrays(args.data, "test", ckpt.preprocess)
    with torch.no_grad():
        matrix = evaluate(lambda x: ckpt.model(torch.from_numpy(x)), images, labels, 32, num_classes=len(ckpt.classes)).truth
    iou = matrix.iou_per_class()
    recipe = ckpt.meta.get("recipe", {})
    history = ckpt.meta.get("history", {}).get("epochs", [])
    meta = {
        "recipe": recipe,
        "epochs_trained": ckpt.meta.get("epochs_trained"),
        "train_images": ckpt.meta.get("train_images"),
        "test_images": len(images),
        "test_pixel_accuracy": matrix.pixel_accuracy(),
        "test_miou": matrix.miou(),
        "test_iou_per_class": dict(zip(ckpt.classes, iou.tolist())),
        "data": "oxford-iiit-pet-sample (600 images, 3 breeds): trainval split for training, test split for evaluation",
    }
    save_checkpoint(EMBEDDED_CHECKPOINT, ckpt.model, ckpt.model_name, ckpt.preprocess, ckpt.classes, meta)
    seconds = sum(e.get("seconds", 0) for e in history)
    card = f"""# Model card: embedded `segnet-dsc`

The default model of every segedge command (`segedge/models/weights/segnet-dsc.pt`, {EMBEDDED_CHECKPOINT.stat().st_size / 1e6:.1f} MB).

- **Architecture**: SegNet with depthwise-separable convolutions (Matani & Singh, "Efficient Image
  Segmentation Using PyTorch", Part 3), 1,749,671 parameters, input 128x128 RGB in [0, 1],
  output logits for pet / background / border.
- **Data**: the Oxford-IIIT Pet sample in `../shared/data/oxford-iiit-pet-sample` (Parkhi et al.,
  CVPR 2012; 600 real images of 3 breeds: Abyssinian, Bengal, american_bulldog, with official
  trimaps). Trained on its `trainval` split ({meta['train_images']} images), evaluated on its
  `test` split ({len(images)} images). The article trained on the full dataset (3,680 images).
- **Recipe**: the article's (`segedge train --model segnet-dsc`): Adam lr {recipe.get('lr')},
  StepLR step {recipe.get('step_size')} gamma {recipe.get('gamma')}, cross-entropy, batch
  {recipe.get('batch_size')}, random horizontal flip p={recipe.get('hflip')}, contrast jitter
  {recipe.get('contrast')}, nearest-neighbour resize to 128x128, seed {recipe.get('seed')}; **{meta['epochs_trained']} epochs**
  instead of 20, because 300 training images give 5 optimiser steps per epoch (the article had
  58). Trained on 2 CPU cores in {seconds / 60:.0f} minutes.
- **Test split of the sample** (measured by `scripts/make_embedded.py`, PyTorch, 128x128):
  pixel accuracy **{100 * matrix.pixel_accuracy():.2f}%**, mIoU **{100 * matrix.miou():.2f}%**,
  IoU pet {100 * iou[0]:.2f}%, background {100 * iou[1]:.2f}%, border {100 * iou[2]:.2f}%.
  For scale: the article reports 86.96% validation pixel accuracy for SegNet-DSC on the full
  dataset, with 12x more training images.
- **Intended use**: demonstrating and testing the PyTorch -> ONNX -> INT8 / TensorRT path on real
  pets. Three breeds only: expect weaker masks on other animals and scenes.
- **Licence of the data**: CC BY-SA 4.0 per the dataset's site; its annotations are for research use.

Made {datetime.date.today().isoformat()} from `{args.model}`.
"""
    atomic_write_text(EMBEDDED_CHECKPOINT.parent / "MODEL_CARD.md", card)
    print(f"wrote {EMBEDDED_CHECKPOINT}: test pixel accuracy {100 * matrix.pixel_accuracy():.2f}%, mIoU {100 * matrix.miou():.2f}%")


if __name__ == "__main__":
    main()
