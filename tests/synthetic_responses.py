"""Planted ``Responses`` with known families, for the tests and benchmarks of ``find_families``.

Every builder is seeded and returns a :class:`Planted`: the responses and the truth
(family membership in ascending order of the planted preferred parameter, periods,
invariant, random and dead units).

Response model of a 1-D family member ``u`` at preferred angle ``φ_u`` to variant ``x``
at grid angle ``θ``: ``a_u · (g[x] · vm(θ − φ_u) + b[x]) + noise``, where the family
shares the variant gains ``g`` and baselines ``b``, ``a_u`` is the member's own gain and
``vm`` a von Mises bump of the family's period (a function of ``k·θ``, ``k = 360/period``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from equifind.responses import Responses


@dataclass
class Spec:
    """One planted family: member angles (degrees), period (360, 180, 90) and width.

    ``echo``: optional, per member, the height (relative to the peak) of a second bump at
    the angle + 180° (early curve detectors answer a line too); the members stay rotated
    copies of one feature only up to that echo.
    """

    angles: Sequence[float]
    period: float = 360.0
    kappa: float = 3.0
    echo: Sequence[float] | None = None


@dataclass
class Planted:
    """Planted responses and their ground truth (unit ids, not rows)."""

    responses: Responses
    families: list[list[int]] = field(default_factory=list)
    periods: list[float] = field(default_factory=list)
    preferred: list[list[float]] = field(default_factory=list)
    invariant: list[int] = field(default_factory=list)
    random: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    hues: list[list[float]] = field(default_factory=list)

    def labels(self) -> list[int]:
        """Per row: the index of its family, or a label of its own (negative)."""
        of = {u: i for i, fam in enumerate(self.families) for u in fam}
        return [of.get(u, -1 - r) for r, u in enumerate(self.responses.units)]


def von_mises(theta: Tensor, mu: Tensor | float, kappa: float, period: float = 360.0) -> Tensor:
    """``exp(κ (cos(2π (θ − μ) / period) − 1))``: a bump of height 1 at ``μ`` (degrees)."""
    return torch.exp(kappa * (torch.cos(2 * math.pi * (theta - mu) / period) - 1.0))


def _smooth_random(shape: tuple[int, ...], theta: Tensor, g: torch.Generator, harmonics: int = 4) -> Tensor:
    """Random non-negative smooth periodic curves ``[*shape, steps]`` (harmonics 1..4, amplitude ~1/k)."""
    out = torch.zeros(*shape, len(theta), dtype=torch.float64)
    for k in range(1, harmonics + 1):
        amp = torch.randn(*shape, 1, generator=g, dtype=torch.float64) / k
        phase = torch.rand(*shape, 1, generator=g, dtype=torch.float64) * 2 * math.pi
        out += amp * torch.cos(k * torch.deg2rad(theta) + phase)
    return out - out.amin(-1, keepdim=True)


def _finish(
    rows: list[Tensor], kinds: list[tuple[str, int]], params: Tensor, transform: str,
    g: torch.Generator, noise: float, shuffle: bool, unit_offset: int,
) -> tuple[Responses, list[int]]:  # fmt: skip
    """Stack rows, add noise, shuffle; returns the Responses and each planted row's unit id."""
    values = torch.stack(rows)
    values = values + noise * torch.randn(values.shape, generator=g, dtype=values.dtype)
    n = len(rows)
    perm = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    new_row = torch.empty(n, dtype=torch.long)
    new_row[perm] = torch.arange(n)  # planted row i ends up at row new_row[i]
    resp = Responses(values[perm], params, layer="planted", transform=transform, units=[r + unit_offset for r in range(n)])
    return resp, [int(new_row[i]) + unit_offset for i in range(n)]


