"""Shared CLI plumbing: console, logging, and the mapping of errors to one line + exit code."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from segedge.contract import Backend
from segedge.errors import BackendUnavailableError, SegEdgeError

# Wide enough for the report tables when output goes to a file or CI log (rich assumes 80).
_width = None if sys.stdout.isatty() else 160
console = Console(stderr=False, highlight=False, soft_wrap=True, markup=False, width=_width)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, width=_width)
F = TypeVar("F", bound=Callable[..., object])
INTERNAL_ERROR = 70  # EX_SOFTWARE
ONNXRUNTIME_MISSING = (
    "ONNX Runtime is not installed: pip install 'segedge[cpu]' (CPU), or 'segedge[gpu]' on a CUDA machine "
    "(never both: they install the same onnxruntime package)"
)
INPUT_ERROR = 2  # what InputError gives: a path the user named cannot be used


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """Warnings (skipped files, fallbacks) go to stderr, one line each."""
    root = logging.getLogger("segedge")
    if not root.handlers:
        handler = _StderrHandler()  # one line per record, never wrapped
        handler.setFormatter(_RedactingFormatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if os.environ.get("SEGEDGE_DEBUG") == "1" else logging.WARNING)
        root.propagate = False


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from segedge.data.sources import redact_url

        return redact_url(super().format(record)).replace("\n", " ")


def fail(message: str, code: int) -> None:
    """Print ``message`` as one red line (URL credentials removed) and exit with ``code``."""
    from segedge.data.sources import redact_url

    message = redact_url(" ".join(str(message).split()))
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Run a command; a :class:`SegEdgeError` becomes one red line and its exit code, Ctrl-C
    exit 130, anything unexpected one line with a hint (traceback with SEGEDGE_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        setup_logging()
        debug = os.environ.get("SEGEDGE_DEBUG") == "1"
        try:
            with warnings.catch_warnings():
                if not debug:  # library warnings are for developers; users get segedge's own lines
                    warnings.simplefilter("ignore")
                return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SegEdgeError as exc:
            if os.environ.get("SEGEDGE_DEBUG") == "1":
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130)
        except OSError as exc:  # a full disk, a read-only folder, a folder where a file was expected
            if debug:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc} (check the path, free space and permissions)", INPUT_ERROR)
        except MemoryError:
            if debug:
                raise
            fail("out of memory (a very large input? try a smaller image, --limit or fewer --workers)", 1)
        except Exception as exc:  # a bug: still one line, never a traceback unless asked
            if os.environ.get("SEGEDGE_DEBUG") == "1":
                raise
            if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == Backend.ONNXRUNTIME:  # its module name
                fail(ONNXRUNTIME_MISSING, BackendUnavailableError.exit_code)  # an extra, CPU or GPU build
            fail(f"internal error: {type(exc).__name__}: {exc} (rerun with SEGEDGE_DEBUG=1 for the traceback)", INTERNAL_ERROR)

    wrapper.__doc__ = help_text(func.__doc__)  # typer's --help: the terminal wraps each paragraph
    return wrapper  # type: ignore[return-value]


def help_text(doc: str | None) -> str | None:
    """A command's docstring as its ``--help`` text: paragraphs kept, the line breaks the source
    wraps them with dropped. Typer keeps every newline of a docstring's later paragraphs and rich
    prints them, so a paragraph wrapped at 100 columns in the source broke mid-sentence at any
    terminal width; joined, rich wraps it to the terminal."""
    if not doc:
        return doc
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(doc).split("\n\n") if paragraph.strip())


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display; yields ``update(stage, done, total, info="")``, one bar per stage;
    ``info`` (e.g. a throughput) is shown after the bar."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[info]}")]
    with Progress(*columns, console=err_console, transient=False, disable=not sys.stderr.isatty() and os.environ.get("SEGEDGE_PROGRESS") != "1") as progress:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int, info: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total, info=info)
            progress.update(tasks[stage], completed=done, total=total, info=info)

        yield update
