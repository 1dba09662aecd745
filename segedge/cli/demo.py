"""``segedge demo``: the whole pipeline on the embedded model and real input, no download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


@handle_errors
def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for everything the demo writes.")] = Path("segedge-demo"),
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Oxford-IIIT Pet root: calibrate on its trainval split and report on its test split (labelled).")] = None,
    source: Annotated[Optional[str], typer.Option("--source", "-s", help="Video, camera index, URL or image folder for the live step; default: a clip made from a real cat photo.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Report on at most N images of --data.")] = None,
) -> None:
    """Run export, FP32/INT8 build, live video and the drift report end to end, no download needed.

    Uses the embedded segnet-dsc: export to ONNX (exact unpool rewrite, parity check), build FP32
    and INT8 artifacts, segment a video with each, and write a drift report. With no options it needs no download: the video is made from
    scikit-image's real `chelsea` cat photo with simulated camera motion."""
    from segedge.calibration.dataset import calibration_set_from_arrays, load_calibration_set
    from segedge.cli.report import print_report_table
    from segedge.cli.run import print_live_stats
    from segedge.data.demo import make_demo_clip
    from segedge.data.sources import open_source
    from segedge.engine.artifacts import build_artifact
    from segedge.export.onnx import export_onnx
    from segedge.report.drift import compare, load_eval_data
    from segedge.report.render import write_report
    from segedge.runtime.factory import live_parallelism, load_runner
    from segedge.runtime.sinks import VideoSink
    from segedge.runtime.torch_runner import TorchRunner
    from segedge.runtime.video import LiveOptions, run_live

    from segedge.engine.tensorrt_api import engine_build_available

    from segedge._io import check_output

    # Every input is checked before the first second of export work, and before the output
    # folder is created (a refused demo leaves nothing behind).
    check_output(output, [data, Path(source) if source is not None else None], directory=True, option="--output")
    reference = TorchRunner(None)
    calibration = None
    if data is not None:
        calibration = load_calibration_set(data, reference.preprocess_config, num_images=64)
    if source is not None:
        with open_source(source):
            pass
    output.mkdir(exist_ok=True)
    console.rule("1/5 export")
    # With TensorRT, the standard-op form it parses; without, MaxUnpool, about 2x faster in ONNX Runtime.
    engines = engine_build_available()
    target = "tensorrt" if engines else "onnxruntime"
    exported = export_onnx(None, output / "segnet-dsc-fp32.onnx", target=target, force=True)  # also the FP32 artifact
    console.print(
        f"wrote {exported.path} ({target} form: {'TensorRT is installed' if target == 'tensorrt' else 'no TensorRT here, so the form ONNX Runtime runs fastest'}), "
        f"{exported.nodes} nodes, parity vs PyTorch: {exported.parity.summary()}"
    )

    if source is None:
        clip = make_demo_clip(output / "chelsea-clip.mp4")
        source = str(clip)
        console.print(f"made {clip}: 72 frames of a real cat photo (scikit-image `chelsea`) with simulated camera motion")

    console.rule("2/5 build FP32 and INT8")
    if calibration is None:
        with open_source(source) as frames:
            sample = [f for i, f in enumerate(frames) if i % 3 == 0][:64]
        calibration = calibration_set_from_arrays(sample, reference.preprocess_config, f"every 3rd frame of {source}")
    console.print(f"calibration: {calibration.summary()}")
    artifacts = []
    for precision in ("fp32", "int8"):
        result = build_artifact(exported.path, output / f"segnet-dsc-{precision}{'.engine' if engines else '.onnx'}", precision, calibration)
        console.print(result.note)
        artifacts.append(result.engine or result.onnx)

    console.rule("3/5 live segmentation")
    for artifact in artifacts:
        workers, threads = live_parallelism(artifact)
        with open_source(source) as frames, load_runner(artifact, threads=threads, spin=workers == 1) as runner:
            sink = VideoSink(output / f"live-{artifact.stem}.mp4", frames.fps)
            stats = run_live(runner, frames, [sink], LiveOptions(max_frames=300, workers=workers))
        print_live_stats(stats, f"{runner.name} on {frames.description}")

    console.rule("4/5 drift report")
    eval_data = load_eval_data(data, limit=limit) if data is not None else load_eval_data(source, every=2)
    runners = [load_runner(a) for a in artifacts]
    report = compare(reference, runners, eval_data, latency_runs=30)
    json_path, md_path = write_report(report, output / "report")
    print_report_table(report)

    console.rule("5/5 outputs")
    console.print(f"everything is in {output.resolve()}:")
    for path in sorted(output.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            console.print(f"  {path}  ({path.stat().st_size / 1e6:.2f} MB)")
