"""The one door for every byte segedge writes: exclusive temporary files beside the destination,
atomic renames, pairs published so a reader never takes a mismatched one, folders replaced
whole, outputs checked before long work, and what a killed run left behind removed by the next.

Why each rule (issue 15, hostile-input review; issue 24, second review):

- Temporary files come from :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``, random name), so
  a symlink planted at a predictable name cannot redirect a write; bytes go through the
  descriptor mkstemp returned. :func:`os.replace` replaces a symlink at the destination
  instead of writing through it.
- Every temporary name carries the writer's process id: ``.NAME.PID.XXXXXXXX.tmp`` (a file
  beside ``NAME``), ``.NAME.PID.new.XXXXXXXX`` / ``.NAME.PID.old.XXXXXXXX`` (a folder being
  replaced) and ``$TMPDIR/segedge-KIND-PID-XXXXXXXX`` (a private work folder). A run killed
  with SIGKILL cannot remove its own; :func:`check_output` (every command calls it for each
  output before any work) and :func:`private_directory` remove those of the same output or
  kind whose process no longer exists and which belong to this user (:func:`sweep_stale`).
- :func:`check_output` refuses, before any work, an output whose folder is missing or not
  writable, a file output that is a folder (and the reverse), an existing output without
  ``force`` and an output that resolves to one of the command's inputs (even with ``force``).
- A file and the manifest describing it (an engine and its ``.json`` sidecar, an OpenVINO
  ``.bin`` and its ``.xml``) are published by :func:`atomic_pair`: the payload first, the
  manifest, which records the payload's SHA-256, last; a reader checks that hash, so a crash
  between the two renames is refused as a mismatch instead of being run.
- :func:`replace_directory` swaps a staged folder with the old one in one ``renameat2(2)``
  ``RENAME_EXCHANGE`` call (Linux 3.15+), so the folder's path never stops existing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from segedge.errors import InputError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _umask()
_MODE = 0o666 & ~_UMASK  # what open() would give a new file; mkstemp alone gives 0600
_DIR_MODE = 0o777 & ~_UMASK  # what mkdir() would give; mkdtemp alone gives 0700
# .NAME.PID.XXXXXXXX.tmp[.SUFFIX] (files), .NAME.PID.new.XXXXXXXX / .NAME.PID.old.XXXXXXXX (folders)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:(?:new|old)\.[a-z0-9_]+|[a-z0-9_]+\.tmp(?:\.[A-Za-z0-9]+)?)$")
_PRIVATE = "segedge-{kind}-{pid}-"  # private work folders in the system temp folder


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


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0: nothing is sent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process; a number beyond pid_t
        return True
    return True


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def sweep_stale(path: str | os.PathLike[str], inside: bool = False) -> list[Path]:
    """Remove the temporary files and folders a killed run left while writing ``path``.

    Only names of this module's pattern (``.NAME.PID.XXXXXXXX.tmp``, ``.NAME.PID.new.XXXXXXXX``,
    ``.NAME.PID.old.XXXXXXXX``) whose process no longer exists and which this user owns are
    removed: a concurrent writer's files (its process is alive) and another user's stay.

    Args:
        path: the output; its folder is searched for temporaries of this name.
        inside: ``path`` is a folder: remove stale temporaries of any name inside it instead
            (the per-frame files of ``run --save-masks``).

    Returns:
        What was removed.
    """
    path = Path(path)
    folder = path if inside else path.parent
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or (not inside and match["name"] != path.name) or _alive(int(match["pid"])):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        _remove(Path(entry.path))
        removed.append(Path(entry.path))
    return removed


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
