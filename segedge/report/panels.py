"""Pictures of one image for the report: reference | candidate | ground truth | disagreement."""

from __future__ import annotations

import cv2
import numpy as np

from segedge.runtime.overlay import Overlay

PANEL_SCALE = 2  # model-resolution maps (128x128) are drawn at twice their size
DISAGREEMENT_BGR = (0, 0, 255)  # red


def worst_case_panels(
    image: np.ndarray, reference: np.ndarray, candidate: np.ndarray, truth: np.ndarray | None, palette=None
) -> np.ndarray:
    """Side-by-side overlays of one image.

    Args:
        image: ``(H, W, 3)`` BGR uint8 original.
        reference, candidate: ``(h, w)`` uint8 class maps at the model resolution.
        truth: ``(h, w)`` uint8 ground-truth classes, or ``None`` (the panel is left out).
        palette: BGR colour per class (the model contract's; default: the Pet palette).

    Returns:
        ``(PANEL_SCALE * h, n * PANEL_SCALE * w + 4 * (n - 1), 3)`` BGR uint8: ``n`` = 4
        panels (3 without ``truth``) separated by 4-pixel white gaps: the reference's and the candidate's class overlays (pet orange, border
        yellow), the ground truth's, and the pixels where the two models disagree in red on a
        grey copy of the image.
    """
    h, w = reference.shape
    size = (w * PANEL_SCALE, h * PANEL_SCALE)
    base = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    overlay = Overlay(alpha=0.55) if palette is None else Overlay(palette, alpha=0.55)
    panels = [overlay.draw(base.copy(), reference), overlay.draw(base.copy(), candidate)]
    if truth is not None:
        panels.append(overlay.draw(base.copy(), truth))
    grey = cv2.cvtColor(cv2.cvtColor(base, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    differ = cv2.resize((reference != candidate).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    grey[differ] = DISAGREEMENT_BGR
    panels.append(grey)
    gap = np.full((size[1], 4, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, axis=1)
