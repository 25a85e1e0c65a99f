"""Weight-circuit symmetry on a real network: googlenet_bvlc, conv2d1→conv2d2→mixed3a→mixed3b.

    python benchmarks/real_circuits.py [--device cpu|cuda] [--families auto|probe|heuristic] [--steps 32]

Families come from ``equifind.families.find_families(equifind.probe.probe(model,
layer, transform="rotation"))`` when those modules exist ("auto" or "probe"),
otherwise from the weight-space heuristic below ("heuristic"). Every family
pair of consecutive layers (plus each layer's invariant units as one set) is
checked with ``equifind.circuits.find_circuits``; the significant circuits
(p < alpha) go to the section "circuits on googlenet_bvlc" of
benchmarks/RESULTS.md.

The heuristic (a fallback; it sees weights only): each unit's *pixel filter*
is its expanded weights onto conv2d0 composed with conv2d0's 7×7 kernels
(stride 2), i.e. the linear view of the unit on the image. Its dominant
orientation and coherence come from the structure tensor of the filter's
luminance; coherent units are grouped greedily by the cosine of their filters
rotated to a common orientation (checking θ and θ+180°, which sets each
member's preferred angle in [0, 360)), keeping one member (the most coherent)
per 15° of orientation; incoherent units with strong filters are the layer's
invariant units.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import equifind as ef
from _common import machine, weights_path, write_section
from equifind.circuits import expanded_weights, find_circuits, rotate_kernels

LAYERS = ["conv2d1", "conv2d2", "mixed3a", "mixed3b"]


@dataclass
class HeuristicFamily:
    """A duck-typed Family (layer, units, preferred, period, transform) from the weight heuristic."""

    layer: str
    units: list[int]
    preferred: list[float]
    period: float = 360.0
    transform: str = "rotation"


def pixel_filters(model: ef.Model, layer: str) -> torch.Tensor:
    """``Tensor[U, 3, k, k]``: each unit's linear filter on the (preprocessed) image."""
    w0 = model.module.conv2d0_pre_relu_conv.weight.detach()
    ew = expanded_weights(model, "conv2d0", layer)  # [U, 64, k, k]
    return F.conv_transpose2d(ew, w0, stride=2)


def orientation(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dominant orientation (degrees CCW as displayed, in [0, 180)) and coherence of ``gray`` [U, k, k]."""
    gx = gray[:, 1:-1, 2:] - gray[:, 1:-1, :-2]
    gy = gray[:, 2:, 1:-1] - gray[:, :-2, 1:-1]
    jxx, jyy, jxy = (gx * gx).sum((1, 2)), (gy * gy).sum((1, 2)), (gx * gy).sum((1, 2))
    phi = 0.5 * torch.atan2(2 * jxy, jxx - jyy)  # gradient direction, y down
    coherence = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-12)
    return torch.remainder(torch.rad2deg(-phi), 180.0), coherence


def heuristic_families(model: ef.Model, layer: str, min_similarity: float = 0.6, min_size: int = 3,
                       min_spacing: float = 15.0) -> tuple[list[HeuristicFamily], list[int]]:
    """Families and invariant units of ``layer`` from its units' pixel filters (see the module docstring)."""
    filt = pixel_filters(model, layer)
    theta, coh = orientation(filt.sum(1))
    energy = filt.flatten(1).norm(dim=1)
    strong = energy >= 0.05 * energy.max()
    canon = [rotate_kernels(filt, -(theta + extra)).flatten(1) for extra in (0.0, 180.0)]
    canon = [F.normalize(c, dim=1) for c in canon]
    free = set(torch.nonzero(strong & (coh >= 0.4)).flatten().tolist())
    families = []
    for seed in sorted(free, key=lambda u: -float(coh[u])):
        if seed not in free:
            continue
        sims = torch.stack([c @ canon[0][seed] for c in canon])  # [2, U]
        best, turn = sims.max(0)
        similar = sorted((u for u in free if float(best[u]) >= min_similarity), key=lambda u: -float(coh[u]))
        angles = {u: float(theta[u] + 180.0 * turn[u]) % 360.0 for u in similar}
        members: list[int] = []
        for u in similar:  # one member per orientation: copies at the same angle are not a family
            if all(abs((angles[u] - angles[v] + 180.0) % 360.0 - 180.0) >= min_spacing for v in members):
                members.append(u)
        if len(members) < min_size:
            continue
        free -= set(similar)
        order = sorted(members, key=angles.get)
        families.append(HeuristicFamily(layer, order, [angles[u] for u in order]))
    invariant = torch.nonzero(strong & (coh < 0.15)).flatten().tolist()
    return families, invariant


def probe_families(model: ef.Model, layer: str, steps: int) -> tuple[list, list[int]]:
    from equifind.families import find_families
    from equifind.probe import probe

    found = find_families(probe(model, layer, transform="rotation", steps=steps, progress=False))
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
    parser.add_argument("--families", choices=["auto", "probe", "heuristic"], default="auto")
    parser.add_argument("--steps", type=int, default=32, help="rotation steps for probing")
    parser.add_argument("--n-null", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--rows", type=int, default=8, help="rows per layer pair in the table")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=device)
    have_probe = all(importlib.util.find_spec(m) is not None for m in ("equifind.families", "equifind.probe"))
    source = args.families if args.families != "auto" else ("probe" if have_probe else "heuristic")
    t0 = time.perf_counter()
    fams, inv = {}, {}
    for layer in LAYERS:
        if source == "probe":
            fams[layer], inv[layer] = probe_families(model, layer, args.steps)
        else:
            fams[layer], inv[layer] = heuristic_families(model, layer)
    t_fam = time.perf_counter() - t0
    lines = [
        f"Machine: {machine(device)}. Families: {source} "
        + ("(`find_families(probe(model, layer, 'rotation', steps=%d))`)" % args.steps if source == "probe"
           else "(weight-space heuristic of `benchmarks/real_circuits.py`)")
        + f", found in {t_fam:.0f} s. Checks: every family pair of consecutive layers plus each layer's invariant "
        f"units as one set, {args.n_null} null draws, significant at p < {args.alpha} (not corrected for the "
        "number of checks; the smallest possible p is 1/(1 + n_null)).",
        "",
        "| layer | families (sizes) | invariant units |",
        "|---|---|---:|",
    ]
    for layer in LAYERS:
        sizes = ", ".join(str(len(f.units)) for f in fams[layer])
        lines.append(f"| {layer} | {len(fams[layer])} ({sizes}) | {len(inv[layer])} |")
    lines += ["", "| circuit | kind | score | p | null mean | centre energy | source units @ preferred | target units @ preferred |",
              "|---|---|---:|---:|---:|---:|---|---|"]
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
                       f"≈{n_fam[0] * n_fam[1] * args.alpha:.1f} expected by chance; {len(strong)} of them score ≥ 0.5, "
                       f"{pointlike} of those with ≥ 90% of the weight energy in the centre tap (1×1 paths)")
        for c in found[: args.rows]:
            lines.append(
                f"| {la}→{lb} | {c.kind} | {c.score:.3f} | {c.p_value:.3f} | {c.null_mean:.3f} | {centre_energy(c.weights):.2f} | "
                f"{describe(c.source_units, c.source_preferred)} | {describe(c.target_units, c.target_preferred)} |"
            )
    t_circ = time.perf_counter() - t0
    lines += ["", *[f"- {s}" for s in summary], f"- circuit checks took {t_circ:.0f} s."]
    body = "\n".join(lines)
    write_section("circuits on googlenet_bvlc", body)
    print(body)


if __name__ == "__main__":
    main()