def planted_1d(
    specs: Sequence[Spec], n_invariant: int = 0, n_random: int = 0, *, transform: str = "rotation",
    steps: int = 64, variants: int = 8, noise: float = 0.02, seed: int = 0, shuffle: bool = True,
    unit_offset: int = 0, n_dead: int = 0, start: float = 0.0,
) -> Planted:  # fmt: skip
    """Rotation or hue families, invariant (flat), random (smooth) and dead units.

    Args:
        specs: the families.
        n_invariant, n_random, n_dead: how many of each other kind.
        transform: "rotation" or "hue".
        steps, variants: grid size and number of stimulus variants.
        noise: std of the additive Gaussian noise (bumps have height 1).
        seed: seeds everything.
        shuffle: shuffle the rows (families interleaved).
        unit_offset: unit id of row r is ``r + unit_offset``.
        start: first grid angle (degrees).
    """
    g = torch.Generator().manual_seed(seed)
    theta = (start + torch.arange(steps, dtype=torch.float64) * 360.0 / steps) % 360.0
    rows: list[Tensor] = []
    kinds: list[tuple[str, int]] = []
    for f, spec in enumerate(specs):
        gains = torch.rand(variants, 1, generator=g, dtype=torch.float64) ** 2
        gains[torch.randint(variants, (1,), generator=g)] = 1.0
        base = 0.1 * torch.rand(variants, 1, generator=g, dtype=torch.float64)
        echoes = [0.0] * len(spec.angles) if spec.echo is None else list(spec.echo)
        if len(echoes) != len(spec.angles):
            raise ValueError(f"Spec.echo has {len(echoes)} entries for {len(spec.angles)} angles")
        for angle, echo in zip(spec.angles, echoes):
            a = 0.7 + 0.6 * float(torch.rand(1, generator=g))
            bump = von_mises(theta, angle, spec.kappa, spec.period) + echo * von_mises(theta, angle + 180.0, spec.kappa, spec.period)
            rows.append(a * (gains * bump + base))
            kinds.append(("family", f))
    for _ in range(n_invariant):
        rows.append((0.5 + torch.rand(variants, 1, generator=g, dtype=torch.float64)).expand(variants, steps).clone())
        kinds.append(("invariant", -1))
    for _ in range(n_random):
        rows.append(_smooth_random((variants,), theta, g))
        kinds.append(("random", -1))
    for _ in range(n_dead):
        rows.append(torch.zeros(variants, steps, dtype=torch.float64))
        kinds.append(("dead", -1))
    resp, ids = _finish(rows, kinds, theta, transform, g, noise, shuffle, unit_offset)
    if n_dead:  # dead units stay exactly zero
        dead_rows = [resp.row(u) for u, (kind, _) in zip(ids, kinds) if kind == "dead"]
        resp.values[dead_rows] = 0.0
    out = Planted(resp)
    for f, spec in enumerate(specs):
        members = [u for u, kind in zip(ids, kinds) if kind == ("family", f)]
        order = sorted(range(len(members)), key=lambda i: spec.angles[i] % spec.period)
        out.families.append([members[i] for i in order])
        out.preferred.append([spec.angles[i] % spec.period for i in order])
        out.periods.append(float(spec.period))
    for name in ("invariant", "random", "dead"):
        getattr(out, name).extend(u for u, kind in zip(ids, kinds) if kind[0] == name)
    return out


