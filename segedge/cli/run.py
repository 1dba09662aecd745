"""``segedge run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, fail, handle_errors
from segedge.cli.live_summary import DRIFT_EXIT_CODE, print_drift_summary, print_live_stats  # noqa: F401 (print_drift_summary: re-exported)
from segedge.contract import Backend, Provider, Upsample


@handle_errors
def run_command(
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", metavar="SOURCE", help="Camera index (0), video file, rtsp:// or http:// URL, image folder, glob, or a GStreamer pipeline ending in appsink (needs an OpenCV built with GStreamer). Repeat it for several sources, batched into one inference call.")] = None,
    sources_file: Annotated[Optional[Path], typer.Option("--sources", metavar="FILE", help="A text file of sources, one a line (blank lines and # comments skipped), as Ultralytics reads a .streams file; adds to --source.")] = None,
    engine: Annotated[Optional[Path], typer.Option("--engine", "-e", help="Artifact: .pt (PyTorch), .onnx (ONNX Runtime or OpenVINO, see --backend), .xml (OpenVINO IR) or .engine (TensorRT), or a served model: triton://HOST:PORT/MODEL (HTTP), triton+grpc://HOST:PORT/MODEL, or an embedded model by name (segnet-dsc); default: the embedded segnet-lite0 (PyTorch).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the annotated video here (.mp4, finalised even on Ctrl-C or an error). Several sources: a folder (DIR/NAME.mp4) or a pattern with {name} (out/{name}.mp4).")] = None,
    show: Annotated[bool, typer.Option("--show", help="Show a window (q or Esc quits, space pauses); several sources: one window each.")] = False,
    serve: Annotated[Optional[int], typer.Option("--serve", min=1, max=65535, help="Serve an MJPEG stream and a live page on this port; several sources: a grid of every source with its figures (/stream/K each).")] = None,
    host: Annotated[str, typer.Option(help="Address --serve binds to (0.0.0.0 exposes the camera to the network).")] = "127.0.0.1",
    save_masks: Annotated[Optional[Path], typer.Option(help="Write each frame's class map as DIR/NNNNNN.png (0 pet, 1 background, 2 border). Several sources: DIR/NAME/NNNNNN.png, or a pattern with {name}.")] = None,
    stats_file: Annotated[Optional[Path], typer.Option("--stats", help="Write per-frame statistics as JSON lines. Several sources: a folder (DIR/NAME.jsonl) or a pattern with {name}.")] = None,
    gt_masks: Annotated[Optional[Path], typer.Option(help="Per-frame binary ground-truth masks (sorted files): prints pet IoU per frame and mean (one source only).")] = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity.")] = 0.5,
    classes: Annotated[Optional[str], typer.Option(help="Comma-separated classes to draw, e.g. pet or pet,border.")] = None,
    outline: Annotated[bool, typer.Option("--outline", help="Draw class boundaries instead of filled regions.")] = False,
    smooth: Annotated[float, typer.Option(min=0.0, max=0.99, help="Temporal smoothing of class probabilities (0 off; 0.5 halves the weight of each new frame).")] = 0.0,
    realtime: Annotated[bool, typer.Option("--realtime", help="Pace a file at its frame rate and drop frames that come too late, like a camera.")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="Restart a file at its end.")] = False,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="Stop after N frames (per source).")] = None,
    max_batch: Annotated[Optional[int], typer.Option(min=1, help="Several sources: frames per inference call at most (default: the number of sources, within the artifact's batch range).")] = None,
    sequential: Annotated[bool, typer.Option("--sequential", help="Naive one-thread loop instead of the pipeline (for comparison; one source only).")] = False,
    workers: Annotated[int, typer.Option(min=0, help="Frames inferred in parallel (0: auto, one per core for ONNX Runtime, OpenVINO or PyTorch on a CPU, one for GPU backends); several sources: batches inferred in parallel.")] = 0,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads per worker, ONNX Runtime, OpenVINO or PyTorch on a CPU (0: auto, 1 when there are several workers).")] = 0,
    provider: Annotated[Provider, typer.Option(help="ONNX Runtime execution provider for .onnx artifacts.")] = Provider.CPU,
    decode_threads: Annotated[int, typer.Option(min=0, help="FFmpeg decoder threads for videos and streams (0: FFmpeg's default, one per core; 1 leaves the cores to inference).")] = 1,
    backend: Annotated[Backend, typer.Option(help="Backend for the artifact (auto: by suffix; a Q/DQ INT8 .onnx without MaxUnpool goes to OpenVINO on a CPU when installed).")] = Backend.AUTO,
    upsample: Annotated[Upsample, typer.Option(help="Mask upsampling to the frame: linear (bilinear class scores, then argmax: smooth edges) or nearest (class map, faster).")] = Upsample.LINEAR,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output or --stats file (an output that is an input is refused even so).")] = False,
    reference: Annotated[Optional[str], typer.Option("--reference", help="Drift monitor: compare live with this checkpoint or artifact on the same preprocessed input, in a low-priority thread that skips frames rather than slow the loop. `auto`: the checkpoint recorded in the artifact if it is embedded or found beside it, else the embedded segnet-lite0.", rich_help_panel="Drift monitor")] = None,
    reference_every: Annotated[int, typer.Option(min=0, help="Score every N-th frame against the reference (0: as many as the CPU allows).", rich_help_panel="Drift monitor")] = 2,
    reference_nice: Annotated[int, typer.Option(min=0, max=19, help="Scheduling niceness of the reference thread on Linux: 19 (default) only uses CPU the live loop leaves, so it never slows it but may skip most frames on a busy CPU; 0 scores more frames and costs FPS.", rich_help_panel="Drift monitor")] = 19,
    alert_window: Annotated[int, typer.Option(min=1, help="Scored frames in the running agreement (HUD, --alert-below).", rich_help_panel="Drift monitor")] = 10,
    alert_below: Annotated[Optional[float], typer.Option(min=0.0, max=100.0, help="When the running agreement falls below PCT: one warning line with the frame number and drift-alert-NNNNNN.png (reference | candidate | disagreement) beside the outputs.", rich_help_panel="Drift monitor")] = None,
    fail_below: Annotated[Optional[float], typer.Option(min=0.0, max=100.0, help=f"Exit {DRIFT_EXIT_CODE} at the end when the mean agreement is below PCT (or no frame was scored): for CI and field checks.", rich_help_panel="Drift monitor")] = None,
) -> None:
    """Segment a camera, video, stream or image folder live, with overlay, FPS and per-stage timings.

    Capture, inference and drawing run in overlapping threads; a live source keeps only its
    newest frame and is reopened with back-off if it stops. Sinks: --output video, --show
    window, --serve MJPEG page, --save-masks PNGs, --stats JSON lines. Prints FPS, per-stage
    latency p50/p99, flicker and (with --gt-masks) IoU at the end.

    With --reference (implied by --alert-below or --fail-below), a drift
    monitor scores a sample of frames against the reference model: the HUD shows the running
    agreement and the worst recent frame, --stats gets one line per scored frame (agreement,
    IoU per class against the reference, logit error), the --serve page plots it, and the
    summary gives mean, p5 and worst-frame agreement. Exit code 6 with --fail-below.

    Several sources (--source repeated, or --sources FILE): the frames the sources have ready
    are batched into one inference call (at most one per source, only frames fed at the same
    input size, within the artifact's batch range), files advancing together and cameras never
    held back. Each source has its own output, --stats file and --save-masks folder (named by
    source), HUD, FPS, reconnects and drift monitor; a source that ends or fails does not stop
    the others, and the summary has a row per source and the aggregate. The --serve page
    shows every source in a grid. Exit code 5 at the end when a source failed.
    """
    from segedge._io import check_output, resolved
    from segedge.data.sources import open_source, read_sources_file
    from segedge.errors import InputError, SourceError
    from segedge.runtime.factory import live_parallelism, load_runner
    from segedge.runtime.postprocess import GroundTruth
    from segedge.runtime.sinks import VIDEO_SUFFIXES, MaskSink, MjpegServer, StatsSink, VideoSink
    from segedge.runtime.video import LiveOptions, require_display, run_live

    specs = list(source or []) + (read_sources_file(sources_file) if sources_file is not None else [])
    if not specs:
        raise InputError("no source: give --source (repeat it for several) or --sources FILE")
    if show:
        require_display()  # before any window: Qt aborts the process without a display
    if len(specs) > 1:
        from segedge.cli.run_many import run_several

        return run_several(
            specs, engine=engine, output=output, show=show, serve=serve, host=host, save_masks=save_masks, stats_file=stats_file,
            gt_masks=gt_masks, alpha=alpha, classes=classes, outline=outline, smooth=smooth, realtime=realtime, loop=loop,
            max_frames=max_frames, max_batch=max_batch, sequential=sequential, workers=workers, threads=threads, provider=provider,
            decode_threads=decode_threads, backend=backend, upsample=upsample, force=force, reference=reference,
            reference_every=reference_every, reference_nice=reference_nice, alert_window=alert_window, alert_below=alert_below,
            fail_below=fail_below,
        )
    source = specs[0]
    if output is not None and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"--output {output}: expected a video file name ({', '.join(VIDEO_SUFFIXES)})")
    auto_workers, auto_threads = live_parallelism(engine, provider, backend)
    workers = 1 if sequential else (workers or auto_workers)
    threads = threads or (0 if sequential else auto_threads)
    runner = load_runner(engine, provider, threads=threads, spin=sequential, backend=backend, streams=workers)
    class_ids = None
    if classes:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        unknown = [n for n in names if n not in runner.classes]
        if unknown:
            raise InputError(f"unknown classes {unknown}; this model has {', '.join(runner.classes)}")
        class_ids = tuple(runner.classes.index(n) for n in names)
    ref_runner = None
    if reference is not None or alert_below is not None or fail_below is not None:  # loaded before the outputs are checked: its file is an input
        from segedge.report.monitor import DriftMonitor, load_reference

        ref_runner, note = load_reference(reference, runner)
    try:
        named = Path(reference) if reference is not None and str(reference) != "auto" else None
        inputs = [Path(source), engine, gt_masks, named, getattr(ref_runner, "artifact", None)]  # an output that is one of these is refused, --force or not
        for path, option in ((output, "--output"), (stats_file, "--stats")):
            if path is not None:
                check_output(path, inputs, force=force, option=option)
        if output is not None and stats_file is not None and resolved(output) == resolved(stats_file):
            raise InputError(f"--output and --stats are both {output}; give each its own file")
        if save_masks is not None:
            check_output(save_masks, inputs, directory=True, option="--save-masks")
        gt = GroundTruth.for_classes(gt_masks, runner.classes) if gt_masks else None
        monitor = None
        if ref_runner is not None:
            console.print(note)
            outputs = [p for p in (output, stats_file) if p is not None]
            alert_dir = outputs[0].parent if outputs else (save_masks if save_masks is not None else Path.cwd())
            monitor = DriftMonitor(ref_runner, every=reference_every, window=alert_window, alert_below=alert_below, alert_dir=alert_dir,
                                   nice=reference_nice)
            monitor.check(runner)
        options = LiveOptions(
            alpha=alpha, classes=class_ids, outline=outline, smooth=smooth, realtime=realtime, loop=loop,
            max_frames=max_frames, show=show, pipelined=not sequential, workers=workers, upsample=upsample.value,
        )
        with open_source(source, decode_threads=decode_threads) as frames:
            frames.warn_skips = False  # counted, and the first reason given, in the summary
            if monitor is not None and not frames.live and not realtime:
                monitor.wait = True  # a file has no deadline: every due frame is scored (a camera or stream skips when busy)
            sinks = []
            try:
                if output is not None:
                    sinks.append(VideoSink(output, frames.fps, overwrite=force))
                if save_masks is not None:
                    sinks.append(MaskSink(save_masks))
                if stats_file is not None:
                    sinks.append(StatsSink(stats_file, overwrite=force))
                if serve is not None:
                    server = MjpegServer(serve, host, title=f"{runner.name} on {frames.description}", monitor_window=alert_window if monitor else None)
                    sinks.append(server)
                    console.print(f"serving http://{server.address[0]}:{server.address[1]}/ (MJPEG at /stream, stats at /stats)")
            except BaseException:
                for sink in sinks:
                    sink.close(failed=True)
                raise
            with runner:
                stats = run_live(runner, frames, sinks, options, gt, monitor=monitor)
    finally:
        if ref_runner is not None:  # the reference holds a session (or a GPU context) of its own
            ref_runner.close()
    if stats.frames == 0 and not stats.interrupted:  # nothing to summarise: one line says why
        reason = f"; first: {frames.skip_reason}" if frames.skip_reason else ""
        skipped = f" ({stats.skipped} unreadable frames skipped{reason})" if stats.skipped else ""
        raise SourceError((stats.error or f"no frame of {frames.description} could be processed") + skipped)
    print_live_stats(stats, f"{runner.name} on {frames.description}")
    for sink in sinks:
        if getattr(sink, "resized", 0):
            console.print(f"warning: {sink.resized} frames of another size than the first were resized to {sink.size[0]}x{sink.size[1]} in {sink.path}")
        if getattr(sink, "partial", None) is not None:
            console.print(f"the run failed: its output was kept aside as {sink.partial}; {sink.path} was not replaced")
    if stats.output:
        console.print(f"wrote {stats.output}")
    if stats.missing:
        console.print(f"warning: {stats.missing} of {frames.total} frames of {frames.description} could not be read (truncated or corrupt file)")
    if stats.interrupted:
        console.print("stopped early (interrupted); every output was finalised")
    if stats.error:
        raise SourceError(stats.error + "; every output was finalised")
    if stats.signalled:
        raise typer.Exit(130)
    if fail_below is not None:
        drift = stats.drift
        if drift is None or not drift.scored:
            fail("--fail-below: no frame was scored against the reference, so the agreement is unknown", DRIFT_EXIT_CODE)
        if 100 * drift.mean < fail_below:
            fail(f"mean agreement with the reference {100 * drift.mean:.2f}% is below --fail-below {fail_below:g}% "
                 f"(worst {100 * drift.worst:.2f}% at frame {drift.worst_frame})", DRIFT_EXIT_CODE)
