"""Turn a finished training run into the embedded default model and its model card.

    python scripts/make_embedded.py runs/segnet-dsc/model.pt --data ../shared/data/oxford-iiit-pet-sample \
        --videos ../shared/data/video --gt-masks ../shared/data/davis-libby/masks

Writes ``segedge/models/weights/segnet-dsc.pt`` (weights and deployment contract only, no
optimiser state) and ``segedge/models/weights/MODEL_CARD.md`` with the recipe, the epochs and
the pixel accuracy / mIoU / IoU per class measured here on the data's test split, and (with
``--videos``) the pet IoU on the DAVIS ``libby`` video and the pet false positives on the shared
videos without a dog or cat.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np
import torch

from segedge._io import atomic_write_text
from segedge.data.samples import load_split_arrays
from segedge.models.checkpoint import EMBEDDED_CHECKPOINT, load_checkpoint, save_checkpoint
from segedge.report.evaluate import evaluate


def _recipe_text(recipe: dict) -> str:
    article = (f"Adam lr {recipe.get('lr')}, StepLR step {recipe.get('step_size')} gamma {recipe.get('gamma')}, "
               f"cross-entropy, batch {recipe.get('batch_size')}, random horizontal flip p={recipe.get('hflip')}, "
               f"nearest-neighbour resize to 128x128, seed {recipe.get('seed')}")
    if recipe.get("recipe", "article") != "robust":
        return f"the article's (`segedge train --model segnet-dsc`): {article}, contrast jitter {recipe.get('contrast')}"
    start = f", fine-tuned from the previous embedded model (article recipe, 60 epochs)" if recipe.get("init_from") else ""
    return (
        f"`--recipe robust` (`segedge/training/augment.py`){start}: {article}; then per image copy-paste "
        f"(Ghiasi et al., CVPR 2021) with p={recipe.get('p_paste')}: the pet and its border cut out with its trimap, "
        f"its longer side resized to 8-90% of the image (log-uniform), its width squeezed by 0.5-1.4 (16:9 frames "
        f"in a square input), recoloured with p={recipe.get('p_recolour')} (hue rotation, brightness 0.25-1.3, "
        f"grayscale), pasted at a random place on another training image (p={recipe.get('p_onto_image')}, its pet "
        f"kept) or a pet-free background; or SSD zoom-out (Liu et al., ECCV 2016) with p={recipe.get('p_zoom')}: the "
        f"whole image shrunk to 35-90% onto such a background; pet-free scenes labelled background throughout with "
        f"p={recipe.get('p_empty')}. Backgrounds: rectangles of the training images without pet pixels, "
        f"plus random crops of every 5th frame of `bikes_640x272.mp4` (street, no animal). Then brightness, "
        f"contrast and saturation jitter 0.3 and Gaussian blur (p=0.3, sigma 0.1-1.5 px) (SimCLR, Chen et al., "
        f"ICML 2020). No frame of `davis_libby` or `cockatoo` was used"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.pt of a finished `segedge train` run")
    parser.add_argument("--data", type=Path, required=True, help="Oxford-IIIT Pet root used for training")
    parser.add_argument("--videos", type=Path, help="the shared video folder (davis_libby, bikes, cockatoo)")
    parser.add_argument("--gt-masks", type=Path, help="davis-libby masks/ for the pet IoU on davis_libby")
    args = parser.parse_args()

    from video_iou import video_pet_fraction, video_pet_iou

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
    video_lines = ""
    if args.videos and args.gt_masks:
        ious = [v for v in video_pet_iou(args.model, args.videos / "davis_libby_854x480.mp4", args.gt_masks) if v == v]
        bikes = video_pet_fraction(args.model, args.videos / "bikes_640x272.mp4")
        cockatoo = video_pet_fraction(args.model, args.videos / "cockatoo_1280x720.mp4")
        meta.update(davis_libby_pet_iou=sum(ious) / len(ious), bikes_pet_fraction=bikes, cockatoo_pet_fraction=cockatoo)
        video_lines = f"""
