"""Figure export of a saved scan: PNG + SVG of the top families, drawn by 1 and by 2 worker processes.

    python benchmarks/report_export.py [SCAN_DIR] [--top 20] [--workers 1 2] [--repeats 1]

SCAN_DIR is a scan's ``--out`` directory (default: ``$EQUIFIND_SCAN_DIR``). Each run is
``ef.report(scan, <temporary dir>, formats=("png", "svg"), families=TOP, circuits=0, workers=W)``:
the figures of the scan's first TOP families as ``rank_families`` ranks them, no page and no
circuit diagrams, so that only the family figures are timed (the spawn workers' start-up
included: each imports torch and equifind). The worker counts take turns
(``timeit_interleaved``), so their ratio comes from one run on one machine; the machine's load
average is printed beside it, since workers only help where cores are free. Prints a markdown
snippet (RESULTS.md is left alone).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from _common import machine, timeit_interleaved

import equifind as ef


def export(scan: ef.ScanResult, top: int, workers: int) -> int:
    """Export the top families' figures into a fresh temporary folder; returns the files written."""
    with tempfile.TemporaryDirectory(prefix="equifind-export-") as tmp:
        out = ef.report(scan, Path(tmp) / "report", formats=("png", "svg"), families=top, circuits=0, workers=workers)
        return len(list((out / "figures").iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan_dir", nargs="?", default=os.environ.get("EQUIFIND_SCAN_DIR"),
                        help="a saved scan's directory (default: $EQUIFIND_SCAN_DIR)")  # fmt: skip
    parser.add_argument("--top", type=int, default=20, help="families exported (default: 20)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts timed (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each worker count (default: 1)")
    args = parser.parse_args()
    if not args.scan_dir:
        sys.exit("give a scan directory or set EQUIFIND_SCAN_DIR")
    scan = ef.ScanResult.load(args.scan_dir)
    n_files = export(scan, args.top, 1)  # also warms the caches
    load = os.getloadavg()[0]
    seconds = timeit_interleaved([lambda w=w: export(scan, args.top, w) for w in args.workers],
                                 repeats=args.repeats, warmup=0)  # fmt: skip
    load = (load + os.getloadavg()[0]) / 2
    n_fams = sum(len(fams) for by_t in scan.families.values() for fams in by_t.values())
    lines = [
        (f"Export of the top {min(args.top, n_fams)} of {n_fams} families of `{args.scan_dir}` ({scan.model}, "
         f"{', '.join(scan.layers)}): {n_files // 2} figures, {n_files} files (PNG + SVG); median of "
         f"{args.repeats} run(s); {machine(torch.device('cpu'))}; load average (1 min) {load:.1f} while timed "
         "(other processes compete for the cores above about the core count)."),
        "",
        "| workers | seconds | figures / s | speed-up |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {w} | {s:.1f} | {n_files / 2 / s:.2f} | {seconds[0] / s:.2f}× |" for w, s in zip(args.workers, seconds)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
