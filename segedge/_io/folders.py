"""Folders written aside and swapped in whole, and private work folders."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from segedge._io.files import _DIR_MODE, _prefix
from segedge._io.stale import _alive, _remove
from segedge.errors import InputError

_PRIVATE = "segedge-{kind}-{pid}-"  # private work folders in the system temp folder


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # renameat2(2) flags (linux/fs.h)


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """``renameat2(AT_FDCWD, source, AT_FDCWD, target, flags)``; False where the C library or
    the filesystem does not offer it (then the caller falls back to plain renames).

    Raises:
        OSError: the rename itself failed (``EEXIST`` for ``RENAME_NOREPLACE`` onto an existing path).
    """
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    at_fdcwd = -100
    if function(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def replace_directory(staged: Path, final: Path, overwrite: bool = True) -> None:
    """Move a fully written folder ``staged`` onto ``final`` (both in one parent folder) so that
    readers see either the whole old folder or the whole new one, and ``final`` never stops
    existing: the two are exchanged in one ``renameat2(RENAME_EXCHANGE)`` and the old one, now
    at ``staged``'s name, removed. Where the kernel or filesystem lacks it, the old folder is
    renamed aside and the new one in (a moment with neither).

    Args:
        staged: the new folder.
        final: where it goes.
        overwrite: replace an existing ``final``; False refuses one (atomically with
            ``RENAME_NOREPLACE`` where available).

    Raises:
        InputError: ``overwrite`` is False and ``final`` exists.
        OSError: a rename failed; ``final`` is then left as it was.
    """
    if not os.path.lexists(final):
        try:
            if _renameat2(staged, final, _RENAME_NOREPLACE):
                return
        except FileExistsError:
            pass  # appeared meanwhile: handled below
        else:
            if not os.path.lexists(final):
                os.rename(staged, final)
                return
    if not overwrite:
        raise InputError(f"{final} exists (written meanwhile by another process?); remove it or pass --force")
    if _renameat2(staged, final, _RENAME_EXCHANGE):
        shutil.rmtree(staged, ignore_errors=True)  # the old folder, now under the staged name
        return
    old = Path(tempfile.mkdtemp(prefix=_prefix(final) + "old.", dir=final.parent))
    os.rmdir(old)
    os.rename(final, old)
    try:
        os.rename(staged, final)
    except OSError:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def make_staged_directory(final: str | os.PathLike[str]) -> Path:
    """A fresh folder beside ``final`` (``.NAME.PID.new.XXXXXXXX``, the parent created if
    missing) to write a whole folder in before :func:`replace_directory` publishes it; the
    caller removes it on failure (:func:`staged_directory` does both)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=_prefix(final) + "new.", dir=final.parent))
    os.chmod(staged, _DIR_MODE)
    return staged


@contextlib.contextmanager
def staged_directory(final: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh folder beside ``final``; on success it replaces ``final`` whole
    (:func:`replace_directory`), on failure it is removed and ``final`` is untouched.

    Raises:
        InputError: ``overwrite`` is False and ``final`` exists at the end.
    """
    staged = make_staged_directory(final)
    try:
        yield staged
        replace_directory(staged, Path(final), overwrite)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def make_private_directory(kind: str) -> Path:
    """A new folder only this user can enter (mode 0700, random name) in the system temp
    folder, ``segedge-KIND-PID-XXXXXXXX``, for work files no one else may plant or read (a
    server's log, a staged repository). Stale ones of the same ``kind`` (their process gone)
    are removed first. The caller removes it (or keeps it to show a failure).

    Raises:
        OSError: the temp folder cannot be written.
    """
    root = Path(tempfile.gettempdir())
    pattern = re.compile("^" + re.escape(f"segedge-{kind}-") + r"(\d+)-[a-z0-9_]+$")  # _PRIVATE's names
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            match = pattern.match(entry.name)
            if match and not _alive(int(match[1])) and entry.stat(follow_symlinks=False).st_uid == os.getuid():
                _remove(Path(entry.path))
    return Path(tempfile.mkdtemp(prefix=_PRIVATE.format(kind=kind, pid=os.getpid()), dir=root))


@contextlib.contextmanager
def private_directory(kind: str) -> Iterator[Path]:
    """:func:`make_private_directory`, removed when the block ends."""
    folder = make_private_directory(kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
