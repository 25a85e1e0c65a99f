"""Scale-family discovery: the same feature at several sizes, compared along log-scale.

A scale family is a set of units that are zoomed copies of one feature: unit ``w``
responds to a stimulus zoomed by ``z`` as unit ``u`` responds to it zoomed by ``z / a``,
so on a log-spaced zoom grid ``w``'s responses are ``u``'s *shifted* by ``log(a)`` (in
grid steps). Unlike rotation and hue, scale has no period: the ends of the grid are not
neighbours, so :func:`find_scale_families` compares units under shifts without
wrap-around, correlating only the overlapping part of the grid, and places each member
on the log-scale axis by least squares over all pairwise shifts.

Direction. ``Responses.params`` of a scale probe are zoom factors (``z > 1`` enlarges the
stimulus). A unit whose responses peak at zoom ``z`` prefers features ``z`` times the base
size of the stimulus. Family members are listed by ascending preferred zoom: the unit that
prefers the *smallest* features first.

>>> fams = ef.find_families(ef.probe(model, layer, "scale", steps=17))  # dispatches here
>>> fams[0].units, fams[0].preferred        # preferred: zoom factors, ascending
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from .families import _COHESION_MARGIN, _DUPLICATE_STEPS, _TIE_DECIMALS, Family, FamilyList, _communities, _fill_q, _max_p
from .responses import Responses
from .transforms import Transform

__all__ = ["find_scale_families", "scale_grid", "ScaleGrid", "MAX_RESIDUAL"]

#: Largest similarity-weighted mean |shift residual| (grid steps) of a member: how far its
#: measured shifts to the others may miss the differences of the fitted positions.
MAX_RESIDUAL = 1.0
_MIN_OVERLAP = 3  # fewest grid points two compared curves share at the largest shift
_HOLE_FACTOR = 1.5  # a gap wider than this × the median spacing is a hole (as _circle.holes)


@dataclass(frozen=True)
class ScaleGrid:
    """A log-evenly spaced zoom grid.

    Attributes:
        n: number of steps (>= 4).
        log_start: log2 of the first (smallest) zoom factor.
        log_step: octaves per grid step (> 0).
        max_shift: largest relative shift compared, in steps: ``min(n // 2, n - 3)``, so
            that two compared curves always overlap on at least half the grid (and at
            least 3 points).
    """

    n: int
    log_start: float
    log_step: float
    max_shift: int

    def zoom(self, position: Tensor | np.ndarray | float) -> Tensor:
        """Zoom factors at ``position`` (grid steps, fractional allowed, 0 = first factor)."""
        pos = torch.as_tensor(position, dtype=torch.float64)
        return torch.exp2(self.log_start + pos * self.log_step)


def scale_grid(transform: Transform, params: Tensor) -> ScaleGrid:
    """The zoom grid of a probe, after the transform's own check (:meth:`Transform.check_grid
    <equifind.transforms.Transform.check_grid>`: ascending, log-evenly spaced, >= 4 factors > 0).

    Args:
        transform: the responses' transform (a ``discovery == "line"`` group: scale).
        params: ``Tensor[steps]`` zoom factors (``Responses.params`` of a scale probe).

    Raises:
        ValueError: a grid the transform refuses, naming the offending entry.
    """
    (n,) = transform.check_grid(params)
    logs = torch.log2(torch.as_tensor(params).double())
    step = float(logs[-1] - logs[0]) / (n - 1)
    return ScaleGrid(n, float(logs[0]), step, min(n // 2, n - _MIN_OVERLAP))


# -- pairwise similarity under shifts without wrap-around ---------------------------------
def _window(x: Tensor) -> Tensor:
    """``x`` ``[m, V, L]`` → ``[m, V·L]``: each variant centred over the window, each unit unit-norm (0 if flat)."""
    z = x - x.mean(dim=-1, keepdim=True)
    z = z.flatten(1)
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


def shift_similarity(x: Tensor, max_shift: int) -> tuple[Tensor, Tensor]:
    """All pairs' best-shift similarity along a non-periodic grid.

    For a shift ``d`` (``|d| <= max_shift``) the similarity of ``u`` and ``w`` is the
    correlation of ``u`` on grid points ``[a, b)`` with ``w`` on ``[a + d, b + d)``, the
    overlap (each variant centred over the window, all variants together). The best ``d``
    is refined by a parabola through its neighbours (not at ``±max_shift``).

    Args:
        x: ``Tensor[m, V, n]`` responses (or ``[m, 1, n]`` tuning curves).
        max_shift: largest ``|d|`` in grid steps, ``< n``.

    Returns:
        ``sim`` ``Tensor[m, m]`` in [-1, 1] (1 on the diagonal) and ``shift`` ``Tensor[m, m]``,
        the best ``d`` in grid steps: ``w``'s preferred position minus ``u``'s
        (antisymmetric), both float64.
    """
    x = x.double()
    m, _, n = x.shape
    shifts = list(range(-max_shift, max_shift + 1))
    curve = torch.empty(len(shifts), m, m, dtype=torch.float64)
    for k, d in enumerate(shifts):
        a, b = max(0, -d), min(n, n - d)
        curve[k] = _window(x[:, :, a:b]) @ _window(x[:, :, a + d : b + d]).T
    best = curve.argmax(dim=0)  # [m, m]
    y1 = curve.gather(0, best[None])[0]
    inner = (best > 0) & (best < len(shifts) - 1)
    y0 = curve.gather(0, (best - 1).clamp_min(0)[None])[0]
    y2 = curve.gather(0, (best + 1).clamp_max(len(shifts) - 1)[None])[0]
    denom = y0 - 2 * y1 + y2
    ok = inner & (denom < -1e-12)
    off = torch.where(ok, 0.5 * (y0 - y2) / denom.clamp_max(-1e-12), torch.zeros_like(y1)).clamp(-0.5, 0.5)
    sim = torch.where(ok, y1 - 0.25 * (y0 - y2) * off, y1).clamp(-1.0, 1.0)
    shift = best.double() - max_shift + off
    # Exactly symmetric / antisymmetric (float rounding of the two triangles can differ).
    sim = 0.5 * (sim + sim.T)
    shift = 0.5 * (shift - shift.T)
    sim.fill_diagonal_(1.0)
    shift.fill_diagonal_(0.0)
    return sim, shift


class _Links:
    """The linked pairs (``sim >= threshold``) in the form :func:`equifind.families._communities` reads."""

    def __init__(self, sim: Tensor) -> None:
        self.n_units = len(sim)
        self.sim = sim

    def edges(self, threshold: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        iu, iv = torch.triu_indices(self.n_units, self.n_units, offset=1)
        s = self.sim[iu, iv]
        keep = s >= threshold
        return iu[keep], iv[keep], s[keep], s[keep]


# -- one discovery run: communities → positions → pruning → duplicates → merging ----------
@dataclass
class _Group:
    """One scale family found by :func:`_discover`, in rows of the compared profiles."""

    rows: list[int]  # members, ascending position
    pos: np.ndarray  # [m] positions in grid steps (relative: common offset arbitrary)
    score: float
    duplicates: list[tuple[int, int]]  # (row, the member row it duplicates)


def _largest_component(linked: np.ndarray) -> list[int]:
    """Indices of the largest connected component of the boolean adjacency ``linked`` (ties: lowest index)."""
    m = len(linked)
    seen = np.zeros(m, dtype=bool)
    best: list[int] = []
    for start in range(m):
        if seen[start]:
            continue
        comp, todo = [], [start]
        seen[start] = True
        while todo:
            i = todo.pop()
            comp.append(i)
            for j in np.nonzero(linked[i] & ~seen)[0].tolist():
                seen[j] = True
                todo.append(j)
        if len(comp) > len(best):
            best = sorted(comp)
    return best


def _fit_positions(sim: np.ndarray, shift: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """Least-squares positions ``p`` (mean 0) with ``shift[u, v] ≈ p[v] − p[u]`` over linked pairs,
    weighted by similarity. ``linked`` must connect the group."""
    m = len(sim)
    iu, iv = np.nonzero(np.triu(linked, 1))
    if len(iu) == 0:
        return np.zeros(m)
    w = np.sqrt(np.clip(sim[iu, iv], 1e-6, None))
    a = np.zeros((len(iu) + 1, m))
    a[np.arange(len(iu)), iv] = w
    a[np.arange(len(iu)), iu] -= w
    a[-1] = 1.0  # mean position 0
    b = np.concatenate([w * shift[iu, iv], [0.0]])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _member_checks(
    sim: np.ndarray, shift: np.ndarray, pos: np.ndarray, max_shift: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per member: similarity-weighted mean |shift residual| and median similarity over the
    members it can be compared with (positions at most ``max_shift`` + ½ apart), and that mask."""
    m = len(sim)
    comparable = (np.abs(pos[None, :] - pos[:, None]) <= max_shift + 0.5) & ~np.eye(m, dtype=bool)
    residual = np.abs(shift - (pos[None, :] - pos[:, None]))
    weight = np.clip(sim, 0.0, None) * comparable
    cons = (weight * residual).sum(1) / np.clip(weight.sum(1), 1e-12, None)
    cons = np.where(comparable.any(1), cons, np.inf)
    return cons, _row_median(sim, comparable), comparable


def _row_median(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[m]``: the median of each row of ``x`` over its ``mask``ed entries (−1 for a row without any)."""
    k = mask.sum(1)
    ordered = np.sort(np.where(mask, x, np.inf), axis=1)
    lo = np.take_along_axis(ordered, np.clip((k - 1) // 2, 0, None)[:, None], 1)[:, 0]
    hi = np.take_along_axis(ordered, np.clip(k // 2, 0, x.shape[1] - 1)[:, None], 1)[:, 0]
    return np.where(k > 0, 0.5 * (lo + hi), -1.0)


def _settle(
    group: list[int], sim: np.ndarray, shift: np.ndarray, min_size: int, min_similarity: float, max_shift: int
) -> tuple[_Group | None, list[int]]:
    """Prune, place, deduplicate and score one candidate group (rows of ``sim``).

    A member stays if its linked pairs connect it to the group, its similarity-weighted
    mean shift residual is <= :data:`MAX_RESIDUAL` steps and its median similarity to the
    members it can be compared with is >= ``min_similarity`` and, in groups of three or
    more, no more than 0.15 below the median of all members' (an outlier). Each round
    drops the worse half of the failing members (at least one) and refits the positions.

    Returns:
        The group (None when fewer than ``min_size`` distinct positions stay) and the rows dropped.
    """
    group = list(group)
    dropped: list[int] = []
    while True:
        idx = np.asarray(group, dtype=np.int64)
        sub, sub_shift = sim[np.ix_(idx, idx)], shift[np.ix_(idx, idx)]
        linked = sub >= min_similarity
        comp = _largest_component(linked)
        if len(comp) < len(group):
            dropped += [group[i] for i in range(len(group)) if i not in set(comp)]
            group = [group[i] for i in comp]
            continue
        if len(group) < min_size:
            return None, dropped  # the remnant is too small to be a family; what was dropped may be one
        pos = _fit_positions(sub, sub_shift, linked)
        cons, med, comparable = _member_checks(sub, sub_shift, pos, max_shift)
        floor = max(min_similarity, float(np.median(med)) - _COHESION_MARGIN) if len(group) > 2 else min_similarity
        bad = (cons > MAX_RESIDUAL) | (med < floor)
        if not bad.any():
            break
        badness = np.where(bad, np.round(med - cons / MAX_RESIDUAL, _TIE_DECIMALS), np.inf)
        worst = set(np.argsort(badness, kind="stable")[: max(1, int(bad.sum()) // 2)].tolist())
        dropped += [group[i] for i in sorted(worst)]
        group = [u for i, u in enumerate(group) if i not in worst]
    # Duplicates: members within half a grid step of a better-connected member.
    quality = np.round(np.clip(sub, 0.0, None).sum(1), _TIE_DECIMALS)
    kept: list[int] = []
    duplicates: list[tuple[int, int]] = []
    for i in sorted(range(len(group)), key=lambda j: (-float(quality[j]), j)):
        near = [j for j in kept if abs(pos[i] - pos[j]) < _DUPLICATE_STEPS]
        if near:
            duplicates.append((group[i], group[min(near, key=lambda j: (abs(pos[i] - pos[j]), j))]))
        else:
            kept.append(i)
    if len(kept) < min_size:
        return None, dropped
    kept.sort(key=lambda i: (float(pos[i]), group[i]))
    k = np.asarray(kept, dtype=np.int64)
    pairs = comparable[np.ix_(k, k)]
    score = float(np.clip(sub[np.ix_(k, k)][pairs], 0.0, 1.0).mean()) if pairs.any() else 0.0
    return _Group([group[i] for i in kept], pos[k], score, duplicates), dropped


def _discover(x: Tensor, setting: _Setting) -> list[_Group]:
    """Discovery proper on responses ``x`` ``[m, V, n]``: the same steps for data and surrogates."""
    sim_t, shift_t = shift_similarity(x, setting.max_shift)
    sim, shift = sim_t.numpy(), shift_t.numpy()
    found: list[_Group] = []
    for community in _communities(_Links(sim_t), setting.min_similarity, setting.seed):
        queue = deque([community])
        while queue:
            group, rest = _settle(queue.popleft(), sim, shift, setting.min_size, setting.min_similarity, setting.max_shift)
            if len(rest) >= setting.min_size:
                queue.append(rest)
            if group is not None:
                found.append(group)
    return _merge(found, sim, shift, setting)


def _merge(groups: list[_Group], sim: np.ndarray, shift: np.ndarray, setting: _Setting) -> list[_Group]:
    """Merge groups that are one family (Louvain can split a long chain of sizes whose ends
    are not comparable), most alike pair first: two groups that :func:`_alike_across` merge
    when their union (members and duplicates) settles with every member kept. Repeats until
    none merges."""
    failed: set[frozenset[tuple[int, ...]]] = set()
    while len(groups) >= 2:
        cands = []
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                key = frozenset((tuple(groups[a].rows), tuple(groups[b].rows)))
                if key in failed:
                    continue
                if _alike_across(groups[a], groups[b], sim, shift, setting):
                    cross = sim[np.ix_(groups[a].rows, groups[b].rows)]
                    cands.append((-round(float(cross.mean()), _TIE_DECIMALS), a, b))
        for _, a, b in sorted(cands):
            union = groups[a].rows + [d for d, _ in groups[a].duplicates] + groups[b].rows + [d for d, _ in groups[b].duplicates]
            merged, rest = _settle(union, sim, shift, setting.min_size, setting.min_similarity, setting.max_shift)
            if merged is None or rest:
                failed.add(frozenset((tuple(groups[a].rows), tuple(groups[b].rows))))
                continue
            groups = [g for i, g in enumerate(groups) if i not in (a, b)] + [merged]
            break
        else:
            return groups
    return groups


def _alike_across(a: _Group, b: _Group, sim: np.ndarray, shift: np.ndarray, setting: _Setting) -> bool:
    """Whether two groups are worth a merge: some pair across is linked, and of the pairs
    across that are comparable once ``b`` is placed beside ``a`` (offset: the median of the
    linked pairs' shifts, less their positions), at least half are linked."""
    cross = sim[np.ix_(a.rows, b.rows)]
    linked = cross >= setting.min_similarity
    if not linked.any():
        return False
    rel = shift[np.ix_(a.rows, b.rows)] - b.pos[None, :] + a.pos[:, None]
    offset = float(np.median(rel[linked]))
    comparable = np.abs(b.pos[None, :] + offset - a.pos[:, None]) <= setting.max_shift + 0.5
    return bool(linked[comparable].sum() >= 0.5 * comparable.sum())


@dataclass(frozen=True)
class _Setting:
    """What every discovery run (observed and surrogate) shares."""

    min_size: int
    min_similarity: float
    seed: int
    max_shift: int


# -- the selection-aware null ---------------------------------------------------------------
def _surrogate(x: Tensor, gen: torch.Generator) -> Tensor:
    """One surrogate of the compared responses ``x`` ``[m, V, n]`` (float64).

    Two or more variants: each unit's variants permuted independently (every curve kept,
    the pairing of stimuli across units broken), as for rotation.

    One variant ("tuning"): each unit's curve reversed along log-scale with probability
    ½, independently. Every curve keeps its shape, values, smoothness and unimodality;
    what is broken is the one thing a single curve per unit can share beyond being a bump:
    an asymmetric shape in the same direction (e.g. a slow rise to the preferred size and a
    fast fall). Two alternatives failed the structureless control (rectified smooth random
    responses, tests/test_scale_families.py): phase-randomised curves (power spectrum kept)
    and their amplitude-adjusted version (the curve's own values in the rank order of a
    phase-randomised one) both gave the minimal p in 10 of 10 seeds and q <= 0.05 in 3-4 of
    10, because rectified best-variant curves are single bumps, which match each other under
    a shift far more often than the surrogates do. A random shift would keep everything a
    scale family shares (a shape up to a shift) and so test nothing. The price: with m
    members, all oriented alike by chance with probability 2^(1 − m), so a tuning-mode
    family needs many members (or asymmetric shapes) to reach a small p.
    """
    m, v, _ = x.shape
    if v >= 2:
        perm = torch.rand(m, v, generator=gen).argsort(dim=1)
        return x[torch.arange(m)[:, None], perm]
    flip = torch.rand(m, generator=gen) < 0.5
    return torch.where(flip[:, None, None], x.flip(-1), x)


def _null_best(x: Tensor, setting: _Setting, n_null: int, progress: bool) -> Tensor:
    """``Tensor[n_null, m + 1]``: per surrogate run, the best family score with at least k members (−inf: none)."""
    from ._progress import progress_bar

    best = torch.full((n_null, len(x) + 1), -math.inf, dtype=torch.float64)
    gen = torch.Generator().manual_seed(setting.seed + 1)
    for r in progress_bar(range(n_null), desc="scale discovery null", enabled=progress, leave=False):
        for g in _discover(_surrogate(x, gen), setting):
            k = len(g.rows)
            best[r, : k + 1] = torch.clamp_min(best[r, : k + 1], g.score)
    return best


# -- placing a family on the zoom axis --------------------------------------------------------
def _peak_steps(curves: Tensor) -> Tensor:
    """``Tensor[k]``: each curve's (``[k, n]``) peak in grid steps, parabola-refined inside the grid."""
    n = curves.shape[1]
    i = curves.argmax(dim=1)
    rows = torch.arange(len(curves))
    y1 = curves[rows, i]
    y0 = curves[rows, (i - 1).clamp_min(0)]
    y2 = curves[rows, (i + 1).clamp_max(n - 1)]
    denom = y0 - 2 * y1 + y2
    ok = (i > 0) & (i < n - 1) & (denom < -1e-12)
    off = torch.where(ok, 0.5 * (y0 - y2) / denom.clamp_max(-1e-12), torch.zeros_like(y1)).clamp(-0.5, 0.5)
    return i.double() + off.double()


def _anchor_curves(values: Tensor, rows: list[int], compare: str, tunings: Tensor) -> Tensor:
    """The members' curves whose peaks fix a family's common offset, ``Tensor[k, n]``.

    "variants": every member's curve for one *reference* stimulus, the variant that drives
    the members most (sum over members of each one's peak response to it, as a fraction of
    its overall peak), so that the members' preferred zooms refer to the same stimulus size.
    "tuning": each member's best-variant tuning curve (``Responses.tuning_curves``).
    """
    if compare == "tuning" or values.shape[1] == 1:
        return tunings[rows]
    sub = values[rows].double()
    drive = sub.amax(dim=2) / sub.abs().flatten(1).amax(dim=1, keepdim=True).clamp_min(1e-12)  # [k, V]
    ref = int(drive.sum(0).argmax())
    return sub[:, ref]


def _holes(log_pos: list[float]) -> list[float]:
    """Gaps in log-scale: evenly spaced points (log2 zoom) in each gap between neighbouring
    members wider than 1.5× the median gap; ``round(gap / spacing) − 1`` points per gap."""
    if len(log_pos) < 3:
        return []
    p = sorted(log_pos)
    gaps = np.diff(p)
    spacing = float(np.median(gaps))
    out: list[float] = []
    for start, gap in zip(p, gaps.tolist()):
        if spacing > 0 and gap > _HOLE_FACTOR * spacing:
            missing = max(1, round(gap / spacing) - 1)
            out += [start + gap * j / (missing + 1) for j in range(1, missing + 1)]
    return out


def find_scale_families(
    responses: Responses,
    active: Tensor,
    *,
    min_size: int,
    min_selectivity: float,
    min_similarity: float,
    n_null: int,
    seed: int,
    compare: Literal["variants", "tuning"],
    progress: bool,
) -> FamilyList:
    """Find scale families (the same feature at several sizes) among a layer's units.

    Called by :func:`equifind.find_families` for scale responses after its argument
    checks; the arguments mean what they mean there.

    Method. The zoom grid must be log-evenly spaced (:func:`scale_grid`). A
    responding unit (``active``) is selective when ``Responses.selectivity`` (natural-scale
    based when ``responses.natural_scale`` is set) is at least ``min_selectivity``; the
    other responding units are ``invariant``. Every pair of selective units is compared
    under shifts ``d`` along the log-scale grid without wrap-around, ``|d| <= max_shift``
    (at least half the grid overlaps): the correlation of the overlapping parts of their
    responses ("variants": all variants together; "tuning": the best-variant curves), best
    ``d`` parabola-refined (:func:`shift_similarity`). Pairs at ``>= min_similarity`` are
    linked; Louvain communities (as for rotation) are pruned until every member's pairwise
    shifts agree with positions fitted by weighted least squares (``shift(u, w) ≈ pos(w) −
    pos(u)``, mean |residual| <= :data:`MAX_RESIDUAL` step) and its median similarity to the
    members within ``max_shift`` of it is high (>= ``min_similarity``, no outlier).
    Members within half a grid step of a better-connected member are ``duplicates`` (the
    same template at one size in several units is one member, not a family); a family
    needs ``min_size`` distinct positions. Groups whose union settles are merged.
    ``score``: the mean best-shift similarity (clipped to [0, 1]) over member pairs within
    ``max_shift`` of each other.

    Position. The fitted positions are relative; one common offset, the median of each
    member's own curve peak minus its fitted position, places them on the grid. In
    "variants" mode the own curves are those of one reference stimulus, the variant that
    drives the members most (so every member's zoom refers to the same stimulus); in
    "tuning" mode the best-variant tuning curves. ``preferred`` are the zoom factors there
    (a unit preferring zoom ``z`` prefers features ``z`` times the stimulus' base size),
    ascending: the unit preferring the smallest features first.

    Significance, including the selection (as :func:`~equifind.find_families`): the whole
    discovery above is re-run on ``n_null`` surrogates of the compared responses. Two or
    more variants: each unit's variants permuted independently. One variant ("tuning"):
    each unit's curve reversed along log-scale with probability ½ (see :func:`_surrogate`
    for why, and why that makes tuning mode weak). A family of m members and score s gets ``p = (1 + #runs
    whose best family of >= m members scores >= s) / (1 + n_null)`` (floor
    ``1 / (1 + n_null)``); ``q_value`` is Benjamini–Hochberg over this call's families.

    Args:
        responses: one layer's scale ``Responses`` (``values``: ``Tensor[units, variants,
            steps]``, ``params``: ``Tensor[steps]`` zoom factors, log-evenly spaced).
        active: ``Tensor[units]`` bool, the responding units (``responses.responding(min_response)``).
        min_size: fewest distinct positions (members) of a family, >= 2.
        min_selectivity: the selectivity below which a responding unit is invariant, in [0, 1].
        min_similarity: best-shift correlation that links two units, in (0, 1].
        n_null: surrogate discovery runs (0: ``p_value`` 1).
        seed: seeds the community detection and the surrogates.
        compare: "variants" or "tuning".
        progress: a progress bar over the surrogate runs.

    Returns:
        A :class:`~equifind.families.FamilyList`, best score first. Each family has
        ``transform="scale"``, ``preferred`` zoom factors (ascending), ``period=None``
        (scale has none), ``holes`` as zoom factors (points in each gap between neighbouring
        members wider than 1.5× their median log-spacing; families of >= 3 members).

    Raises:
        ValueError: ``responses`` not a scale Responses, ``active`` of the wrong shape,
            ``compare`` unknown, or a zoom grid that is not log-evenly spaced, has fewer
            than 4 steps or a factor <= 0.
    """
    if not isinstance(responses, Responses) or responses.transform.discovery != "line":
        got = str(responses.transform) if isinstance(responses, Responses) else type(responses).__name__
        raise ValueError(f"find_scale_families needs Responses of a transform found along a line (scale), got {got!r}")
    if compare not in ("variants", "tuning"):
        raise ValueError(f"compare must be 'variants' or 'tuning', got {compare!r}")
    grid = scale_grid(responses.transform, responses.params)
    if not responses.units:
        return FamilyList()
    active = torch.as_tensor(active, dtype=torch.bool)
    if active.shape != (len(responses.units),):
        raise ValueError(f"active must be a bool Tensor[{len(responses.units)}] (one per unit), got shape {tuple(active.shape)}")
    selective = active & (responses.selectivity >= min_selectivity)
    rows = torch.nonzero(selective).flatten()
    ids = [responses.units[r] for r in rows.tolist()]
    out = FamilyList(invariant=[responses.units[r] for r in torch.nonzero(active & ~selective).flatten().tolist()], selective=ids)
    if len(rows) < 2:
        return out
    tunings = responses.tuning_curves.double()
    source = responses.values if compare == "variants" else tunings[:, None, :]
    x = source[rows].double()
    setting = _Setting(min_size, float(min_similarity), seed, grid.max_shift)
    with threadpool_limits(limits=1, user_api="blas"):
        groups = _discover(x, setting)
        best = _null_best(x, setting, n_null, progress) if groups else None
    for g in groups:
        members = rows[g.rows].tolist()
        own = _peak_steps(_anchor_curves(responses.values, members, compare, tunings)).numpy()
        pos = g.pos + float(np.median(own - g.pos))
        zoom = grid.zoom(pos).tolist()
        hole_steps = _holes(pos.tolist())
        out.append(Family(
            layer=responses.layer, transform=responses.transform, units=[ids[r] for r in g.rows], preferred=[float(z) for z in zoom],
            period=None, score=g.score, p_value=_max_p(best, len(g.rows), g.score, n_null) if best is not None else 1.0,
            holes=[float(z) for z in grid.zoom(hole_steps).tolist()] if hole_steps else [],
            duplicates=sorted((ids[a], ids[b]) for a, b in g.duplicates), n_null=n_null,
        ))  # fmt: skip
    _fill_q(out)
    out.sort(key=lambda f: (-f.score, f.units[0]))
    return out
