"""Scale families on a real network: googlenet_bvlc conv2d2, mixed3a and mixed3b.

    python benchmarks/real_scale.py [--device cpu|cuda] [--layers conv2d2 mixed3a mixed3b] [--steps 32]

For each layer: ``ef.probe(m, layer, "scale", steps=32)`` (auto stimuli: gratings, edges, lines,
curves and bright/dark disks, zoomed over 4 octaves, 2**-2 … 2**2, in 1/8-octave steps) and
``ef.find_families`` with its defaults (discovery along log-scale without wrap-around, the
selection-aware null of 200 surrogate runs, q by Benjamini–Hochberg over the layer's families);
both timed. Reported per layer: families at q ≤ 0.05, their sizes, the zoom range each spans (in
octaves), the best ones with their members in size order, and each significant family's
equivariance score (``ef.score_responses``, random unit sets of the layer at their own peaks).

Thresholds that decide the result, and how much it moves: ``min_similarity`` 0.65 / 0.70 / 0.75
(count at q ≤ 0.05). Negative control: each unit's variants shuffled (``ef.controls.shuffle_variants``),
which keeps every tuning curve and destroys what units share; the right answer is "nothing here".
An example figure: the tuning heatmap of the best mixed3a family, as the report draws it.
Writes the section "scale families on googlenet_bvlc" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

import equifind as ef  # noqa: E402
from equifind.report import tuning_heatmap  # noqa: E402
from _common import machine, weights_path, write_section  # noqa: E402

LAYERS = ("conv2d2", "mixed3a", "mixed3b")
ALPHA = 0.05
SIMILARITIES = (0.65, 0.70, 0.75)
#: Layers that also get the threshold sweep and the negative control (each is 3 more discovery runs of
#: 200 surrogates; mixed3b's take about 4 minutes each on 2 CPU cores).
CHECKED = ("conv2d2", "mixed3a")
FIGURES = Path(__file__).resolve().parent / "figures"


def octaves(fam: ef.Family) -> float:
    """The zoom range a scale family spans, in octaves (log2 of largest / smallest preferred factor)."""
    return math.log2(max(fam.preferred) / min(fam.preferred))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS))
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=device)

    rows, best_rows, sens_rows, control_rows = [], [], [], []
    example: tuple[ef.Family, ef.Responses] | None = None
    for layer in args.layers:
        t0 = time.perf_counter()
        resp = ef.probe(model, layer, "scale", steps=args.steps, progress=False)
        t_probe = time.perf_counter() - t0
        t0 = time.perf_counter()
        fams = ef.find_families(resp)
        t_find = time.perf_counter() - t0
        sig = [f for f in fams if f.q_value <= ALPHA]
        sizes = sorted((len(f) for f in sig), reverse=True)
        spans = [octaves(f) for f in sig]
        span_text = f"{min(spans):.2f}–{max(spans):.2f}" if spans else "–"
        zooms = [z for f in sig for z in f.preferred]
        zoom_text = f"×{min(zooms):.2f} … ×{max(zooms):.2f}" if zooms else "–"
        lo, hi = float(resp.params[0]), float(resp.params[-1])
        half = 2 ** (0.5 * math.log2(hi / lo) / (len(resp.params) - 1))  # half a grid step, as a factor
        beyond = sum(z < lo / half or z > hi * half for z in zooms)
        at_end = sum(lo / half <= z <= lo * half or hi / half <= z <= hi * half for z in zooms)
        rows.append(f"| `{layer}` | {resp.values.shape[0]} | {len(fams.selective)} | {len(fams.invariant)} | {len(fams)} | "
                    f"**{len(sig)}** | {', '.join(map(str, sizes)) or '–'} | {span_text} | {zoom_text} | {at_end} / {beyond} of {len(zooms)} | "
                    f"{t_probe:.0f} | {t_find:.0f} |")
        print(layer, len(fams), len(sig), sizes, flush=True)
        for f in sig[:3]:
            sc = ef.score_responses(resp, f.units, n_null=200, seed=0)
            members = ", ".join(f"{u} (×{z:.2f})" for u, z in zip(f.units, f.preferred))
            best_rows.append(f"| `{layer}` | {members} | {f.score:.3f} | {f.q_value:.3f} | {octaves(f):.2f} | "
                             f"{sc.equivariance:.3f} (random sets {sc.null_mean:.3f}, p {sc.p_value:.3f}) |")
        if example is None and layer == "mixed3a" and sig:
            example = (sig[0], resp)
        if layer not in CHECKED:
            continue
        counts = []
        for sim in SIMILARITIES:
            found = fams if sim == 0.70 else ef.find_families(resp, min_similarity=sim)
            counts.append(sum(f.q_value <= ALPHA for f in found))
        sens_rows.append(f"| `{layer}` | " + " | ".join(map(str, counts)) + " |")
        shuffled = ef.find_families(ef.controls.shuffle_variants(resp, seed=0))
        control_rows.append(f"| `{layer}` | {len(sig)} | {sum(f.q_value <= ALPHA for f in shuffled)} "
                            f"(of {len(shuffled)} found; smallest q {min((f.q_value for f in shuffled), default=math.nan):.2f}) |")

    figure_line = ""
    if example is not None:
        fam, resp = example
        FIGURES.mkdir(exist_ok=True)
        fig = tuning_heatmap(fam, resp)
        fig.savefig(FIGURES / "scale_mixed3a_best.png", dpi=110, bbox_inches="tight")
        figure_line = (f"\n![mixed3a scale family {fam.units}](figures/scale_mixed3a_best.png)\n\n"
                       f"The best `mixed3a` family as the report draws it (members in size order, zoom on a log axis).\n")

    body = f"""Machine: {machine(device)}. Command: `python benchmarks/real_scale.py` (scale probe, {args.steps} steps over
4 octaves, 2^-2 … 2^2 zoom; `find_families` defaults: min_similarity 0.70, min_selectivity 0.25, 200 surrogate runs,
p ≤ 1/201 at the floor; q is Benjamini–Hochberg over the layer's families; significant means q ≤ {ALPHA}).

| layer | units | selective | invariant | families | q ≤ {ALPHA} | sizes (q ≤ {ALPHA}) | octaves spanned | preferred zoom | members at a grid end / beyond it | probe s | discovery s |
|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|
{chr(10).join(rows)}

A member's preferred zoom z means it prefers the stimulus z times its base size (the disks, curves and
lines are drawn at fixed fractions of the receptive field), so members in size order prefer larger
features. Members are placed by least squares on their pairwise shifts and offset to their own peaks;
a member whose tuning rises to a grid end (it may prefer a size beyond the probed range) sits at that end
or is placed beyond it by its shifts: the column "at a grid end / beyond it" counts them (within half a
step of ×1/4 or ×4, or outside). Their sizes are extrapolations, not measurements.

**Best families** (up to 3 per layer, members in size order; score = discovery's best-shift similarity;
equivariance = `score_responses` against 200 random unit sets of the layer, each at its own peaks):

| layer | members (preferred zoom) | score | q | octaves | equivariance |
|---|---|---:|---:|---:|---|
{chr(10).join(best_rows)}

**How the count moves with the threshold** ({", ".join(CHECKED)};  `min_similarity`, families at q ≤ {ALPHA}):

| layer | {' | '.join(f'{s:.2f}' for s in SIMILARITIES)} |
|---|{'---:|' * len(SIMILARITIES)}
{chr(10).join(sens_rows)}

**Negative control: variants shuffled** (each unit's stimulus variants permuted independently, seed 0; the
right answer is "nothing here"):

| layer | real: q ≤ {ALPHA} | shuffled: q ≤ {ALPHA} |
|---|---:|---|
{chr(10).join(control_rows)}
{figure_line}"""
    write_section("scale families on googlenet_bvlc", body)


if __name__ == "__main__":
    main()
