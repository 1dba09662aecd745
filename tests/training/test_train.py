"""Training: the recipe runs on real data, writes resumable checkpoints, and resumes."""

import json

import pytest
import torch

from segedge.errors import CheckpointError, InputError
from segedge.models.checkpoint import EMBEDDED, load_checkpoint
from segedge.training import TrainConfig, train
from segedge.training.loop import augment

pytestmark = pytest.mark.slow


def test_two_epochs_then_resume_to_three(tmp_path, pet_root):
    config = TrainConfig(model="segnet-dsc", epochs=2, batch_size=4, limit=8)
    history = train(pet_root, tmp_path, config)
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    first = load_checkpoint(tmp_path / "checkpoint.pt")
    assert first.raw["epoch"] == 2 and "optimizer" in first.raw
    resumed = train(pet_root, tmp_path, TrainConfig(model="segnet-dsc", epochs=3, batch_size=4, limit=8), resume=True)
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    assert resumed["epochs"][:2] == history["epochs"]  # the first two epochs were not redone
    final = load_checkpoint(tmp_path / "model.pt")
    assert final.meta["epochs_trained"] == 3 and "optimizer" not in final.raw
    assert json.loads((tmp_path / "history.json").read_text())["epochs"][-1]["epoch"] == 3
    # the weights changed during the third epoch
    changed = any(not torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), final.model.state_dict().values()))
    assert changed


def test_resume_refuses_another_model(tmp_path, pet_root):
    train(pet_root, tmp_path, TrainConfig(model="segnet-dsc", epochs=1, batch_size=4, limit=4))
    with pytest.raises(CheckpointError, match="segnet-dsc"):
        train(pet_root, tmp_path, TrainConfig(model="segnet", epochs=2, batch_size=4, limit=4), resume=True)


def test_augmentation_flips_labels_with_images_and_keeps_the_range():
    images = torch.rand(16, 3, 8, 8)
    labels = torch.randint(0, 3, (16, 8, 8))
    config = TrainConfig(contrast=0.3, hflip=0.5)
    out_images, out_labels = augment(images, labels, config, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(out_labels[i], labels[i].flip(-1))) and not torch.equal(labels[i], labels[i].flip(-1)) for i in range(16)]
    assert 0 < sum(flipped) < 16  # some flipped, some not
    assert out_images.min() >= 0 and out_images.max() <= 1
    for i in range(16):
        source = images[i].flip(-1) if flipped[i] else images[i]
        # contrast jitter is an affine blend towards the mean: correlation with the source stays ~1
        assert torch.corrcoef(torch.stack([source.flatten(), out_images[i].flatten()]))[0, 1] > 0.95


def test_robust_recipe_under_bf16_trains_and_records_throughput(tmp_path, pet_root):
    config = TrainConfig(model="segnet-dsc", epochs=1, batch_size=4, limit=8, recipe="robust", amp="bf16")
    record = train(pet_root, tmp_path, config)["epochs"][0]
    assert record["amp"] == "bf16" and record["images_per_second"] > 0
    assert record["loss"] == record["loss"] and record["loss"] > 0  # finite, not nan
    assert load_checkpoint(tmp_path / "model.pt").meta["recipe"]["recipe"] == "robust"


def test_init_from_starts_at_the_given_weights(tmp_path, pet_root):
    embedded = load_checkpoint("segnet-dsc")
    config = TrainConfig(model="segnet-dsc", epochs=1, batch_size=4, limit=4, init_from=str(EMBEDDED["segnet-dsc"]), amp="off")
    train(pet_root, tmp_path / "a", config)
    scratch = TrainConfig(model="segnet-dsc", epochs=1, batch_size=4, limit=4, amp="off")
    train(pet_root, tmp_path / "b", scratch)
    reference = embedded.model.state_dict()
    distance = {
        name: sum(float((load_checkpoint(tmp_path / name / "model.pt").model.state_dict()[k] - v).abs().mean())
                  for k, v in reference.items() if v.is_floating_point())
        for name in ("a", "b")
    }
    assert distance["a"] < 0.5 * distance["b"]  # one epoch of fine-tuning stays near the start


@pytest.mark.parametrize("field, value", [("recipe", "fancy"), ("amp", "fp8"), ("p_paste", 0.9), ("p_recolour", 1.5),
                                          ("p_empty", -0.1), ("p_onto_image", 2.0),
                                          ("p_synthetic", 1.2), ("p_mesh", -0.5), ("p_scene_recolour", 3.0)])
def test_config_refuses_unknown_choices(field, value):
    with pytest.raises(InputError):
        TrainConfig(**{field: value, "p_zoom": 0.25})


def test_fp16_needs_cuda(tmp_path, pet_root):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: fp16 is valid here")
    with pytest.raises(InputError, match="CUDA"):
        train(pet_root, tmp_path, TrainConfig(model="segnet-dsc", epochs=1, batch_size=4, limit=4, amp="fp16"))


def test_default_amp_follows_the_device():
    from segedge.cpuinfo import cpu_info
    from segedge.training.loop import default_amp

    assert default_amp("cuda:0") == "fp16"
    bf16 = bool({"avx512_bf16", "amx_bf16"} & set(cpu_info().flags))
    assert default_amp("cpu") == ("bf16" if bf16 else "off")


def test_init_from_another_model_is_a_checkpoint_error(tmp_path, pet_root):
    config = TrainConfig(model="segnet", epochs=1, batch_size=4, limit=4, init_from=str(EMBEDDED["segnet-dsc"]), amp="off")
    with pytest.raises(CheckpointError, match="segnet-dsc checkpoint"):
        train(pet_root, tmp_path, config)


def test_finish_is_refused_for_a_model_whose_recipe_has_one_stage():
    with pytest.raises(InputError, match="no finishing stage"):
        TrainConfig.for_model("segnet-dsc", finish=str(EMBEDDED["segnet-dsc"]))


def test_finish_stage_overrides_still_win():
    config = TrainConfig.for_model("segnet-lite0", finish="first/model.pt", epochs=2, p_whole=0.0)
    first = TrainConfig.for_model("segnet-lite0")
    assert config.init_from == "first/model.pt" and first.init_from is None
    assert (config.epochs, config.p_whole) == (2, 0.0)
    assert config.lr < first.lr  # the second stage fine-tunes below the first stage's rate