def planted_flip(
    n_pairs: int, n_symmetric: int = 0, n_random: int = 0, *, variants: int = 20,
    noise: float = 0.02, seed: int = 0, shuffle: bool = True,
) -> Planted:  # fmt: skip
    """Flip pairs (v's response to x is u's to flip(x)), mirror-symmetric and random units.

    ``families`` lists each pair with the unit whose own peak is unflipped (step 0) first.
    """
    g = torch.Generator().manual_seed(seed)
    rows: list[Tensor] = []
    kinds: list[tuple[str, int]] = []
    for p in range(n_pairs):
        r = torch.rand(variants, 2, generator=g, dtype=torch.float64) ** 2
        rows += [r, r.flip(-1) * (0.7 + 0.6 * float(torch.rand(1, generator=g)))]
        kinds += [("family", p), ("family", p)]
    for _ in range(n_symmetric):
        rows.append(torch.rand(variants, 1, generator=g, dtype=torch.float64).expand(variants, 2).clone())
        kinds.append(("invariant", -1))
    for _ in range(n_random):
        rows.append(torch.rand(variants, 2, generator=g, dtype=torch.float64) ** 2)
        kinds.append(("random", -1))
    resp, ids = _finish(rows, kinds, torch.tensor([0.0, 1.0]), "flip", g, noise, shuffle, 0)
    out = Planted(resp)
    prefers = resp.preferred
    for p in range(n_pairs):
        pair = [u for u, kind in zip(ids, kinds) if kind == ("family", p)]
        out.families.append(sorted(pair, key=lambda u: (float(prefers[resp.row(u)]), u)))
        out.preferred.append([0.0, 1.0])
        out.periods.append(2.0)
    out.invariant = [u for u, kind in zip(ids, kinds) if kind[0] == "invariant"]
    out.random = [u for u, kind in zip(ids, kinds) if kind[0] == "random"]
    return out


def contrast_tuning(n: int, hue: float, angle: float, kappa_hue: float = 2.0, kappa_angle: float = 3.0) -> Tensor:
    """A colour-contrast unit on the n × n (hue, angle) grid: ``Tensor[n, n]`` with
    ``R(h + 180, θ) = R(h, θ + 180)`` (swapping the two hues is rotating by 180°)."""
    axis = torch.arange(n, dtype=torch.float64) * 360.0 / n
    h, t = axis[:, None], axis[None, :]
    return von_mises(h, hue, kappa_hue) * von_mises(t, angle, kappa_angle) + von_mises(h, hue + 180, kappa_hue) * von_mises(
        t, angle + 180, kappa_angle
    )


def planted_hue_rotation(
    members: Sequence[tuple[float, float]], n_random: int = 0, n_invariant: int = 0, *, n: int = 16,
    variants: int = 4, noise: float = 0.02, seed: int = 0,
) -> Planted:  # fmt: skip
    """One colour-contrast family with members at (hue, angle) pairs, plus random and flat units.

    The truth's preferred (hue, angle) is canonical: hue in [0, 180) (the same unit as
    (hue + 180, angle + 180)); ``preferred`` holds the angles, ordered by (angle, hue).
    """
    g = torch.Generator().manual_seed(seed)
    gains = torch.rand(variants, 1, 1, generator=g, dtype=torch.float64) ** 2
    gains[0] = 1.0
    rows: list[Tensor] = []
    kinds: list[tuple[str, int]] = []
    for hue, angle in members:
        rows.append((gains * contrast_tuning(n, hue, angle)).reshape(variants, n * n))
        kinds.append(("family", 0))
    for _ in range(n_random):
        axis = torch.arange(n, dtype=torch.float64) * 360.0 / n
        surface = _smooth_random((variants,), axis, g)[:, :, None] * _smooth_random((variants,), axis, g)[:, None, :]
        rows.append(surface.reshape(variants, n * n))
        kinds.append(("random", -1))
    for _ in range(n_invariant):
        rows.append((0.5 + torch.rand(variants, 1, generator=g, dtype=torch.float64)).expand(variants, n * n).clone())
        kinds.append(("invariant", -1))
    axis = torch.arange(n, dtype=torch.float64) * 360.0 / n
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(n * n, 2)  # hue-major
    resp, ids = _finish(rows, kinds, grid, "hue_rotation", g, noise, True, 0)
    canon = [(h % 360.0, a % 360.0) if h % 360.0 < 180.0 else (h % 360.0 - 180.0, (a + 180.0) % 360.0) for h, a in members]
    family = [u for u, kind in zip(ids, kinds) if kind[0] == "family"]
    order = sorted(range(len(members)), key=lambda i: (canon[i][1], canon[i][0]))
    out = Planted(resp, families=[[family[i] for i in order]], periods=[360.0])
    out.preferred = [[canon[i][1] for i in order]]
    out.hues = [[canon[i][0] for i in order]]
    out.random = [u for u, kind in zip(ids, kinds) if kind[0] == "random"]
    out.invariant = [u for u, kind in zip(ids, kinds) if kind[0] == "invariant"]
    return out


