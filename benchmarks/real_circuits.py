"""Weight-circuit symmetry on a real network: googlenet_bvlc, conv2d1→conv2d2→mixed3a→mixed3b.

    python benchmarks/real_circuits.py [--device cpu|cuda] [--steps 32]

Families come from ``find_families(probe(model, layer, transform="rotation"))``.
Every family pair of consecutive layers (plus each layer's invariant units as
one set) is checked with ``equifind.circuits.find_circuits``; the significant
circuits (Benjamini–Hochberg q ≤ alpha over the checks of each layer pair) go
to the section "circuits on googlenet_bvlc" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import torch

import equifind as ef
from _common import machine, weights_path, write_section
from equifind.circuits import find_circuits

LAYERS = ["conv2d1", "conv2d2", "mixed3a", "mixed3b"]


def probe_families(model: ef.Model, layer: str, steps: int) -> tuple[list, list[int]]:
    """The rotation families and the invariant units of ``layer``."""
    found = ef.find_families(ef.probe(model, layer, transform="rotation", steps=steps, progress=False))
    return list(found), list(found.invariant)


def centre_energy(weights: torch.Tensor) -> float:
    """Fraction of the squared weights in the kernels' centre tap (1.0: only 1×1 paths connect the units)."""
    kh, kw = weights.shape[-2:]
    return float(weights[..., kh // 2, kw // 2].square().sum() / weights.square().sum().clamp_min(1e-30))


def describe(units: list[int], preferred: list[float] | None, limit: int = 8) -> str:
    if preferred is None:
        shown = ", ".join(str(u) for u in units[:limit])
        return f"invariant {{{shown}{', …' if len(units) > limit else ''}}} ({len(units)})"
    shown = ", ".join(f"{u}@{p:.0f}°" for u, p in list(zip(units, preferred))[:limit])
    return f"[{shown}{', …' if len(units) > limit else ''}] ({len(units)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=32, help="rotation steps for probing")
    parser.add_argument("--n-null", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.05, help="q-value (BH) threshold")
    parser.add_argument("--rows", type=int, default=8, help="rows per layer pair in the table")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=device)
    t0 = time.perf_counter()
    fams, inv = {}, {}
    for layer in LAYERS:
        fams[layer], inv[layer] = probe_families(model, layer, args.steps)
    t_fam = time.perf_counter() - t0
    lines = [
        f"Machine: {machine(device)}. Families: `find_families(probe(model, layer, 'rotation', steps={args.steps}))`"
        + f", found in {t_fam:.0f} s. Checks: every family pair of consecutive layers plus each layer's invariant "
        f"units as one set, {args.n_null} null draws, significant at q ≤ {args.alpha} (Benjamini–Hochberg over "
        "the checks of each layer pair; the smallest possible p is 1/(1 + n_null)).",
        "",
        "| layer | families (sizes) | invariant units |",
        "|---|---|---:|",
    ]
    for layer in LAYERS:
        sizes = ", ".join(str(len(f.units)) for f in fams[layer])
        lines.append(f"| {layer} | {len(fams[layer])} ({sizes}) | {len(inv[layer])} |")
    lines += ["", "| circuit | kind | score | q | p | null mean | centre energy | source units @ preferred | "
              "target units @ preferred |", "|---|---|---:|---:|---:|---:|---:|---|---|"]
    summary = []
    t0 = time.perf_counter()
    for la, lb in zip(LAYERS, LAYERS[1:]):
        n_fam = len(fams[la]) + bool(inv[la]), len(fams[lb]) + bool(inv[lb])
        found = find_circuits(model, {la: fams[la], lb: fams[lb]}, {la: inv[la], lb: inv[lb]},
                              transform="rotation", alpha=args.alpha, n_null=args.n_null)
        kinds = {k: sum(c.kind == k for c in found) for k in sorted({c.kind for c in found})}
        strong = [c for c in found if c.score >= 0.5]
        pointlike = sum(centre_energy(c.weights) >= 0.9 for c in strong)
        summary.append(f"{la}→{lb}: {len(found)} significant of at most {n_fam[0] * n_fam[1]} checks "
                       f"({', '.join(f'{v} {k}' for k, v in kinds.items()) or 'none'}); "
                       f"BH keeps the expected share of false ones ≤ {args.alpha:g}; {len(strong)} of them score ≥ 0.5, "
                       f"{pointlike} of those with ≥ 90% of the weight energy in the centre tap (1×1 paths)")
        for c in found[: args.rows]:
            lines.append(
                f"| {la}→{lb} | {c.kind} | {c.score:.3f} | {c.q_value:.3f} | {c.p_value:.3f} | {c.null_mean:.3f} | "
                f"{centre_energy(c.weights):.2f} | "
                f"{describe(c.source_units, c.source_preferred)} | {describe(c.target_units, c.target_preferred)} |"
            )
    t_circ = time.perf_counter() - t0
    lines += ["", *[f"- {s}" for s in summary], f"- circuit checks took {t_circ:.0f} s."]
    body = "\n".join(lines)
    write_section("circuits on googlenet_bvlc", body)
    print(body)


if __name__ == "__main__":
    main()
