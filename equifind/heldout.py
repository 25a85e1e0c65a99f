"""Held-out validation: does a family found on our stimuli hold on the network's own?

Discovery and :func:`~equifind.score_family` judge a family on the synthetic stimuli
that found it. The Circuits thread trusted a family only when its members answered
each other on the network's *own* stimuli: each member's feature visualization, or
its top dataset examples, transformed by the family's g, drive the member at the
matching position. This module measures exactly that, on two sources never used for
discovery:

- ``"feature_vis"``: one visualization per unit (:func:`~equifind.featurevis.feature_visualizations`,
  lucent, one batched optimisation for every unit involved, :data:`DEFAULT_FV_STEPS` steps,
  a fixed seed);
- ``"patches"``: each unit's :data:`DEFAULT_PATCHES` top-activating natural patches at its
  receptive field (:func:`~equifind.natural.top_patches`: the photographs bundled with
  scikit-image, many positions and sizes, the crops of the natural-scale cache).

Each source's images are probed over the transform grid (``probe(..., stimuli=...)``), all
units recorded. The *held-out equivariance* of a family is the statistic of
:func:`~equifind.score_responses`, computed on these responses: for every ordered pair of
members (i, j), unit j's responses to g_ij·x against unit i's to x, over X = the members'
held-out images and the whole grid, with g_ij = φ_j − φ_i from the members' positions φ
*measured in discovery* (so the family's geometry is fixed before the held-out data is
seen). The mean over pairs is the statistic; the reported equivariance is it clipped to [0, 1].

Significance: ``p = (1 + #null ≥ statistic) / (1 + n_null)`` (never below 1/(n_null + 1)),
against random unit sets of the same size *scored the same way*: each set is scored on its
own members' held-out images, at its own members' discovery positions. The sets are drawn
from a *pool*: the family's members plus :data:`DEFAULT_POOL` units drawn at random (seeded,
independently of any family) from the layer's responding units, whose held-out images are
made alongside the family's. Under the null hypothesis that the members are exchangeable with
other responding units, the family is itself a uniformly random subset of that pool, so the
test is exact (conditional on the pool); random sets that happen to contain members only make
it conservative. The combined statistic is the mean of the sources' statistics, tested
against the same random sets scored on both.

The verdict (:meth:`HeldoutSource.held_out`): a family *held out* when its q ≤ alpha and its
statistic is positive. The p-value tests the unclipped statistic (uniform under the null), so a
family can beat random sets that anti-correlate while its own members do not answer each other
(statistic ≤ 0, equivariance 0); that family did not hold out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_distinct, check_n_null
from ._stats import DEFAULT_Q, check_null_size, permutation_p
from .models.base import Model
from .responses import Responses
from .stimuli import StimulusSet
from .transforms import Transform, as_transform, names

__all__ = [
    "SOURCES", "HeldoutSource", "deciding_test", "check_sources", "HeldoutStimuli", "validate_families", "DEFAULT_STEPS", "DEFAULT_POOL",
    "DEFAULT_PATCHES", "DEFAULT_FV_STEPS",
]  # fmt: skip

#: The held-out stimulus sources, in the order a scan uses them.
SOURCES: tuple[str, ...] = ("feature_vis", "patches")
#: Transform grid of the held-out probe (rotation and hue; flip has its 2 states).
DEFAULT_STEPS = 32
#: Random responding units whose held-out images make the null (besides the members).
DEFAULT_POOL = 32
#: Top natural patches per unit.
DEFAULT_PATCHES = 4
#: Feature-visualization steps. With lucent's defaults and redirected ReLU gradients, googlenet
#: mixed3a units reach about their top natural patch's response by 64 steps.
DEFAULT_FV_STEPS = 64
#: The held-out images' isotropic low-pass, (pass, stop) in cycles per canvas pixel (Nyquist = 0.5):
#: a turn by 45° takes detail at the grid's Nyquist rate beyond what the grid can hold (no CNN on a
#: square grid can be equivariant to it), so such detail is removed from every image before probing.
BAND_LIMIT: tuple[float, float] = (0.25, 0.4)


def supports(transform: Transform) -> bool:
    """Whether held-out validation handles ``transform``: a scored group on a circle or a pair (members are
    placed by circular cross-correlation; a group without a period, scale, is not validated yet)."""
    return bool(transform.scores) and transform.discovery in ("circle", "pair")


@dataclass
class HeldoutSource:
    """A family's held-out test on one source.

    Attributes:
        source: "feature_vis" or "patches".
        equivariance: the statistic clipped to [0, 1] (1.0: every member answers every other exactly).
        statistic: the unclipped mean pair correlation, which the p-value tests.
        p_value: against random unit sets of the pool, scored the same way (see module doc).
        null_mean: the random sets' mean equivariance (clipped).
        pairs: ``[n][n]`` pair scores in family order (row i, column j: unit j's response to
            g_ij·x against unit i's to x); the diagonal is NaN.
        answers: for each member j in family order, the member whose response (relative to its
            own largest on this source) is highest to member 0's first image moved by g_0j to
            member j's position: the thread's "the rotated visualization of member 0 is answered
            by member j". Member 0 answers itself at g_00 = identity.
        n_stimuli: images per grid step the family was scored on (members × images per unit).
        n_null: the random sets behind ``p_value``.
        q_value: Benjamini–Hochberg q of ``p_value`` over the families validated together
            (a scan: every validated family of the scan); a single family: q = p.
        members: the family order of ``pairs`` and ``answers``: the units sorted by their
            discovery positions relative to the first unit given (empty in results saved before).
        positions: each member's discovery position relative to member 0 (mod the period), in
            the transform's units (flip: 0 and 1); ``answers`` moved member 0's image by these.
    """

    source: str
    equivariance: float
    statistic: float
    p_value: float
    null_mean: float
    pairs: list[list[float]]
    answers: list[int]
    n_stimuli: int
    n_null: int
    q_value: float = math.nan
    members: list[int] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)

    def held_out(self, alpha: float = DEFAULT_Q) -> bool:
        """The verdict: q ≤ ``alpha`` *and* a positive statistic (the members answer each other).

        The p-value tests the unclipped statistic (so that it is uniform under the null; random
        sets that anti-correlate do not all tie at 0), which lets a family beat the random sets
        while its members still do not answer each other (statistic ≤ 0, reported equivariance
        0): such a family did not hold out, however small its q. On googlenet_bvlc's mixed3b hue
        probe two such families had p 0.015 and 0.03 at statistics −0.004 and −0.013.
        """
        return bool(self.q_value <= alpha and self.statistic > 0.0)

    def verdict(self, alpha: float = DEFAULT_Q) -> str:
        """``"held out"`` or ``"did not hold out"`` with the reason: ``"held out (q ≤ 0.05, statistic 0.446 > 0)"``,
        ``"did not hold out (q > 0.05)"``,
        ``"did not hold out (statistic -0.004 ≤ 0: the members do not answer each other)"``;
        ``"n/a (no q-value)"`` when the test has no q."""
        if math.isnan(self.q_value):
            return "n/a (no q-value)"
        if self.held_out(alpha):
            return f"held out (q ≤ {alpha:g}, statistic {self.statistic:.3g} > 0)"
        if not self.q_value <= alpha:
            return f"did not hold out (q > {alpha:g})"
        return f"did not hold out (statistic {self.statistic:.3g} ≤ 0: the members do not answer each other)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeldoutSource:
        d = dict(data)
        d["pairs"] = [[math.nan if v is None else float(v) for v in row] for row in d["pairs"]]
        return cls(**d)


def deciding_test(tests: Mapping[str, HeldoutSource]) -> HeldoutSource | None:
    """The test of a family's held-out results (source -> test) that decides its verdict: the
    combined one, or the only source; None for no results."""
    if "combined" in tests:
        return tests["combined"]
    return next(iter(tests.values()), None)


def check_sources(sources: Sequence[str] | str) -> tuple[str, ...]:
    """The sources as a tuple of known names, in :data:`SOURCES` order, without repeats."""
    if isinstance(sources, str):
        sources = (sources,)
    given = list(sources)
    bad = [s for s in given if s not in SOURCES]
    if bad or not given:
        raise ValueError(f"validate sources must be one or more of {list(SOURCES)}, got {given!r}")
    return tuple(s for s in SOURCES if s in given)


class HeldoutStimuli:
    """Each unit's held-out images for one layer, made on demand and kept.

    Feature visualizations of all the units asked for at once are one batched optimisation;
    a unit's image therefore depends on the batch it was made in (lucent's transforms are
    shared across a batch), which a fixed seed and a fixed order of requests make reproducible.

    Args:
        model: the model.
        layer: the layer.
        seed: seeds the visualizations and the natural crops.
        patches: top natural patches per unit.
        fv_steps: feature-visualization steps.
        progress: show progress bars.
    """

    def __init__(
        self, model: Model, layer: str, *, seed: int = 0, patches: int = DEFAULT_PATCHES,
        fv_steps: int = DEFAULT_FV_STEPS, progress: bool = False,
    ) -> None:  # fmt: skip
        model.check_layer(layer)
        for name, value in (("patches", patches), ("fv_steps", fv_steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.model, self.layer, self.seed = model, layer, int(seed)
        self.patches, self.fv_steps, self.progress = patches, fv_steps, progress
        self.images: dict[str, dict[int, Tensor]] = {s: {} for s in SOURCES}  # unit -> Tensor[k, 3, H, W] (CPU)

    def ensure(self, units: Sequence[int], sources: Sequence[str]) -> None:
        """Make the images of ``units`` that are missing, for each of ``sources``."""
        for source in check_sources(sources):
            have = self.images[source]
            missing = sorted({int(u) for u in units} - set(have))
            if not missing:
                continue
            if source == "feature_vis":
                from .featurevis import feature_visualizations

                fv = feature_visualizations(
                    self.model, self.layer, missing, steps=self.fv_steps, seed=self.seed, progress=self.progress
                )
                made = fv.images.cpu()[:, None]
            else:
                from .natural import top_patches

                made, _ = top_patches(self.model, self.layer, missing, self.patches, seed=self.seed, progress=self.progress)
            have.update(zip(missing, made))

    def stimulus_set(self, source: str, units: Sequence[int]) -> StimulusSet:
        """The images of ``units`` (made if missing) as one :class:`StimulusSet`, params
        ``{"kind": source, "unit": u, "rank": r}``, unit by unit."""
        self.ensure(units, [source])
        images = torch.cat([self.images[source][int(u)] for u in units])
        table: list[dict[str, Any]] = [
            {"kind": source, "unit": int(u), "rank": r} for u in units for r in range(len(self.images[source][int(u)]))
        ]
        return StimulusSet(images, table)


def _supersampled(images: StimulusSet, k: int) -> StimulusSet:
    """The images upsampled ``k``× (bicubic, clamped to [0, 1]), so that the probe transforms them at
    its render resolution and reduces them to the canvas, as it does its own stimuli: a 45° turn
    resampled on a small canvas's pixel grid blurs fine detail that a turn by 90° keeps, which
    would make a unit's response differ between turns for a reason that is not the network's."""
    x = _band_limited(images.images)
    if k > 1:
        size = x.shape[-1] * k
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return StimulusSet(x.clamp_(0.0, 1.0), images.params)


def _band_limited(x: Tensor, lo: float = BAND_LIMIT[0], hi: float = BAND_LIMIT[1]) -> Tensor:
    """``x`` (``Tensor[N, 3, H, W]``) low-passed by an isotropic filter: spatial frequencies up to
    ``lo`` cycles/pixel pass, above ``hi`` none, a raised cosine between."""
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=x.device)[None, :]
    radius = (fy.square() + fx.square()).sqrt()
    gain = (0.5 * (1 + torch.cos(math.pi * ((radius - lo) / (hi - lo)).clamp(0.0, 1.0)))).to(x.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(x) * gain, s=(h, w))


def _pool_sample(resp: Responses, size: int, seed: int) -> list[int]:
    """``size`` responding units of ``resp`` (unit indices), drawn with ``seed``, independent of any family."""
    responding = [resp.units[r] for r in torch.nonzero(resp.responding()).flatten().tolist()]
    gen = torch.Generator().manual_seed(int(seed) + 7919)  # not the stimuli's or the null sets' stream
    order = torch.randperm(len(responding), generator=gen).tolist()
    return sorted(responding[i] for i in order[:size])


def _period(resp: Responses, units: list[int], period: float | None) -> float:
    """The family's period: given, or from its members' tuning harmonics (as :func:`~equifind.score_responses`)."""
    from .score import _order_and_period

    return _order_and_period(resp, [resp.row(u) for u in units], period)[1]


def _positions(resp: Responses, sets: Tensor) -> Tensor:
    """``Tensor[B, n]`` float64: each member's position relative to the set's first member, in the
    transform's units, measured on the discovery responses.

    Member j's position is the circular shift that best maps member 0's responses onto its own,
    over every stimulus variant at once (the cross-correlation of the two units' responses,
    each standardised over variants × grid, summed over variants; the best grid shift refined
    by a parabola through its neighbours). Every stimulus variant, not the best one alone: a
    unit whose best variant is a line responds alike at θ and θ + 180°, and only its responses
    to edges and curves say which of the two it is. A family and a random set are placed the
    same way; for a flip set the positions are 0 and 1 (the mirror).
    """
    if resp.transform.discovery == "pair":
        return torch.arange(sets.shape[1], dtype=torch.float64).clamp(max=1.0).expand(sets.shape).clone()
    rows = torch.tensor([[resp.row(int(u)) for u in row] for row in sets.tolist()])
    x = resp.values[rows].double()  # [B, n, V, S]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    x = x / x.flatten(-2).norm(dim=-1)[..., None, None].clamp_min(1e-12)
    steps = x.shape[-1]
    spec = torch.fft.rfft(x, dim=-1)
    xcorr = torch.fft.irfft((spec[:, :1].conj() * spec).sum(2), n=steps, dim=-1)  # [B, n, S]: shift of j from 0
    best = xcorr.argmax(-1)
    left = xcorr.gather(-1, ((best - 1) % steps)[..., None])[..., 0]
    mid = xcorr.gather(-1, best[..., None])[..., 0]
    right = xcorr.gather(-1, ((best + 1) % steps)[..., None])[..., 0]
    curve = left - 2 * mid + right
    offset = torch.where(curve < 0, 0.5 * (left - right) / curve.clamp(max=-1e-12), torch.zeros_like(mid)).clamp(-0.5, 0.5)
    return torch.remainder((best + offset) * (resp.period / steps), resp.period)


def _variants_of(hr: Responses) -> dict[int, list[int]]:
    """Unit -> the variant indices of its held-out images in ``hr``."""
    out: dict[int, list[int]] = {}
    for v, row in enumerate(hr.variants):
        out.setdefault(int(row["unit"]), []).append(v)
    return out


def _set_statistics(
    hr: Responses, sets: Tensor, positions: Tensor, transform: str
) -> tuple[Tensor, Tensor]:
    """Held-out pair scores of unit sets, each on its own members' images.

    Args:
        hr: held-out responses of every unit (rows = unit indices) to the images of every unit involved.
        sets: ``Tensor[B, n]`` unit indices.
        positions: ``Tensor[B, n]`` each member's discovery position (mod the family's period).
        transform: the transform.

    Returns:
        ``(statistic Tensor[B], pairs Tensor[B, n, n])``.
    """
    from .score import _deltas, _mean_off_diagonal, _pair_scores

    owned = _variants_of(hr)
    variants = torch.tensor([[v for u in row for v in owned[int(u)]] for row in sets.tolist()])
    step = hr.period / hr.values.shape[2]
    pairs, _ = _pair_scores(hr.values, sets, variants, _deltas(positions, step, transform))
    return _mean_off_diagonal(pairs), pairs


def _answers(hr: Responses, members: list[int], positions: Tensor) -> list[int]:
    """For each member j: the member answering member 0's first image moved by φ_j − φ_0 (nearest grid
    step): the largest response relative to each member's response to its own first image unmoved."""
    owned = _variants_of(hr)
    first = owned[members[0]][0]
    steps = hr.values.shape[2]
    step = hr.period / steps
    rows = torch.tensor(members)
    own = torch.stack([hr.values[u, owned[u][0], 0] for u in members]).abs().clamp_min(1e-12)
    out = []
    for j in range(len(members)):
        k = min(j, 1) if hr.transform.discovery == "pair" else round(float(positions[j] - positions[0]) / step) % steps
        out.append(members[int((hr.values[rows, first, k] / own).argmax())])
    return out


