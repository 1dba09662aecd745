"""``segedge download-data``: the official Oxford-IIIT Pet archives, checksummed and resumable.

Archives and MD5 checksums as published by the dataset's authors (the same pair
torchvision's ``OxfordIIITPet`` verifies): ``images.tar.gz`` (~792 MB) and
``annotations.tar.gz`` (~19 MB).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from segedge._io import open_resumable, settle
from segedge.errors import DataError

BASE_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"


@dataclass(frozen=True)
class Archive:
    name: str
    md5: str


ARCHIVES = (
    Archive("images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    Archive("annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f"),
)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: Path, md5: str, progress: Callable[[str, int, int], None] | None = None, chunk: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` with an HTTP Range
    request, and verify its MD5 before renaming into place.

    The ``.part`` file keeps a predictable name so that a rerun can resume it; it is opened
    through :func:`segedge._io.open_resumable`, which refuses a symlink or a hard link planted
    under that name instead of appending through it.

    Args:
        url: the archive's address.
        dest: where the verified archive goes.
        md5: its expected MD5 (hex).
        progress: ``progress(name, bytes done, bytes total)`` after each chunk.
        chunk: read size, bytes.

    Raises:
        DataError: network failure (the partial file is kept for the next try) or a
            checksum mismatch (the bad file is removed).
        InputError: something other than a plain file of this user's at ``dest.part``.
    """
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    part = dest.with_name(dest.name + ".part")
    handle, offset = open_resumable(part)
    done = offset
    with handle:
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if offset and response.status != 206:  # the server ignored Range: start over
                    handle.truncate(0)
                    offset = done = 0
                total = offset + int(response.headers.get("Content-Length", 0))
                while block := response.read(chunk):
                    handle.write(block)
                    done += len(block)
                    if progress:
                        progress(dest.name, done, total)
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"download of {url} failed ({exc}); rerun to resume from {done} bytes") from None
    if md5sum(part) != md5:
        part.unlink()
        raise DataError(f"{dest.name}: MD5 mismatch after download (expected {md5}); the file was removed, rerun to fetch it again")
    settle(part, dest, failed=False, overwrite=True)
    return dest


def download_pet(root: str | os.PathLike[str], progress: Callable[[str, int, int], None] | None = None, keep_archives: bool = False) -> Path:
    """Download and extract Oxford-IIIT Pet into ``root`` (``root/images``, ``root/annotations``).

    Raises:
        DataError: network, checksum or extraction failure.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for archive in ARCHIVES:
        path = fetch(BASE_URL + archive.name, root / archive.name, archive.md5, progress)
        try:
            with tarfile.open(path) as tar:
                tar.extractall(root, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"cannot extract {path}: {exc}") from None
        if not keep_archives:
            path.unlink()
    return root
