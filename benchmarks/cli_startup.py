"""Start-up time of the ``equifind`` command: ``equifind --help`` and ``equifind scan --help``.

Each command runs as a fresh subprocess (``python -m equifind.cli``), so the time is what a
user waits for: interpreter start, imports, argument parsing. The median of ``--repeats`` runs
per command goes to the "CLI start-up" section of RESULTS.md, with the machine and the date.
``--compare DIR`` also times another checkout (e.g. one from before the lazy imports), run
in turns with this one so both see the same load of a shared machine.

    python benchmarks/cli_startup.py [--repeats 7] [--compare ../main]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import machine, write_section

HERE = Path(__file__).resolve().parents[1]
COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("scan", "--help"))


def run_once(checkout: Path, argv: tuple[str, ...]) -> float:
    """Seconds one ``python -m equifind.cli ARGV`` takes in ``checkout`` (it must exit 0)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "equifind.cli", *argv], cwd=checkout, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def label(checkout: Path) -> str:
    """A checkout as a table heading: its commit (and "+ changes" when its tree differs)."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(checkout), *argv], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or checkout.name
    return f"`{commit}`" + (" + changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def medians(checkouts: list[Path], repeats: int) -> dict[tuple[Path, tuple[str, ...]], float]:
    """Median seconds per (checkout, command), the runs taken in turns after one warm-up each."""
    times: dict[tuple[Path, tuple[str, ...]], list[float]] = {(c, a): [] for c in checkouts for a in COMMANDS}
    for key in times:  # warm the file cache
        run_once(*key)
    for _ in range(repeats):
        for key, spent in times.items():
            spent.append(run_once(*key))
    return {key: statistics.median(spent) for key, spent in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per command (the median is kept)")
    parser.add_argument("--compare", type=Path, help="another equifind checkout to time the same way")
    args = parser.parse_args()
    checkouts = [HERE] + ([args.compare.resolve()] if args.compare else [])
    found = medians(checkouts, args.repeats)
    names = {c: label(c) for c in checkouts}
    rows = [f"| {' '.join(('equifind', *argv))} | " + " | ".join(f"{found[(c, argv)]:.2f}" for c in checkouts) + " |"
            for argv in COMMANDS]  # fmt: skip
    header = "| command | " + " | ".join(f"{names[c]} (s)" for c in checkouts) + " |"
    body = "\n".join([
        f"Machine: {machine(torch.device('cpu'))}. Median of {args.repeats} fresh `python -m equifind.cli` "
        "subprocesses per command (after one warm-up run), taken in turns.",
        "",
        header,
        "|---|" + "---:|" * len(checkouts),
        *rows,
        "",
        "Target: under 1 s — the command imports nothing heavy until a subcommand runs (no torch for `--help`).",
    ])  # fmt: skip
    write_section("CLI start-up", body)
    print(body)


if __name__ == "__main__":
    main()
