"""The report stage of the googlenet early scan against its compute stages, in one run.

    python benchmarks/bench_report.py [--top 20] [--workers 1 2]

1. Runs `equifind scan googlenet_bvlc --config configs/googlenet_bvlc_early.toml --no-report` in a
   subprocess (a fresh folder) and reads the compute stages' times from its scan.json: probe,
   families, scores, held-out validation (when on) and circuits.
2. Loads the saved scan and times the report stage as the scan runs it by default: ``ef.report(scan,
   out)``, the page only (``index.html``, the family browser). Target: ≤ 10% of the compute stages.
   Records the page's size (and gzipped, as a server would send it).
3. Times the figure export of the top ``--top`` families, PNG + SVG, with 1 and 2 worker processes
   (taking turns, so the ratio comes from one run; see report_export.py).

Writes the section "report stage (cpu)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from _common import machine, timeit_interleaved, weights_path, write_section
from report_export import export

import equifind as ef

ROOT = Path(__file__).resolve().parents[1]
COMPUTE = ("probe", "families", "scores", "heldout", "circuits")
TARGET = 0.10  # report stage / compute stages


def run_scan(out: Path) -> dict[str, float]:
    """Scan into ``out`` without a report; the compute seconds per stage kind, from scan.json."""
    cmd = [
        sys.executable, "-m", "equifind", "scan", "googlenet_bvlc", "--weights", weights_path("bvlc_googlenet.pth"),
        "--config", str(ROOT / "configs" / "googlenet_bvlc_early.toml"), "--out", str(out), "--no-report", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
    per_kind: dict[str, float] = defaultdict(float)
    for key, seconds in json.loads((out / "scan.json").read_text())["timings"].items():
        parts = key.split("/")  # "<layer>/<transform>/<stage>", "<layer>/heldout/images" or "circuits/<transform>"
        kind = "circuits" if parts[0] == "circuits" else "heldout" if "heldout" in parts else parts[-1]
        if kind not in COMPUTE:
            raise SystemExit(f"unknown stage {key!r} in scan.json timings: update COMPUTE in {__file__}")
        per_kind[kind] += seconds
    return dict(per_kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=20, help="families exported in step 3 (default: 20)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts timed (default: 1 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="equifind-bench-report-") as tmp:
        out = Path(tmp) / "scan"
        per_kind = run_scan(out)
        t0 = time.perf_counter()
        scan = ef.ScanResult.load(out)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ef.report(scan, out)  # what `equifind scan` runs after the compute stages
        report_s = time.perf_counter() - t0
        page = (out / "index.html").read_bytes()
        export(scan, args.top, 1)  # warm-up (imports, caches)
        export_s = timeit_interleaved([lambda w=w: export(scan, args.top, w) for w in args.workers], repeats=1, warmup=0)
        n_files = export(scan, args.top, 1)
    compute = sum(per_kind.values())
    ratio = report_s / compute
    n_fams = sum(len(f) for by_t in scan.families.values() for f in by_t.values())
    rows = "\n".join(f"| {kind} | {per_kind[kind]:.1f} |" for kind in COMPUTE if kind in per_kind)
    export_rows = "\n".join(
        f"| {w} | {s:.1f} | {n_files / 2 / s:.2f} | {export_s[0] / s:.2f}× |" for w, s in zip(args.workers, export_s)
    )
    body = f"""Machine: {machine(torch.device("cpu"))}; load average (1 min) {os.getloadavg()[0]:.1f} at the end.
Command: `python benchmarks/bench_report.py` — the googlenet early scan (`configs/googlenet_bvlc_early.toml`:
conv2d0 … mixed3b; rotation, hue, flip; 64 steps; circuits), then its report in the same run.

| compute stage | seconds |
|---|---:|
{rows}
| **all compute stages** | **{compute:.1f}** |

- Report stage (`ef.report(scan, out)`, the default: the family browser page, no figure files): **{report_s:.2f} s**,
  **{100 * ratio:.1f}%** of the compute stages (target ≤ {100 * TARGET:.0f}% — {"met" if ratio <= TARGET else "NOT met"}).
  Loading the saved scan, which `equifind scan` does not need, took another {load_s:.1f} s.
- Page: **{len(page) / 2**20:.2f} MiB** ({len(page) / 2**20 / max(n_fams, 1) * 1024:.1f} KiB per family, {n_fams} families,
  {len(scan.circuits)} circuits); {len(gzip.compress(page)) / 2**20:.2f} MiB gzipped. One file, no network needed.

Figure export on request, PNG + SVG of the top {min(args.top, n_fams)} families (`families={args.top}, circuits=0`):
{n_files // 2} figures, {n_files} files; worker processes taking turns in one run (spawn start-up included).

| workers | seconds | figures / s | speed-up |
|---:|---:|---:|---:|
{export_rows}"""
    write_section("report stage (cpu)", body)
    print(body)


if __name__ == "__main__":
    main()
