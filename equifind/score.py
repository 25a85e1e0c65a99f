"""``score_family``: how truly a set of units is one equivariant family.

The test is the seed's definition of equivariance, f(g·x) = P_g f(x): over a
stimulus set X, the family's responses to transformed stimuli g·x are compared
with its responses to x permuted by P_g. Natural families are uneven and have
holes, so g and P_g come from the members' *measured* positions φ: for every
ordered pair of members (i, j), g_ij = φ_j − φ_i is the transform that should
take member i onto member j, and unit j's response to g_ij·x is compared with
unit i's response to x (over X and the whole grid; shifts between grid steps
are exact Fourier shifts). A flip pair's g is the mirror, and X is every stimulus
variant of the flip probe (two flip states alone would leave a handful of numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_distinct, check_n_null
from ._circle import coverage, harmonic_period, holes
from ._stats import DEFAULT_Q, check_null_size, format_p, permutation_p
from .heldout import HeldoutSource, check_sources, deciding_test, validate_families
from .models.base import Model
from .probe import StimuliSpec, auto_stimuli, probe, probe_geometry
from .responses import Responses
from .stimuli import StimulusSet
from .transforms import Transform, as_transform, names
from .unitref import REPR_UNITS, format_unit_ref

__all__ = ["score_family", "score_responses", "FamilyScore"]

_NO_TEST = "no equivariance test: p_value and q_value are NaN"


@dataclass
class FamilyScore:
    """The equivariance of one family.

    Attributes:
        layer: layer name.
        transform: the :class:`~equifind.transforms.Transform` (equal to its name; saved by name).
        units: the units as given.
        order: the units ordered by preferred parameter (the family's cyclic order).
        preferred: unit -> its preferred parameter (degrees; 0/1 for flip).
        period: the family's period (rotation 360, 180 or 90 from the tuning harmonics; hue 360; flip 2;
            None for scale).
        equivariance: in [0, 1]: the mean over ordered member pairs (i, j) of the
            correlation of unit j's responses to g_ij·x with unit i's to x, g_ij = φ_j − φ_i
            from the measured positions (1.0 is exact).
        invariance: the same with each unit compared with itself (its response to
            g_ij·x against its response to x): high means the units respond alike to x
            and g·x (merely invariant), not that they are copies.
        per_shift: for k = 1 … n−1, the mean score of the pairs (i, i + k) in cyclic order.
        coverage: in [0, 1]: how evenly the preferred parameters cover the period; scale: the share
            of the grid's log-range between the smallest and largest preferred zoom factor.
        holes: parameters where members seem missing.
        p_value: the equivariance test: ``(1 + #null ≥ equivariance) / (1 + n_null)``
            against random unit sets of the same size from the same layer, each scored the
            same way at its own measured positions; never below ``1 / (1 + n_null)``.
        null_mean: the mean equivariance of those random sets.
        n_stimuli: the number of stimulus variants in X (the members' best variants;
            flip: every variant of the probe).
        q_value: Benjamini–Hochberg q of ``p_value``: over the families of one layer and
            transform in a scan; for a single :func:`score_family` call, q = p.
        n_null: the random sets behind ``p_value``.
        heldout: the held-out tests (:mod:`equifind.heldout`), source ("feature_vis",
            "patches", and "combined" when both ran) -> :class:`~equifind.heldout.HeldoutSource`;
            empty when the family was not validated.
    """

    layer: str
    transform: Transform
    units: list[int]
    order: list[int]
    preferred: dict[int, float]
    period: float | None
    equivariance: float
    invariance: float
    per_shift: list[float]
    coverage: float
    holes: list[float]
    p_value: float
    null_mean: float
    n_stimuli: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    q_value: float = math.nan
    n_null: int = 0
    heldout: dict[str, HeldoutSource] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.transform = as_transform(self.transform)
        self.heldout = {k: v if isinstance(v, HeldoutSource) else HeldoutSource.from_dict(v) for k, v in self.heldout.items()}

    def __repr__(self) -> str:
        """Short: the family, its equivariance and test (``summary()`` says more; equality compares every field)."""
        held = "" if self.heldout_test is None else f", held-out {self.heldout_equivariance:.3f}"
        return (
            f"FamilyScore({format_unit_ref(self.layer, self.order, limit=REPR_UNITS)}, {self.transform.name}, "
            f"{len(self.order)} units, equivariance {self.equivariance:.3f}, "
            f"{format_p(self.q_value, self.n_null, 'q')}, {format_p(self.p_value, self.n_null)}{held})"
        )

    @property
    def heldout_test(self) -> HeldoutSource | None:
        """The held-out test that decides the verdict: the combined one, or the only source; None
        when the family was not validated."""
        return deciding_test(self.heldout)

    @property
    def heldout_equivariance(self) -> float:
        """The held-out equivariance (combined over the sources, or the only one); NaN if not validated."""
        main = self.heldout_test
        return main.equivariance if main is not None else math.nan

    @property
    def heldout_p_value(self) -> float:
        """The p-value of :attr:`heldout_equivariance` (random unit sets scored the same way); NaN if not validated."""
        main = self.heldout_test
        return main.p_value if main is not None else math.nan

    @property
    def heldout_q_value(self) -> float:
        """The BH q of :attr:`heldout_p_value` (over a scan's validated families); NaN if not validated."""
        main = self.heldout_test
        return main.q_value if main is not None else math.nan

    def held_out(self, alpha: float = DEFAULT_Q) -> bool | None:
        """True when the held-out test (combined, or the only source) is significant (q ≤ ``alpha``)
        with a positive statistic (:meth:`HeldoutSource.held_out`), False when the family "did
        not hold out", None when it was not validated."""
        main = self.heldout_test
        return None if main is None or math.isnan(main.q_value) else main.held_out(alpha)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (unit keys of ``preferred`` become strings)."""
        out = asdict(self)
        out["transform"] = self.transform.name
        out["preferred"] = {str(k): v for k, v in self.preferred.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FamilyScore:
        """Rebuild a score from :meth:`to_dict`'s output; files written before ``q_value`` and ``n_null``
        were kept give NaN and 0."""
        d = dict(data)
        d["preferred"] = {int(k): float(v) for k, v in d["preferred"].items()}
        d["q_value"] = math.nan if d.get("q_value") is None else float(d["q_value"])
        d["n_null"] = int(d.get("n_null") or 0)
        return cls(**d)

    def summary(self) -> str:
        """One readable paragraph; the q and p are the equivariance test's."""
        test = f"{format_p(self.q_value, self.n_null, 'q')}, {format_p(self.p_value, self.n_null)}"
        return (
            f"{self.layer} {self.transform} family of {len(self.order)} units, order {self.order} "
            f"(period {'none' if self.period is None else f'{self.period:g}'}): equivariance {self.equivariance:.3f} "
            f"(random sets {self.null_mean:.3f}; equivariance test {test}), invariance {self.invariance:.3f}, "
            f"coverage {self.coverage:.2f}" + (f", holes at {[round(h, 1) for h in self.holes]}" if self.holes else "")
            + self._heldout_text()
        )

    def _heldout_text(self) -> str:
        main = self.heldout_test
        if main is None:
            return ""
        verdict = main.verdict()
        per = ", ".join(
            f"{k} {v.equivariance:.3f} ({format_p(v.p_value, v.n_null)})" for k, v in self.heldout.items() if k != "combined"
        )
        return (
            f"; held-out equivariance {main.equivariance:.3f} ({format_p(main.q_value, main.n_null, 'q')}, "
            f"{verdict}; {per})"
        )


def _zscore(x: Tensor) -> Tensor:
    """Standardise each row of ``x`` (``[..., units, n]``) over its last axis."""
    x = x - x.mean(dim=-1, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


_PAIR_CHUNK = 1 << 22  # B·n²·F complex entries per block of pair scores


def _pair_scores(values: Tensor, sets: Tensor, variants: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor]:
    """Correlation of unit j's responses to g_ij·x with unit i's (and with its own) to x.

    For every set, every ordered pair of members (i, j): ``z_j(x, θ + δ_ij)`` against
    ``z_i(x, θ)`` over the set's stimuli x and the grid θ, each unit standardised over
    X × grid; the shift by ``δ_ij`` grid steps (any real number) is exact in Fourier space,
    so the cross-spectra give every pair at once.

    Args:
        values: ``Tensor[U, V, S]`` responses of the layer.
        sets: ``Tensor[B, n]`` rows of ``values``.
        variants: ``Tensor[B, m]`` the stimulus variants X of each set.
        deltas: ``Tensor[B, n, n]`` δ_ij in grid steps.

    Returns:
        ``(equivariance, invariance)``, each ``Tensor[B, n, n]`` (the diagonal is meaningless).
    """
    b, n = sets.shape
    steps = values.shape[-1]
    freq = torch.arange(steps // 2 + 1, dtype=torch.float64)
    weight = torch.full_like(freq, 2.0)
    weight[0] = 1.0
    if steps % 2 == 0:
        weight[-1] = 1.0  # the Nyquist term is real and counted once
    nyquist = steps % 2 == 0
    eq_out = torch.empty(b, n, n, dtype=torch.float64)
    inv_out = torch.empty(b, n, n, dtype=torch.float64)
    chunk = max(1, _PAIR_CHUNK // max(1, n * n * len(freq)))
    for start in range(0, b, chunk):
        sl = slice(start, start + chunk)
        r = values[sets[sl, :, None], variants[sl, None, :]].double()  # [c, n, m, S]
        z = _zscore(r.flatten(2)).view_as(r)
        spec = torch.fft.rfft(z, dim=-1)  # [c, n, m, F]
        rot = torch.polar(torch.ones_like(deltas[sl, ..., None]), 2 * math.pi * freq * deltas[sl, ..., None] / steps)
        cross = torch.einsum("cimk,cjmk->cijk", spec.conj(), spec)  # Σ_x conj(Z_i) Z_j  [c, n, n, F]
        power = spec.abs().square().sum(2)  # [c, n, F]
        # ‖z(· + δ)‖²: a shift keeps the power of every term but the (real) Nyquist one, of which cos²(πδ) stays
        full = (weight * power).sum(-1) / steps  # [c, n]
        nyq = power[..., -1] / steps if nyquist else torch.zeros_like(full)
        sin2 = torch.sin(math.pi * deltas[sl]).square()  # [c, i, j]
        eq_norm = (full[:, None, :] - nyq[:, None, :] * sin2).clamp_min(1e-24).sqrt()  # unit j shifted by δ_ij
        inv_norm = (full[:, :, None] - nyq[:, :, None] * sin2).clamp_min(1e-24).sqrt()  # unit i shifted by δ_ij
        eq = (weight * (cross * rot).real).sum(-1) / steps / eq_norm
        own = (weight * (power[:, :, None, :] * rot).real).sum(-1) / steps  # z_i(θ + δ_ij) · z_i(θ)
        eq_out[sl], inv_out[sl] = eq, own / inv_norm
    return eq_out, inv_out


def _deltas(positions: Tensor, step: float, tf: Transform) -> Tensor:
    """``Tensor[B, n, n]``: δ_ij = φ_j − φ_i in grid steps (a pair group: the mirror, one step, for every pair)."""
    if tf.discovery == "pair":
        return torch.ones(*positions.shape, positions.shape[-1], dtype=torch.float64)
    return (positions[..., None, :] - positions[..., :, None]).double() / step


def _masked_corr(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` over their last two axes where ``mask`` holds (0 with < 3 samples)."""
    w = mask.to(a.dtype).expand_as(a)
    n = w.sum((-2, -1))
    ma = (a * w).sum((-2, -1)) / n.clamp_min(1)
    mb = (b * w).sum((-2, -1)) / n.clamp_min(1)
    da, db = (a - ma[..., None, None]) * w, (b - mb[..., None, None]) * w
    cov = (da * db).sum((-2, -1))
    norm = (da.square().sum((-2, -1)) * db.square().sum((-2, -1))).sqrt()
    return torch.where((n >= 3) & (norm > 1e-24), cov / norm.clamp_min(1e-24), torch.zeros_like(cov))


def _pair_scores_line(values: Tensor, sets: Tensor, variants: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_pair_scores` along a grid without wrap-around (scale): the ends are not neighbours.

    For every ordered pair (i, j): unit j's responses at grid position ``s + δ_ij`` (linear
    interpolation between grid steps) against unit i's at ``s``, over the set's stimuli x and
    the positions ``s`` where ``s + δ_ij`` lies on the grid, correlated (Pearson) over that
    overlap only; invariance the same with unit i against itself.

    Args and returns: as :func:`_pair_scores`.
    """
    b, n = sets.shape
    steps = values.shape[-1]
    grid = torch.arange(steps, dtype=torch.float64)
    eq_out = torch.empty(b, n, n, dtype=torch.float64)
    inv_out = torch.empty(b, n, n, dtype=torch.float64)
    m = variants.shape[1]
    chunk = max(1, _PAIR_CHUNK // max(1, n * n * m * steps))
    for start in range(0, b, chunk):
        sl = slice(start, start + chunk)
        r = values[sets[sl, :, None], variants[sl, None, :]].double()  # [c, n, m, S]
        c = r.shape[0]
        pos = grid + deltas[sl, ..., None]  # [c, i, j, S]: where unit j (or i) is read
        valid = ((pos >= -1e-9) & (pos <= steps - 1 + 1e-9))[..., None, :]  # [c, i, j, 1, S]
        lo = pos.floor().clamp(0, steps - 2).long()
        frac = (pos - lo).clamp(0.0, 1.0)[..., None, :]
        idx = lo[..., None, :].expand(c, n, n, m, steps)

        def read(curves: Tensor) -> Tensor:  # curves [c, i, j, m, S] read at pos
            return curves.gather(-1, idx) * (1 - frac) + curves.gather(-1, idx + 1) * frac

        base = r[:, :, None].expand(c, n, n, m, steps)  # unit i
        other = r[:, None].expand(c, n, n, m, steps)  # unit j
        eq_out[sl] = _masked_corr(base, read(other), valid)
        inv_out[sl] = _masked_corr(base, read(base), valid)
    return eq_out, inv_out


def _score_variants(resp: Responses) -> Callable[[Tensor], Tensor]:
    """The stimulus variants X a set of units is scored over: ``sets`` ``Tensor[B, n]`` (rows) → ``Tensor[B, m]``.

    Rotation and hue: each member's best variant (``m = n``; a tuning curve over the whole
    grid per variant is plenty to show a shift). Flip: every variant of the probe
    (``m = V``): its grid has only the two states x and flip x, so the members' best
    variants alone would be 2 variants × 2 states, a handful of numbers that random unit
    pairs correlate highly by chance (on googlenet conv2d0, 7.5% of 200 random responding
    pairs scored ≥ 0.99, and 11% reached the lowest score of a significant flip pair);
    over all variants (curves, edges, lines at several angles, photo patches) a mirror
    pair must mirror every stimulus (2%).
    """
    if resp.transform.discovery == "pair":
        every = torch.arange(resp.values.shape[1])
        return lambda sets: every.expand(sets.shape[0], -1)
    best = resp.best_variant_indices
    return lambda sets: best[sets]


def _mean_off_diagonal(x: Tensor) -> Tensor:
    """``Tensor[B]``: the mean of each ``[n, n]`` matrix without its diagonal."""
    n = x.shape[-1]
    mask = ~torch.eye(n, dtype=torch.bool)
    return x[:, mask].mean(-1)


def _order_and_period(resp: Responses, rows: list[int], period: float | None = None) -> tuple[list[int], float | None, Tensor]:
    """The rows in ascending preferred order, the family's period (given, or from the
    tunings' harmonics, or the transform's; None without one), and the preferred values."""
    pref = resp.preferred[rows]
    tf = resp.transform
    if tf.period is None:
        if period is not None:
            raise ValueError(f"a {tf} family has no period, got period={period!r}")
    elif period is not None:
        turns = tf.period / float(period) if float(period) > 0 else math.nan
        if not (math.isfinite(turns) and abs(turns - round(turns)) < 1e-9 and 1 <= round(turns) <= 4):
            raise ValueError(
                f"period must divide the {tf} grid's {tf.period:g} into 1 to 4 turns "
                f"(e.g. {tf.period:g}, {tf.period / 2:g}), got {period!r}"
            )
        period = float(period)
    elif tf.sub_periods:
        tunings = resp.tuning_curves[rows]
        power = torch.fft.rfft(tunings - tunings.mean(1, keepdim=True), dim=1).abs().square().sum(0)
        _, period = harmonic_period(power, tunings.shape[1])
    else:
        period = tf.period
    if period is not None:
        pref = torch.remainder(pref, period)
    order = sorted(range(len(rows)), key=lambda i: (float(pref[i]), i))
    return [rows[i] for i in order], period, pref[order]


def _positions(resp: Responses, pref: Tensor) -> tuple[Tensor, float]:
    """Positions on the grid's axis and its step: the parameters themselves on a circle, log2 of the
    zoom factors along a line (scale), where the grid is evenly spaced."""
    steps = resp.values.shape[2]
    if resp.transform.discovery == "line":
        logs = torch.log2(resp.params.double())
        return torch.log2(pref.double()), float((logs[-1] - logs[0]) / (steps - 1))
    return pref, resp.transform.period / steps  # the grid covers one full turn (360°) or both flip states


def _per_shift(eq_pairs: Tensor, cyclic: bool) -> list[float]:
    """For k = 1 … n−1, the mean score of the pairs k apart in family order: ``(i, i + k mod n)`` on a
    circle; along a line (scale), every ordered pair ``|i − j| = k``."""
    n = eq_pairs.shape[-1]
    idx = torch.arange(n)
    if cyclic:
        return [float(eq_pairs[idx, (idx + k) % n].mean()) for k in range(1, n)]
    apart = (idx[:, None] - idx[None, :]).abs()
    return [float(eq_pairs[apart == k].mean()) for k in range(1, n)]


def _coverage(resp: Responses, pref: Tensor, period: float | None) -> float:
    """How evenly the members cover the period (:func:`equifind._circle.coverage`); without a period (scale),
    the share of the grid's log-range between the smallest and the largest preferred factor."""
    if period is not None:
        return coverage(pref.tolist(), period)
    logs = torch.log2(resp.params.double())
    span = float(logs[-1] - logs[0])
    at = torch.log2(pref.double())
    return float((at.max() - at.min()) / span) if span > 0 else math.nan


def score_responses(
    resp: Responses,
    units: Sequence[int],
    *,
    n_null: int = 200,
    seed: int = 0,
    null_units: Sequence[int] | None = None,
    period: float | None = None,
) -> FamilyScore:
    """Score ``units`` as one family from responses already measured (see :func:`score_family`).

    Args:
        resp: responses of the layer (``probe(model, layer, transform)``), containing ``units``.
        units: the family's units, in any order (at least 2, no repeats).
        n_null: random unit sets for the p-value (an int >= 0; 0: no test, ``p_value`` and
            ``q_value`` are NaN).
        seed: seed of the random sets.
        null_units: units to draw random sets from (default every other unit of ``resp``).
        period: the family's period when it is known (e.g. ``Family.period`` from
            :func:`~equifind.find_families`); default: from the members' tuning harmonics
            (rotation: 360, 180 or 90), the transform's period otherwise.

    Raises:
        ValueError: fewer than 2 units, repeated units (the message names the repeat), a bad
            ``n_null`` (negative or not an int), a transform without a period, or a period that
            does not divide the transform's.
        IndexError: a unit not in ``resp``.
    """
    units = [int(u) for u in units]
    if len(units) < 2:
        raise ValueError(f"a family needs at least 2 units, got {units}")
    check_distinct(units, "units")
    n_null = check_n_null(n_null, zero=_NO_TEST)
    tf = resp.transform
    if not tf.scores:
        raise ValueError(f"score_family cannot score {tf} families; it scores {', '.join(names(scores=True))}")
    n, steps = len(units), resp.values.shape[2]
    if tf.discovery == "pair":
        if n != 2 or steps != 2:
            raise ValueError(f"a {tf} family is a pair scored on the 2 {tf} states; got {n} units and {steps} steps")
    elif steps < max(n, tf.min_steps):
        raise ValueError(
            f"{steps} transform steps cannot score a family of {n} units: need at least "
            f"max({n} members, {tf.min_steps}) = {max(n, tf.min_steps)} steps of the {tf} grid"
        )
    if tf.discovery == "line":
        tf.check_grid(resp.params)
    rows = [resp.row(u) for u in units]
    ordered, period, pref = _order_and_period(resp, rows, period)
    pairs = _pair_scores_line if tf.discovery == "line" else _pair_scores
    at, step = _positions(resp, pref)
    best = _score_variants(resp)
    fam = torch.tensor(ordered)[None]
    eq_pairs, inv_pairs = pairs(resp.values, fam, best(fam), _deltas(at[None], step, tf))
    raw = float(_mean_off_diagonal(eq_pairs)[0])  # the test statistic; the score is it clipped to [0, 1]
    equivariance = min(1.0, max(0.0, raw))
    per_shift = _per_shift(eq_pairs[0], cyclic=tf.period is not None)

    pool = [resp.row(u) for u in null_units] if null_units is not None else [r for r in range(len(resp.units)) if r not in rows]
    null_mean, p_value = math.nan, math.nan
    if n_null > 0 and len(pool) >= n:
        gen = torch.Generator().manual_seed(seed)
        pool_t = torch.tensor(pool)
        draws = torch.stack([pool_t[torch.randperm(len(pool), generator=gen)[:n]] for _ in range(n_null)])
        drawn = resp.preferred[draws] if period is None else torch.remainder(resp.preferred[draws], period)
        positions, _ = _positions(resp, drawn)  # each set at its own measured positions
        null_pairs, _ = pairs(resp.values, draws, best(draws), _deltas(positions, step, tf))
        null = _mean_off_diagonal(null_pairs)  # unclipped: sets that anti-correlate do not tie at 0
        null_mean = float(null.clamp(0.0, 1.0).mean())
        p_value = permutation_p(int((null >= raw - 1e-9).sum()), n_null)
    order_units = [resp.units[r] for r in ordered]
    preferred = {u: float(p) for u, p in zip(order_units, pref.tolist())}
    return FamilyScore(
        layer=resp.layer, transform=resp.transform, units=units, order=order_units, preferred=preferred,
        period=period, equivariance=equivariance, invariance=float(_mean_off_diagonal(inv_pairs)[0].clamp(0.0, 1.0)),
        per_shift=per_shift, coverage=_coverage(resp, pref, period),
        holes=holes(pref.tolist(), period) if tf.circular and period is not None else [],
        p_value=p_value, null_mean=null_mean, n_stimuli=int(best(fam).unique().numel()),
        q_value=p_value, n_null=n_null if math.isfinite(p_value) else 0,
    )  # fmt: skip


def _with_feature_visualizations(
    model: Model, layer: str, units: list[int], transform: Transform, stimuli: StimuliSpec, seed: int, progress: bool
) -> StimulusSet:
    """The auto stimuli (rendered supersampled, reduced to the canvas) plus each unit's feature visualisation."""
    if not (isinstance(stimuli, str) and stimuli == "auto"):
        raise ValueError(f"feature_vis=True works with stimuli='auto', got {stimuli!r}")
    from .featurevis import feature_visualizations

    geometry = probe_geometry(model, layer)
    auto = auto_stimuli(transform, geometry.scaled(), device=model.device, seed=seed)
    auto = StimulusSet(F.avg_pool2d(auto.images, geometry.supersample), auto.params)
    fv = feature_visualizations(model, layer, units, size=geometry.canvas, seed=seed, progress=progress)
    return StimulusSet.cat([auto, fv])


def score_family(
    model: Model,
    layer: str,
    units: Sequence[int],
    transform: str | Transform = "rotation",
    stimuli: StimuliSpec = "auto",
    steps: int = 64,
    seed: int = 0,
    n_null: int = 200,
    feature_vis: bool = False,
    progress: bool = False,
    period: float | None = None,
    validate: Sequence[str] | str = (),
) -> FamilyScore:
    """Score how truly ``units`` of ``layer`` form one equivariant family.

    The layer is probed once (all units, so random unit sets of the same size give the
    null); the family is ordered by preferred parameter; f(g·x) is compared with P_g f(x)
    for every shift of the family, over each member's best stimulus at every grid step
    (flip: over every stimulus variant, in both flip states).

    Args:
        model: the model.
        layer: layer name.
        units: the family's units, in any order (the order found is ``FamilyScore.order``).
        transform: a transform that scores (``equifind.transforms.names(scores=True)``:
            "rotation", "hue", "flip", "scale"), by name or as a Transform.
        stimuli: as in :func:`equifind.probe`.
        steps: transform grid size.
        seed: seed of the stimuli and the null sets.
        n_null: random unit sets for the p-value (an int >= 0; 0: no test, ``p_value`` NaN;
            with ``validate``, at least 19 so the held-out p can reach 0.05).
        feature_vis: add each member's feature visualisation (lucent) to the stimuli.
        progress: show progress bars.
        period: the family's period if known (see :func:`score_responses`).
        validate: held-out sources to validate the family on, never used for the score
            above: "feature_vis" (each member's feature visualization), "patches" (its top
            natural patches), or both (:mod:`equifind.heldout`, with its defaults; ``seed``
            and ``n_null`` as here). Fills :attr:`FamilyScore.heldout` (and so
            ``heldout_equivariance``, ``heldout_p_value``; q = p for one family).

    Returns:
        A :class:`FamilyScore`.

    Raises:
        KeyError: unknown layer or transform. IndexError: a unit outside the layer.
        ValueError: fewer than 2 units, a repeated unit (named), a bad ``n_null``, or an
            unsupported transform.
    """
    model.check_layer(layer)
    unit_list = model.check_units(layer, units)
    tf = as_transform(transform)
    if not tf.scores:
        raise ValueError(f"score_family cannot score {tf} families; it scores {', '.join(names(scores=True))}")
    if len(unit_list) < 2:
        raise ValueError(f"a family needs at least 2 units, got {list(units)}")
    check_distinct(unit_list, "units")
    check_n_null(n_null, zero=_NO_TEST)
    sources = check_sources(validate) if validate else ()
    if sources:  # before any probing: the held-out test needs a p-value that can reach alpha
        check_null_size(n_null, DEFAULT_Q, "n_null")
    if feature_vis:
        stimuli = _with_feature_visualizations(model, layer, unit_list, tf, stimuli, seed, progress)
    resp = probe(model, layer, tf, stimuli=stimuli, steps=steps, seed=seed, progress=progress)
    score = score_responses(resp, unit_list, n_null=n_null, seed=seed, period=period)
    if sources:
        (score.heldout,) = validate_families(
            model, resp, [unit_list], periods=[score.period], sources=sources, n_null=n_null, seed=seed, progress=progress
        )
    return score
