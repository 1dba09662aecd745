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

from segedge._io.checks import check_output, probe_writable, resolved, same_file
from segedge._io.files import (
    atomic_pair, atomic_path, atomic_write_bytes, atomic_write_text, create_exclusive, open_resumable, partial_name, settle, temp_file,
)
from segedge._io.folders import (
    make_private_directory, make_staged_directory, private_directory, replace_directory, staged_directory,
)
from segedge._io.stale import sweep_stale

__all__ = [
    "atomic_pair", "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output", "create_exclusive",
    "make_private_directory", "make_staged_directory", "open_resumable", "partial_name", "private_directory",
    "probe_writable", "replace_directory", "resolved", "same_file", "settle", "staged_directory", "sweep_stale", "temp_file",
]
