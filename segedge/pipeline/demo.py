"""The whole pipeline on the embedded model and real input, no download (``segedge demo``):
export, FP32/INT8 build, live video and the drift report."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from segedge.contract import Precision, Target


@dataclass
class DemoResult:
    """What the demo wrote and measured."""

    output: Path  # the directory everything is in
    onnx: Path  # the exported FP32 ONNX
    artifacts: list[Path]  # FP32 and INT8 artifacts (engines with TensorRT, else ONNX)
    live: list[Any] = field(default_factory=list)  # LiveStats per artifact
    report: Any = None  # DriftReport
    report_files: tuple[Path, Path] | None = None  # JSON and Markdown


def _quiet(*_: Any) -> None:
    pass


def run_demo(
    output: Path,
    data: Path | None = None,
    source: str | None = None,
    limit: int | None = None,
    say: Callable[[str], None] = _quiet,
    stage: Callable[[str], None] = _quiet,
    on_live: Callable[[Any, str], None] = _quiet,
    on_report: Callable[[Any], None] = _quiet,
) -> DemoResult:
    """Run export, FP32/INT8 build, live segmentation and the drift report.

    Args:
        output: directory for everything written (created; its parent folder must exist).
        data: Oxford-IIIT Pet root: calibrate on trainval, report on test (labelled).
        source: video, camera index, URL or image folder for the live step (default: a clip
            made from scikit-image's real ``chelsea`` cat photo with simulated camera motion).
        limit: report on at most N images of ``data``.
        say, stage, on_live, on_report: progress callbacks (a line; a stage title; live
            statistics with a label; the drift report).

    Returns:
        :class:`DemoResult`.

    Raises:
        InputError, DataError, SourceError: a bad ``output``, ``data`` or ``source``, checked
            before any export work and before ``output`` is created.
    """
    from segedge.calibration.dataset import calibration_set_from_arrays, load_calibration_set
    from segedge.data.demo import make_demo_clip
    from segedge.data.sources import open_source
    from segedge.engine.tensorrt_api import engine_build_available
    from segedge.onnx.export import export_onnx
    from segedge.pipeline.build import build_artifact
    from segedge.report.drift import compare, load_eval_data
    from segedge.report.render import write_report
    from segedge.runtime.factory import live_parallelism, load_runner
    from segedge.runtime.sinks import VideoSink
    from segedge.runtime.torch_runner import TorchRunner
    from segedge.runtime.video import LiveOptions, run_live

    from segedge._io import check_output

    # Every input is checked before the first second of export work, and before the output
    # folder is created (a refused demo leaves nothing behind).
    check_output(output, [data, Path(source) if source is not None else None], directory=True, option="--output")
    reference = TorchRunner(None)
    calibration = None
    if data is not None:
        calibration = load_calibration_set(data, reference.contract.preprocess, num_images=64)
    if source is not None:
        with open_source(source):
            pass
    output.mkdir(exist_ok=True)
    stage("1/5 export")
    # With TensorRT, the standard-op form it parses; without, MaxUnpool, about 2x faster in ONNX Runtime.
    engines = engine_build_available()
    target = Target.TENSORRT if engines else Target.ONNXRUNTIME
    name = reference.contract.model  # the embedded default, segnet-lite0
    exported = export_onnx(None, output / f"{name}-fp32.onnx", target=target, force=True)  # also the FP32 artifact
    say(
        f"wrote {exported.path} ({target} form: {'TensorRT is installed' if target is Target.TENSORRT else 'no TensorRT here, so the form ONNX Runtime runs fastest'}), "
        f"{exported.nodes} nodes, parity vs PyTorch: {exported.parity.summary()}"
    )

    if source is None:
        clip = make_demo_clip(output / "chelsea-clip.mp4")
        source = str(clip)
        say(f"made {clip}: 72 frames of a real cat photo (scikit-image `chelsea`) with simulated camera motion")

    with contextlib.ExitStack() as stack:  # every runner the demo opens is closed, however it ends
        stack.enter_context(reference)
        stage("2/5 build FP32 and INT8")
        if calibration is None:
            with open_source(source) as frames:
                sample = [f for i, f in enumerate(frames) if i % 3 == 0][:64]
            calibration = calibration_set_from_arrays(sample, reference.contract.preprocess, f"every 3rd frame of {source}")
        say(f"calibration: {calibration.summary()}")
        result = DemoResult(output, exported.path, [])
        for precision in (Precision.FP32, Precision.INT8):
            built = build_artifact(exported.path, output / f"{name}-{precision}{'.engine' if engines else '.onnx'}", precision, calibration)
            say(built.note)
            result.artifacts.append(built.engine or built.onnx)

        stage("3/5 live segmentation")
        for artifact in result.artifacts:
            workers, threads = live_parallelism(artifact)
            with open_source(source) as frames, load_runner(artifact, threads=threads, spin=workers == 1) as runner:
                sink = VideoSink(output / f"live-{artifact.stem}.mp4", frames.fps)
                stats = run_live(runner, frames, [sink], LiveOptions(max_frames=300, workers=workers))
            result.live.append(stats)
            on_live(stats, f"{runner.name} on {frames.description}")

        stage("4/5 drift report")
        eval_data = load_eval_data(data, limit=limit) if data is not None else load_eval_data(source, every=2)
        runners = [stack.enter_context(load_runner(a)) for a in result.artifacts]
        result.report = compare(reference, runners, eval_data, latency_runs=30)
        result.report_files = write_report(result.report, output / "report")
        on_report(result.report)
    return result
