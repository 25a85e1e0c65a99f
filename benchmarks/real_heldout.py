"""Held-out validation on a real network: googlenet_bvlc's mixed3b curve family, and a scan.

    python benchmarks/real_heldout.py [--device cpu|cuda] [--no-scan] [--no-sensitivity]

1. ``mixed3b`` rotation: ``ef.probe`` (64 steps) and ``ef.find_families`` (200 surrogate runs),
   then the family notebook 02 shows on this network: the largest family in which at least
   three quarters of the members prefer a curve. It is validated on both held-out sources
   (``ef.validate_families`` with its defaults), timed by phase: the feature visualizations
   (one batched optimisation of the members and the null pool), the top natural patches, the
   held-out probes and the scoring. The same for the largest significant family if it is
   another one, and for a random set of 16 responding units (the negative control: it should
   not hold out).
2. How the curve family's held-out result moves with the settings that decide it (patches
   source): patches per unit 2 / 4 / 8, null pool 16 / 32 / 64 units, held-out grid 16 / 32 steps.
3. The early scan (``configs/googlenet_bvlc_early.toml``) with ``[validate] top = 3``: the share of
   validated families that hold out (held-out q ≤ 0.05), per layer and transform.

Writes the section "held-out validation on googlenet_bvlc" of benchmarks/RESULTS.md and the
figures benchmarks/figures/heldout_mixed3b_curves*.png.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import equifind as ef
from _common import machine, weights_path, write_section
from equifind.heldout import (
    DEFAULT_FV_STEPS, DEFAULT_PATCHES, DEFAULT_POOL, DEFAULT_STEPS, HeldoutStimuli, _pool_sample, deciding_test,
)  # fmt: skip

LAYER = "mixed3b"
STEPS = 64
N_NULL = 200
SEED = 0
FIGURES = Path(__file__).resolve().parent / "figures"


def curve_family(resp: ef.Responses, fams: ef.FamilyList) -> ef.Family:
    """Notebook 02's stand-in for the curve detectors: the largest family (then best score) in which
    at least 3/4 of the members have a curve as their best stimulus; the largest family if none."""
    kinds = [v["kind"] for v in resp.variants]
    best = resp.best_variant_indices

    def curvy(f: ef.Family) -> float:
        return float(np.mean([kinds[int(best[resp.row(u)])] == "curve" for u in f.units]))

    pool = [f for f in fams if curvy(f) >= 0.75] or list(fams)
    return max(pool, key=lambda f: (len(f), f.score))


def timed_validation(
    m: ef.Model, resp: ef.Responses, units: list[int], period: float, stim: HeldoutStimuli, **kw
) -> tuple[dict[str, ef.HeldoutSource], dict[str, float]]:
    """Validate one family on both sources, timing the phases: images first, then probes + scoring."""
    times: dict[str, float] = {}
    involved = sorted(set(units) | set(_pool_sample(resp, kw.get("pool", DEFAULT_POOL), SEED)))
    for source in ("feature_vis", "patches"):
        t0 = time.perf_counter()
        stim.ensure(involved, [source])
        times[source] = time.perf_counter() - t0
    t0 = time.perf_counter()
    (result,) = ef.validate_families(m, resp, [units], periods=[period], n_null=N_NULL, seed=SEED, stimuli=stim, **kw)
    times["probe + score"] = time.perf_counter() - t0
    times["total"] = sum(times.values())
    return result, times


def result_row(name: str, units: list[int], result: dict[str, ef.HeldoutSource]) -> str:
    cells = []
    for key in ("feature_vis", "patches", "combined"):
        r = result.get(key)
        cells.append("–" if r is None else f"{r.equivariance:.3f} (null {r.null_mean:.3f}; p {_p(r.p_value, r.n_null)})")
    verdict = deciding_test(result)
    held = "**held out**" if verdict.held_out(0.05) else verdict.verdict(0.05)
    return f"| {name} | {len(units)} | " + " | ".join(cells) + f" | {held} |"


def _p(p: float, n: int) -> str:
    return f"≤ 1/{n + 1}" if math.isclose(p, 1 / (n + 1)) else f"{p:.3g}"


def sensitivity(m: ef.Model, resp: ef.Responses, fam: ef.Family) -> list[str]:
    rows = ["| setting | patches equivariance | null mean | p |", "|---|---:|---:|---:|"]
    settings = [("defaults", {})]
    settings += [(f"patches = {k}", {"patches": k}) for k in (2, 8)]
    settings += [(f"pool = {p}", {"pool": p}) for p in (16, 64)]
    settings += [("steps = 16", {"steps": 16})]
    for name, change in settings:
        stim = HeldoutStimuli(m, LAYER, seed=SEED, patches=change.pop("patches", DEFAULT_PATCHES))
        (r,) = ef.validate_families(m, resp, [fam.units], periods=[fam.period], sources="patches", n_null=N_NULL,
                                    seed=SEED, stimuli=stim, **change)  # fmt: skip
        p = r["patches"]
        rows.append(f"| {name} | {p.equivariance:.3f} | {p.null_mean:.3f} | {_p(p.p_value, p.n_null)} |")
        print(rows[-1], flush=True)
    return rows


def scan_shares(m: ef.Model) -> list[str]:
    config = Path(__file__).resolve().parents[1] / "configs" / "googlenet_bvlc_early.toml"
    cfg = ef.config.load_config(config).replace(circuits=False, validate_sources=("patches",), validate_top=3)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        res = ef.scan(m, config=cfg, out=out, progress=False)
    wall = time.perf_counter() - t0
    rows = ["| layer | transform | validated | held out | share | held-out equivariance (patches) [statistic; q] of each: ✓ held out |",
            "|---|---|---:|---:|---:|---|"]  # fmt: skip
    for layer in cfg.layers:
        for t in cfg.transforms:
            scores = [f.equivariance for f in res.families.get(layer, {}).get(t, [])
                      if f.equivariance is not None and f.equivariance.heldout]
            held = [s for s in scores if s.held_out()]
            share = f"{len(held) / len(scores):.0%}" if scores else "–"
            eqs = ", ".join(f"{s.heldout_equivariance:.2f} [{s.heldout_test.statistic:+.3f}; {s.heldout_q_value:.2g}]"
                            f"{' ✓' if s.held_out() else ''}" for s in scores)
            rows.append(f"| `{layer}` | {t} | {len(scores)} | {len(held)} | {share} | {eqs} |")
    rows.append("")
    validation = sum(v for k, v in res.timings.items() if "/heldout" in k)
    rest = sum(v for k, v in res.timings.items() if "/heldout" not in k)
    rows.append(f"Scan wall time (circuits off): {wall:.0f} s, of which held-out validation {validation:.0f} s "
                f"(images, held-out probes and scoring) and the other timed stages {rest:.0f} s.")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-scan", action="store_true")
    parser.add_argument("--no-sensitivity", action="store_true")
    args = parser.parse_args()
    dev = torch.device(args.device)
    m = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=dev)

    t0 = time.perf_counter()
    resp = ef.probe(m, LAYER, "rotation", steps=STEPS, seed=SEED, progress=False)
    fams = ef.find_families(resp, n_null=N_NULL, seed=SEED)
    discovery = time.perf_counter() - t0
    curve = curve_family(resp, fams)
    biggest = max((f for f in fams if f.q_value <= 0.05), key=lambda f: (len(f), f.score), default=curve)
    print("curve family", curve.units, "largest significant", biggest.units, flush=True)

    stim = HeldoutStimuli(m, LAYER, seed=SEED)
    curve_result, curve_times = timed_validation(m, resp, curve.units, curve.period, stim)
    print("curve", {k: (v.equivariance, v.p_value) for k, v in curve_result.items()}, curve_times, flush=True)
    results = [("curve family (notebook 02)", curve, curve_result, curve_times)]
    if set(biggest.units) != set(curve.units):
        r, t = timed_validation(m, resp, biggest.units, biggest.period, HeldoutStimuli(m, LAYER, seed=SEED))
        results.append(("largest significant family", biggest, r, t))
    gen = torch.Generator().manual_seed(1)
    responding = torch.nonzero(resp.responding()).flatten()
    control = sorted(int(resp.units[int(i)]) for i in responding[torch.randperm(len(responding), generator=gen)[:16]])
    (control_result,) = ef.validate_families(m, resp, [control], n_null=N_NULL, seed=SEED, stimuli=stim)

    FIGURES.mkdir(exist_ok=True)
    from equifind.report import heldout_answers, heldout_pairs

    score = ef.score_responses(resp, curve.units, n_null=N_NULL, seed=SEED, period=curve.period)
    score.heldout = curve_result
    heldout_answers(score, stim.images).savefig(FIGURES / "heldout_mixed3b_curves.png", dpi=100, bbox_inches="tight")
    heldout_pairs(score).savefig(FIGURES / "heldout_mixed3b_curves_pairs.png", dpi=100, bbox_inches="tight")

    lines = [
        f"Machine: {machine(dev)}. `{LAYER}` rotation: probe ({STEPS} steps) and `find_families` "
        f"({N_NULL} surrogate runs) took {discovery:.0f} s. Held-out validation with the defaults: "
        f"feature visualizations of {DEFAULT_FV_STEPS} steps (lucent, one batch for the members and the null "
        f"pool), {DEFAULT_PATCHES} top natural patches per unit, a {DEFAULT_STEPS}-step held-out grid, "
        f"a null of {N_NULL} random sets from the members plus {DEFAULT_POOL} random responding units, each "
        f"scored on its own members' images at positions measured on the discovery responses. "
        f"Significant: p ≤ 0.05 for one family (q = p); the smallest p is 1/{N_NULL + 1}.",
        "",
        "| family | units | feature_vis | patches | combined | verdict |",
        "|---|---:|---|---|---|---|",
    ]
    for name, fam, r, _ in results:
        lines.append(result_row(f"{name}: {', '.join(map(str, fam.units))}", fam.units, r))
    lines.append(result_row(f"control: 16 random responding units ({', '.join(map(str, control))})", control, control_result))
    lines += ["", "Time to visualize and validate (this CPU; target ≤ 2 min for a 16-unit family):", "",
              "| family | units | feature visualizations s | top patches s | held-out probes + scoring s | total s |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, fam, _, t in results:
        lines.append(f"| {name} | {len(fam.units)} | {t['feature_vis']:.0f} | {t['patches']:.0f} | "
                     f"{t['probe + score']:.0f} | **{t['total']:.0f}** |")  # fmt: skip
    lines += ["", "Answers (the member whose response to member 0's visualization, moved to member j's position, "
              "is highest relative to its own): " + ", ".join(
                  f"{u}→{a}" for u, a in zip(curve_result['feature_vis'].members, curve_result['feature_vis'].answers)
              ), "", "![held-out equivariance figure](figures/heldout_mixed3b_curves.png)", "",
              "![held-out pair matrix](figures/heldout_mixed3b_curves_pairs.png)"]  # fmt: skip
    if not args.no_sensitivity:
        lines += ["", "**Thresholds that decide the result.** The curve family on the patches source, one setting moved at a time:", ""]
        lines += sensitivity(m, resp, curve)
    if not args.no_scan:
        lines += ["", "**The early scan with `[validate] top = 3`** (patches source; q is Benjamini–Hochberg over every validated family of the scan; a family holds out when q ≤ 0.05 and its statistic, the unclipped mean pair correlation, is positive):", ""]
        lines += scan_shares(m)
    write_section("held-out validation on googlenet_bvlc", "\n".join(lines))


if __name__ == "__main__":
    main()
