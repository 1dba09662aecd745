"""The report's data model and its JSON form (``report.json``), schema version 2.

``report.json`` is ``DriftReport.to_dict()``; every other output (Markdown, HTML, plots,
the terminal table) is rendered from the same objects. Ratios lie in [0, 1]; "points" are
ratio differences; times are ms; sizes MB (10^6 bytes). ``null`` means "not measured"
(no labels, no video, not applicable). Version 2 keeps every version 1 field.

Top level::

    schema_version    int, 2
    segedge_version   str
    created           str, ISO 8601 UTC
    reference         str, name of the reference model (a ``models[].name``)
    data              {source: str, images: int, labelled: bool, split: str|null,
                       article: null | {citation: str, pixel_accuracy: {segnet: 0.8828,
                       "segnet-dsc": 0.8696}, reference_model: str|null}}  (article: only on
                       the full Oxford-IIIT Pet test split, 3669 images)
    models            [model], the reference first
    video             null | video (see below)

model::

    name, artifact (str|null), backend, precision     str
    is_reference                                      bool
    pixel_accuracy, miou, article_iou, border_f1      float|null (null: unlabelled data)
    iou_per_class                                     {class: float|null}|null
    confusion                                         [[int]] rows ground truth, columns prediction|null
    agreement                                         float, pixels whose argmax equals the reference's
    agreement_confusion                               [[int]] rows reference, columns this model|null
    per_image_agreement                               [float], one per image, in data order
    logits_error                                      {max, mean, p99: float} of |logit - reference logit||null
    deltas                                            {metric: float|null} this minus the reference, points
    iou_delta_per_class                               {class: float|null}|null
    worst                                             [{name, index, agreement, image}], lowest agreement first;
                                                      image: PNG path relative to report.json
    latency_ms                                        {p50, p90, p99, mean, runs} at batch 1 (version 1 field)
    speed                                             {latency: {"1"|"8": {batch, runs, warmup, p50, p90, p99, mean,
                                                      throughput, samples_ms: [float]}}, size_mb, peak_rss_delta_mb}
    size_mb                                           float|null
    fp32_model                                        str|null, name of the FP32 candidate this (INT8 or FP16)
                                                      model was made from: same checkpoint, same target form
                                                      preferred (optional: older reports load as null)
    fp32_agreement                                    float|null, pixels whose argmax equals fp32_model's (optional)

video::

    source, gt_masks (str|null), frames (int), every (int)
    reference_iou     [float|null] per frame: pet IoU of the reference vs the ground-truth masks|null
    reference_object_iou  [float|null] per frame: object IoU (pet or border vs the whole-animal mask)|null
    candidates        [{name, agreement: float, per_frame_agreement: [float], per_frame_iou: [float|null]|null,
                        mean_iou: float|null, per_frame_object_iou: [float|null]|null, mean_object_iou: float|null}]
                      (the object IoU fields are optional: reports written before them load as null)
"""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

import segedge
from segedge.errors import InputError
from segedge.report.speed import SpeedReport

SCHEMA_VERSION = 2


@dataclass
class WorstCase:
    """One of a candidate's lowest-agreement images. ``panels`` (not in JSON) is the BGR
    uint8 picture written to ``image``: reference | candidate | ground truth | disagreement."""

    name: str
    index: int  # position in the evaluation data
    agreement: float
    image: str  # PNG path relative to the report directory
    panels: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass
class ModelReport:
    """One row of the report: a model scored on the evaluation data (see the module
    docstring for every field)."""

    name: str
    artifact: str | None
    backend: str
    precision: str
    pixel_accuracy: float | None
    miou: float | None
    iou_per_class: dict[str, float | None] | None
    agreement: float
    latency_ms: dict[str, float]
    size_mb: float | None
    is_reference: bool = False
    article_iou: float | None = None
    border_f1: float | None = None
    confusion: list[list[int]] | None = None
    agreement_confusion: list[list[int]] | None = None
    per_image_agreement: list[float] = field(default_factory=list)
    logits_error: dict[str, float] | None = None
    deltas: dict[str, float | None] = field(default_factory=dict)
    iou_delta_per_class: dict[str, float | None] | None = None
    worst: list[WorstCase] = field(default_factory=list)
    speed: SpeedReport | None = None
    fp32_model: str | None = None
    fp32_agreement: float | None = None


@dataclass
class VideoCandidate:
    """Frame-by-frame drift of one candidate on a clip."""

    name: str
    agreement: float  # over all pixels of all frames
    per_frame_agreement: list[float]
    per_frame_iou: list[float | None] | None = None  # pet IoU vs the ground-truth mask
    mean_iou: float | None = None
    per_frame_object_iou: list[float | None] | None = None  # object IoU: pet or border vs the whole-animal mask
    mean_object_iou: float | None = None


@dataclass
class VideoDrift:
    """Candidates against the reference on a video, frame by frame."""

    source: str
    gt_masks: str | None
    frames: int
    every: int
    reference_iou: list[float | None] | None
    candidates: list[VideoCandidate]
    reference_object_iou: list[float | None] | None = None


