"""Training loop reproducing the recipe of Matani & Singh, "Efficient Image Segmentation
Using PyTorch", Part 2: 128x128 inputs, random horizontal flip and contrast jitter 0.3
(torchvision ``ColorJitter(contrast=0.3)``), Adam lr 1e-3, StepLR(step 7, gamma 0.7),
cross-entropy, batch 64, 20 epochs, train on ``trainval`` and validate on ``test``.

``recipe="robust"`` adds the augmentations of :mod:`segedge.training.augment` (copy-paste onto
pet-free backgrounds, zoom-out, colour jitter, blur) for deployment on real video. ``amp``
trains under mixed precision (``torch.autocast``): bf16 on CPUs with AVX-512 BF16 or AMX,
fp16 with loss scaling on CUDA (Micikevicius et al., "Mixed Precision Training", ICLR 2018).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from segedge._io import atomic_write_text
from segedge.contract import Amp, Recipe, Resize
from segedge.data.oxford_pet import CLASS_NAMES
from segedge.data.samples import load_split_arrays
from segedge.data.transforms import PreprocessConfig
from segedge.errors import CheckpointError, InputError
from segedge.models.checkpoint import load_checkpoint, save_checkpoint
from segedge.models.registry import create_model
from segedge.report.metrics import ConfusionMatrix
from segedge.training.crops import load_aspect_split, random_crops

log = logging.getLogger(__name__)


RECIPES = tuple(r.value for r in Recipe)
AMP_DTYPES = {Amp.BF16.value: torch.bfloat16, Amp.FP16.value: torch.float16, Amp.OFF.value: None}


def default_amp(device: str = "cpu") -> str:
    """The mixed precision worth using on ``device``: ``fp16`` on CUDA, ``bf16`` on a CPU with
    AVX-512 BF16 or AMX (where oneDNN runs bf16 convolutions natively; elsewhere bf16 is
    emulated and slower than fp32), else ``off``."""
    from segedge.cpuinfo import cpu_info

    if device.startswith("cuda"):
        return Amp.FP16.value
    return (Amp.BF16 if {"avx512_bf16", "amx_bf16"} & set(cpu_info().flags) else Amp.OFF).value


@dataclass
class TrainConfig:
    """Hyper-parameters; defaults are the article's recipe."""

    model: str = "segnet"  # registry name: segnet | segnet-dsc
    epochs: int = 20  # passes over the training split
    batch_size: int = 64  # images per optimiser step
    lr: float = 1e-3  # Adam learning rate
    step_size: int = 7  # StepLR: epochs between learning-rate decays
    gamma: float = 0.7  # StepLR: decay factor
    contrast: float = 0.3  # contrast jitter: factor drawn from [1 - c, 1 + c]
    hflip: float = 0.5  # probability of a horizontal flip
    seed: int = 0  # seeds weights init, shuffling and augmentation
    train_split: str = "trainval"
    val_split: str = "test"
    limit: int | None = None  # use at most this many images per split (quick runs, tests)
    recipe: str = Recipe.ARTICLE.value  # article | robust (adds segedge.training.augment)
    amp: str = Amp.AUTO.value  # auto | bf16 | fp16 | off: autocast dtype of the training step (auto: default_amp())
    init_from: str | None = None  # start from this checkpoint's weights (fine-tuning) instead of random ones
    background_video: str | None = None  # robust: extra pet-free backgrounds from this video (no animal in it)
    p_paste: float = 0.5  # robust: probability an image becomes a copy-paste composite
    p_zoom: float = 0.25  # robust: probability an image is zoomed out onto a background
    jitter: bool = True  # robust: brightness/contrast/saturation jitter (replaces the article's contrast)
    blur: bool = True  # robust: Gaussian blur with probability 0.3
    p_onto_image: float = 0.5  # robust: probability a composite's canvas is another training image (its pet kept)
    p_recolour: float = 0.5  # robust: probability a pasted pet gets a new coat (hue, brightness, grayscale)
    p_empty: float = 0.0  # robust: probability an image is replaced by a pet-free background (all background)
    p_synthetic: float = 0.0  # robust: probability a pet-free background is a synthetic dead-leaves scene
    p_mesh: float = 0.0  # robust: probability an image is seen through a wire mesh (and poles)
    p_scene_recolour: float = 0.0  # robust: probability the whole image is recoloured (hue, grayscale)
    pretrained: bool = True  # start an encoder that has ImageNet weights (segnet-lite0) from them, unless init_from
    encoder_lr_scale: float = 1.0  # the pretrained encoder's learning rate as a fraction of lr
    freeze_encoder_bn: bool = False  # keep the encoder's BatchNorm statistics (eval mode) while fine-tuning
    train_sizes: tuple[int, ...] = ()  # aspect models: each batch's crop side drawn from these (multi-scale); () = the input size
    p_whole: float = 0.0  # aspect models: probability a crop at the smallest train size is the whole image stretched to the square (the article's input)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "step_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 < self.gamma <= 1 and 0 <= self.contrast < 1 and 0 <= self.hflip <= 1):
            raise InputError("lr > 0, 0 < gamma <= 1, 0 <= contrast < 1 and 0 <= hflip <= 1 are required")
        if self.recipe not in RECIPES:
            raise InputError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        if self.amp not in (Amp.AUTO.value, *AMP_DTYPES):
            raise InputError(f"unknown amp {self.amp!r}; choose one of auto, {', '.join(AMP_DTYPES)}")
        if not (0 <= self.p_paste and 0 <= self.p_zoom and self.p_paste + self.p_zoom <= 1):
            raise InputError(f"p_paste and p_zoom must be >= 0 with a sum <= 1, got {self.p_paste} and {self.p_zoom}")
        self.train_sizes = tuple(int(v) for v in self.train_sizes)
        if any(v < 32 for v in self.train_sizes):
            raise InputError(f"train_sizes must be at least 32 pixels, got {self.train_sizes}")
        if not 0 < self.encoder_lr_scale <= 1:
            raise InputError(f"encoder_lr_scale must lie in (0, 1], got {self.encoder_lr_scale}")
        for name in ("p_onto_image", "p_recolour", "p_empty", "p_synthetic", "p_mesh", "p_scene_recolour", "p_whole"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def for_model(cls, model: str, finish: str | None = None, **overrides: Any) -> "TrainConfig":
        """The recipe ``segedge train --model MODEL`` uses: the article's for ``segnet`` and
        ``segnet-dsc``, the measured fine-tuning recipe of :data:`MODEL_RECIPES` for a model
        with a pretrained encoder, at the model's default preprocessing
        (:func:`segedge.models.registry.default_preprocess`); ``overrides`` win.

        Args:
            model: registry name.
            finish: the ``model.pt`` of a finished first-stage run: the recipe's second stage
                (:data:`FINISH_RECIPES`, ``segedge train --finish``) from those weights instead.

        Raises:
            InputError: unknown model or field, an invalid value, or ``finish`` for a model
                whose recipe has no second stage.
        """
        from segedge.models.registry import default_preprocess

        recipe = dict(MODEL_RECIPES.get(model, {}))
        preprocess = default_preprocess(model)
        if finish is not None:
            if model not in FINISH_RECIPES:
                raise InputError(f"{model} has no finishing stage; --finish applies to {', '.join(FINISH_RECIPES)}")
            stage = dict(FINISH_RECIPES[model])
            preprocess = dataclasses.replace(preprocess, interpolation=stage.pop("interpolation", preprocess.interpolation))
            recipe.update(stage, init_from=finish)
        fields = {"model": model, "preprocess": preprocess, **recipe, **overrides}
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown training options {sorted(unknown)}")
        return cls(**fields)


# Fine-tuning recipes of the models with an ImageNet encoder (docs/benchmarks.md, "SegNet-Lite0"):
# the robust recipe, small batches (more optimizer steps on 300 images), the encoder at a tenth of
# the learning rate (keeps what ImageNet taught it about dogs and cats of every coat), pasted pets
# and whole scenes recoloured (the sample's breeds are ruddy, spotted or white).
_LITE_RECIPE: dict[str, Any] = {
    "recipe": Recipe.ROBUST.value, "epochs": 24, "batch_size": 16, "encoder_lr_scale": 0.1, "p_recolour": 0.8,
    "p_scene_recolour": 0.3, "train_sizes": (128, 192, 256, 320),
}
MODEL_RECIPES: dict[str, dict[str, Any]] = {"segnet-lite0": _LITE_RECIPE, "segnet-lite0-bilinear": _LITE_RECIPE}

# The recipe's second stage (`segedge train --finish FIRST/model.pt`; docs/benchmarks.md, "Finishing stage"): a
# short fine-tune of the first stage's weights from a fresh optimizer at a fifth of its learning rate, half the
# batches at the article's 128x128, half of those crops the whole photo stretched to the square (the benchmark's
# input), images shrunk by pixel-area averaging (cv2.INTER_AREA: no aliasing, as the crops are). Longer finishes
# (10 epochs) lost accuracy and video IoU.
_LITE_FINISH: dict[str, Any] = {
    "epochs": 6, "lr": 2e-4, "step_size": 2, "train_sizes": (128, 128, 128, 192, 256, 320), "p_whole": 0.5,
    "interpolation": "area",
}
FINISH_RECIPES: dict[str, dict[str, Any]] = {"segnet-lite0": _LITE_FINISH, "segnet-lite0-bilinear": _LITE_FINISH}


# TrainConfig fields passed by name to segedge.training.augment.robust_augment
ROBUST_OPTIONS = ("p_paste", "p_zoom", "jitter", "blur", "p_onto_image", "p_recolour", "p_empty", "p_synthetic", "p_mesh",
                  "p_scene_recolour")


def augment(images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, generator: torch.Generator):
    """Random horizontal flip (image and labels) and contrast jitter (image only).

    Contrast follows torchvision's ``adjust_contrast``: blend each image with the mean of
    its grayscale version (ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B) by a factor drawn
    uniformly from ``[1 - contrast, 1 + contrast]``, then clamp to [0, 1].

    Args:
        images: ``(N, 3, H, W)`` float32 RGB in [0, 1].
        labels: ``(N, H, W)`` int64.

    Returns:
        New ``(images, labels)`` tensors of the same shapes.
    """
    n = images.shape[0]
    flip = torch.rand(n, generator=generator) < config.hflip
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
    if config.contrast > 0 and not (config.recipe == Recipe.ROBUST.value and config.jitter):  # robust: color_jitter instead
        factor = 1 + (torch.rand(n, generator=generator) * 2 - 1) * config.contrast
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        mean = (images * luma).sum(1).mean((1, 2)).view(n, 1, 1, 1)
        f = factor.view(n, 1, 1, 1)
        images = (f * images + (1 - f) * mean).clamp_(0, 1)
    return images, labels


def _normalizer(config: PreprocessConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> (x - mean) / std`` per channel for ``(N, 3, H, W)`` [0, 1] pixels, as
    :func:`segedge.data.transforms.preprocess` applies the contract's mean and std."""
    if config.mean is None and config.std is None:
        return lambda x: x
    mean = torch.tensor(config.mean or (0.0, 0.0, 0.0)).view(1, 3, 1, 1)
    inv_std = 1.0 / torch.tensor(config.std or (1.0, 1.0, 1.0)).view(1, 3, 1, 1)
    return lambda x: (x - mean) * inv_std


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> ConfusionMatrix:
    """Confusion matrix of ``model`` (eval mode, float32, on its own device) on preprocessed
    ``images`` ``(N, 3, H, W)`` against ``labels`` ``(N, H, W)``; scored by
    :func:`segedge.report.evaluate.evaluate`."""
    from segedge.report.evaluate import evaluate as score

    model.eval()
    device = next(model.parameters()).device

    def logits(x: np.ndarray) -> torch.Tensor:
        return model(torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)).cpu()

    return score(logits, images, labels, batch_size, num_classes=model.config.num_classes).truth


def train(
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train a SegNet-family model and write checkpoints into ``out_dir``.

    Every epoch writes ``out_dir/checkpoint.pt`` (weights plus optimiser and scheduler
    state, for ``resume``) and ``out_dir/history.json`` atomically; the end writes
    ``out_dir/model.pt`` (weights and deployment contract only, for export).

    Args:
        data_root: Oxford-IIIT Pet root (official layout).
        out_dir: output directory (created).
        config: recipe; see :class:`TrainConfig`.
        resume: continue from ``out_dir/checkpoint.pt`` (same model required).
        on_progress: optional ``callback(stage, done, total, info="")``; stage is ``"load"``,
            ``"epoch N/M"`` or ``"validate"``; during epochs ``info`` gives the throughput
            (``"123.4 images/s"``).

    Returns:
        The history: a dict with the config and one record per epoch (loss, validation
        pixel accuracy, mIoU, IoU per class, seconds).

    Raises:
        DataError: unreadable data set.
        CheckpointError: ``resume`` without a matching ``checkpoint.pt``, or ``config.init_from``
            holding another model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    report = on_progress or (lambda stage, done, total, info="": None)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    amp = default_amp(device) if config.amp == Amp.AUTO.value else config.amp
    if amp == Amp.FP16.value and device == "cpu":
        raise InputError("--amp fp16 needs a CUDA device; on a CPU use bf16 (AVX-512 BF16 / AMX) or off")
    amp_dtype = AMP_DTYPES[amp]
    scaler = torch.amp.GradScaler("cuda", enabled=amp == Amp.FP16.value)

    # augmentation works on [0, 1] pixels; the contract's mean/std are applied at the model's input
    pixels = dataclasses.replace(config.preprocess, mean=None, std=None)
    normalize = _normalizer(config.preprocess)
    aspect = config.preprocess.resize == Resize.ASPECT.value
    if aspect:  # each image at its own aspect, short side S; every step crops S x S (segedge.training.crops)
        side = min(config.preprocess.size)
        sides = config.train_sizes or (side,)
        stored = dataclasses.replace(pixels, height=max(sides), width=max(sides))  # the largest crop is never upscaled
        pairs = load_aspect_split(data_root, config.train_split, stored, config.limit, lambda d, t: report("load train", d, t))
        centre_x, centre_y = random_crops(pairs, list(range(len(pairs))), side)
        train_x, train_y = centre_x.numpy(), centre_y.numpy().astype(np.uint8)
    else:
        train_x, train_y, _ = load_split_arrays(
            data_root, config.train_split, pixels, config.limit, lambda d, t: report("load train", d, t)
        )
    val_x, val_y, _ = load_split_arrays(
        data_root, config.val_split, config.preprocess, config.limit, lambda d, t: report("load val", d, t)
    )
    train_labels = torch.from_numpy(train_y.astype(np.int64))
    backgrounds = torch.zeros((0, *train_x.shape[1:]))
    if config.recipe == Recipe.ROBUST.value:
        from segedge.training.augment import pet_free_crops, video_backgrounds

        backgrounds = pet_free_crops(torch.from_numpy(train_x), train_labels, torch.Generator().manual_seed(config.seed))
        if config.background_video:
            backgrounds = torch.cat([backgrounds, video_backgrounds(config.background_video, pixels, seed=config.seed)])
        log.info("robust recipe: %d pet-free backgrounds", len(backgrounds))
    scaled_backgrounds: dict[int, torch.Tensor] = {}
    model = create_model(config.model)
    # the part that starts from ImageNet weights (segnet-lite0's encoder): its own learning rate, optionally frozen BN
    encoder = nn.ModuleList(model.pretrained_modules()) if hasattr(model, "pretrained_modules") else None
    if config.init_from:
        start = load_checkpoint(config.init_from)
        if start.model_name != config.model:
            raise CheckpointError(f"{config.init_from} is a {start.model_name} checkpoint; cannot start {config.model} from it")
        model.load_state_dict(start.model.state_dict())
    elif encoder is not None and config.pretrained and not resume:
        model.load_imagenet_encoder()
        log.info("encoder initialised from ImageNet weights")
    model = model.to(device, memory_format=torch.channels_last)  # channels_last: ~2x on CPU
    encoder_params = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups = [{"params": [p for p in model.parameters() if id(p) not in encoder_params], "lr": config.lr}]
    if encoder_params:
        groups.append({"params": list(encoder.parameters()), "lr": config.lr * config.encoder_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    history: dict[str, Any] = {"config": config.to_dict(), "epochs": []}
    start_epoch = 0
    if resume:
        state_path = out / "checkpoint.pt"
        ckpt = load_checkpoint(state_path)
        if ckpt.model_name != config.model:
            raise CheckpointError(f"{state_path} is a {ckpt.model_name} checkpoint; cannot resume {config.model}")
        if "optimizer" not in ckpt.raw:
            raise CheckpointError(f"{state_path} holds no optimizer state; it cannot be resumed")
        model.load_state_dict(ckpt.model.state_dict())
        optimizer.load_state_dict(ckpt.raw["optimizer"])
        scheduler.load_state_dict(ckpt.raw["scheduler"])
        start_epoch = int(ckpt.raw["epoch"])
        history = ckpt.meta.get("history", history)
        generator.manual_seed(config.seed + start_epoch)

    loss_fn = nn.CrossEntropyLoss()
    steps = math.ceil(len(train_x) / config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        if encoder is not None and config.freeze_encoder_bn:
            for module in encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()  # running statistics stay the ImageNet ones; the affine terms still learn
        order = torch.randperm(len(train_x), generator=generator)
        total_loss = 0.0
        seen = 0
        for step in range(steps):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            if aspect:
                crop = sides[int(torch.randint(len(sides), (1,), generator=generator))] if len(sides) > 1 else side
                # the article's benchmark input (a whole photo stretched to 128x128) at the smallest size only:
                # at the sizes seen live, shapes keep their aspect
                x, y = random_crops(pairs, index.tolist(), crop, generator, config.p_whole if crop == min(sides) else 0.0)
            else:
                x, y = torch.from_numpy(train_x[index.numpy()]), train_labels[index]
            x, y = augment(x, y, config, generator)
            if config.recipe == Recipe.ROBUST.value:
                from segedge.training.augment import robust_augment

                if x.shape[-1] != backgrounds.shape[-1] and len(backgrounds):  # a multi-scale batch: backgrounds at its size
                    if x.shape[-1] not in scaled_backgrounds:
                        scaled_backgrounds[x.shape[-1]] = torch.nn.functional.interpolate(
                            backgrounds, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
                    batch_backgrounds = scaled_backgrounds[x.shape[-1]]
                else:
                    batch_backgrounds = backgrounds
                x, y = robust_augment(x, y, batch_backgrounds, generator, **{name: getattr(config, name) for name in ROBUST_OPTIONS})
            x, y = normalize(x).to(device).contiguous(memory_format=torch.channels_last), y.to(device)
            with torch.autocast(device, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * len(index)
            seen += len(index)
            rate = seen / (time.perf_counter() - started)
            report(f"epoch {epoch + 1}/{config.epochs}", step + 1, steps, f"{rate:.1f} images/s")
        train_seconds = time.perf_counter() - started
        scheduler.step()
        matrix = evaluate(model, val_x, val_y)
        record = {
            "epoch": epoch + 1,
            "loss": total_loss / len(train_x),
            "lr": optimizer.param_groups[0]["lr"],
            "val_pixel_accuracy": matrix.pixel_accuracy(),
            "val_miou": matrix.miou(),
            "val_iou_per_class": dict(zip(CLASS_NAMES, matrix.iou_per_class().tolist())),
            "seconds": time.perf_counter() - started,
            "images_per_second": seen / train_seconds,
            "amp": amp,
        }
        history["epochs"].append(record)
        log.info(
            "epoch %d/%d loss %.4f val pixel accuracy %.2f%% mIoU %.2f%%",
            epoch + 1, config.epochs, record["loss"], 100 * record["val_pixel_accuracy"], 100 * record["val_miou"],
        )
        meta = {"history": history, "train_images": len(train_x), "val_images": len(val_x)}
        save_checkpoint(
            out / "checkpoint.pt", model, config.model, config.preprocess, meta=meta,
            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), epoch=epoch + 1,
        )
        atomic_write_text(out / "history.json", json.dumps(history, indent=2))
    final = history["epochs"][-1] if history["epochs"] else {}
    meta = {
        "recipe": config.to_dict(),
        "epochs_trained": len(history["epochs"]),
        "train_images": len(train_x),
        "val_images": len(val_x),
        "val_pixel_accuracy": final.get("val_pixel_accuracy"),
        "val_miou": final.get("val_miou"),
        "history": history,
    }
    save_checkpoint(out / "model.pt", model, config.model, config.preprocess, meta=meta)
    return history
