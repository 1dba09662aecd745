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
    model: Annotated[ModelName, typer.Option(help="Architecture.")] = ModelName("segnet"),  # type: ignore[valid-type]
    epochs: Annotated[int, typer.Option(min=1, help="Passes over trainval (article: 20).")] = 20,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per step (article: 64).")] = 64,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate (article: 1e-3).")] = 1e-3,
    step_size: Annotated[int, typer.Option(min=1, help="StepLR period in epochs (article: 7).")] = 7,
    gamma: Annotated[float, typer.Option(min=0.0, max=1.0, help="StepLR decay (article: 0.7).")] = 0.7,
    size: Annotated[int, typer.Option(min=16, help="Square input size in pixels (article: 128); a multiple of 16.")] = 128,
    interpolation: Annotated[Interpolation, typer.Option(help="Image resize (article: nearest).")] = Interpolation.NEAREST,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and augmentation.")] = 0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use at most N images per split (quick trials).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
    recipe: Annotated[Recipe, typer.Option(help="article: the article's augmentation (reproduces it); robust: adds copy-paste of small, squeezed, recoloured pets onto other images and pet-free backgrounds, zoom-out, colour jitter and blur, for real video (segedge/training/augment.py).")] = Recipe.ARTICLE,
    amp: Annotated[Amp, typer.Option(help="Mixed precision of the training step; auto: fp16 on CUDA, bf16 on CPUs with AVX-512 BF16 / AMX, else off.")] = Amp.AUTO,
    init: Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (fine-tuning) instead of random ones.")] = None,
    background_video: Annotated[Optional[Path], typer.Option(help="robust: a video showing no animal whose frames add pet-free backgrounds.")] = None,
) -> None:
    """Train SegNet or SegNet-DSC on Oxford-IIIT Pet with the article's recipe (or --recipe robust).

    Recipe of Matani & Singh (2023): 128x128, random
    horizontal flip and contrast jitter 0.3, Adam 1e-3, StepLR(7, 0.7), cross-entropy, batch 64,
    20 epochs; train on trainval, validate on test (pixel accuracy and mIoU every epoch)."""
    from segedge._io import check_output, resolved
    from segedge.data.transforms import PreprocessConfig
    from segedge.errors import InputError
    from segedge.training import TrainConfig, train

    if size % 16:
        raise InputError(f"--size {size} must be a multiple of 16 (four 2x2 pooling stages)")
    # every input counts: the run folder is not the data, and no file the run writes is one the run reads
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; expected a folder")
    if resolved(out) == resolved(data):
        raise InputError(f"-o {out} is the data folder {data}; write the run elsewhere")
    if out.is_dir():
        for name in ("checkpoint.pt", "model.pt", "history.json"):  # what the run writes in it
            check_output(out / name, [data, init, background_video], force=True, option=f"-o {out}:")
    config = TrainConfig(
        model=model.value, epochs=epochs, batch_size=batch_size, lr=lr, step_size=step_size, gamma=gamma,
        seed=seed, limit=limit, recipe=recipe.value, amp=amp.value, init_from=str(init) if init else None,
        background_video=str(background_video) if background_video else None, preprocess=PreprocessConfig(height=size, width=size, interpolation=interpolation.value),
    )
    with progress_bar() as update:
        history = train(data, out, config, resume=resume, on_progress=update)
    for record in history["epochs"]:
        console.print(
            f"epoch {record['epoch']:3d}  loss {record['loss']:.4f}  val pixel accuracy "
            f"{100 * record['val_pixel_accuracy']:.2f}%  mIoU {100 * record['val_miou']:.2f}%  ({record['seconds']:.0f} s, "
            f"{record.get('images_per_second', 0):.1f} images/s, amp {record.get('amp', 'off')})"
        )
    console.print(f"wrote {out / 'model.pt'} (final weights) and {out / 'checkpoint.pt'} (resumable)")
