"""Recording with early stop vs a full forward pass, googlenet_bvlc, batch 64 at 224×224.

    python benchmarks/bench_record.py [--device cpu|cuda] [--repeats 5]

Writes the section "record vs forward (<device>)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse

import torch

import equifind as ef
from _common import machine, timeit, weights_path, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = ef.load_model("googlenet_bvlc", weights=weights_path("bvlc_googlenet.pth"), device=device)
    images = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)

    def full() -> None:
        model(images)

    def recording(layer: str):
        def run() -> None:
            with ef.record(model, [layer]):
                model(images)

        return run

    with torch.no_grad():
        t_full = timeit(full, repeats=args.repeats, device=device)
        t_c2 = timeit(recording("conv2d2"), repeats=args.repeats, device=device)
        t_m3b = timeit(recording("mixed3b"), repeats=args.repeats, device=device)
    body = f"""Machine: {machine(device)}. Batch {args.batch} at 224×224, median of {args.repeats} runs.

| what | seconds | ratio to (a) |
|---|---:|---:|
| (a) full forward | {t_full:.3f} | 1.00 |
| (b) record `conv2d2`, early stop | {t_c2:.3f} | {t_c2 / t_full:.3f} |
| (c) record `mixed3b`, early stop | {t_m3b:.3f} | {t_m3b / t_full:.3f} |

Target: (b)/(a) ≤ 0.35 — {"met" if t_c2 / t_full <= 0.35 else "NOT met"}."""
    write_section(f"record vs forward ({device.type})", body)
    print(body)


if __name__ == "__main__":
    main()
