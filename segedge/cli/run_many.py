"""``segedge run`` with several sources: each its own outputs, HUD, reconnects and drift
monitor, their frames batched into shared inference calls
(:mod:`segedge.runtime.multicam`, :mod:`segedge.pipeline.multicam`)."""

from __future__ import annotations

from pathlib import Path

import typer

from segedge.cli.common import console, fail
from segedge.cli.live_summary import DRIFT_EXIT_CODE, print_sources_summary
from segedge.contract import Backend, Provider, Upsample


def run_several(
    specs: list[str], *, engine: Path | None, output: Path | None, show: bool, serve: int | None, host: str, save_masks: Path | None,
    stats_file: Path | None, gt_masks: Path | None, alpha: float, classes: str | None, outline: bool, smooth: float, realtime: bool,
    loop: bool, max_frames: int | None, max_batch: int | None, sequential: bool, workers: int, threads: int, provider: Provider,
    decode_threads: int, backend: Backend, upsample: Upsample, force: bool, reference: str | None, reference_every: int,
    reference_nice: int, alert_window: int, alert_below: float | None, fail_below: float | None,
) -> None:
    """Run ``specs`` together with the options of ``segedge run`` (see its ``--help``).

    Raises:
        InputError: ``--sequential`` or ``--gt-masks`` (one source each), a bad output (see
            :func:`segedge.pipeline.multicam.plan_sources`), an unknown class.
        SourceError: no source could be opened, no frame was processed, or (at the end,
            after every output was finalised) a source failed.
    """
    from segedge.data.sources import check_pipeline, is_gstreamer_pipeline
    from segedge.errors import InputError, SourceError
    from segedge.pipeline.multicam import open_sources, plan_sources
    from segedge.runtime.factory import live_parallelism, load_runner
    from segedge.runtime.sinks import MaskSink, MjpegServer, StatsSink, VideoSink
    from segedge.runtime.video import LiveOptions, run_live

    if sequential:
        raise InputError(f"--sequential runs one source, {len(specs)} were given; drop --sequential or give one --source")
    if gt_masks is not None:
        raise InputError(f"--gt-masks scores one source against its masks, {len(specs)} were given; give one --source with it")
    for spec in specs:  # before anything is loaded or written: no retry can fix these
        if is_gstreamer_pipeline(spec):
            check_pipeline(spec)
    auto_workers, auto_threads = live_parallelism(engine, provider, backend)
    workers = workers or auto_workers
    threads = threads or auto_threads
    runner = load_runner(engine, provider, threads=threads, spin=False, backend=backend, streams=workers)
    class_ids = None
    if classes:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        unknown = [n for n in names if n not in runner.classes]
        if unknown:
            raise InputError(f"unknown classes {unknown}; this model has {', '.join(runner.classes)}")
        class_ids = tuple(runner.classes.index(n) for n in names)
    ref_runner = None
    if reference is not None or alert_below is not None or fail_below is not None:  # loaded first: its file is an input
        from segedge.report.monitor import DriftMonitor, load_reference

        ref_runner, note = load_reference(reference, runner)
    sources: list = []
    try:
        named = Path(reference) if reference is not None and str(reference) != "auto" else None
        inputs = [engine, named, getattr(ref_runner, "artifact", None)]
        plans = plan_sources(specs, output, stats_file, save_masks, inputs, force)
        sources, failures = open_sources(plans, decode_threads)
        for failure in failures:
            console.print(f"warning: {failure}; the other sources go on")
        running = [k for k, source in enumerate(sources) if source is not None]
        monitors = []
        if ref_runner is not None:
            console.print(note)
            for k in running:
                plan = plans[k]
                beside = next((p.parent for p in (plan.video, plan.stats) if p is not None), plan.masks or Path.cwd())
                monitor = DriftMonitor(ref_runner, every=reference_every, window=alert_window, alert_below=alert_below, alert_dir=beside,
                                       nice=reference_nice, name=plan.name)
                monitor.check(runner)
                monitor.wait = not sources[k].live and not realtime  # a file has no deadline: every due frame is scored
                monitors.append(monitor)
        options = LiveOptions(
            alpha=alpha, classes=class_ids, outline=outline, smooth=smooth, realtime=realtime, loop=loop, max_frames=max_frames,
            show=show, workers=workers, upsample=upsample.value, max_batch=max_batch,
        )
        sinks: list[list] = [[] for _ in running]
        try:
            for i, k in enumerate(running):
                plan, source = plans[k], sources[k]
                source.warn_skips = False  # counted, and the first reason given, in the summary
                if plan.video is not None:
                    sinks[i].append(VideoSink(plan.video, source.fps, overwrite=force))
                if plan.masks is not None:
                    sinks[i].append(MaskSink(plan.masks))
                if plan.stats is not None:
                    sinks[i].append(StatsSink(plan.stats, overwrite=force))
            if serve is not None:
                server = MjpegServer(serve, host, title=f"{runner.name} on {len(running)} sources", sources=[plans[k].name for k in running],
                                     monitor_window=alert_window if monitors else None)
                for i in range(len(running)):
                    sinks[i].append(server.sink(i))
                console.print(f"serving http://{server.address[0]}:{server.address[1]}/ (a grid of every source; MJPEG at /stream/K, stats at /stats)")
        except BaseException:
            for sink in (s for group in sinks for s in group):
                sink.close(failed=True)
            raise
        for k in running:
            console.print(f"{plans[k].name}: {sources[k].description}")
        with runner:
            stats = run_live(runner, [sources[k] for k in running], sinks, options, monitor=monitors or None,
                             names=[plans[k].name for k in running])
    finally:
        for source in sources:
            if source is not None:
                source.close()
        if ref_runner is not None:  # the reference holds a session (or a GPU context) of its own
            ref_runner.close()
    if stats.frames == 0 and not stats.interrupted:
        reasons = "; ".join(stats.failed + failures) or "no frame could be read"
        raise SourceError(f"no frame of {len(specs)} sources could be processed ({reasons})")
    print_sources_summary(stats, runner.name, failures)
    for name, group in zip(stats.names, sinks):
        for sink in group:
            if getattr(sink, "resized", 0):
                console.print(f"warning: {name}: {sink.resized} frames of another size than the first were resized to "
                              f"{sink.size[0]}x{sink.size[1]} in {sink.path}")
            if getattr(sink, "partial", None) is not None:
                console.print(f"{name} failed: its output was kept aside as {sink.partial}; {sink.path} was not replaced")
    for name, s, k in zip(stats.names, stats.sources, running):
        if s.output:
            console.print(f"wrote {s.output}")
        if s.missing:
            console.print(f"warning: {name}: {s.missing} of {sources[k].total} frames of {sources[k].description} could not be read "
                          "(truncated or corrupt file)")
    if stats.interrupted:
        console.print("stopped early (interrupted); every output was finalised")
    problems = stats.failed + failures
    if problems:
        raise SourceError(f"{len(problems)} of {len(specs)} sources failed ({'; '.join(problems)}); the others ran to their end and every output was finalised")
    if stats.signalled:
        raise typer.Exit(130)
    if fail_below is not None:
        unscored = [name for name, s in zip(stats.names, stats.sources) if s.drift is None or not s.drift.scored]
        if unscored:
            fail(f"--fail-below: no frame of {', '.join(unscored)} was scored against the reference, so the agreement is unknown", DRIFT_EXIT_CODE)
        below = [f"{name} {100 * s.drift.mean:.2f}%" for name, s in zip(stats.names, stats.sources) if 100 * s.drift.mean < fail_below]
        if below:
            fail(f"mean agreement with the reference is below --fail-below {fail_below:g}% on {', '.join(below)}", DRIFT_EXIT_CODE)
