"""Errors raised by segedge.

Every failure a user can cause (bad input, a missing optional dependency, an artifact
that does not match this machine) is a :class:`SegEdgeError`. The command line prints
its message as one line and exits with :attr:`SegEdgeError.exit_code`; library users
catch the subclass they care about.
"""

from __future__ import annotations


class SegEdgeError(Exception):
    """Base class of every user-facing segedge failure.

    The message says what was given, what was expected and, where there is one, the fix.
    """

    exit_code: int = 1


class InputError(SegEdgeError):
    """A file, directory, argument or value given by the user is unusable
    (missing, corrupt, wrong format, out of range)."""

    exit_code = 2


class DataError(InputError):
    """A data set, image, mask or video cannot be read or is empty."""


class CheckpointError(InputError):
    """A checkpoint is not a segedge/SegNet checkpoint or does not match its model."""


class ModelFormatError(InputError):
    """An ONNX model or TensorRT engine is corrupt, truncated or of an unexpected form."""


class ExportError(SegEdgeError):
    """A model could not be exported or failed its parity check."""

    exit_code = 3


class BackendUnavailableError(SegEdgeError):
    """An optional backend (TensorRT, CUDA, a camera) is not available on this machine."""

    exit_code = 4


class SourceError(SegEdgeError):
    """A live source (camera, stream, video file) could not be opened or stopped delivering frames."""

    exit_code = 5
