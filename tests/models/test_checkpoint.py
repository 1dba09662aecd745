import pytest
import torch

from segedge.data.transforms import PreprocessConfig
from segedge.errors import CheckpointError
from segedge.models.checkpoint import load_checkpoint, save_checkpoint
from segedge.models.registry import create_model


def test_round_trip_keeps_weights_and_contract(tmp_path):
    model = create_model("segnet-dsc")
    config = PreprocessConfig(height=96, width=64, interpolation="area")
    path = save_checkpoint(tmp_path / "a.pt", model, "segnet-dsc", config, meta={"epochs": 3})
    ckpt = load_checkpoint(path)
    assert ckpt.model_name == "segnet-dsc" and ckpt.preprocess == config and ckpt.meta == {"epochs": 3}
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[key], value)
    assert not ckpt.model.training


def test_bare_article_state_dict_is_recognised(tmp_path):
    # The article's notebooks save model.state_dict() alone; segedge uses the same key names.
    model = create_model("segnet")
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    assert load_checkpoint(tmp_path / "bare.pt").model_name == "segnet"


def test_weights_of_the_other_model_are_refused(tmp_path):
    save_checkpoint(tmp_path / "dsc.pt", create_model("segnet-dsc"), "segnet-dsc", PreprocessConfig())
    payload = torch.load(tmp_path / "dsc.pt", weights_only=True)
    payload["model"] = "segnet"
    torch.save(payload, tmp_path / "lying.pt")
    with pytest.raises(CheckpointError, match="does not fit model 'segnet'"):
        load_checkpoint(tmp_path / "lying.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_embedded_checkpoints_are_small_and_load(embedded, default_model):
    from segedge.models.checkpoint import EMBEDDED, EMBEDDED_CHECKPOINT

    assert EMBEDDED_CHECKPOINT == EMBEDDED["segnet-lite0"] and EMBEDDED_CHECKPOINT.stat().st_size <= 15e6  # issue 23's budget
    assert default_model.model_name == "segnet-lite0" and default_model.preprocess.resize == "aspect"
    assert default_model.preprocess.mean == default_model.preprocess.std == (0.5, 0.5, 0.5)  # TensorFlow's Lite preprocessing
    assert EMBEDDED["segnet-dsc"].stat().st_size < 10e6
    assert embedded.model_name == "segnet-dsc"
    assert embedded.preprocess.size == (128, 128)


def test_an_embedded_model_is_found_by_name_unless_a_file_has_that_name(tmp_path, monkeypatch):
    from segedge.models.checkpoint import EMBEDDED, resolve_checkpoint

    assert resolve_checkpoint(None) == EMBEDDED["segnet-lite0"]
    assert resolve_checkpoint("segnet-dsc") == EMBEDDED["segnet-dsc"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "segnet-dsc").write_bytes(b"a file of that name wins")
    assert resolve_checkpoint("segnet-dsc") == tmp_path / "segnet-dsc"
    with pytest.raises(CheckpointError):
        load_checkpoint("segnet-dsc")  # that file, which is no checkpoint
