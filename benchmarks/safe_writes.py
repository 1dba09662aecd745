"""Cost of the hostile-input safeguards of issue 15 on the live loop's per-frame writes.

Compares, in interleaved rounds (medians), the old per-frame mask write (``cv2.imwrite`` to a
predictable temporary name, then rename) with the safe one (``cv2.imencode``, bytes through
an exclusive mkstemp descriptor, rename), and times the finished-video check (reopen the MP4,
read one frame, read the frame count) against encoding the video. Run:

    python benchmarks/safe_writes.py [--rounds 7] [--frames 49]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segedge.cpuinfo import cpu_info
from segedge.runtime.sinks import MaskSink, count_video_frames


def old_mask_write(directory: Path, index: int, mask: np.ndarray) -> None:
    final = directory / f"{index:06d}.png"
    tmp = final.with_name(f".{final.name}.tmp.png")
    cv2.imwrite(str(tmp), mask)
    os.replace(tmp, final)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=49)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mask = (rng.random((480, 854)) * 3).astype(np.uint8)  # a DAVIS-sized class map, 0..2
    mask[:, :400] = 1
    frames = [rng.integers(0, 255, (480, 854, 3), dtype=np.uint8) for _ in range(4)]
    old, new, encode, check = [], [], [], []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for r in range(args.rounds):
            a, b = work / f"old{r}", work / f"new{r}"
            a.mkdir()
            sink = MaskSink(b)
            t0 = time.perf_counter()
            for i in range(args.frames):
                old_mask_write(a, i, mask)
            t1 = time.perf_counter()
            for i in range(args.frames):
                sink.write(None, mask, {"frame": i})
            t2 = time.perf_counter()
            old.append((t1 - t0) * 1000 / args.frames)
            new.append((t2 - t1) * 1000 / args.frames)
            video = work / f"v{r}.mp4"
            t0 = time.perf_counter()
            writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 24, (854, 480))
            for i in range(args.frames):
                writer.write(frames[i % 4])
            writer.release()
            t1 = time.perf_counter()
            assert count_video_frames(video) == args.frames
            t2 = time.perf_counter()
            encode.append((t1 - t0) * 1000)
            check.append((t2 - t1) * 1000)
    print(cpu_info().describe())
    print(f"{args.rounds} interleaved rounds, medians; 854x480 frames and class maps")
    print(f"{'write':<44}{'ms':>10}{'ratio':>8}")
    m_old, m_new = statistics.median(old), statistics.median(new)
    print(f"{'mask PNG, cv2.imwrite to a fixed temp name':<44}{m_old:>10.2f}{1.0:>8.2f}")
    print(f"{'mask PNG, imencode + mkstemp descriptor':<44}{m_new:>10.2f}{m_new / m_old:>8.2f}")
    m_enc, m_chk = statistics.median(encode), statistics.median(check)
    print(f"{f'encode {args.frames}-frame MP4 (mp4v)':<44}{m_enc:>10.1f}{1.0:>8.2f}")
    print(f"{'verify it (reopen, one frame, count)':<44}{m_chk:>10.1f}{m_chk / m_enc:>8.3f}")


if __name__ == "__main__":
    main()
