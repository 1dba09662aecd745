"""Training-step throughput under mixed precision: seconds per image of one optimiser step
(forward, cross-entropy, backward, Adam) of segnet-dsc and segnet, float32 against bf16
autocast on this CPU (fp16 on CUDA when present), channels_last, in interleaved rounds;
median per mode of wall and CPU time (CPU time is the steadier figure on a shared machine) and
the speed-ups taken within the same run.

    python benchmarks/train_amp.py [--models segnet-dsc segnet] [--batch 16] [--size 128] [--rounds 5]

Throughput depends on the CPU's instruction set (bf16 runs natively with AVX-512 BF16 / AMX
and is emulated, slower than float32, without) and on what else runs on the machine: read
the ratio, not the absolute figures, on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from segedge.cpuinfo import cpu_info
from segedge.models.registry import create_model
from segedge.training.loop import AMP_DTYPES, default_amp


def step_seconds(model, optimizer, x, y, device: str, dtype) -> tuple[float, float]:
    """Wall and CPU (user + system, all threads) seconds of one optimiser step."""
    started, cpu = time.perf_counter(), time.process_time()
    with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["segnet-dsc", "segnet"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    amp = default_amp(device)
    modes = ["off"] + ([amp] if amp != "off" else ["bf16"])
    console = Console()
    console.print(f"{cpu_info().describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    table = Table("model", *[f"{m} s/image" for m in modes], f"{modes[1]} speed-up (wall)",
                  *[f"{m} CPU s/image" for m in modes], f"{modes[1]} speed-up (CPU)")
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name).to(device, memory_format=torch.channels_last).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.rand(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 3, (args.batch, args.size, args.size), device=device)
        for mode in modes:  # warm-up: kernel selection and allocation
            step_seconds(model, optimizer, x, y, device, AMP_DTYPES[mode])
        wall: dict[str, list[float]] = {m: [] for m in modes}
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                w, c = step_seconds(model, optimizer, x, y, device, AMP_DTYPES[mode])
                wall[mode].append(w / args.batch)
                cpu[mode].append(c / args.batch)
        w = {m: statistics.median(t) for m, t in wall.items()}
        c = {m: statistics.median(t) for m, t in cpu.items()}
        table.add_row(name, *[f"{w[m]:.4f}" for m in modes], f"{w['off'] / w[modes[1]]:.2f}x",
                      *[f"{c[m]:.4f}" for m in modes], f"{c['off'] / c[modes[1]]:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
