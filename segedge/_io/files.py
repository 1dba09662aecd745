"""Files written whole: exclusive temporary files beside the destination (named with the writer's
process id, see :mod:`segedge._io.stale`), atomic renames, pairs published manifest last, and
the two files written as they grow (a server's log, a resumable download)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from segedge.errors import InputError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _umask()
_MODE = 0o666 & ~_UMASK  # what open() would give a new file; mkstemp alone gives 0600
_DIR_MODE = 0o777 & ~_UMASK  # what mkdir() would give; mkdtemp alone gives 0700


def _prefix(final: Path) -> str:
    return f".{final.name}.{os.getpid()}."


def temp_file(path: str | os.PathLike[str], suffix: str = "") -> tuple[int, Path]:
    """Create an exclusive temporary file beside ``path`` (``.NAME.PID.XXXXXXXX.tmp`` plus
    ``suffix``, e.g. ``.mp4`` for a writer that picks its format by name), mode 0600.

    Returns:
        ``(descriptor, path)``: write through the descriptor, then publish with
        :func:`settle` or let :func:`atomic_path` do it.

    Raises:
        OSError: the folder is missing or cannot be written.
    """
    final = Path(path)
    fd, name = tempfile.mkstemp(prefix=_prefix(final), suffix=".tmp" + suffix, dir=final.parent)
    return fd, Path(name)


def _publish(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``final``; without ``overwrite`` create ``final`` exclusively
    (a hard link fails if ``final`` exists, so two concurrent writers cannot both win)."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise InputError(f"{final} exists (written meanwhile by another process?); pass --force to overwrite it") from None
    except OSError:  # a filesystem without hard links: fall back to a checked rename
        if os.path.lexists(final):
            raise InputError(f"{final} exists; pass --force to overwrite it") from None
        os.replace(tmp, final)
        return
    tmp.unlink()


def _finish(tmp: Path, durable: bool = True) -> None:
    if durable:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    os.chmod(tmp, _MODE)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True, suffix: str = "") -> Iterator[Path]:
    """Yield an exclusive temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the destination directory (so the rename is atomic on
    POSIX), has a random name created with ``O_EXCL`` and is removed if the body raises, so
    an interrupted write never replaces or truncates an existing artifact.

    Args:
        path: final destination. Its parent directory is created if missing.
        overwrite: replace an existing ``path``; False creates it exclusively and raises
            :class:`InputError` if it appeared meanwhile.
        suffix: appended to the temporary name (``.mp4``: OpenCV picks the container by it).

    Yields:
        A path the body writes the whole artifact to.

    Raises:
        InputError: ``overwrite`` is False and ``path`` exists.
        OSError: the folder cannot be written (full disk, read-only, permissions).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(final, suffix)
    os.close(fd)
    try:
        yield tmp
        _finish(tmp)
        _publish(tmp, final, overwrite)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = True, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically, through the descriptor of an exclusive
    temporary file (never by name), and return the final path.

    Args:
        path: destination; its parent directory is created if missing.
        data: the whole file.
        overwrite: see :func:`atomic_path`.
        durable: fsync before the rename (off for per-frame files, where a crash may lose the
            last frames but never leaves a partial file under the final name).

    Raises:
        InputError: ``overwrite`` is False and ``path`` exists.
        OSError: the write failed (full disk, read-only folder); nothing is left behind.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(final)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, _MODE)
        _publish(tmp, final, overwrite)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return final


def atomic_write_text(path: str | os.PathLike[str], text: str, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the final path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def partial_name(path: Path) -> Path:
    """Where a failed run keeps what it wrote: ``NAME.partial.SUFFIX`` beside ``path``."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def settle(tmp: Path, path: Path, failed: bool, overwrite: bool) -> tuple[Path | None, Path | None]:
    """Publish a finished temporary file from :func:`temp_file` (a stream written over a whole
    run: a video, statistics).

    A failed run never replaces an earlier output: its file goes aside as
    :func:`partial_name`. Without ``overwrite`` the file is linked into place, exclusively.

    Returns:
        ``(path written, partial file)``, one of them ``None``.

    Raises:
        InputError: ``overwrite`` is False and ``path`` appeared meanwhile.
        OSError: the rename failed.
    """
    _finish(tmp, durable=False)
    if failed and os.path.lexists(path):
        partial = partial_name(path)
        os.replace(tmp, partial)
        return None, partial
    _publish(tmp, path, overwrite)
    return path, None


@contextlib.contextmanager
def atomic_pair(payload: str | os.PathLike[str], manifest: str | os.PathLike[str], overwrite: bool = True) -> Iterator[tuple[Path, Path]]:
    """Write a file and the manifest that describes it (an engine and its sidecar, an IR's
    ``.bin`` and its ``.xml``) so that a reader never takes a mismatched pair.

    The body writes both temporary paths; the manifest must record the payload's SHA-256,
    and its reader must check it. On success the payload is renamed into place first and the
    manifest last: a crash between the two leaves the new payload with the old manifest,
    whose hash no longer matches, and the reader refuses it ("manifest written last", the
    layout STYLE.md names). Without ``overwrite`` both are created exclusively; if the
    manifest appeared meanwhile the payload just published is removed again.

    Yields:
        ``(payload temporary path, manifest temporary path)``.

    Raises:
        InputError: ``overwrite`` is False and either file exists.
        OSError: a write or rename failed; nothing new is left under either name.
    """
    payload, manifest = Path(payload), Path(manifest)
    payload.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        for final in (payload, manifest):
            fd, tmp = temp_file(final)
            os.close(fd)
            temps.append(tmp)
        yield temps[0], temps[1]
        for tmp in temps:
            _finish(tmp)
        _publish(temps[0], payload, overwrite)
        try:
            _publish(temps[1], manifest, overwrite)
        except BaseException:
            if not overwrite:  # ours, published a moment ago: no pair without its manifest
                payload.unlink()
            raise
    finally:
        for tmp in temps:
            if os.path.lexists(tmp):
                tmp.unlink()


def create_exclusive(path: str | os.PathLike[str], mode: int = 0o600) -> BinaryIO:
    """Open a new file for writing that did not exist and is not a symlink
    (``O_CREAT | O_EXCL | O_NOFOLLOW``): for files written as they grow (a server's log).

    Raises:
        InputError: ``path`` exists (or is a symlink).
        OSError: the folder cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise InputError(f"{path} exists; refusing to write through it") from None
    return os.fdopen(fd, "wb")


def open_resumable(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """Open a partial download for appending, or create it: the one file segedge writes under
    a predictable name (so a rerun resumes it). A symlink is refused (``O_NOFOLLOW``), and so
    is anything but a plain file of this user's with one link (a hard link planted there
    would point the appends at another file).

    Returns:
        ``(handle, bytes already there)``.

    Raises:
        InputError: a symlink, a hard-linked, foreign or special file at ``path`` (remove it).
        OSError: the folder cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path} is a symbolic link; remove it (a partial download is never written through a link)") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.getuid():
        os.close(fd)
        raise InputError(f"{path} is not a plain file of this user's with one link; remove it and rerun")
    return os.fdopen(fd, "ab"), info.st_size
