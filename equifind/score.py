"""``score_family``: how truly a set of units is one equivariant family.

The test is the seed's definition of equivariance, f(g·x) = P_g f(x): over a
stimulus set X, the family's responses to transformed stimuli g·x are compared
with its responses to x permuted by P_g, the cyclic shift of the ordered
family that g implies. For a family of n members ordered by preferred
parameter and period T, the shift by k places goes with g = k·T/n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import unknown_name
from ._circle import coverage, harmonic_period, holes
from .models.base import Model
from .probe import StimuliSpec, auto_stimuli, probe, probe_geometry
from .responses import Responses
from .stimuli import StimulusSet

__all__ = ["score_family", "score_responses", "FamilyScore"]


@dataclass
class FamilyScore:
    """The equivariance of one family.

    Attributes:
        layer: layer name.
        transform: the transform.
        units: the units as given.
        order: the units ordered by preferred parameter (the family's cyclic order).
        preferred: unit -> its preferred parameter (degrees; 0/1 for flip).
        period: the family's period (rotation 360, 180 or 90 from the tuning harmonics; hue 360; flip 2).
        equivariance: in [0, 1]: correlation of f(g·x) with P_g f(x) over X and the
            family's shifts g (1.0 is exact).
        invariance: the same score with the identity permutation: high means the units
            respond alike to x and g·x (merely invariant), not that they are copies.
        per_shift: the score for each shift k = 1 … n−1.
        coverage: in [0, 1]: how evenly the preferred parameters cover the period.
        holes: parameters where members seem missing.
        p_value: ``(1 + #null ≥ equivariance) / (1 + n_null)`` against random unit sets of
            the same size from the same layer.
        null_mean: the mean equivariance of those random sets.
        n_stimuli: the number of stimulus variants in X.
    """

    layer: str
    transform: str
    units: list[int]
    order: list[int]
    preferred: dict[int, float]
    period: float
    equivariance: float
    invariance: float
    per_shift: list[float]
    coverage: float
    holes: list[float]
    p_value: float
    null_mean: float
    n_stimuli: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (unit keys of ``preferred`` become strings)."""
        out = asdict(self)
        out["preferred"] = {str(k): v for k, v in self.preferred.items()}
        return out

    def summary(self) -> str:
        """One readable paragraph."""
        return (
            f"{self.layer} {self.transform} family of {len(self.order)} units, order {self.order} "
            f"(period {self.period:g}): equivariance {self.equivariance:.3f} "
            f"(random sets {self.null_mean:.3f}, p = {self.p_value:.3g}), invariance {self.invariance:.3f}, "
            f"coverage {self.coverage:.2f}" + (f", holes at {[round(h, 1) for h in self.holes]}" if self.holes else "")
        )


def _zscore(x: Tensor) -> Tensor:
    """Standardise each row of ``x`` (``[..., units, n]``) over its last axis."""
    x = x - x.mean(dim=-1, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _shift_scores(values: Tensor, sets: Tensor, variants: Tensor, shifts: Tensor, permute: bool) -> Tensor:
    """Correlation of f(g_k·x) with P_k f(x), per unit set and shift, batched.

    Args:
        values: ``Tensor[U, V, S]`` responses of the layer.
        sets: ``Tensor[B, n]`` rows of ``values``, each set in its cyclic order.
        variants: ``Tensor[B, m]`` stimulus variants X of each set.
        shifts: ``Tensor[n - 1]`` grid steps of g_k for k = 1 … n−1.
        permute: True for P_k (cyclic shift by k), False for the identity.

    Returns:
        ``Tensor[B, n - 1]``.
    """
    b, n = sets.shape
    r = values[sets[:, :, None], variants[:, None, :]]  # [B, n, m, S]
    z = _zscore(r.flatten(2)).view_as(r)  # each unit standardised over X × grid
    k = torch.arange(1, n, device=values.device)
    member = torch.arange(n, device=values.device)
    target = (member[None, :] + k[:, None]) % n if permute else member[None, :].expand(n - 1, n)  # [n-1, n]
    # One shift at a time: memory B·n·m·S, not B·n²·m·S (large families × 200 null sets).
    # moved[b, i, :, t] = z[b, target[k, i], :, t + shift_k]: the response to g_k·x, permuted.
    ref_norm = z.flatten(1).norm(dim=-1)  # [B]
    out = torch.empty(b, n - 1, dtype=z.dtype, device=z.device)
    for j in range(n - 1):
        moved = z[:, target[j]].roll(-int(shifts[j]), dims=-1)  # [B, n, m, S]
        out[:, j] = (moved * z).flatten(1).sum(-1) / (moved.flatten(1).norm(dim=-1) * ref_norm).clamp_min(1e-12)
    return out


def _order_and_period(resp: Responses, rows: list[int], period: float | None = None) -> tuple[list[int], float, Tensor]:
    """The rows in ascending preferred order, the family's period (given, or from the
    tunings' harmonics), and the preferred values."""
    pref = resp.preferred[rows]
    if period is not None:
        turns = resp.period / float(period) if float(period) > 0 else math.nan
        if not (math.isfinite(turns) and abs(turns - round(turns)) < 1e-9 and 1 <= round(turns) <= 4):
            raise ValueError(
                f"period must divide the {resp.transform} grid's {resp.period:g} into 1 to 4 turns "
                f"(e.g. {resp.period:g}, {resp.period / 2:g}), got {period!r}"
            )
        period = float(period)
    elif resp.transform == "rotation":
        tunings = resp.tunings()[rows]
        power = torch.fft.rfft(tunings - tunings.mean(1, keepdim=True), dim=1).abs().square().sum(0)
        _, period = harmonic_period(power, tunings.shape[1])
    else:
        period = resp.period
    pref = torch.remainder(pref, period)
    order = sorted(range(len(rows)), key=lambda i: (float(pref[i]), i))
    return [rows[i] for i in order], period, pref[order]


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
        n_null: random unit sets for the p-value.
        seed: seed of the random sets.
        null_units: units to draw random sets from (default every other unit of ``resp``).
        period: the family's period when it is known (e.g. ``Family.period`` from
            :func:`~equifind.find_families`); default: from the members' tuning harmonics
            (rotation: 360, 180 or 90), the transform's period otherwise.

    Raises:
        ValueError: fewer than 2 units, repeated units, a transform without a period, or a
            period that does not divide the transform's.
        IndexError: a unit not in ``resp``.
    """
    units = [int(u) for u in units]
    if len(units) < 2:
        raise ValueError(f"a family needs at least 2 units, got {units}")
    if len(set(units)) != len(units):
        raise ValueError(f"units repeat: {units}")
    if not math.isfinite(resp.period) or resp.transform == "hue_rotation":
        raise ValueError(f"score_family supports rotation, hue and flip; got transform {resp.transform!r}")
    rows = [resp.row(u) for u in units]
    ordered, period, pref = _order_and_period(resp, rows, period)
    n = len(rows)
    grid_span = resp.period  # the grid covers one full turn (360°) or both flip states
    step = grid_span / resp.values.shape[2]
    shifts = torch.tensor([round(k * period / n / step) for k in range(1, n)])
    best = resp.best_variants()

    def variants_of(sets: Tensor) -> Tensor:
        return best[sets]  # each member's best stimulus (repeats are harmless)

    fam = torch.tensor(ordered)[None]
    eq_shifts = _shift_scores(resp.values, fam, variants_of(fam), shifts, permute=True)[0]
    inv_shifts = _shift_scores(resp.values, fam, variants_of(fam), shifts, permute=False)[0]
    equivariance = float(eq_shifts.mean().clamp(0.0, 1.0))

    pool = [resp.row(u) for u in null_units] if null_units is not None else [r for r in range(len(resp.units)) if r not in rows]
    null_mean, p_value = float("nan"), float("nan")
    if n_null > 0 and len(pool) >= n:
        gen = torch.Generator().manual_seed(seed)
        pool_t = torch.tensor(pool)
        draws = torch.stack([pool_t[torch.randperm(len(pool), generator=gen)[:n]] for _ in range(n_null)])
        prefs = resp.preferred[draws]
        draws = torch.gather(draws, 1, torch.remainder(prefs, period).argsort(dim=1))  # each set in its own order
        null = _shift_scores(resp.values, draws, variants_of(draws), shifts, permute=True).mean(1).clamp(0.0, 1.0)
        null_mean = float(null.mean())
        p_value = float((1 + (null >= equivariance).sum()) / (1 + n_null))
    order_units = [resp.units[r] for r in ordered]
    preferred = {u: float(p) for u, p in zip(order_units, pref.tolist())}
    return FamilyScore(
        layer=resp.layer, transform=resp.transform, units=units, order=order_units, preferred=preferred,
        period=period, equivariance=equivariance, invariance=float(inv_shifts.mean().clamp(0.0, 1.0)),
        per_shift=[float(v) for v in eq_shifts], coverage=coverage(pref.tolist(), period),
        holes=holes(pref.tolist(), period) if resp.transform != "flip" else [],
        p_value=p_value, null_mean=null_mean, n_stimuli=int(best[torch.tensor(ordered)].unique().numel()),
    )  # fmt: skip


def _with_feature_visualizations(
    model: Model, layer: str, units: list[int], transform: str, stimuli: StimuliSpec, seed: int, progress: bool
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
    transform: str = "rotation",
    stimuli: StimuliSpec = "auto",
    steps: int = 64,
    seed: int = 0,
    n_null: int = 200,
    feature_vis: bool = False,
    progress: bool = False,
    period: float | None = None,
) -> FamilyScore:
    """Score how truly ``units`` of ``layer`` form one equivariant family.

    The layer is probed once (all units, so random unit sets of the same size give the
    null); the family is ordered by preferred parameter; f(g·x) is compared with P_g f(x)
    for every shift of the family, over each member's best stimulus at every grid step.

    Args:
        model: the model.
        layer: layer name.
        units: the family's units, in any order (the order found is ``FamilyScore.order``).
        transform: "rotation", "hue" or "flip".
        stimuli: as in :func:`equifind.probe`.
        steps: transform grid size.
        seed: seed of the stimuli and the null sets.
        n_null: random unit sets for the p-value.
        feature_vis: add each member's feature visualisation (lucent) to the stimuli.
        progress: show progress bars.
        period: the family's period if known (see :func:`score_responses`).

    Returns:
        A :class:`FamilyScore`.

    Raises:
        KeyError: unknown layer or transform. IndexError: a unit outside the layer.
        ValueError: fewer than 2 units, repeats, or an unsupported transform.
    """
    model.check_layer(layer)
    unit_list = model.check_units(layer, units)
    if transform not in ("rotation", "hue", "flip"):
        raise unknown_name("transform", transform, ["rotation", "hue", "flip"])
    if len(unit_list) < 2 or len(set(unit_list)) != len(unit_list):
        raise ValueError(f"a family needs at least 2 distinct units, got {list(units)}")
    if feature_vis:
        stimuli = _with_feature_visualizations(model, layer, unit_list, transform, stimuli, seed, progress)
    resp = probe(model, layer, transform, stimuli=stimuli, steps=steps, seed=seed, progress=progress)
    return score_responses(resp, unit_list, n_null=n_null, seed=seed, period=period)
