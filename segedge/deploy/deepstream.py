"""DeepStream ``nvinfer`` configs for semantic segmentation, written from a segedge artifact.

nvinfer preprocesses each frame as ``y = net-scale-factor * (x - offsets[c])`` on
``x`` in [0, 255], in ``model-color-format`` order (0 RGB, 1 BGR), scaled to
``infer-dims`` (Gst-nvinfer docs, "Gst-nvinfer configuration file properties"). segedge's
contract is ``y = (x * scale - mean[c]) / std[c]`` (no mean/std: ``x * scale``). The
mapping: ``net-scale-factor = scale / s`` and ``offsets = mean / scale`` when every
``std`` equals ``s``; otherwise ``net-scale-factor = scale`` and ``1/std[c]`` is folded into
the first convolution (:func:`~segedge.deploy.variants.fold_normalization`).

With ``network-type=2`` nvinfer's built-in parser takes the per-pixel argmax and marks a
pixel -1 unless its best score beats ``segmentation-threshold``; segedge writes an ONNX
that ends in Softmax (scores in [0, 1]) and a threshold of 0.0, so every pixel is labelled.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from segedge._io import atomic_path, atomic_write_text, check_output
from segedge.contract import Precision, PreprocessConfig
from segedge.deploy.artifact import read_artifact
from segedge.errors import ExportError, InputError

# [property] keys of Gst-nvinfer's configuration file (DeepStream docs, "Gst-nvinfer configuration
# file properties", and gstnvinfer_property_parser.h); the writer uses only these.
DOCUMENTED_KEYS = frozenset("""
num-detected-classes net-scale-factor model-file proto-file int8-calib-file batch-size model-engine-file uff-file
onnx-file tlt-encoded-model tlt-model-key mean-file network-mode offsets model-color-format process-mode
output-blob-names infer-dims input-dims uff-input-blob-name uff-input-dims uff-input-order custom-lib-path
parse-bbox-func-name parse-bbox-instance-mask-func-name parse-classifier-func-name engine-create-func-name
custom-network-config cluster-mode is-classifier classifier-threshold classifier-type labelfile-path gie-unique-id
operate-on-gie-id operate-on-class-ids interval gpu-id filter-out-class-ids maintain-aspect-ratio
symmetric-padding network-type segmentation-threshold segmentation-output-order output-tensor-meta
output-instance-mask workspace-size enable-dla use-dla-core scaling-filter scaling-compute-hw
secondary-reinfer-interval input-object-min-width input-object-min-height input-object-max-width
input-object-max-height layer-device-precision net-scale-factor input-tensor-from-meta crop-objects-to-roi-boundary
disable-output-host-copy force-implicit-batch-dim infer-dims num-classes
""".split())
REQUIRED = ("onnx-file", "labelfile-path", "batch-size", "network-mode", "network-type", "num-detected-classes",
            "infer-dims", "output-blob-names", "net-scale-factor", "offsets", "model-color-format", "segmentation-threshold")
NETWORK_MODE = {Precision.FP32: 0, Precision.INT8: 1, Precision.FP16: 2}
SCALING_FILTER = {"nearest": 0, "linear": 1, "cubic": 2, "area": 1}  # NvBufSurfTransform_Inter: 0 nearest, 1 bilinear, 2 cubic (GPU)


@dataclass(frozen=True)
class NvinferPreprocess:
    """nvinfer's preprocessing for a contract.

    Attributes:
        net_scale_factor: ``net-scale-factor``.
        offsets: ``offsets`` per channel, in the model's channel order, in [0, 255] units.
        fold_std: per-channel std to fold into the model (``None``: nothing to fold).
    """

    net_scale_factor: float
    offsets: tuple[float, float, float]
    fold_std: tuple[float, float, float] | None


def nvinfer_preprocess(preprocess: PreprocessConfig) -> NvinferPreprocess:
    """Map a segedge preprocessing contract (``scale``, optional ``mean``/``std``) onto nvinfer's."""
    scale = preprocess.scale
    mean = preprocess.mean or (0.0, 0.0, 0.0)
    std = preprocess.std or (1.0, 1.0, 1.0)
    offsets = tuple(m / scale for m in mean)
    if max(std) - min(std) <= 1e-12 * max(std):
        return NvinferPreprocess(scale / std[0], offsets, None)
    return NvinferPreprocess(scale, offsets, tuple(std))


def _fmt(value: float) -> str:
    return f"{value:.9g}"


