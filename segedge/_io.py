"""Safe file writing: every artifact is written to an exclusive temporary file beside its
destination and renamed into place, and every output is checked before long work starts.

Why each rule (issue 15, hostile-input review):

- Temporary files come from :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``, random name), so
  a symlink planted at a predictable name cannot redirect a write; bytes go through the
  descriptor mkstemp returned. :func:`os.replace` replaces a symlink at the destination
  instead of writing through it.
- :func:`check_output` refuses, before any work, an output whose folder is missing or not
  writable, a file output that is a folder (and the reverse), an existing output without
  ``force`` and an output that resolves to one of the command's inputs (even with ``force``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from segedge.errors import InputError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _umask()
_MODE = 0o666 & ~_UMASK  # what open() would give a new file; mkstemp alone gives 0600
_DIR_MODE = 0o777 & ~_UMASK  # what mkdir() would give; mkdtemp alone gives 0700


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield an exclusive temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the destination directory (so the rename is atomic on
    POSIX), has a random name created with ``O_EXCL`` and is removed if the body raises, so
    an interrupted write never replaces or truncates an existing artifact.

    Args:
        path: final destination. Its parent directory is created if missing.
        overwrite: replace an existing ``path``; False creates it exclusively and raises
            :class:`InputError` if it appeared meanwhile.

    Yields:
        A path the body writes the whole artifact to.

    Raises:
        InputError: ``overwrite`` is False and ``path`` exists.
        OSError: the folder cannot be written (full disk, read-only, permissions).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _MODE)
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    tmp = Path(tmp_name)
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
    """Check an output path before any long work, the same way for every command.

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
    if directory and out.is_dir():
        probe_writable(out)
    return out


def replace_directory(staged: Path, final: Path) -> None:
    """Move a fully written folder ``staged`` onto ``final`` (both in one parent folder): the
    old ``final`` is renamed aside, the new one renamed in, the old one removed, so readers
    see either the whole old folder or the whole new one (never a mix of files).

    Raises:
        OSError: a rename failed; ``final`` is then left as it was.
    """
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
        os.rmdir(old)
        os.rename(final, old)
    try:
        os.rename(staged, final)
    except OSError:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh folder beside ``final``; on success it replaces ``final`` whole
    (:func:`replace_directory`), on failure it is removed and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{final.name}.new.", dir=final.parent))
    try:
        yield staged
        os.chmod(staged, _DIR_MODE)
        replace_directory(staged, final)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
