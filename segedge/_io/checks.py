"""Outputs checked before any long work, the same way for every command."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from segedge._io.stale import sweep_stale
from segedge.errors import InputError


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with symlinks followed; a symlink loop is left unresolved
    (``Path.resolve`` raises on one)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same file (after symlinks, hard links included)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return resolved(a) == resolved(b)


def probe_writable(directory: str | os.PathLike[str]) -> None:
    """Create and remove an exclusive temporary file in ``directory``.

    Raises:
        InputError: the directory is missing, not a directory, read-only, full or not ours.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"output folder {directory} does not exist (create it first)")
    try:
        fd, name = tempfile.mkstemp(prefix=".segedge-probe.", dir=directory)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise InputError(f"cannot write in {directory}: {exc.strerror or exc}") from None


def check_output(
    path: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    force: bool = False,
    directory: bool = False,
    option: str = "-o",
) -> Path:
    """Check an output path before any long work, the same way for every command, and remove
    what a killed earlier run left while writing it (:func:`sweep_stale`).

    Args:
        path: the output file (or, with ``directory``, the output folder).
        inputs: files and folders the command reads; the output may not be any of them.
        force: allow replacing an existing output.
        directory: the output is a folder (created if missing; its parent must exist).
        option: the option name used in messages.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        InputError: the parent folder is missing or not writable, the output is a folder
            where a file is expected (or the reverse), it exists without ``force``, or it
            resolves to an input.
    """
    out = Path(path)
    for source in inputs:
        if source is not None and os.path.lexists(source) and same_file(out, source):
            raise InputError(f"{option} {out} is the input {source}; write the output elsewhere")
    if directory:
        if out.exists() and not out.is_dir():
            raise InputError(f"{option} {out} is a file; expected a folder")
    else:
        if out.is_dir():
            raise InputError(f"{option} {out} is a folder; expected a file name")
        if out.exists() and not force:
            raise InputError(f"{out} exists; pass --force to overwrite it")
    probe_writable(out.parent)
    sweep_stale(out)
    if directory and out.is_dir():
        probe_writable(out)
        sweep_stale(out, inside=True)
    return out
