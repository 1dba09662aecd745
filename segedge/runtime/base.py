"""One interface for every backend (the Polygraphy pattern): :class:`Runner` validates
inputs, owns the preprocessing contract and the life cycle; a backend implements
``_infer`` only."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Sequence, overload

import numpy as np

from segedge.contract import Backend, Contract, Precision, PreprocessConfig
from segedge.data.transforms import preprocess
from segedge.errors import InputError


class Runner(abc.ABC):
    """A loaded model that maps preprocessed batches to logits.

    Subclasses set :attr:`contract` (read from the artifact with :class:`~segedge.contract.Contract`),
    ``artifact`` and ``max_batch`` in ``__init__`` and implement :meth:`_infer`.

    Attributes:
        backend: the :class:`~segedge.contract.Backend`.
        contract: the artifact's deployment contract (preprocessing, classes, palette,
            precision, provenance).
        artifact: path of the loaded file (``None`` for an in-memory model).
        max_batch: largest batch the artifact accepts (``None``: unbounded).
    """

    backend: Backend
    contract: Contract = Contract(declared=False)
    artifact: Path | None = None
    max_batch: int | None = None

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The preprocessing the artifact was trained with (``contract.preprocess``)."""
        return self.contract.preprocess

    @preprocess_config.setter
    def preprocess_config(self, value: PreprocessConfig) -> None:
        self.contract = self.contract.replace(preprocess=value)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in logit order (``contract.classes``)."""
        return self.contract.classes

    @property
    def precision(self) -> Precision:
        """Numeric precision of the artifact (``contract.precision``)."""
        return self.contract.precision

    @precision.setter
    def precision(self, value: Precision | str) -> None:
        self.contract = self.contract.replace(precision=Precision(value))

    @property
    def name(self) -> str:
        """Short label for tables: ``<artifact stem> (<backend> <precision label>)``."""
        stem = self.artifact.name if self.artifact else "model"
        return f"{stem} ({self.backend} {self.precision_label})"

    @property
    def precision_label(self) -> str:
        """The precision as tables show it: ``int8 QAT`` for an INT8 artifact of
        quantization-aware training (its calibration record says so), else the precision."""
        return f"{self.precision} QAT" if self.contract.calibration.get("qat") else str(self.precision)

    @property
    def size_mb(self) -> float | None:
        """Artifact size on disk in MB (10^6 bytes)."""
        return os.path.getsize(self.artifact) / 1e6 if self.artifact and self.artifact.is_file() else None

    def infer(self, batch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Run the model.

        Args:
            batch: ``(N, 3, H, W)`` float32 preprocessed input (see :meth:`preprocess`),
                ``(H, W)`` = ``preprocess_config.size``, or any size the contract
                :meth:`~segedge.contract.Contract.accepts` (multiples of its size multiple
                for a model of any input size).
            out: optional C-contiguous ``(N, num_classes, H, W)`` float32 buffer for the
                logits (the live loop reuses one; backends that can write into it do).

        Returns:
            ``(N, num_classes, H, W)`` float32 logits (``out`` when given).

        Raises:
            InputError: wrong rank, shape, dtype, or a batch above ``max_batch``.
        """
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            raise InputError(f"expected a float32 numpy batch, got {getattr(batch, 'dtype', type(batch).__name__)}")
        h, w = batch.shape[2:] if batch.ndim == 4 else self.preprocess_config.size
        if batch.ndim != 4 or batch.shape[1] != 3 or not self.contract.accepts(h, w):
            th, tw = self.preprocess_config.size
            sizes = f"{th}, {tw}" if not self.contract.any_size else f"H, W (multiples of {self.contract.size_multiple or 1})"
            raise InputError(f"expected a batch of shape (N, 3, {sizes}), got {batch.shape}")
        if self.max_batch is not None and batch.shape[0] > self.max_batch:
            raise InputError(f"batch {batch.shape[0]} exceeds this artifact's maximum batch {self.max_batch}")
        if out is not None and (out.dtype != np.float32 or out.shape != (batch.shape[0], len(self.classes), h, w) or not out.flags.c_contiguous):
            raise InputError(f"output buffer must be C-contiguous float32 {(batch.shape[0], len(self.classes), h, w)}")
        logits = self._infer(np.ascontiguousarray(batch), out)
        if out is not None and logits is not out:
            np.copyto(out, logits)
            return out
        return logits

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """Backend inference on a validated, C-contiguous ``(N, 3, H, W)`` float32 batch;
        may write into ``out`` (validated) and return it."""

    def input_size(self, frame_height: int, frame_width: int) -> tuple[int, int]:
        """``(h, w)`` in pixels at which a ``frame_height x frame_width`` frame is fed: the
        contract's input size, or its aspect-preserving size for a model of any input size
        with ``resize="aspect"`` (see :meth:`~segedge.contract.Contract.input_size_for`)."""
        return self.contract.input_size_for(frame_height, frame_width)

    def preprocess(self, images: np.ndarray | Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """The artifact's own preprocessing of BGR uint8 images into a batch.

        The input size is ``out``'s when given; otherwise :meth:`input_size` of the images
        when they all have one size, else the contract's input size.
        """
        frames = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
        size = None
        if out is not None:
            size = tuple(out.shape[2:]) if out.ndim == 4 else None
        else:
            shapes = {tuple(getattr(frame, "shape", ())[:2]) for frame in frames}
            if len(shapes) == 1 and len(first := shapes.pop()) == 2 and min(first) > 0:
                size = self.input_size(*first)
        return preprocess(frames, self.preprocess_config, out, size)

    def predict(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Segment BGR uint8 images: ``(N, h, w)`` uint8 class maps at the model resolution
        (:meth:`input_size` of the images)."""
        return self.infer(self.preprocess(images)).argmax(1).astype(np.uint8)

    @overload
    def segment(self, frame: np.ndarray, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def segment(self, frame: Sequence[np.ndarray], alpha: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def segment(self, frame, alpha=0.5):
        """Segment one BGR frame, or a batch of frames (from several cameras, of any sizes),
        into class maps and overlays at each frame's own size.

        A batch is inferred in as few calls as the artifact allows: frames are grouped by
        the input size they are fed at (:meth:`input_size`: one group for a model of fixed
        size; frames of different aspect ratios feed a model of any input size at different
        sizes, and only frames of one size share a call), each group split into calls of at
        most :attr:`max_batch` frames, and the results returned in the order given.

        Args:
            frame: one ``(H, W, 3)`` uint8 BGR image, any size (as OpenCV decodes it); or a
                sequence of them (or an ``(N, H, W, 3)`` array).
            alpha: overlay opacity in [0, 1].

        Returns:
            ``(class_map, overlay)``: ``(H, W)`` uint8 class indices (nearest-neighbour
            upsampled from the model resolution) and the ``(H, W, 3)`` uint8 BGR frame with
            the contract's palette blended in; for a batch, a list of them in input order.

        Raises:
            InputError: not an ``(H, W, 3)`` uint8 image (or a batch of them).
        """
        from segedge.runtime.overlay import Overlay

        if isinstance(frame, np.ndarray) and frame.ndim == 3:
            mask = self.predict(frame)[0]
            painter = Overlay(self.contract.palette, alpha)
            overlay = painter.draw(frame.copy(), mask)
            return painter.full_mask.copy(), overlay
        if not isinstance(frame, (list, tuple)) and not (isinstance(frame, np.ndarray) and frame.ndim == 4):
            raise InputError(f"expected one (H, W, 3) uint8 BGR frame or a sequence of them, got {getattr(frame, 'shape', type(frame).__name__)}")
        frames = list(frame)
        for index, image in enumerate(frames):
            if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) == 0:
                raise InputError(f"frame {index} of the batch is not an (H, W, 3) uint8 BGR image: {getattr(image, 'dtype', type(image).__name__)} "
                                 f"{getattr(image, 'shape', '')}")
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(frames):
            groups.setdefault(self.input_size(*image.shape[:2]), []).append(index)
        masks: list[np.ndarray | None] = [None] * len(frames)
        for size, indices in groups.items():
            step = self.max_batch or len(indices)
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                batch = self.preprocess([frames[i] for i in chunk], out=np.empty((len(chunk), 3, *size), np.float32))
                for i, mask in zip(chunk, self.infer(batch).argmax(1).astype(np.uint8)):
                    masks[i] = mask
        results = []
        for image, mask in zip(frames, masks):
            painter = Overlay(self.contract.palette, alpha)
            overlay = painter.draw(image.copy(), mask)
            results.append((painter.full_mask.copy(), overlay))
        return results

    def close(self) -> None:
        """Release backend resources (sessions, device memory)."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
