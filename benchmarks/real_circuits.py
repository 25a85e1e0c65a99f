"""Weight-circuit symmetry on a real network: googlenet_bvlc, conv2d1→conv2d2→mixed3a→mixed3b.

    python benchmarks/real_circuits.py [--device cpu|cuda] [--steps 32]

Families come from ``find_families(probe(model, layer, transform="rotation"))``.
Every family pair of consecutive layers (plus each layer's invariant units as
one set) is checked with ``equifind.circuits.find_circuits``, under the new rule
(angles null, q ≤ alpha and a rotation gain above 2 null SDs) and the old one
(kernels null, q ≤ alpha); the significant circuits, the counts under both rules
per layer pair and the families confirmed by weights go to the section
"circuits on googlenet_bvlc" of benchmarks/RESULTS.md.
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
        f"units as one set, {args.n_null} null draws of the \"angles\" null (random member angles), significant at "
        f"q ≤ {args.alpha} (Benjamini–Hochberg over the checks of each layer pair; the smallest possible p is "
        "1/(1 + n_null)) and a rotation gain (score minus the score with kernels unmoved) above 2 standard "
        "deviations of the null draws' gains. The old rule, for comparison: the \"kernels\" null (kernels "
        "rearranged at random), q ≤ alpha. 1×1-path share: the part of the weights' energy that comes through "
        "1×1 convolutions and pools only, which cannot show a rotation.",
        "",
        "| layer | families (sizes) | invariant units |",
        "|---|---|---:|",
    ]
    for layer in LAYERS:
        sizes = ", ".join(str(len(f.units)) for f in fams[layer])
        lines.append(f"| {layer} | {len(fams[layer])} ({sizes}) | {len(inv[layer])} |")
    lines += ["", "| circuit | kind | score (ceiling) | rotation gain (2 × null SD) | q | p | 1×1-path share | source units @ preferred | "
              "target units @ preferred |", "|---|---|---:|---:|---:|---:|---:|---|---|"]
    summary, confirmed = [], []
    t0 = time.perf_counter()
    for la, lb in zip(LAYERS, LAYERS[1:]):
        fams_ab, inv_ab = {la: fams[la], lb: fams[lb]}, {la: inv[la], lb: inv[lb]}
        checks = find_circuits(model, fams_ab, inv_ab, transform="rotation", alpha=args.alpha, n_null=args.n_null,
                               all_checks=True)  # fmt: skip
        old = find_circuits(model, fams_ab, inv_ab, transform="rotation", alpha=args.alpha, n_null=args.n_null,
                            null="kernels", all_checks=True)  # fmt: skip
        found = [c for c in checks if c.is_significant(args.alpha)]
        old_sig = [c for c in old if c.q_value <= args.alpha]
        key = lambda c: (tuple(c.source_units), tuple(c.target_units))  # noqa: E731
        new_keys = {key(c) for c in found}
        kept = sum(key(c) in new_keys for c in old_sig)
        flat = sum(c.pointwise_share > 0.5 for c in old_sig)
        kinds = {k: sum(c.kind == k for c in found) for k in sorted({c.kind for c in found})}
        summary.append(
            f"{la}→{lb}: {len(checks)} checks. Old rule (kernels null, q ≤ {args.alpha:g}): {len(old_sig)} significant, "
            f"{flat} of them with most of their energy through 1×1 paths. New rule (angles null, q ≤ {args.alpha:g}, "
            f"rotation gain > 2 null SD): {len(found)} "
            f"({', '.join(f'{v} {k}' for k, v in kinds.items()) or 'none'}); {kept} of the old ones survive."
        )
        targets = {tuple(f.units) for f in fams[lb]}
        hit = {tuple(c.target_units) for c in found if c.target_preferred is not None} & targets
        confirmed.append(f"| `{lb}` | {len(fams[lb])} | {len(hit)} |")
        for c in found[: args.rows]:
            lines.append(
                f"| {la}→{lb} | {c.kind} | {c.score:.3f} ({c.ceiling:.3f}) | {c.rotation_gain:+.3f} ({2 * c.gain_sd:.3f}) | "
                f"{c.q_value:.3f} | {c.p_value:.3f} | {c.pointwise_share:.2f} | "
                f"{describe(c.source_units, c.source_preferred)} | {describe(c.target_units, c.target_preferred)} |"
            )
    t_circ = time.perf_counter() - t0
    lines += ["", *[f"- {s}" for s in summary], f"- circuit checks took {t_circ:.0f} s (both nulls).", "",
              "Rotation families confirmed by weights (a significant circuit into the family from the layer below):", "",
              "| layer | rotation families | confirmed by weights |", "|---|---:|---:|", *confirmed]
    body = "\n".join(lines)
    write_section("circuits on googlenet_bvlc", body)
    print(body)


if __name__ == "__main__":
    main()
