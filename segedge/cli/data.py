"""``segedge download-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segedge.cli.common import console, handle_errors, progress_bar


@handle_errors
def download_command(
    root: Annotated[Path, typer.Argument(help="Directory to create the Oxford-IIIT Pet root in.")],
    keep_archives: Annotated[bool, typer.Option(help="Keep the .tar.gz files after extraction.")] = False,
) -> None:
    """Download Oxford-IIIT Pet from its official site (checksummed, resumable).

    Images and trimaps, ~810 MB; MD5 checksums verified, interrupted downloads resumed, the
    official layout extracted."""
    from segedge.data.download import download_pet

    with progress_bar() as update:
        download_pet(root, update, keep_archives)
    console.print(f"Oxford-IIIT Pet is in {root} (images/, annotations/trimaps/, trainval.txt, test.txt)")