- **Real video** (measured by `scripts/make_embedded.py` through the live loop, as
  `segedge run --engine MODEL -s VIDEO --gt-masks MASKS` does; PyTorch):
  - DAVIS `libby` (`davis_libby_854x480.mp4`, a dog covering 3.3% of the frame): pet IoU
    **{100 * meta['davis_libby_pet_iou']:.2f}%** mean over {len(ious)} frames (the previous embedded model: 8.93%).
  - `bikes_640x272.mp4` (street, no animal; its frames were training backgrounds): {100 * bikes:.2f}% of pixels
    labelled pet, mean over its frames.
  - `cockatoo_1280x720.mp4` (a bird, not a class of the training data): {100 * cockatoo:.2f}% of pixels labelled pet."""
    save_checkpoint(EMBEDDED_CHECKPOINT, ckpt.model, ckpt.model_name, ckpt.preprocess, ckpt.classes, meta)
    seconds = sum(e.get("seconds", 0) for e in history)
    card = f"""# Model card: embedded `segnet-dsc`

The default model of every segedge command (`segedge/models/weights/segnet-dsc.pt`, {EMBEDDED_CHECKPOINT.stat().st_size / 1e6:.1f} MB).

**What it is for**: showing and testing the PyTorch -> ONNX -> INT8 / FP16 / TensorRT path, and
a first live demo (`segedge demo`, `segedge run --source 0`) that finds a cat or dog in a
photo or video. It is a 1.7M-parameter model trained on 300 photos of 3 breeds: not a
general-purpose pet segmenter, and not the article's figures (those need the full dataset).

- **Architecture**: SegNet with depthwise-separable convolutions (Matani & Singh, "Efficient Image
  Segmentation Using PyTorch", Part 3), 1,749,671 parameters, input 128x128 RGB in [0, 1]
  (the whole frame squeezed to a square), output logits for pet / background / border.
- **Data**: the Oxford-IIIT Pet sample in `../shared/data/oxford-iiit-pet-sample` (Parkhi et al.,
  CVPR 2012; 600 real images of 3 breeds: Abyssinian, Bengal, american_bulldog, with official
  trimaps). Trained on its `trainval` split ({meta['train_images']} images), evaluated on its
  `test` split ({len(images)} images). The article trained on the full dataset (3,680 images).
- **Recipe**: {_recipe_text(recipe)}; **{meta['epochs_trained']} epochs** in this run
  ({history[-1].get('amp', 'off') if history else 'off'} autocast). Trained on 2 shared CPU cores in {seconds / 60:.0f} minutes.
- **Test split of the sample** (measured by `scripts/make_embedded.py`, PyTorch, 128x128):
  pixel accuracy **{100 * matrix.pixel_accuracy():.2f}%**, mIoU **{100 * matrix.miou():.2f}%**,
  IoU pet {100 * iou[0]:.2f}%, background {100 * iou[1]:.2f}%, border {100 * iou[2]:.2f}%.
  For scale: the article reports 86.96% validation pixel accuracy for SegNet-DSC on the full
  dataset, with 12x more training images.{video_lines}
- **Where it fails**: three breeds only, so expect weaker masks on other animals and scenes;
  at 128x128 a pet smaller than about a tenth of the frame's side is a few pixels wide and is
  often missed or outlined coarsely; the border class (the trimap's unknown band) is the least
  accurate; other animals (birds) and pet-coloured textures can be labelled pet (figures above).
- **Licence of the data**: CC BY-SA 4.0 per the dataset's site; its annotations are for research use.

Made {datetime.date.today().isoformat()} from `{args.model}`:

```bash
python scripts/make_embedded.py {args.model} --data {args.data}{f' --videos {args.videos} --gt-masks {args.gt_masks}' if args.videos else ''}
```
"""
    atomic_write_text(EMBEDDED_CHECKPOINT.parent / "MODEL_CARD.md", card)
    print(f"wrote {EMBEDDED_CHECKPOINT}: test pixel accuracy {100 * matrix.pixel_accuracy():.2f}%, mIoU {100 * matrix.miou():.2f}%")


if __name__ == "__main__":
    main()
