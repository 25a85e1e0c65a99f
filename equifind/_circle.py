"""Helpers on the circle of a periodic transform, shared by family discovery and scoring."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["harmonic_period", "holes", "coverage", "PERIOD_FRACTION", "HOLE_FACTOR"]

PERIOD_FRACTION = 0.75  # tuning energy share in harmonics k, 2k, ... to call the period 360/k
HOLE_FACTOR = 1.5  # a gap wider than this × the median spacing is a hole


def harmonic_period(power: Tensor, steps: int) -> tuple[int, float]:
    """The rotation period of tuning curves from their summed harmonic power.

    Args:
        power: ``Tensor[steps // 2 + 1]``, power of each harmonic summed over curves
            (``|rfft(curves)|²`` summed over units).
        steps: the grid size over 360°.

    Returns:
        ``(k, 360 / k)``: the largest k in {4, 2} whose multiples hold ≥ 75% of the
        non-constant energy (line detectors wrap at 180°, some textures at 90°), else (1, 360).
    """
    for k in (4, 2):
        if 2 * k <= steps and float(power[k::k].sum()) >= PERIOD_FRACTION * float(power[1:].sum()):
            return k, 360.0 / k
    return 1, 360.0


def _gaps(preferred: list[float], period: float) -> tuple[list[float], Tensor]:
    """The values sorted in [0, period) and the gap after each to the next (the last wraps around)."""
    p = sorted(float(v) % period for v in preferred)
    nxt = torch.tensor(p[1:] + [p[0] + period], dtype=torch.float64)
    return p, nxt - torch.tensor(p, dtype=torch.float64)


def holes(preferred: list[float], period: float) -> list[float]:
    """Evenly spaced points in each gap wider than 1.5× the median spacing of ``preferred``.

    One missing member gives the gap's centre; ``round(gap / spacing) - 1`` points in general.
    The spacing is at least half the even spacing ``period / n``, so members that nearly
    coincide (invariant units, duplicates) cannot produce a flood of holes.
    """
    n = len(preferred)
    if n < 2:
        return []
    p, gaps = _gaps(preferred, period)
    spacing = max(float(torch.quantile(gaps, 0.5)), period / (2 * n))
    out = []
    for start, gap in zip(p, gaps.tolist()):
        if spacing > 0 and gap > HOLE_FACTOR * spacing:
            missing = max(1, round(gap / spacing) - 1)
            out += [(start + gap * j / (missing + 1)) % period for j in range(1, missing + 1)]
    return sorted(out)


def coverage(preferred: list[float], period: float) -> float:
    """How evenly ``preferred`` covers the circle: 1 for even spacing, 1/n when all coincide.

    ``1 - sum(max(0, gap - period/n)) / period`` over the n gaps between sorted neighbours.
    """
    n = len(preferred)
    if n == 0:
        return 0.0
    _, gaps = _gaps(preferred, period)
    excess = (gaps - period / n).clamp_min(0.0).sum()
    return float(1.0 - excess / period)
