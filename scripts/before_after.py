"""One frame of each shared video segmented by two models, side by side, as PNGs to look at
(written outside the repository: frames of the shared data are never committed).

    python scripts/before_after.py OLD.pt NEW.pt --videos ../shared/data/video -o runs/before-after/

Writes ``embedded-before-after-<video>.png``: the frame with the old model's overlay (left)
and the new one's (right), each panel 480 pixels wide, pet share of the frame in the caption.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

FRAMES = {"davis_libby_854x480.mp4": 24, "bikes_640x272.mp4": 120, "cockatoo_1280x720.mp4": 140}


def read_frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` of ``video`` as ``(H, W, 3)`` uint8 BGR."""
    capture = cv2.VideoCapture(str(video))
    try:
        for _ in range(index + 1):
            ok, frame = capture.read()
            if not ok:
                raise SystemExit(f"{video} has fewer than {index + 1} frames")
    finally:
        capture.release()
    return frame


def panel(runner, frame: np.ndarray, title: str) -> np.ndarray:
    class_map, overlay = runner.segment(frame)
    pet = float(np.mean(class_map == runner.classes.index("pet")))
    width = 480
    overlay = cv2.resize(overlay, (width, round(frame.shape[0] * width / frame.shape[1])), interpolation=cv2.INTER_AREA)
    bar = np.full((28, width, 3), 255, np.uint8)
    cv2.putText(bar, f"{title}: {100 * pet:.1f}% pet", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, overlay])


def main() -> None:
    from segedge._io import atomic_write_bytes
    from segedge.runtime.factory import load_runner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("-o", "--out", type=Path, default=Path("runs/before-after"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    old, new = load_runner(args.old), load_runner(args.new)
    for name, index in FRAMES.items():
        frame = read_frame(args.videos / name, index)
        image = np.hstack([panel(old, frame, f"before (frame {index})"), np.full((1, 1, 3), 255, np.uint8).repeat(
            28 + round(frame.shape[0] * 480 / frame.shape[1]), 0).repeat(8, 1), panel(new, frame, "after")])
        ok, png = cv2.imencode(".png", image)
        path = args.out / f"embedded-before-after-{Path(name).stem}.png"
        atomic_write_bytes(path, png.tobytes())
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
