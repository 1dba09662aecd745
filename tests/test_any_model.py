"""Any segmentation model, end to end through the public API: a U-Net defined here (21
classes, ImageNet mean/std, no max-unpooling) is trained one step, exported, converted to
FP16 and INT8, run on real video and reported on; and a foreign ONNX goes through the CLI
given --classes/--mean/--std."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import segedge
from segedge.cli.main import app
from segedge.contract import Contract, Precision, PreprocessConfig

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """U-Net (Ronneberger et al., MICCAI 2015) with two poolings, skip concatenations and
    transposed-convolution upsampling: ``(N, 3, H, W)`` -> ``(N, classes, H, W)`` logits."""

    size_multiple = 4  # two 2x2 poolings

    def __init__(self, classes: int = 21, width: int = 8):
        super().__init__()
        self.enc1, self.enc2, self.mid = _block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2), _block(4 * width, 2 * width)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2), _block(2 * width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # (N, w, H, W)
        e2 = self.enc2(self.pool(e1))  # (N, 2w, H/2, W/2)
        m = self.mid(self.pool(e2))  # (N, 4w, H/4, W/4)
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))  # (N, 2w, H/2, W/2)
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))  # (N, w, H, W)
        return self.head(d1)  # (N, 21, H, W)


@pytest.fixture(scope="module")
def bikes(shared_video):
    return shared_video("bikes_640x272.mp4")


@pytest.fixture(scope="module")
def frames(bikes) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(bikes))
    out = []
    while len(out) < 8:
        ok, frame = capture.read()
        assert ok, f"{bikes} ended early"
        out.append(frame)
    capture.release()
    return out


@pytest.fixture(scope="module")
def contract() -> Contract:
    preprocess = PreprocessConfig(64, 96, "linear", "RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return Contract(preprocess=preprocess, classes=VOC_CLASSES, model="tiny-unet", training_data="8 frames of bikes_640x272.mp4")


def test_mean_std_preprocessing_is_the_imagenet_formula(frames, contract):
    batch = segedge.preprocess(frames[:2], contract.preprocess)
    rgb = cv2.resize(frames[0], (96, 64), interpolation=cv2.INTER_LINEAR)[:, :, ::-1].astype(np.float32) / 255
    expected = ((rgb - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(batch[0], expected, atol=1e-5)
    # an artifact written before mean/std existed still loads, and still means "scale only"
    old = PreprocessConfig.from_json('{"channel_order": "RGB", "height": 64, "interpolation": "linear", "scale": 0.00392156862745098, "width": 96}')
    assert old.mean is None and old.std is None and "mean" not in old.to_json()


@pytest.mark.slow
def test_a_unet_goes_through_export_fp16_int8_video_and_report(tmp_path, frames, bikes, contract):
    torch.manual_seed(0)
    model = TinyUNet(len(VOC_CLASSES))
    # one training step on real frames, against a fixed labelling (21 brightness bands)
    x = torch.from_numpy(segedge.preprocess(frames, contract.preprocess))
    grey = np.stack([cv2.cvtColor(cv2.resize(f, (96, 64)), cv2.COLOR_BGR2GRAY) for f in frames])
    y = torch.from_numpy((grey.astype(np.int64) * len(VOC_CLASSES)) // 256)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    loss_before = nn.functional.cross_entropy(model(x), y)
    loss_before.backward()
    optimizer.step()
    with torch.no_grad():
        loss_after = nn.functional.cross_entropy(model(x), y)  # same batch, still batch statistics
    model.eval()
    assert loss_after < loss_before

    fp32 = segedge.export(model, tmp_path / "unet.onnx", contract, target=segedge.Target.TENSORRT)
    assert fp32.unpool_sites == 0 and "MaxUnpool" not in fp32.op_counts and "ScatterND" not in fp32.op_counts
    assert fp32.parity.argmax_agreement >= 0.999
    fp16 = segedge.build(fp32.path, tmp_path / "unet-fp16.onnx", segedge.Precision.FP16)
    int8 = segedge.build(fp32.path, tmp_path / "unet-int8.onnx", "int8", calibration=frames)

    runners = {p: segedge.load(path) for p, path in ((Precision.FP32, fp32.path), (Precision.FP16, fp16.onnx), (Precision.INT8, int8.onnx))}
    for precision, runner in runners.items():
        assert runner.precision is precision
        assert runner.contract.classes == VOC_CLASSES and len(runner.contract.palette) == 21
        assert runner.contract.preprocess == contract.preprocess  # mean/std survive every conversion
        assert runner.contract.model == "tiny-unet"

    # run on a video: every frame segmented at its own size, with the 21-class palette drawn
    from segedge.data.sources import open_source

    reference = segedge.load(model, contract)
    with open_source(str(bikes)) as video:
        for i, frame in enumerate(video):
            if i == 4:
                break
            class_map, overlay = runners[Precision.INT8].segment(frame)
            assert class_map.shape == frame.shape[:2] and overlay.shape == frame.shape
            assert class_map.max() < 21
            ref_map, _ = reference.segment(frame)
            assert (ref_map == class_map).mean() > 0.5

    report = segedge.compare(reference, [runners[p] for p in Precision], bikes, limit=6, every=2, latency_runs=3, warmup=1)
    assert isinstance(report, segedge.DriftReport)
    rows = {row.precision: row for row in report.models[1:]}
    assert report.models[0].is_reference and report.data["images"] == 6
    assert rows[Precision.FP32].agreement >= 0.999
    assert rows[Precision.FP16].agreement >= 0.98
    assert rows[Precision.INT8].agreement > 0.5
    json.dumps(report.to_dict())  # the report's data form holds for 21 classes


@pytest.mark.slow
def test_a_foreign_onnx_goes_through_the_cli_with_classes_mean_and_std(tmp_path, bikes):
    torch.manual_seed(0)
    model = TinyUNet(4).eval()
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 64, 96),), str(foreign), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    cli = CliRunner()
    out = tmp_path / "declared.onnx"
    result = cli.invoke(app, ["export", str(foreign), "-o", str(out), "--classes", "background,road,bike,person",
                              "--mean", ",".join(map(str, IMAGENET_MEAN)), "--std", ",".join(map(str, IMAGENET_STD))])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "nothing to rewrite" in result.stdout
    runner = segedge.load(out)
    assert runner.contract.classes == ("background", "road", "bike", "person")
    assert runner.contract.preprocess.mean == IMAGENET_MEAN and runner.contract.input_size == (64, 96)
    wrong = cli.invoke(app, ["export", str(foreign), "-o", str(tmp_path / "w.onnx"), "--classes", "a,b"])
    assert wrong.exit_code == 2 and "predicts 4 classes but 2 class names were given" in wrong.stderr
    int8 = tmp_path / "declared-int8.onnx"
    result = cli.invoke(app, ["build-engine", str(out), "--precision", "int8", "--calib-data", str(bikes), "--num-images", "8", "-o", str(int8)])
    assert result.exit_code == 0, result.stdout + result.stderr
    result = cli.invoke(app, ["run", "--engine", str(int8), "--source", str(bikes), "--max-frames", "3", "--classes", "bike,person"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "3 frames" in result.stdout