def naive_shift_similarity(profiles: Tensor) -> tuple[Tensor, Tensor]:
    """Reference for ``families._shift_similarity``: a Python loop over pairs and shifts.

    Args:
        profiles: ``Tensor[U, V, *grid]`` (1-D or 2-D grid), normalised.

    Returns:
        ``sim`` Tensor[U, U] and ``shift`` Tensor[U, U, d] (grid steps in [-n/2, n/2)),
        the correlation peak refined by a parabola along each axis.
    """
    z = profiles.double().numpy()
    grid = z.shape[2:]
    n_units = z.shape[0]
    sim = torch.zeros(n_units, n_units, dtype=torch.float64)
    shift = torch.zeros(n_units, n_units, len(grid), dtype=torch.float64)
    shifts = list(itertools.product(*(range(n) for n in grid)))
    axes = tuple(range(1, 1 + len(grid)))
    for u in range(n_units):
        for w in range(n_units):
            surface = np.zeros(grid)
            for k in shifts:  # Σ_x z_u(x) z_w(x + k)
                surface[k] = float((z[u] * np.roll(z[w], [-s for s in k], axis=axes)).sum())
            best = np.unravel_index(int(np.argmax(surface)), grid)
            top = value = surface[best]
            for axis, n in enumerate(grid):
                lo, hi = list(best), list(best)
                lo[axis], hi[axis] = (best[axis] - 1) % n, (best[axis] + 1) % n
                y0, y2 = surface[tuple(lo)], surface[tuple(hi)]
                curve = y0 - 2 * top + y2
                off = min(0.5, max(-0.5, 0.5 * (y0 - y2) / curve)) if curve < -1e-12 else 0.0
                value -= 0.25 * (y0 - y2) * off
                shift[u, w, axis] = (best[axis] + off + n / 2) % n - n / 2
            sim[u, w] = min(1.0, max(-1.0, value))
    return sim, shift


def structure_free(
    n_units: int = 200, variants: int = 1, *, steps: int = 64, seed: int = 0, transform: str = "rotation"
) -> Responses:
    """Responses with no shared structure: every unit's every variant an independent,
    rectified, random smooth periodic tuning curve (harmonics 1–4, amplitude ~1/k, a random
    offset before the rectification), and a random gain per unit. No two units are
    transformed copies except by chance; every family ``find_families`` reports is false.
    """
    g = torch.Generator().manual_seed(seed)
    theta = torch.arange(steps, dtype=torch.float64) * 360.0 / steps
    curves = _smooth_random((n_units, variants), theta, g)  # >= 0, touching 0
    offset = torch.rand(n_units, variants, 1, generator=g, dtype=torch.float64) * curves.amax(-1, keepdim=True) * 0.5
    gain = 0.5 + torch.rand(n_units, 1, 1, generator=g, dtype=torch.float64)
    values = gain * (curves - offset).clamp_min(0.0)
    return Responses(values, theta, layer="structure_free", transform=transform)


def with_planted(base: Responses, specs: Sequence[Spec], *, seed: int = 0, noise: float = 0.02) -> Planted:
    """``base`` (e.g. :func:`structure_free`) with the families of ``specs`` appended as
    extra units (ids after ``base``'s), built by :func:`planted_1d` on the same grid."""
    n_base, n_var, steps = base.values.shape
    planted = planted_1d(specs, steps=steps, variants=n_var, noise=noise, seed=seed, unit_offset=n_base, transform=base.transform)
    values = torch.cat([base.values, planted.responses.values.clamp_min(0.0)])
    units = list(base.units) + list(planted.responses.units)
    resp = Responses(values, base.params, layer=base.layer, transform=base.transform, units=units)
    out = Planted(resp, families=planted.families, periods=planted.periods, preferred=planted.preferred)
    out.random = list(base.units)
    return out
