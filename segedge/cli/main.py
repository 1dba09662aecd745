"""The ``segedge`` command line: one small module per command; each parses its options,
calls one library function and maps errors to one line and an exit code."""

from __future__ import annotations

import os

# OpenCV prints its own warnings (a missing camera, a codec probe) to stderr; segedge reports
# failures itself in one line. Set before anything imports cv2; SEGEDGE_DEBUG=1 keeps them.
if os.environ.get("SEGEDGE_DEBUG") != "1":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

import sys  # noqa: E402

import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from segedge import __version__  # noqa: E402
from segedge.cli.bench import bench_command  # noqa: E402
from segedge.cli.calibrate import calibrate_command  # noqa: E402
from segedge.cli.data import download_command  # noqa: E402
from segedge.cli.demo import demo_command  # noqa: E402
from segedge.cli.doctor import doctor_command  # noqa: E402
from segedge.cli.engine import build_engine_command  # noqa: E402
from segedge.cli.export import export_command  # noqa: E402
from segedge.cli.inspect import inspect_command  # noqa: E402
from segedge.cli.report import report_command  # noqa: E402
from segedge.cli.deploy import deploy_app  # noqa: E402
from segedge.cli.serve import serve_command  # noqa: E402
from segedge.cli.run import run_command  # noqa: E402
from segedge.cli.train import train_command  # noqa: E402

class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value, missing argument) as one line on stderr and
    exit code 2, instead of the usage text and a boxed message."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            typer.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # click's usage errors (typer re-exports only BadParameter of them)
            if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
                raise
            message = " ".join(exc.format_message().split())
            if type(exc).__name__ == "NoArgsIsHelpError":  # `segedge` alone: the help, as asked by no_args_is_help
                exc.show()
                sys.exit(exc.exit_code)
            context = getattr(exc, "ctx", None)
            hint = f" (see `{context.command_path} --help`)" if context is not None else ""
            typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="segedge",
    help="Take a SegNet segmentation network from PyTorch to an edge device (ONNX, INT8 Q/DQ, "
    "TensorRT) and prove nothing was lost on the way. Exit codes: 0 ok, 1 failure, 2 bad input, "
    "3 export failure, 4 backend unavailable, 5 source failure, 6 drift below run --fail-below, 70 internal error, 130 interrupted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("demo")(demo_command)
app.command("train")(train_command)
app.command("export")(export_command)
app.command("calibrate")(calibrate_command)
app.command("build-engine")(build_engine_command)
app.command("inspect")(inspect_command)
app.command("run")(run_command)
app.command("report")(report_command)
app.command("download-data")(download_command)
app.command("doctor")(doctor_command)
app.command("bench")(bench_command)
app.add_typer(deploy_app, name="deploy")
app.command("serve")(serve_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
