"""Helpers shared by the benchmark scripts: timing, FLOP counting, a convolution peak, the hardware line."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # the CPU model and the vector ISA oneDNN uses: speed-up ratios differ between AVX2 and AVX-512/AMX machines
    return (f"cpu ({_cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, "
            f"ISA {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, {torch.get_num_threads()} threads)")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def count_flops(fn) -> int:
    """FLOPs of one call (multiply-add = 2) counted by torch's own FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def conv_peak_gflops(device: torch.device, repeats: int = 5) -> float:
    """GFLOP/s of a large dense 3x3 convolution: the practical peak this machine reaches for conv nets."""
    channels, size, batch = (256, 32, 8) if device.type == "cpu" else (512, 64, 32)
    x = torch.randn(batch, channels, size, size, device=device)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
    with torch.no_grad():
        flops = count_flops(lambda: conv(x))
        seconds = time_call(lambda: conv(x), device, repeats=repeats)
    return flops / seconds / 1e9


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB; process peak so far


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
