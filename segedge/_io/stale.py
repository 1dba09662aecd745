"""What a killed run left behind: temporary files and folders named with their writer's process
id, removed by the next run once that process is gone."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

# .NAME.PID.XXXXXXXX.tmp[.SUFFIX] (files), .NAME.PID.new.XXXXXXXX / .NAME.PID.old.XXXXXXXX (folders)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:(?:new|old)\.[a-z0-9_]+|[a-z0-9_]+\.tmp(?:\.[A-Za-z0-9]+)?)$")


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
