"""``segedge inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from segedge.cli.common import console, handle_errors


@handle_errors
def inspect_command(
    artifact: Annotated[Path, typer.Argument(help="An .onnx model, a .pt checkpoint or an .engine.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Describe an artifact: inputs/outputs, opset, ops, parameters, GMACs, precision, metadata, lint."""
    from rich.table import Table

    from segedge.pipeline.inspect import inspect_artifact

    info = inspect_artifact(artifact).to_dict()
    if as_json:
        console.print(json.dumps(info, indent=2, default=str))
        return
    table = Table(title=f"{artifact} ({info['kind']}, {info['size_mb']:.2f} MB)", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if key in ("artifact", "kind", "size_mb"):
            continue
        if key == "gmacs":
            value = f"{value:.3f} GMACs at {info['gmacs_at'][0]}x{info['gmacs_at'][1]}, batch 1"
        elif key == "gmacs_at":
            continue
        elif key == "parameters":
            value = f"{value:,}"
        elif key in ("inputs", "outputs"):
            value = "\n".join(f"{t['name']}: {t['dtype']} {t['shape']}" for t in value)
        elif key == "ops":
            value = ", ".join(f"{op} {n}" for op, n in value.items())
        elif key == "lint":
            value = "\n".join([value["summary"], *value["issues"]])
        elif isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items())
        table.add_row(key, str(value))
    console.print(table)
