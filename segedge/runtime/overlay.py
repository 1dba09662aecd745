"""Drawing: class-coloured overlay of a mask on a frame, and a HUD line."""

from __future__ import annotations

import cv2
import numpy as np

from segedge.data.oxford_pet import CLASS_PALETTE as DEFAULT_PALETTE


class Overlay:
    """Blends class colours into frames with OpenCV table lookups (no per-pixel Python or
    NumPy fancy indexing), reusing its buffers across frames of one size.

    Args:
        palette: BGR colour per class index, ``None`` for classes left undrawn.
        alpha: colour weight in [0, 1].

    Raises:
        ValueError: alpha outside [0, 1] or more than 256 classes.
    """

    def __init__(self, palette=DEFAULT_PALETTE, alpha: float = 0.5):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if len(palette) > 256:
            raise ValueError("at most 256 classes can be drawn")
        self.alpha = alpha
        self._colour_lut = np.zeros((1, 256, 3), dtype=np.uint8)
        self._drawn_lut = np.zeros(256, dtype=np.uint8)
        for index, colour in enumerate(palette):
            if colour is not None:
                self._colour_lut[0, index] = colour
                self._drawn_lut[index] = 255
        self._size: tuple[int, int] | None = None

    def _buffers(self, h: int, w: int) -> None:
        if self._size != (h, w):
            self._size = (h, w)
            self._full = np.empty((h, w), dtype=np.uint8)
            self._full3 = np.empty((h, w, 3), dtype=np.uint8)
            self._colours = np.empty((h, w, 3), dtype=np.uint8)
            self._blend = np.empty((h, w, 3), dtype=np.uint8)
            self._drawn = np.empty((h, w), dtype=np.uint8)

    def draw(self, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Blend ``mask`` into ``frame`` in place.

        Args:
            frame: ``(H, W, 3)`` uint8 BGR, modified in place.
            mask: ``(h, w)`` uint8 class map at the model resolution; upsampled to
                ``(H, W)`` with nearest neighbour.

        Returns:
            ``frame``.
        """
        h, w = frame.shape[:2]
        self._buffers(h, w)
        cv2.resize(mask, (w, h), dst=self._full, interpolation=cv2.INTER_NEAREST)
        cv2.cvtColor(self._full, cv2.COLOR_GRAY2BGR, dst=self._full3)
        cv2.LUT(self._full3, self._colour_lut, dst=self._colours)
        cv2.addWeighted(frame, 1.0 - self.alpha, self._colours, self.alpha, 0.0, dst=self._blend)
        cv2.LUT(self._full, self._drawn_lut, dst=self._drawn)
        cv2.copyTo(self._blend, self._drawn, frame)
        return frame


def draw_hud(frame: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner on a dark band (in place)."""
    scale = max(0.45, frame.shape[1] / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(frame, (0, 0), (tw + 12, th + base + 10), (0, 0, 0), thickness=-1)
    cv2.putText(frame, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame
