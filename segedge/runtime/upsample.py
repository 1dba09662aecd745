"""How a model-resolution result is brought to the frame (``segedge run --upsample``); kept
apart from :mod:`segedge.runtime.overlay` so the CLI can offer it without importing OpenCV."""

from __future__ import annotations

from enum import Enum


class Upsample(str, Enum):
    """Mask upsampling mode (see :class:`~segedge.runtime.overlay.Overlay`)."""

    linear = "linear"  # class scores resized bilinearly, then the argmax at full resolution: smooth edges
    nearest = "nearest"  # the class map resized with nearest neighbour: blocky at 854x480, cheaper