@dataclass
class DriftReport:
    """The whole comparison, rendered to JSON (schema ``SCHEMA_VERSION``), Markdown, HTML."""

    data: dict[str, Any]
    reference: str
    models: list[ModelReport]
    video: VideoDrift | None = None
    schema_version: int = SCHEMA_VERSION
    segedge_version: str = segedge.__version__
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (pictures left out; NaN becomes ``null``)."""
        data = asdict(self)
        for model in data["models"]:
            for case in model["worst"]:
                case.pop("panels", None)
        return _finite(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DriftReport":
        """Rebuild a report from its JSON form (after :func:`validate_report`).

        Raises:
            InputError: not a valid version-2 report.
        """
        validate_report(data)
        models = []
        for raw in data["models"]:
            model = dict(raw)
            model["worst"] = [WorstCase(**case) for case in model["worst"]]
            model["speed"] = SpeedReport.from_dict(model["speed"]) if model.get("speed") else None
            models.append(ModelReport(**model))
        video = None
        if data.get("video"):
            raw = dict(data["video"])
            raw["candidates"] = [VideoCandidate(**c) for c in raw["candidates"]]
            video = VideoDrift(**raw)
        top = {f.name: data[f.name] for f in fields(cls) if f.name not in ("models", "video")}
        return cls(models=models, video=video, **top)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_MODEL_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "artifact": (str, type(None)), "backend": (str,), "precision": (str,), "is_reference": (bool,),
    "pixel_accuracy": _OPT_NUM, "miou": _OPT_NUM, "article_iou": _OPT_NUM, "border_f1": _OPT_NUM,
    "iou_per_class": (dict, type(None)), "confusion": (list, type(None)), "agreement": _NUM,
    "agreement_confusion": (list, type(None)), "per_image_agreement": (list,), "logits_error": (dict, type(None)),
    "deltas": (dict,), "iou_delta_per_class": (dict, type(None)), "worst": (list,), "latency_ms": (dict,),
    "speed": (dict, type(None)), "size_mb": _OPT_NUM,
}


def validate_report(data: Any) -> None:
    """Check a parsed ``report.json`` against the version-2 schema (types of every field
    listed in the module docstring, one reference model first).

    Raises:
        InputError: the first mismatch, naming the field.
    """

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise InputError(f"report.json: {where}: {what}")

    need(isinstance(data, dict), "top level", "expected an object")
    need(data.get("schema_version") == SCHEMA_VERSION, "schema_version", f"expected {SCHEMA_VERSION}, got {data.get('schema_version')!r}")
    for key, kinds in (("segedge_version", (str,)), ("created", (str,)), ("reference", (str,)), ("data", (dict,)), ("models", (list,))):
        need(isinstance(data.get(key), kinds), key, f"expected {kinds[0].__name__}, got {type(data.get(key)).__name__}")
    for key, kinds in (("source", (str,)), ("images", (int,)), ("labelled", (bool,))):
        need(isinstance(data["data"].get(key), kinds), f"data.{key}", f"expected {kinds[0].__name__}")
    need(bool(data["models"]) and data["models"][0].get("is_reference") is True, "models", "the reference must come first")
    for i, model in enumerate(data["models"]):
        need(isinstance(model, dict), f"models[{i}]", "expected an object")
        for key, kinds in _MODEL_TYPES.items():
            need(key in model, f"models[{i}].{key}", "missing")
            need(isinstance(model[key], kinds) and not (kinds != (bool,) and isinstance(model[key], bool)),
                 f"models[{i}].{key}", f"unexpected type {type(model[key]).__name__}")
        for key, kinds in (("fp32_model", (str, type(None))), ("fp32_agreement", _OPT_NUM)):  # optional fields
            need(isinstance(model.get(key), kinds) and not isinstance(model.get(key), bool), f"models[{i}].{key}",
                 f"unexpected type {type(model.get(key)).__name__}")
        need({"p50", "p99"} <= set(model["latency_ms"]), f"models[{i}].latency_ms", "needs p50 and p99")
        for j, case in enumerate(model["worst"]):
            need(isinstance(case, dict) and {"name", "index", "agreement", "image"} <= set(case), f"models[{i}].worst[{j}]", "needs name, index, agreement, image")
        if model["speed"] is not None:
            need(isinstance(model["speed"].get("latency"), dict), f"models[{i}].speed.latency", "expected an object")
            for size, lat in model["speed"]["latency"].items():
                need(isinstance(lat, dict) and {"batch", "runs", "p50", "p90", "p99", "throughput"} <= set(lat),
                     f"models[{i}].speed.latency[{size}]", "needs batch, runs, p50, p90, p99, throughput")
    video = data.get("video")
    if video is not None:
        need(isinstance(video, dict) and isinstance(video.get("candidates"), list), "video", "expected an object with candidates")
        for j, cand in enumerate(video["candidates"]):
            need(isinstance(cand, dict) and isinstance(cand.get("per_frame_agreement"), list), f"video.candidates[{j}]", "needs per_frame_agreement")
