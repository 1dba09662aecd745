"""``segedge train --recipe/--amp`` through the CLI: a robust run reports its throughput, and
a precision the device lacks is one line with exit code 2."""

import pytest
import torch
from typer.testing import CliRunner

from segedge.cli.main import app

cli = CliRunner()


@pytest.mark.slow
def test_robust_recipe_prints_throughput_and_precision(tmp_path, pet_root):
    result = cli.invoke(app, ["train", str(pet_root), "--model", "segnet-dsc", "--epochs", "1", "--limit", "4",
                              "--batch-size", "4", "--recipe", "robust", "--amp", "off", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "images/s" in result.stdout and "amp off" in result.stdout
    assert (tmp_path / "model.pt").is_file()


def test_fp16_without_cuda_is_one_line_and_exit_2(tmp_path, pet_root):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: fp16 is valid here")
    result = cli.invoke(app, ["train", str(pet_root), "--model", "segnet-dsc", "--epochs", "1", "--limit", "2",
                              "--amp", "fp16", "-o", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    assert len(lines) == 1 and "CUDA" in lines[0] and "Traceback" not in result.output


def test_unknown_recipe_is_refused_by_the_parser(tmp_path, pet_root):
    result = cli.invoke(app, ["train", str(pet_root), "--recipe", "fancy", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "fancy" in (result.stderr or result.output)


@pytest.mark.slow
def test_finish_starts_from_the_first_stage_and_takes_its_model(tmp_path, pet_root):
    from segedge.models.checkpoint import EMBEDDED, load_checkpoint

    first = EMBEDDED["segnet-lite0"]
    result = cli.invoke(app, ["train", str(pet_root), "--finish", str(first), "--epochs", "1", "--limit", "4",
                              "--batch-size", "4", "--train-sizes", "64", "--amp", "off", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    finished = load_checkpoint(tmp_path / "model.pt")
    assert finished.model_name == "segnet-lite0"  # no --model: the first stage's
    assert finished.meta["recipe"]["init_from"] == str(first)
    assert finished.preprocess.interpolation == "area"  # the contract deploys the resize it was finished with
    start = dict(load_checkpoint(first).model.named_parameters())
    moved = [float((v - start[k]).detach().abs().max()) for k, v in finished.model.named_parameters()]
    assert 0 < max(moved) < 0.01  # one Adam step (lr 2e-4) from the first stage's weights, not from ImageNet's


def test_finish_of_a_one_stage_model_is_one_line(tmp_path, pet_root):
    from segedge.models.checkpoint import EMBEDDED

    result = cli.invoke(app, ["train", str(pet_root), "--finish", str(EMBEDDED["segnet-dsc"]), "-o", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    assert len(lines) == 1 and "no finishing stage" in lines[0] and "Traceback" not in result.output


def test_init_and_finish_together_are_refused(tmp_path, pet_root):
    from segedge.models.checkpoint import EMBEDDED

    lite = str(EMBEDDED["segnet-lite0"])
    result = cli.invoke(app, ["train", str(pet_root), "--finish", lite, "--init", lite, "-o", str(tmp_path)])
    assert result.exit_code == 2 and "give one" in (result.stderr or result.output)
    assert not (tmp_path / "model.pt").exists()
