"""Family discovery on a real network: googlenet_bvlc, five early layers, rotation / hue / flip.

    python benchmarks/real_families.py [--device cpu|cuda] [--layers conv2d0 ...]

For each layer and transform: ``ef.probe`` with its defaults (auto stimuli, 64 steps,
natural-patch scale), then ``ef.find_families`` with its defaults (the selection-aware
null: 200 surrogate discovery runs); both are timed. Families are counted at p ≤ 0.05
(the old rule: each family alone) and at q ≤ 0.05 (Benjamini–Hochberg over the layer's
families, what equifind calls significant). Then how the counts move with
``min_similarity`` 0.65 / 0.70 / 0.75 (rows that move, again with 1000 surrogate runs, to show
what the p floor of 200 decided), and a negative control: conv2d2 and mixed3a with
each unit's variants shuffled (the stimulus pairing between units destroyed), which
should give at most one family at q ≤ 0.05 per layer and transform. Beside the table, the
proportions of the Circuits thread's hand-made taxonomy of *Lucid's* InceptionV1 (a
differently trained network: only proportions are comparable, not unit numbers). Then
what issue 13 changed: family sizes with the previous discovery and now, the flip pairs
a rotation family explains, and the colour gate (colour index per layer, and conv2d0
made colour-blind as the control). Writes the section "families on googlenet_bvlc" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

import equifind as ef
from _common import machine, weights_path, write_section

LAYERS = ("conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b")
TRANSFORMS = ("rotation", "hue", "flip")
ALPHA = 0.05  # the old rule: p <= ALPHA; the new one: q <= ALPHA
SIMILARITIES = (0.65, 0.70, 0.75)
SHUFFLED = ("conv2d2", "mixed3a")
N_LARGE = 1000  # surrogate runs for the rows the p floor of 200 may decide
#: families (p <= 0.05) per (layer, transform) with the previous null (random unit sets of the
#: same size, ignoring the selection), from this file's run of 2026-12-02 at commit a4bc80b.
OLD_NULL: dict[tuple[str, str], tuple[int, int]] = {
    ("conv2d0", "rotation"): (7, 5), ("conv2d0", "hue"): (7, 4), ("conv2d0", "flip"): (14, 14),
    ("conv2d1", "rotation"): (5, 5), ("conv2d1", "hue"): (7, 5), ("conv2d1", "flip"): (10, 10),
    ("conv2d2", "rotation"): (21, 21), ("conv2d2", "hue"): (17, 14), ("conv2d2", "flip"): (29, 29),
    ("mixed3a", "rotation"): (19, 19), ("mixed3a", "hue"): (26, 26), ("mixed3a", "flip"): (21, 21),
    ("mixed3b", "rotation"): (43, 43), ("mixed3b", "hue"): (24, 19), ("mixed3b", "flip"): (45, 45),
}  # fmt: skip

#: The Circuits thread's taxonomy of Lucid's InceptionV1 (Olah et al., "An Overview of Early
#: Vision in InceptionV1", Distill 2020): layer -> (units in the layer, {category: units}),
#: the categories named in this project's brief, and which transform each one's family
#: would show up under ("rotation" for oriented features, "hue" for colour ones).
TAXONOMY: dict[str, tuple[int, dict[str, tuple[int, str]]]] = {
    "conv2d0": (64, {"Gabor": (28, "rotation"), "colour contrast": (27, "hue")}),
    "conv2d2": (192, {"line": (33, "rotation"), "colour contrast": (40, "hue"), "tiny curve": (12, "rotation"),
                      "colour centre-surround": (13, "hue")}),
    "mixed3a": (256, {"curve": (11, "rotation"), "high-low frequency": (15, "rotation"), "line": (14, "rotation"),
                      "colour centre-surround": (30, "hue")}),
    "mixed3b": (480, {"curve": (10, "rotation"), "boundary": (36, "rotation"), "divot": (10, "rotation"),
                      "oriented fur": (10, "rotation")}),
}  # fmt: skip


@dataclass
class Row:
    """Discovery results for one (layer, transform)."""

    layer: str
    transform: str
    units: int
    selective: int
    invariant: int
    families: int
    significant: int  # families with q_value <= ALPHA
    p_significant: int  # families with p_value <= ALPHA (the old rule, no correction)
    in_families: int  # members (duplicates not counted)
    in_significant: int
    largest_units: list[int]
    largest_period: float
    largest_score: float
    largest_p: float
    t_probe: float
    t_families: float
    colour_units: int = -1  # hue only: units with colour index >= the default min_colour_index
    moved: list[int] = field(default_factory=list)  # q <= 0.05 counts at SIMILARITIES, when they move


def run(model: ef.Model, layer: str, transform: str) -> tuple[Row, ef.Responses, ef.FamilyList]:
    """Probe and discover one (layer, transform), timing both."""
    t0 = time.perf_counter()
    resp = ef.probe(model, layer, transform=transform, progress=False)
    t1 = time.perf_counter()
    fams = ef.find_families(resp)
    t2 = time.perf_counter()
    sig = [f for f in fams if f.q_value <= ALPHA]
    largest = max(sig, key=lambda f: (len(f), f.score), default=None)
    row = Row(
        layer, transform, len(resp.units), len(fams.selective), len(fams.invariant), len(fams), len(sig),
        sum(f.p_value <= ALPHA for f in fams), sum(len(f) for f in fams), sum(len(f) for f in sig),
        list(largest.units) if largest else [], largest.period if largest else float("nan"),
        largest.score if largest else float("nan"), largest.q_value if largest else float("nan"), t1 - t0, t2 - t1,
    )  # fmt: skip
    return row, resp, fams


@contextlib.contextmanager
def previous_discovery() -> Iterator[None]:
    """Discovery as it was before issue 13 (main at ff6a7c5): Louvain weighted by the plain
    similarity, the period from tuning energy alone, no outlier rule and no merging."""
    from equifind import families as F

    saved = (F._merge, F._MIN_DIRECTED, F._COHESION_MARGIN, F._Links.edges)
    edges = F._Links.edges

    def plain(self: F._Links, threshold: float) -> tuple[torch.Tensor, ...]:
        iu, iv, sim, _ = edges(self, threshold)
        return iu, iv, sim, sim

    F._merge = lambda groups, *args: groups  # type: ignore[assignment]
    F._MIN_DIRECTED, F._COHESION_MARGIN, F._Links.edges = 10**9, math.inf, plain  # type: ignore[method-assign]
    try:
        yield
    finally:
        F._merge, F._MIN_DIRECTED, F._COHESION_MARGIN, F._Links.edges = saved  # type: ignore[method-assign]


def size_line(fams: ef.FamilyList) -> str:
    """Families at q ≤ 0.05: how many, mean and largest size, and how many of 2, 3–4, 5–9 and ≥ 10 members."""
    sizes = [len(f) for f in fams if f.q_value <= ALPHA]
    if not sizes:
        return "0"
    bins = [sum(lo <= n <= hi for n in sizes) for lo, hi in ((2, 2), (3, 4), (5, 9), (10, 10**9))]
    return f"{len(sizes)}: mean {sum(sizes) / len(sizes):.1f}, max {max(sizes)}; {' / '.join(map(str, bins))}"


def sizes_table(found: dict[tuple[str, str], ef.FamilyList], before: dict[tuple[str, str], ef.FamilyList]) -> str:
    """Family sizes at q ≤ 0.05 per layer and transform, with the previous discovery and now."""
    lines = ["| layer | transform | before (ff6a7c5): families at q ≤ 0.05: mean, max; 2 / 3–4 / 5–9 / ≥ 10 members "
             "| now | units in them, before → now |", "|---|---|---|---|---|"]  # fmt: skip
    for (layer, transform), fams in found.items():
        if (layer, transform) not in before:
            continue
        old = before[(layer, transform)]
        n_old, n_new = (sum(len(f) for f in x if f.q_value <= ALPHA) for x in (old, fams))
        lines.append(f"| `{layer}` | {transform} | {size_line(old)} | {size_line(fams)} | {n_old} → {n_new} |")
    return "\n".join(lines)


def flip_table(found: dict[tuple[str, str], ef.FamilyList]) -> str:
    """Per layer: flip pairs, and how many one rotation family explains (all, and at q ≤ 0.05)."""
    lines = ["| layer | flip pairs (q ≤ 0.05) | explained by a rotation family (of those at q ≤ 0.05) | left as findings at q ≤ 0.05 |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for (layer, transform), flips in found.items():
        if transform != "flip" or (layer, "rotation") not in found:
            continue
        e = flip_explained(flips, found[(layer, "rotation")])
        lines.append(f"| `{layer}` | {e['pairs']} ({e['significant']}) | {e['explained']} ({e['significant_explained']}) "
                     f"| {e['significant'] - e['significant_explained']} |")  # fmt: skip
    return "\n".join(lines)


def colour_table(found: dict[tuple[str, str], ef.FamilyList], cache: dict[tuple[str, str], ef.Responses],
                 blind: tuple[ef.Responses, ef.FamilyList] | None) -> str:  # fmt: skip
    """The colour gate per layer (and the colour-blind conv2d0): colour index quartiles over responding
    units, units passing, hue-selective units the gate removed, hue families at q ≤ 0.05."""
    lines = ["| layer | colour index of responding units: min / 25% / 50% / 75% / max | colour units (index ≥ "
             f"{ef.DEFAULT_MIN_COLOUR_INDEX:g}) | selective, removed by the gate | hue families at q ≤ 0.05 (sizes; their colour index) "
             "| units in them |", "|---|---|---:|---:|---|---:|"]  # fmt: skip
    items = [(f"`{layer}`", cache[(layer, t)], fams) for (layer, t), fams in found.items() if t == "hue"]
    if blind is not None:
        items.append(("`conv2d0` colour-blind (RGB weights → their mean)", *blind))
    for name, resp, fams in items:
        c = colour_summary(resp, fams)
        lines.append(
            f"| {name} | {' / '.join(f'{x:.2f}' for x in c['quartiles'])} | {c['passing']} of {c['units']} "
            f"({pct(c['passing'], c['units'])}) | {c['selective']}, {c['achromatic']} | {c['significant']} "
            f"({', '.join(map(str, c['sizes'])) or '–'}; {', '.join(f'{x:.2f}' for x in c['colour_index']) or '–'}) "
            f"| {100 * c['in_significant']:.0f}% |"
        )
    return "\n".join(lines)


def flip_explained(flips: ef.FamilyList, rotations: ef.FamilyList, alpha: float = ALPHA) -> dict[str, int]:
    """How many of a layer's flip pairs its rotation families explain (``ef.explain_flip_pairs``, which
    sets ``Family.explained_by`` on ``flips``): ``pairs``, ``explained``, and the same two among the
    pairs with discovery q ≤ ``alpha`` (``significant``, ``significant_explained``)."""
    n = ef.explain_flip_pairs(flips, rotations)
    sig = [f for f in flips if f.q_value <= alpha]
    return {"pairs": len(flips), "explained": n, "significant": len(sig),
            "significant_explained": sum(f.explained_by is not None for f in sig)}  # fmt: skip


def colour_summary(resp: ef.Responses, fams: ef.FamilyList, alpha: float = ALPHA) -> dict[str, object]:
    """The colour gate's figures for one layer's hue probe and its families.

    Returns:
        ``quartiles`` of ``resp.colour_index`` over the units that respond (min, 25%, 50%,
        75%, max), ``passing`` (responding units at >= the default threshold), ``selective``,
        ``achromatic`` (hue-selective units the gate removed), ``families`` and ``sizes`` at
        q <= alpha, each one's ``colour_index``, and ``in_significant`` (units in those families,
        duplicates included, as a fraction of the layer's units).
    """
    ci = resp.colour_index
    if ci is None:
        raise ValueError(f"{resp!r} has no achromatic responses (probe it with transform='hue')")
    active = resp.responding()
    live = ci[active & torch.isfinite(ci)]
    q = torch.quantile(live, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist() if len(live) else []
    sig = [f for f in fams if f.q_value <= alpha]
    members = {u for f in sig for u in f.units} | {d for f in sig for d, _ in f.duplicates}
    return {
        "units": len(resp.units), "responding": int(active.sum()), "quartiles": [round(x, 3) for x in q],
        "passing": int((active & (ci >= ef.DEFAULT_MIN_COLOUR_INDEX)).sum()), "selective": len(fams.selective),
        "achromatic": len(fams.achromatic), "families": len(fams), "significant": len(sig),
        "sizes": [len(f) for f in sig], "colour_index": [round(f.colour_index, 3) for f in sig],
        "in_significant": len(members) / max(1, len(resp.units)),
    }  # fmt: skip


def pct(a: int, b: int) -> str:
    """``a`` as a percentage of ``b``."""
    return f"{100.0 * a / b:.0f}%" if b else "–"


def show_units(units: list[int], limit: int = 12) -> str:
    """A unit list, shortened to ``limit`` entries."""
    if len(units) <= limit:
        return ", ".join(map(str, units))
    return ", ".join(map(str, units[:limit])) + f", … (+{len(units) - limit})"


def table(rows: list[Row]) -> str:
    """The results table, one row per (layer, transform)."""
    head = (
        "| layer | transform | units | selective | invariant | families | p ≤ 0.05 | **q ≤ 0.05** | old null: families (p ≤ 0.05) "
        "| units in families (in q ≤ 0.05) | largest family at q ≤ 0.05: size, period, score, q — units | probe s | find_families s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    )
    lines = [head]
    for r in rows:
        big = (
            f"{len(r.largest_units)}, {r.largest_period:g}°, {r.largest_score:.2f}, {r.largest_p:.3g} — {show_units(r.largest_units)}"
            if r.largest_units else "–"
        )  # fmt: skip
        if r.transform == "flip" and r.largest_units:
            big = f"2, flip, {r.largest_score:.2f}, {r.largest_p:.3g} — {show_units(r.largest_units)}"
        old = OLD_NULL.get((r.layer, r.transform))
        lines.append(
            f"| `{r.layer}` | {r.transform} | {r.units} | {r.selective} ({pct(r.selective, r.units)}) | {r.invariant} "
            f"| {r.families} | {r.p_significant} | **{r.significant}** | {f'{old[0]} ({old[1]})' if old else '–'} "
            f"| {r.in_families} ({pct(r.in_families, r.units)}) "
            f"({r.in_significant}, {pct(r.in_significant, r.units)}) | {big} | {r.t_probe:.1f} | {r.t_families:.2f} |"
        )
    return "\n".join(lines)


def comparison(rows: list[Row]) -> str:
    """The taxonomy's proportions beside the found ones, per layer and transform."""
    by = {(r.layer, r.transform): r for r in rows}
    head = (
        "| layer | Circuits taxonomy of Lucid's InceptionV1 (units of layer) | oriented categories → rotation | found: units in rotation families (q ≤ 0.05) "
        f"| colour categories → hue | found: units in hue families (q ≤ 0.05) | colour units (colour index ≥ {ef.DEFAULT_MIN_COLOUR_INDEX:g}) |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for layer, (total, cats) in TAXONOMY.items():
        if (layer, "rotation") not in by:
            continue
        listing = ", ".join(f"{name} {n}" for name, (n, _) in cats.items()) + f" (of {total})"
        cells = [f"`{layer}`", listing]
        for transform in ("rotation", "hue"):
            n = sum(k for k, t in cats.values() if t == transform)
            r = by.get((layer, transform))
            cells.append(pct(n, total) if n else "0% (none listed)")
            cells.append(f"{pct(r.in_families, r.units)} ({pct(r.in_significant, r.units)})" if r else "–")
        hue = by[(layer, "hue")]
        cells.append(f"{hue.colour_units} ({pct(hue.colour_units, hue.units)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sensitivity(cache: dict[tuple[str, str], ef.Responses], rows: list[Row]) -> tuple[str, list[Row]]:
    """Families (at q ≤ 0.05) for each ``min_similarity`` in SIMILARITIES, and the rows whose
    significant count moves by more than 10% (and more than one family)."""
    head = "| layer | transform | " + " | ".join(f"min_similarity {s:.2f}: families (q ≤ 0.05)" for s in SIMILARITIES) + " |\n"
    head += "|---|---|" + "---:|" * len(SIMILARITIES)
    lines, moved = [head], []
    for r in rows:
        counts = []
        for sim in SIMILARITIES:
            if sim == 0.70:
                counts.append((r.families, r.significant))
                continue
            fams = ef.find_families(cache[(r.layer, r.transform)], min_similarity=sim)
            counts.append((len(fams), sum(f.q_value <= ALPHA for f in fams)))
        lines.append(f"| `{r.layer}` | {r.transform} | " + " | ".join(f"{n} ({k})" for n, k in counts) + " |")
        sig = [k for _, k in counts]
        if max(abs(k - sig[1]) for k in sig) > max(1.0, 0.1 * sig[1]):
            moved.append(r)
            r.moved = sig
        print("sensitivity", r.layer, r.transform, counts, flush=True)
    return "\n".join(lines), moved


def larger_null(cache: dict[tuple[str, str], ef.Responses], moved: list[Row]) -> str:
    """The moved rotation and hue rows again with N_LARGE surrogate runs: how much of the move was the p floor."""
    lines = [
        "| layer | transform | n_null 200: q ≤ 0.05 at " + " / ".join(f"{s:.2f}" for s in SIMILARITIES)
        + f" | n_null {N_LARGE}: q ≤ 0.05 at " + " / ".join(f"{s:.2f}" for s in SIMILARITIES) + " |",
        "|---|---|---:|---:|",
    ]
    for r in moved:
        if r.transform == "flip":
            continue
        large = [
            sum(f.q_value <= ALPHA for f in ef.find_families(cache[(r.layer, r.transform)], min_similarity=sim, n_null=N_LARGE))
            for sim in SIMILARITIES
        ]  # fmt: skip
        lines.append(f"| `{r.layer}` | {r.transform} | {' / '.join(map(str, r.moved))} | {' / '.join(map(str, large))} |")
        print("larger null", r.layer, r.transform, r.moved, large, flush=True)
    return "\n".join(lines)


def moved_text(moved: list[Row], again: str) -> str:
    """What the sensitivity table shows, and the moved rows with a larger null."""
    if not moved:
        return "No row's significant count moves by more than 10% across the three values."
    names = ", ".join(f"`{r.layer}` {r.transform} ({' / '.join(map(str, r.moved))})" for r in moved)
    return f"""Rows whose significant count moves by more than 10% (and by more than one family): {names}.
Two things move them. For flip, `min_similarity` is the mirror correlation that pairs two units, so
a higher value pairs fewer units by definition. For rotation and hue, a higher threshold splits a
loose family into pieces and a lower one merges units into larger, looser families; and with 200
surrogate runs the p floor 1/201 ≈ 0.005 can decide the count: with k families of which f sit at
the floor, Benjamini–Hochberg calls those f significant on their own only if 0.005 ≤ f × 0.05/k
(`find_families` warns when it is not, and names the n_null that settles it). The same rows with
{N_LARGE} surrogate runs:

{again}"""


def control(cache: dict[tuple[str, str], ef.Responses]) -> str:
    """The negative control: shuffled variants, real and shuffled counts side by side."""
    lines = ["| layer | transform | real: families (q ≤ 0.05) | variants shuffled: families (q ≤ 0.05) |", "|---|---|---:|---:|"]
    for layer in SHUFFLED:
        for transform in ("rotation", "hue"):
            if (layer, transform) not in cache:
                continue
            resp = cache[(layer, transform)]
            real = ef.find_families(resp)
            shuffled = ef.controls.shuffle_variants(resp)
            shuffled.achromatic = None  # the colour gate off: the control tests the discovery null alone
            shuf = ef.find_families(shuffled)
            counts = [(len(f), sum(x.q_value <= ALPHA for x in f)) for f in (real, shuf)]
            lines.append(f"| `{layer}` | {transform} | {counts[0][0]} ({counts[0][1]}) | {counts[1][0]} ({counts[1][1]}) |")
            print("control", layer, transform, counts, flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=device)
    rows: list[Row] = []
    cache: dict[tuple[str, str], ef.Responses] = {}
    found: dict[tuple[str, str], ef.FamilyList] = {}
    t_all = time.perf_counter()
    for layer in args.layers:
        for transform in TRANSFORMS:
            row, cache[(layer, transform)], found[(layer, transform)] = run(model, layer, transform)
            if transform == "hue":
                ci = cache[(layer, transform)].colour_index
                row.colour_units = int((ci >= ef.DEFAULT_MIN_COLOUR_INDEX).sum()) if ci is not None else -1
            rows.append(row)
            print(f"{layer:8s} {transform:8s} sel {row.selective:3d}/{row.units:3d} inv {row.invariant:3d} "
                  f"fams {row.families:3d} ({row.significant:3d} sig) in fams {row.in_families:3d} ({row.in_significant:3d}) "
                  f"largest {len(row.largest_units):3d} period {row.largest_period:g} "
                  f"probe {row.t_probe:.1f}s ff {row.t_families:.2f}s", flush=True)  # fmt: skip
    total = time.perf_counter() - t_all
    before: dict[tuple[str, str], ef.FamilyList] = {}
    with previous_discovery():
        for (layer, transform), resp in cache.items():
            if transform != "flip":
                before[(layer, transform)] = ef.find_families(resp)
    blind = None
    if "conv2d0" in args.layers:
        resp = ef.probe(ef.controls.colour_blind(model), "conv2d0", transform="hue", progress=False)
        blind = (resp, ef.find_families(resp))
    sizes, flips, colours = sizes_table(found, before), flip_table(found), colour_table(found, cache, blind)
    print(sizes, flips, colours, sep="\n\n", flush=True)
    sens, moved = sensitivity(cache, rows)
    again = larger_null(cache, moved)
    ctrl = control(cache)
    largest = "\n".join(
        f"- `{r.layer}` {r.transform}: {len(r.largest_units)} units, period {r.largest_period:g}, "
        f"score {r.largest_score:.2f}, q = {r.largest_p:.3g}: {', '.join(map(str, r.largest_units))}"
        for r in rows if r.transform != "flip" and r.largest_units
    )  # fmt: skip
    body = f"""Machine: {machine(device)}. `ef.probe(m, layer, transform)` with its defaults (auto stimuli,
64 steps; flip: 2; each unit's natural scale from natural-image patches), then
`ef.find_families(responses)` with its defaults (min_response 0.1 and min_selectivity 0.25 of the
natural scale, min_similarity 0.7, 200 surrogate discovery runs: p floor 1/201 ≈ 0.005); one run
each, {total:.0f} s for probes and discovery. Percentages are of the layer's units. "Selective": the
tuning swings by ≥ 25% of the unit's natural 99th percentile (for flip, mirror-asymmetric and not
its own mirror image); "invariant": responds (peak ≥ 10% of it) but is not selective. Units in
families count the members, not the duplicates. "p ≤ 0.05" counts the families each significant
alone (the old rule); **q ≤ 0.05** is Benjamini–Hochberg over the layer's families, what equifind
now calls significant. "Old null" is the previous p-value (random unit sets of the same size,
ignoring that the family was selected), from the run of 2026-12-02 at a4bc80b.

{table(rows)}

**Thresholds that decide the result, and how far it moves.** Family counts (in brackets: at q ≤ 0.05)
for three values of `min_similarity` (the similarity that links two units), the other settings fixed:

{sens}

{moved_text(moved, again)}

**Negative control: variants shuffled.** Each unit's stimulus variants permuted independently (seed 0),
which keeps every tuning curve and destroys what units share (`ef.controls.shuffle_variants`; hue without
the colour gate, so that the discovery null alone is tested); the right answer is "nothing here":

{ctrl}

Largest rotation and hue families at q ≤ 0.05, all members (ordered by preferred parameter):

{largest}

**Family sizes before and after the fixes of issue 13.** "Before" re-runs the previous discovery (main at
ff6a7c5: Louvain weighted by the plain similarity, the period from tuning energy alone, no outlier rule,
no merging of groups) on the same responses (for hue: the new stimuli and the colour gate included):

{sizes}

**Flip pairs that a rotation family explains** (`ef.explain_flip_pairs`: both units members of one rotation
family at mirrored angles, θ_u + θ_v ≡ 0 mod 180° within {ef.families.MIRROR_TOLERANCE:g}°); they stay in the data,
out of the counts:

{flips}

**Hue means colour.** Each unit's colour index (`Responses.colour_index`: its drive by the colour stimuli
over its drive by grey versions of equal RGB contrast plus the colour drive; about 0.37 for a linear
colour-blind unit) and the gate of `find_families` (min_colour_index {ef.DEFAULT_MIN_COLOUR_INDEX:g}: colour moves
the unit at least as much as grey). The control: conv2d0 made colour-blind, where the right answer is
no hue family:

{colours}

**Against the Circuits thread's taxonomy.** The Circuits thread classified the units of Lucid's
InceptionV1 by hand (Olah et al., "An Overview of Early Vision in InceptionV1", Distill 2020);
googlenet_bvlc is a different training of the same architecture, so only proportions compare.
Oriented categories (Gabor, line, curve, high-low frequency, boundary, divot, oriented fur) should
form rotation families, colour ones (colour contrast, colour centre-surround) hue families:

{comparison(rows)}"""
    if not args.no_write:
        write_section("families on googlenet_bvlc", body)
    print(body)


if __name__ == "__main__":
    main()
