"""Shared helpers for the benchmark scripts: timing, machine description, RESULTS.md sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def weights_path(filename: str) -> str:
    folder = os.environ.get("EQUIFIND_WEIGHTS_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "weights")
    path = Path(folder) / filename
    if not path.is_file():
        raise SystemExit(f"benchmark needs {filename}: set EQUIFIND_WEIGHTS_DIR (looked at {path})")
    return str(path)


def machine(device: torch.device) -> str:
    """One line describing where the figures were taken."""
    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return f"{hw}; torch {torch.__version__}; {platform.python_implementation()} {platform.python_version()}"


def timeit(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1, device: torch.device | None = None) -> float:
    """Median wall time of ``fn`` in seconds."""

    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timeit_interleaved(
    fns: list[Callable[[], object]], *, repeats: int = 5, warmup: int = 1, device: torch.device | None = None
) -> list[float]:
    """Median wall time of each of ``fns``, timed in turns (a, b, a, b, ...).

    Taking turns exposes every function to the same slow spells of a shared
    machine, so ratios of the medians are steadier than from back-to-back runs.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(warmup):
        for fn in fns:
            fn()
    for _ in range(repeats):
        for fn, spent in zip(fns, times):
            spent.append(timeit(fn, repeats=1, warmup=0, device=device))
    return [statistics.median(spent) for spent in times]


def write_section(key: str, body: str) -> None:
    """Replace (or append) the section ``## key`` of RESULTS.md with ``body``, stamped with the date."""
    stamp = _dt.date.today().isoformat()
    section = f"## {key}\n\n_Measured {stamp}._\n\n{body.strip()}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; rerun them to refresh a section.\n"
    pattern = re.compile(rf"^## {re.escape(key)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(text.rstrip() + "\n")
    tmp.replace(RESULTS)