def write_deepstream(
    artifact: str | os.PathLike[str], out_dir: str | os.PathLike[str], batch_size: int = 1, gpu_id: int = 0, force: bool = False,
) -> Path:
    """``segedge deploy deepstream``: ``config_infer_<name>.txt``, ``labels.txt`` and
    ``<name>-deepstream.onnx`` (normalisation folded if needed, Softmax at the end) in ``out_dir``.

    Every output is checked before anything is written (none an input, none there without
    ``force``), and the config is checked before it is written; the config, which names the
    other two, is written last.

    Args:
        artifact: a segedge ``.onnx`` (engines cannot be edited; nvinfer builds its own
            engine from the ONNX on first run).
        out_dir: output directory (created; its parent must exist).
        batch_size: ``batch-size`` (streams batched by nvstreammux).
        gpu_id: ``gpu-id``.
        force: replace files of an earlier deployment.

    Returns:
        The config path.

    Raises:
        InputError: not an ONNX file; ``out_dir`` is a file or the artifact; an output exists
            without ``force`` or is the artifact.
        ModelFormatError: unreadable ONNX.
        ExportError: the config misses a required key (should not happen).
    """
    import onnx

    from segedge.deploy.variants import fold_normalization, with_softmax

    path = Path(artifact)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"{path}: deploy deepstream takes an ONNX file (nvinfer builds its engine from it)")
    out = check_output(out_dir, [path], directory=True)
    stem = path.stem
    onnx_name = f"{stem}-deepstream.onnx"
    config = out / f"config_infer_{stem}.txt"
    for target in (out / onnx_name, out / "labels.txt", config) if out.is_dir() else ():  # a new folder holds nothing to replace
        check_output(target, [path], force=force)
    info = read_artifact(path)
    pre = info.preprocess
    mapped = nvinfer_preprocess(pre)
    model = onnx.load(str(path))
    if mapped.fold_std is not None:
        model = fold_normalization(model, list(mapped.fold_std))
    model = with_softmax(model, info.outputs[0].name)
    _, c, h, w = info.inputs[0].shape
    values = {
        "gpu-id": gpu_id,
        "onnx-file": onnx_name,
        "labelfile-path": "labels.txt",
        "batch-size": batch_size,
        "network-mode": NETWORK_MODE[info.precision],
        "network-type": 2,
        "num-detected-classes": len(info.classes),
        "infer-dims": f"{c};{h};{w}",
        "output-blob-names": "probabilities",
        "net-scale-factor": _fmt(mapped.net_scale_factor),
        "offsets": ";".join(_fmt(o) for o in mapped.offsets),
        "model-color-format": 0 if pre.channel_order == "RGB" else 1,
        "scaling-filter": SCALING_FILTER.get(pre.interpolation, 1),
        "maintain-aspect-ratio": 0,
        "segmentation-threshold": "0.0",
        "segmentation-output-order": 0,
        "gie-unique-id": 1,
        "process-mode": 1,
    }
    folded = "; 1/std folded into the first convolution" if mapped.fold_std else ""
    header = [
        f"# nvinfer config written by segedge from {path.name} (precision {info.precision}{folded}).",
        "# Preprocessing y = net-scale-factor * (x - offsets[c]) reproduces the artifact's contract;",
        "# the ONNX ends in Softmax and segmentation-threshold=0.0 labels every pixel.",
        "[property]",
    ]
    text = "\n".join(header + [f"{k}={v}" for k, v in values.items()]) + "\n"
    check_nvinfer_text(text, config)
    out.mkdir(exist_ok=True)
    with atomic_path(out / onnx_name, overwrite=force) as tmp:
        onnx.save(model, str(tmp))
    atomic_write_text(out / "labels.txt", "\n".join(info.classes) + "\n", overwrite=force)
    atomic_write_text(config, text, overwrite=force)
    return config


def check_nvinfer(config: Path) -> configparser.SectionProxy:
    """Parse an nvinfer config file and check its ``[property]`` keys against the documented ones.

    Raises:
        ExportError: no ``[property]`` group, an undocumented key, or a required key missing.
    """
    return check_nvinfer_text(config.read_text(), config)


def check_nvinfer_text(text: str, config: Path) -> configparser.SectionProxy:
    """:func:`check_nvinfer` on the config's text (before it is written; ``config`` names it in messages).

    Raises:
        ExportError: see :func:`check_nvinfer`.
    """
    parser = configparser.ConfigParser()
    parser.read_string(text)
    if not parser.has_section("property"):
        raise ExportError(f"{config}: no [property] group")
    prop = parser["property"]
    unknown = sorted(set(prop) - DOCUMENTED_KEYS)
    missing = [k for k in REQUIRED if k not in prop]
    if unknown or missing:
        raise ExportError(f"{config}: undocumented keys {unknown}, missing required keys {missing}")
    return prop
