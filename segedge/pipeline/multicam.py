"""Several sources in one ``segedge run``: the list of sources, a name for each, its own output
paths (checked the way one source's are), and the sources opened so that one that cannot be
opened does not stop the others.

An output option given with several sources is a folder or a pattern:

- ``-o out/`` -> ``out/NAME.mp4``; ``-o "out/{name}.mkv"`` -> ``out/NAME.mkv``
- ``--stats stats/`` -> ``stats/NAME.jsonl``; ``--stats "runs/{name}-stats.jsonl"``
- ``--save-masks masks/`` -> ``masks/NAME/NNNNNN.png``; ``--save-masks "masks-{name}"``

Each path is checked before any work with :func:`segedge._io.check_output` (its folder
exists and is writable, it is no input, an existing file needs ``force``), no two outputs
may be one file, and a per-source mask folder that is a symbolic link is refused: segedge
never writes through a link it did not name. Files are written as for one source (an
exclusive temporary file renamed over the destination, so a planted link there is replaced,
never followed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segedge._io import check_output, resolved
from segedge.data.sources import FrameSource, open_source, source_names
from segedge.errors import InputError, SourceError

NAME = "{name}"  # the placeholder an output pattern holds
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")
STATS_SUFFIXES = (".jsonl", ".json", ".ndjson", ".txt", ".log")


@dataclass
class SourcePlan:
    """One source of a multi-source run and where its outputs go."""

    spec: str  # as given (camera index, file, URL, pipeline)
    name: str  # short, unique, safe as a file name (segedge.data.sources.source_name)
    video: Path | None = None  # annotated MP4
    stats: Path | None = None  # JSON lines
    masks: Path | None = None  # folder of PNG class maps


def _expand(value: Path, name: str, suffix: str, option: str, file_suffixes: tuple[str, ...], count: int) -> Path:
    """``value`` for source ``name``: a pattern with ``{name}``, else a folder holding ``NAME + suffix``."""
    text = str(value)
    if NAME in text:
        return Path(text.replace(NAME, name))
    if value.suffix.lower() in file_suffixes and not value.is_dir():
        example = f"{value.parent / NAME}{value.suffix}"
        raise InputError(f"{option} {value} names one file, but {count} sources run; give a folder ({option} {value.parent / value.stem}/) "
                         f"or a pattern with {NAME} ({option} '{example}')")
    return value / f"{name}{suffix}"


def _folder_for(value: Path | None, option: str, inputs: list[Path | None], created: list[Path]) -> None:
    """Create the folder an option names (not a pattern), checked as an output folder; what
    was created is appended to ``created``."""
    if value is None or NAME in str(value) or value.is_dir():
        return
    check_output(value, inputs, directory=True, option=option)
    value.mkdir()
    created.append(value)


def plan_sources(
    specs: list[str],
    output: Path | None = None,
    stats: Path | None = None,
    masks: Path | None = None,
    inputs: list[Path | None] | None = None,
    force: bool = False,
) -> list[SourcePlan]:
    """Name each source and give it its own output paths, checked before any work.

    Args:
        specs: the sources, as given to ``--source`` / ``--sources``.
        output: ``-o``: a folder or a pattern with ``{name}`` (video files).
        stats: ``--stats``: a folder or a pattern (JSON-lines files).
        masks: ``--save-masks``: a folder (one sub-folder per source) or a pattern.
        inputs: files the run reads besides the sources (artifact, reference): no output may be one.
        force: replace existing output files.

    Returns:
        One :class:`SourcePlan` per source, in order.

    Raises:
        InputError: an option naming one file for several sources, an output that is an
            input, exists without ``force``, lies in a missing or read-only folder, is the
            output of another source or option, or a per-source mask folder that is a link.
    """
    inputs = [*(Path(s) for s in specs if os.path.lexists(s)), *(inputs or [])]
    created: list[Path] = []  # folders made here, removed again (empty) when a check fails
    try:
        for value, option in ((output, "-o/--output"), (stats, "--stats")):
            if value is not None and NAME not in str(value) and value.suffix.lower() not in (VIDEO_SUFFIXES if option == "-o/--output" else STATS_SUFFIXES):
                _folder_for(value, option, inputs, created)
        _folder_for(masks, "--save-masks", inputs, created)
        return _plan(specs, output, stats, masks, inputs, force)
    except BaseException:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def _plan(specs: list[str], output: Path | None, stats: Path | None, masks: Path | None, inputs: list[Path | None],
          force: bool) -> list[SourcePlan]:
    plans = [SourcePlan(spec, name) for spec, name in zip(specs, source_names(specs))]
    count = len(plans)
    seen: dict[Path, str] = {}
    for plan in plans:
        if output is not None:
            plan.video = _expand(output, plan.name, ".mp4", "-o/--output", VIDEO_SUFFIXES, count)
            if plan.video.suffix.lower() not in VIDEO_SUFFIXES:
                raise InputError(f"-o/--output {output}: {plan.video} is not a video file name ({', '.join(VIDEO_SUFFIXES)})")
        if stats is not None:
            plan.stats = _expand(stats, plan.name, ".jsonl", "--stats", STATS_SUFFIXES, count)
        if masks is not None:
            plan.masks = _expand(masks, plan.name, "", "--save-masks", (), count)
        for path, option, directory in ((plan.video, "-o/--output", False), (plan.stats, "--stats", False), (plan.masks, "--save-masks", True)):
            if path is None:
                continue
            if directory and path.is_symlink():
                raise InputError(f"{option} for {plan.name}: {path} is a symbolic link (to {os.readlink(path)}); "
                                 "segedge does not write through a link it did not name: remove it or choose another folder")
            check_output(path, inputs, force=force, directory=directory, option=f"{option} for {plan.name}")
            key = resolved(path)
            if key in seen:
                raise InputError(f"{option} for {plan.name} is {path}, which {seen[key]} writes too; give each output its own file")
            seen[key] = f"{option} for {plan.name}"
    return plans


def open_sources(plans: list[SourcePlan], decode_threads: int = 1) -> tuple[list[FrameSource | None], list[str]]:
    """Open every source; one that cannot be opened is reported, the others are opened.

    Returns:
        ``(sources, failures)``: per plan its opened source (``None`` where it failed), and
        ``"NAME: why"`` for each failure.

    Raises:
        BackendUnavailableError, InputError: a source no retry can fix (a GStreamer pipeline
            where OpenCV has no GStreamer, a pipeline without appsink); the sources opened
            so far are closed first.
        SourceError: no source could be opened.
    """
    sources: list[FrameSource | None] = []
    failures: list[str] = []
    try:
        for plan in plans:
            try:
                sources.append(open_source(plan.spec, decode_threads=decode_threads))
            except SourceError as exc:
                sources.append(None)
                failures.append(f"{plan.name}: {exc}")
    except BaseException:
        for source in sources:
            if source is not None:
                source.close()
        raise
    if all(source is None for source in sources):
        raise SourceError(f"no source could be opened ({'; '.join(failures)})")
    return sources, failures