def validate_families(
    model: Model,
    resp: Responses,
    families: Sequence[Sequence[int]],
    *,
    periods: Sequence[float] | None = None,
    sources: Sequence[str] | str = SOURCES,
    steps: int = DEFAULT_STEPS,
    n_null: int = 200,
    pool: int = DEFAULT_POOL,
    seed: int = 0,
    stimuli: HeldoutStimuli | None = None,
    progress: bool = False,
) -> list[dict[str, HeldoutSource]]:
    """Held-out tests of families of one layer and transform (see the module doc).

    The images of every member and of the pool are made once (one batched feature
    visualization), probed once per source, and every family is scored against its own
    null (its members plus the pool).

    Args:
        model: the model.
        resp: the discovery responses of the layer (``probe(model, layer, transform)``):
            the members' positions φ and the pool's responding units come from it.
        families: each family's units, in any order (at least 2, no repeats; flip: pairs).
        periods: each family's period (``Family.period`` / ``FamilyScore.period``); default
            the transform's.
        sources: "feature_vis", "patches", or both.
        steps: grid of the held-out probe; at least the transform's ``min_steps`` (4 for rotation and hue).
        n_null: random unit sets per family.
        pool: random responding units added to each family's null pool, >= 1.
        seed: seeds the pool, the images (see :class:`HeldoutStimuli`) and the null sets.
        stimuli: images already made for this layer (reused, and extended with any missing).
        progress: show progress bars.

    Returns:
        One dict per family: source -> :class:`HeldoutSource`, plus ``"combined"`` (the mean of
        the sources' statistics against the same random sets; its ``pairs`` the mean of theirs,
        its ``answers`` those of the first source) when there are two sources.

    Raises:
        ValueError: a transform other than rotation, hue or flip; bad sources, steps, n_null
            or pool; a family of fewer than 2 units or with repeats; periods of another length.
        IndexError: a unit not in ``resp``.
    """
    from .probe import probe, probe_geometry

    if not supports(resp.transform):
        valid = [n for n in names() if supports(as_transform(n))]
        raise ValueError(f"held-out validation supports {valid}, got transform {str(resp.transform)!r}")
    srcs = check_sources(sources)
    try:
        as_transform(resp.transform).check_steps(steps)  # the transform's own minimum (Transform.min_steps)
    except ValueError as err:
        raise ValueError(f"steps (the held-out grid): {err}") from None
    check_null_size(check_n_null(n_null), DEFAULT_Q, "n_null")
    if not isinstance(pool, int) or isinstance(pool, bool) or pool < 1:
        raise ValueError(f"pool must be an int >= 1 (random units in each family's null), got {pool!r}")
    fams = [[int(u) for u in f] for f in families]
    for f in fams:
        if len(f) < 2:
            raise ValueError(f"a family needs at least 2 units, got {f}")
        check_distinct(f, "family units")
        for u in f:
            resp.row(u)  # IndexError for a unit not in resp
    if periods is not None and len(periods) != len(fams):
        raise ValueError(f"got {len(periods)} periods for {len(fams)} families")
    if stimuli is None:
        stimuli = HeldoutStimuli(model, resp.layer, seed=seed, progress=progress)
    elif stimuli.layer != resp.layer:
        raise ValueError(f"stimuli were made for layer {stimuli.layer!r}, not {resp.layer!r}")
    sample = _pool_sample(resp, pool, seed)
    involved = sorted({u for f in fams for u in f} | set(sample))
    ordered: list[tuple[list[int], float, Tensor]] = []
    for i, f in enumerate(fams):
        period = _period(resp, f, None if periods is None else periods[i])
        pos = torch.remainder(_positions(resp, torch.tensor(f)[None])[0], period)
        order = sorted(range(len(f)), key=lambda k: (float(pos[k]), k))  # the first unit given stays first
        ordered.append(([f[k] for k in order], period, pos[order]))

    held: dict[str, Responses] = {}
    for source in srcs:
        stimuli.ensure(involved, [source])  # all missing images of a source in one batch
        images = _supersampled(stimuli.stimulus_set(source, involved), probe_geometry(model, resp.layer).supersample)
        held[source] = probe(model, resp.layer, resp.transform, stimuli=images, steps=steps, seed=seed,
                             progress=progress, natural=False)  # fmt: skip
    out: list[dict[str, HeldoutSource]] = []
    for f_index, (members, period, pref) in enumerate(ordered):
        n = len(members)
        candidates = sorted(set(members) | set(sample))
        gen = torch.Generator().manual_seed(int(seed) + f_index)
        cand = torch.tensor(candidates)
        draws = torch.stack([cand[torch.randperm(len(cand), generator=gen)[:n]] for _ in range(n_null)])
        family = torch.tensor(members)[None]
        fam_pos = pref[None].double()
        null_pos = torch.remainder(_positions(resp, draws), period)
        stats: dict[str, tuple[float, Tensor, Tensor]] = {}
        result: dict[str, HeldoutSource] = {}
        for source in srcs:
            hr = held[source]
            stat, pairs = _set_statistics(hr, family, fam_pos, resp.transform)
            null, _ = _set_statistics(hr, draws, null_pos, resp.transform)
            stats[source] = (float(stat[0]), null, pairs[0])
            result[source] = _source_result(
                source, float(stat[0]), null, pairs[0], _answers(hr, members, pref), n * len(_variants_of(hr)[members[0]])
            )
            result[source].members, result[source].positions = list(members), (pref - pref[0]).remainder(period).tolist()
        if len(srcs) > 1:
            stat = sum(s[0] for s in stats.values()) / len(srcs)
            null = torch.stack([s[1] for s in stats.values()]).mean(0)
            pairs = torch.stack([s[2] for s in stats.values()]).mean(0)
            first = result[srcs[0]]
            result["combined"] = _source_result(
                "combined", stat, null, pairs, first.answers, sum(r.n_stimuli for r in result.values())
            )
            result["combined"].members, result["combined"].positions = list(first.members), list(first.positions)
        out.append(result)
    return out


def _source_result(source: str, stat: float, null: Tensor, pairs: Tensor, answers: list[int], n_stimuli: int) -> HeldoutSource:
    matrix = pairs.clone()
    matrix.fill_diagonal_(math.nan)
    p = permutation_p(int((null >= stat - 1e-9).sum()), len(null))
    return HeldoutSource(
        source=source, equivariance=min(1.0, max(0.0, stat)), statistic=stat, p_value=p,
        null_mean=float(null.clamp(0.0, 1.0).mean()), pairs=matrix.tolist(), answers=answers,
        n_stimuli=n_stimuli, n_null=len(null), q_value=p,
    )  # fmt: skip
