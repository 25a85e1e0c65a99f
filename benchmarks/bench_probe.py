"""Probe engine efficiency on googlenet_bvlc, and the time of full-layer probes.

    python benchmarks/bench_probe.py [--device cpu|cuda]

Efficiency = stimuli per second through the whole probe (render + transform +
forward + record) / stimuli per second of the bare truncated forward on
pre-made tensors of the same size and batch, measured in the same run
(the two timed in turns, so a slow spell of a shared machine hits both).
Writes the section "probe engine (<device>)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

import equifind as ef
from _common import machine, timeit_interleaved, weights_path, write_section


def bare_forward(model: ef.Model, layer: str, n: int, canvas: int, batch: int):
    """A closure running n pre-made images of the probe's size through the truncated network."""
    images = torch.rand(batch, 3, canvas, canvas, generator=torch.Generator().manual_seed(0)).to(model.device)
    n_batches, rest = divmod(n, batch)

    def run() -> None:
        with torch.no_grad(), ef.record(model, [layer]):
            for _ in range(n_batches):
                model(images)
            if rest:
                model(images[:rest])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=device)
    rows = []
    for layer in ("conv2d2", "mixed3a"):
        resp = ef.probe(model, layer, progress=False)  # warm-up, and the sizes
        n = resp.values.shape[1] * resp.values.shape[2]
        canvas = resp.meta["canvas"]
        batch = max(1, min(512, (64 << 20) // (3 * 4 * (canvas * resp.meta["supersample"]) ** 2)))
        t_probe, t_bare = timeit_interleaved(
            [lambda: ef.probe(model, layer, progress=False), bare_forward(model, layer, n, canvas, batch)],
            repeats=args.repeats, warmup=1, device=device,
        )  # fmt: skip
        rows.append((layer, n, canvas, resp.meta["supersample"], n / t_probe, n / t_bare, t_bare / t_probe, t_probe))
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    full = ef.probe(model, "mixed3b", transform="rotation", progress=False)
    t_full = time.perf_counter() - t0
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB GPU memory"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB peak resident memory (whole process)"
    t0 = time.perf_counter()
    ef.probe(model, "mixed3a", transform="rotation", progress=False)
    t_3a = time.perf_counter() - t0
    table = "\n".join(
        f"| `{layer}` | {n} | {canvas} px (×{k} supersampled) | {sp:.0f} | {sb:.0f} | **{eff:.2f}** | {tp:.1f} |"
        for layer, n, canvas, k, sp, sb, eff, tp in rows
    )
    body = f"""Machine: {machine(device)}. Auto rotation stimuli, 64 steps, all units, median of {args.repeats} runs, probe and bare forward timed in turns.

| layer | stimuli | canvas | probe stimuli/s | bare forward stimuli/s | efficiency | probe seconds |
|---|---:|---|---:|---:|---:|---:|
{table}

Target: efficiency ≥ 0.7 — {"met" if min(r[6] for r in rows) >= 0.7 else "NOT met"}.

- `ef.probe(m, "mixed3a", transform="rotation")`, all 256 units: {t_3a:.1f} s (target < 120 s).
- Full probe of `mixed3b` (480 units, rotation, auto stimuli: {full.values.shape[1]} variants × {full.values.shape[2]} steps): {t_full:.1f} s; {peak}."""
    write_section(f"probe engine ({device.type})", body)
    print(body)


if __name__ == "__main__":
    main()
