"""What ``segedge run`` prints at the end: per-stage timings of one source, a row per source
and the aggregate for several, and the drift monitor's closing lines."""

from __future__ import annotations

from segedge.cli.common import console

DRIFT_EXIT_CODE = 6  # --fail-below: the run finished, but drifted too far from its reference


def print_live_stats(stats, label: str) -> None:
    """Summary table of a live run: frames, FPS, per-stage p50/p99 ms, drops, flicker, IoU."""
    from rich.table import Table

    notes = []
    if stats.skipped:
        notes.append(f"{stats.skipped} corrupt frames skipped" + (f" (first: {stats.skip_reason})" if stats.skip_reason else ""))
    if stats.dropped:
        notes.append(f"{stats.dropped} stale live frames dropped")
    if stats.reconnects:
        notes.append(f"{stats.reconnects} reconnects")
    if stats.mean_flicker is not None:
        notes.append(f"flicker {100 * stats.mean_flicker:.2f}% of pixels per frame")
    title = f"{label}: {stats.frames} frames in {stats.seconds:.1f} s = {stats.fps:.1f} FPS" + "".join(f", {n}" for n in notes)
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for stage, hist in stats.histograms.items():
        if hist.total:
            table.add_row("end-to-end latency" if stage == "latency" else stage, f"{hist.percentile(50):.2f}", f"{hist.percentile(99):.2f}")
    console.print(table)
    if stats.iou:
        per_frame = " ".join("-" if v != v else f"{100 * v:.0f}" for v in stats.object_iou)
        console.print(
            f"IoU against ground truth, mean over {len(stats.iou)} frames: object (pet or border) {100 * stats.mean_object_iou:.2f}%, "
            f"pet only {100 * stats.mean_iou:.2f}%; object IoU per frame (%): {per_frame}"
        )
    if stats.drift is not None:
        print_drift_summary(stats.drift)


def print_drift_summary(summary) -> None:
    """The drift monitor's closing lines: mean, p5 and worst-frame agreement, frames scored and skipped."""
    sampled = "adaptive sampling" if summary.every == 0 else ("every frame" if summary.every == 1 else f"1 frame in {summary.every}")
    skipped = f", {summary.skipped} skipped while the reference was busy" if summary.skipped else ""
    if not summary.scored:
        console.print(f"agreement with {summary.reference}: no frame scored ({summary.due} due{skipped})")
        return
    iou = ", ".join(f"{k} {100 * v:.2f}%" for k, v in summary.iou.items() if v == v)
    policy = "a file: the loop waits for the reference" if summary.waited else "live: frames skipped while the reference is busy"
    console.print(
        f"agreement with {summary.reference} ({sampled}, {summary.scored} of {summary.due} due frames scored{skipped}; {policy}): "
        f"mean {100 * summary.mean:.2f}%, p5 {100 * summary.p5:.2f}%, worst {100 * summary.worst:.2f}% at frame {summary.worst_frame}; "
        f"IoU vs reference {iou}; logit error max {summary.logits_error['max']:.3g}, p99 {summary.logits_error['p99']:.3g}"
    )
    for alert in summary.alerts:
        console.print(f"drift alert at frame {alert.frame}: running agreement {100 * alert.running:.2f}%" + (f", panel {alert.panel}" if alert.panel else ""))


def print_sources_summary(stats, label: str, failed_to_open: list[str]) -> None:
    """A row per source (frames, FPS, latency p50/p99, inference p50, drops, reconnects,
    agreement with the reference, how it ended) and the aggregate of a multi-source run."""
    from rich.table import Table

    batches = ", ".join(f"{n}x{size}" for size, n in stats.batches.items())
    title = (f"{label}: {len(stats.sources)} sources, {stats.frames} frames in {stats.seconds:.1f} s = {stats.fps:.1f} FPS in all; "
             f"{stats.calls} inference calls, mean batch {stats.mean_batch:.2f} (calls x frames: {batches or 'none'})")
    table = Table(title=title)
    for column in ("source", "frames", "FPS", "latency p50 ms", "latency p99 ms", "infer p50 ms", "dropped", "reconnects", "agreement", "ended"):
        table.add_column(column, justify="left" if column in ("source", "ended") else "right")
    for name, s in zip(stats.names, stats.sources):
        agreement = f"{100 * s.drift.mean:.2f}%" if s.drift is not None and s.drift.scored else "-"
        if s.error:
            ended = f"failed: {s.error}"
        elif s.missing:
            ended = f"cut short: {s.missing} frames lost"
        else:
            ended = "interrupted" if s.interrupted else "ok"
        table.add_row(name, str(s.frames), f"{s.fps:.1f}", f"{s.percentile_ms('latency', 50):.1f}", f"{s.percentile_ms('latency', 99):.1f}",
                      f"{s.percentile_ms('infer', 50):.1f}", str(s.dropped), str(s.reconnects), agreement, ended)
    for failure in failed_to_open:
        name, _, why = failure.partition(": ")
        table.add_row(name, "0", "-", "-", "-", "-", "-", "-", "-", f"failed: {why}")
    table.add_row("all", str(stats.frames), f"{stats.fps:.1f}", f"{stats.percentile_ms('latency', 50):.1f}",
                  f"{stats.percentile_ms('latency', 99):.1f}", f"{stats.percentile_ms('infer', 50):.1f}",
                  str(sum(s.dropped for s in stats.sources)), str(sum(s.reconnects for s in stats.sources)), "", "")
    console.print(table)
    for name, s in zip(stats.names, stats.sources):
        if s.skipped:
            console.print(f"{name}: {s.skipped} corrupt frames skipped" + (f" (first: {s.skip_reason})" if s.skip_reason else ""))
        if s.drift is not None:
            console.print(f"{name}: ", end="")
            print_drift_summary(s.drift)
