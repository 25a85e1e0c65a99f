"""Family discovery: group a layer's units into equivariant families.

A family is a set of units that are transformed copies of one feature: unit
``w`` responds to ``g·x`` as unit ``u`` responds to ``x``, so its responses over
the transform grid are ``u``'s circularly shifted. :func:`find_families`
compares every pair of selective units at once by one batched FFT circular
cross-correlation (shape similarity and best relative shift), links similar
units in a graph, splits it into communities (Louvain, networkx) and keeps the
members whose shifts are cycle-consistent, ``shift(u, w) ≈ shift(u, v) +
shift(v, w)``: the phases of the leading eigenvector of ``H[u, v] = sim(u, v) ·
exp(−2πi·k·shift(u, v)/360)`` synchronise all relative shifts, and each member's
residuals show whether it fits. Flip pairs are mutual best matches of ``u(x)``
against ``v(flip x)`` that mirror each other better than either mirrors itself.

>>> fams = find_families(responses)          # responses: Responses of one layer
>>> fams[0].units, fams[0].preferred, fams[0].period, fams.invariant
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import networkx as nx
import torch
from torch import Tensor

from ._circle import harmonic_period, holes
from .responses import Responses

__all__ = ["Family", "FamilyList", "find_families", "rank_families", "TRANSFORMS"]

#: Transforms that :func:`find_families` handles ("scale" has no period).
TRANSFORMS: tuple[str, ...] = ("rotation", "hue", "flip", "hue_rotation")
_MIN_RESPONSE = 1e-2  # a unit is active if its peak |response| is >= this × the layer's largest
_MIN_CONSISTENCY = 0.8  # a member's similarity-weighted mean cos(shift residual) (cos 37°)
_DUPLICATE_STEPS = 0.5  # members whose preferred params are closer (grid steps) are duplicates
_CHUNK = 1 << 24  # elements per block of the pairwise correlation


@dataclass
class Family:
    """A family of units that are transformed copies of one feature.

    Attributes:
        layer: layer name.
        transform: "rotation", "hue", "flip" or "hue_rotation".
        units: unit indices, ordered by preferred parameter (ascending from 0).
        preferred: each unit's preferred parameter in ``[0, period)``: degrees for
            rotation and hue, ``[0, 1]`` for flip, the orientation for hue_rotation. The
            members' synchronised phases (precise relative positions from all pairs and
            variants), offset so that they match the peaks of the members' tuning curves
            (``Responses.preferred``, modulo the period) as a whole.
        period: the family's period: rotation 360, 180 or 90; hue and hue_rotation 360; flip 2.
        score: in [0, 1]: mean pairwise best-shift similarity weighted by the cosine of
            each pair's cycle-consistency residual (1 for exact shifted copies).
        p_value: ``(1 + #null >= score) / (1 + n_null)`` against random unit sets of the
            same size from the same layer's selective units.
        holes: rotation and hue: parameters where members seem missing. Each gap between
            neighbours (around the circle of length ``period``) wider than 1.5× the median
            spacing gets ``round(gap / spacing) - 1`` evenly spaced points: its centre
            for one missing member. Empty for flip and hue_rotation.
        preferred_hue: hue_rotation only: each unit's preferred hue in degrees (in
            ``[0, 180)`` when hue + 180° is orientation + 180°), else None.
        duplicates: ``(unit, member)`` pairs: units with the same tuning as ``member``
            and a preferred parameter within half a grid step of it, left out of ``units``.
    """

    layer: str
    transform: str
    units: list[int]
    preferred: list[float]
    period: float
    score: float
    p_value: float
    holes: list[float] = field(default_factory=list)
    preferred_hue: list[float] | None = None
    duplicates: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.units) != len(self.preferred):
            raise ValueError(f"Family has {len(self.units)} units but {len(self.preferred)} preferred values")

    def __len__(self) -> int:
        return len(self.units)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (plain ints, floats, lists); :meth:`from_dict` inverts it."""
        out = asdict(self)
        out["duplicates"] = [[int(a), int(b)] for a, b in self.duplicates]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Family:
        """Rebuild a family from :meth:`to_dict`'s output.

        Raises:
            KeyError: a required key is missing.
        """
        required = ("layer", "transform", "units", "preferred", "period", "score", "p_value")
        missing = [k for k in required if k not in data]
        if missing:
            raise KeyError(f"Family dict lacks {missing}; it needs {list(required)}")
        hue = data.get("preferred_hue")
        return cls(
            layer=str(data["layer"]), transform=str(data["transform"]), units=[int(u) for u in data["units"]],
            preferred=[float(p) for p in data["preferred"]], period=float(data["period"]),
            score=float(data["score"]), p_value=float(data["p_value"]),
            holes=[float(h) for h in data.get("holes", [])],
            preferred_hue=None if hue is None else [float(h) for h in hue],
            duplicates=[(int(a), int(b)) for a, b in data.get("duplicates", [])],
        )  # fmt: skip


class FamilyList(list[Family]):
    """The families of one layer (best score first), plus the layer's other units.

    Attributes:
        invariant: units that respond (peak |response| at least 1% of the layer's
            largest) but are not selective: flat across the transform (for flip: their
            responses are mirror-symmetric, and no partner mirrors them better). Inputs of invariant→equivariant circuits.
        selective: every selective unit, in or out of a family. Units in neither
            list barely respond.
    """

    def __init__(self, families: Iterable[Family] = (), *, invariant: Sequence[int] = (), selective: Sequence[int] = ()) -> None:
        super().__init__(families)
        self.invariant = [int(u) for u in invariant]
        self.selective = [int(u) for u in selective]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: ``families`` (list of dicts), ``invariant``, ``selective``."""
        return {"families": [f.to_dict() for f in self], "invariant": list(self.invariant), "selective": list(self.selective)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FamilyList:
        """Rebuild from :meth:`to_dict`'s output."""
        return cls((Family.from_dict(f) for f in data.get("families", [])), invariant=data.get("invariant", ()), selective=data.get("selective", ()))


def rank_families(
    families: Sequence[Family], equivariance: Sequence[float | None] | None = None, *, alpha: float = 0.05
) -> list[int]:
    """Family indices, the most worth a look first.

    Significant families (``p_value <= alpha``) come first, then larger ones, then
    more equivariant ones: ``equivariance[i]`` where given (a
    :class:`~equifind.score.FamilyScore`'s), else the family's own ``score``; a
    non-finite value ranks below every finite one.

    Args:
        families: the families.
        equivariance: optional, one value (or None) per family; a shorter list
            leaves the rest to their own scores.
        alpha: the significance level.

    Returns:
        A permutation of ``range(len(families))``.
    """
    given = list(equivariance or [])

    def key(i: int) -> tuple[bool, int, float]:
        eq = given[i] if i < len(given) and given[i] is not None else families[i].score
        return (families[i].p_value <= alpha, len(families[i].units), eq if math.isfinite(eq) else -math.inf)

    return sorted(range(len(families)), key=key, reverse=True)


def find_families(
    responses: Responses,
    *,
    min_size: int = 2,
    min_selectivity: float = 0.25,
    min_similarity: float = 0.7,
    n_null: int = 200,
    seed: int = 0,
    compare: Literal["variants", "tuning"] = "variants",
) -> FamilyList:
    """Find the families of transformed copies among a layer's units.

    Args:
        responses: one layer's ``Responses`` (``values``: Tensor[units, variants, steps])
            for "rotation" or "hue" (an evenly spaced grid over 360°, >= 4 steps),
            "flip" (params [0, 1]) or "hue_rotation" (an n × n hue-major grid, n >= 4).
        min_size: fewest members of a family, >= 2 (flip families have exactly 2).
        min_selectivity: units whose tuning selectivity (``Responses.selectivity``; for
            flip, ``|r(x) - r(flip x)| / (|r(x)| + |r(flip x)|)`` over all variants) is
            below this are invariant, not family members. In [0, 1].
        min_similarity: shape similarity (the best-shift correlation, in [-1, 1]) that
            links two units; also the least median similarity of a member to the
            others, and the flip correlation that pairs two units. In (0, 1].
        n_null: random unit sets for each family's p-value (0: p_value is 1).
        seed: seeds the community detection and the null sets.
        compare: "variants" (default) correlates each unit's whole response matrix
            [variants, steps] under a common shift — transformed copies respond alike to
            every stimulus, so families with the same tuning shape but different
            preferred stimuli stay apart; "tuning" correlates only the best-variant
            tuning curves (``Responses.tunings()``). Both agree for one variant. Flip
            always compares all variants.

    Returns:
        A :class:`FamilyList`, best score first, with ``.invariant`` and ``.selective``.

    Raises:
        ValueError: ``responses`` is not a Responses; an argument out of range; an
            unsupported transform ("scale"); a transform grid that is too small or
            not evenly spaced.
    """
    if not isinstance(responses, Responses):
        raise ValueError(f"responses must be an equifind.Responses, got {type(responses).__name__}")
    _check_args(min_size, min_selectivity, min_similarity, n_null, seed, compare)
    if responses.transform not in TRANSFORMS:
        raise ValueError(f"find_families cannot handle transform {responses.transform!r}; valid: {list(TRANSFORMS)}")
    grid = _check_grid(responses)
    if not responses.units:
        return FamilyList()
    gen = torch.Generator().manual_seed(seed)
    values = responses.values
    peak = values.abs().flatten(1).amax(dim=1)
    active = (peak > 0) & (peak >= _MIN_RESPONSE * float(peak.max())) if len(values) else peak > 0
    if responses.transform == "flip":
        return _flip_pairs(responses, active, min_size, min_selectivity, min_similarity, n_null, gen)
    selective = active & (responses.selectivity >= min_selectivity)
    rows = torch.nonzero(selective).flatten()
    ids = [responses.units[r] for r in rows.tolist()]
    out = FamilyList(invariant=[responses.units[r] for r in torch.nonzero(active & ~selective).flatten().tolist()], selective=ids)
    if len(rows) < 2:
        return out
    source = values if compare == "variants" else responses.tunings()[:, None, :]
    profiles = _normalise(source[rows].reshape(len(rows), source.shape[1], *grid), len(grid))
    sim, shift = _shift_similarity(profiles)
    spectra = _spectra(profiles, grid)
    if len(grid) == 1:  # anchors: normalised best-variant tunings [n, steps]
        anchors = _normalise(responses.tunings()[rows][:, None], 1)[:, 0]
    else:  # the own 2-D peaks [n, 2] (hue, angle) in degrees
        anchors = _own_peaks(responses, grid)[rows]
    null = torch.rand(n_null, len(rows), generator=gen).argsort(dim=1)  # random unit sets, shared
    queue = deque(_communities(sim, min_similarity, seed))
    while queue:
        group = queue.popleft()
        chars, period, theta, rest = _prune(group, spectra, sim, shift, grid, min_size, min_similarity)
        if len(rest) >= min_size:
            queue.append(rest)
        if len(group) < min_size:
            continue
        pos = _anchor(theta, chars, anchors[group], float(responses.params.flatten()[0]))
        fam, kept = _build(group, chars, period, pos, sim, grid, responses, ids)
        if len(kept) < min_size:
            continue
        fam.score, fam.p_value = _significance(kept, sim, shift, grid, chars, null)
        out.append(fam)
    out.sort(key=lambda f: (-f.score, f.units[0]))
    return out


# -- input checks ---------------------------------------------------------------------
def _check_args(min_size: int, min_selectivity: float, min_similarity: float, n_null: int, seed: int, compare: str) -> None:
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 2:
        raise ValueError(f"min_size must be an int >= 2, got {min_size!r}")
    if not 0.0 <= float(min_selectivity) <= 1.0:
        raise ValueError(f"min_selectivity must be in [0, 1], got {min_selectivity!r}")
    if not 0.0 < float(min_similarity) <= 1.0:
        raise ValueError(f"min_similarity must be in (0, 1], got {min_similarity!r}")
    if isinstance(n_null, bool) or not isinstance(n_null, int) or n_null < 0:
        raise ValueError(f"n_null must be an int >= 0, got {n_null!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if compare not in ("variants", "tuning"):
        raise ValueError(f"compare must be 'variants' or 'tuning', got {compare!r}")


def _check_circle(params: Tensor, what: str) -> None:
    """Raise unless ``params`` is evenly spaced over 360° (any start, ascending)."""
    n = len(params)
    step = 360.0 / n
    expected = params[0] + step * torch.arange(n, dtype=params.dtype)
    error = torch.remainder(params - expected + 180.0, 360.0) - 180.0
    bad = torch.nonzero(error.abs() > 1e-3 * step).flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{what} must be evenly spaced over 360° ({n} steps of {step:g}°); "
            f"entry {i} is {float(params[i]):g}, expected {float(expected[i]) % 360.0:g}"
        )


def _check_grid(responses: Responses) -> tuple[int, ...]:
    """The transform grid's shape: (steps,) for rotation/hue, (n, n) for hue_rotation, (2,) for flip."""
    p, kind = responses.params, responses.transform
    if kind == "flip":
        if p.dim() != 1 or len(p) != 2 or not torch.equal(p, torch.tensor([0.0, 1.0])):
            raise ValueError(f"flip responses need params [0, 1] (2 steps), got {p.tolist()}")
        return (2,)
    if kind == "hue_rotation":
        n = math.isqrt(len(p)) if p.dim() == 2 else 0
        if p.dim() != 2 or p.shape[1] != 2 or n * n != len(p) or n < 4:
            raise ValueError(f"hue_rotation params must be Tensor[n*n, 2] of (hue, angle), n >= 4, got shape {tuple(p.shape)}")
        cube = p.reshape(n, n, 2)
        for axis, what in ((0, "hue"), (1, "angle")):
            line = cube[:, 0, 0] if axis == 0 else cube[0, :, 1]
            _check_circle(line, f"hue_rotation {what}s")
            other = cube[..., axis] - (line[:, None] if axis == 0 else line[None, :])
            if float(other.abs().max()) > 1e-3:
                raise ValueError(f"hue_rotation params must be a hue-major n × n grid (as HueRotation.grid(n)); the {what}s are not")
        return (n, n)
    if p.dim() != 1 or len(p) < 4:
        raise ValueError(f"{kind} responses need >= 4 steps over 360°, got params of shape {tuple(p.shape)}")
    _check_circle(p, f"{kind} params")
    return (len(p),)


# -- pairwise similarity ------------------------------------------------------------
def _normalise(x: Tensor, d: int) -> Tensor:
    """Subtract each variant's mean over the grid (last ``d`` dims), scale each unit to unit norm."""
    dims = tuple(range(-d, 0))
    z = (x - x.mean(dim=dims, keepdim=True)).double()
    norm = z.flatten(1).norm(dim=1).clamp_min(1e-12)
    return z / norm.view(-1, *([1] * (z.dim() - 1)))


def _subgrid_peak(surface: Tensor, grid: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Peak of periodic surfaces ``[..., *grid]`` with a parabola along each axis.

    Returns:
        ``(value [...], position [..., d])``, position in grid steps, in [-0.5, n - 0.5).
    """
    flat = surface.flatten(-len(grid))
    best = flat.argmax(dim=-1, keepdim=True)
    top = flat.gather(-1, best)[..., 0]
    value, position, stride, rest = top.clone(), [], math.prod(grid), best[..., 0]
    for n in grid:
        stride //= n
        coord = rest // stride
        rest = rest - coord * stride
        y0 = flat.gather(-1, (best[..., 0] + ((coord - 1) % n - coord) * stride)[..., None])[..., 0]
        y2 = flat.gather(-1, (best[..., 0] + ((coord + 1) % n - coord) * stride)[..., None])[..., 0]
        curve = y0 - 2 * top + y2
        off = torch.where(curve < -1e-12, 0.5 * (y0 - y2) / curve.clamp_max(-1e-12), torch.zeros_like(top)).clamp(-0.5, 0.5)
        value = value - 0.25 * (y0 - y2) * off
        position.append(coord + off)
    return value, torch.stack(position, dim=-1)


def _shift_similarity(profiles: Tensor) -> tuple[Tensor, Tensor]:
    """All pairs' best-shift similarity, by one batched FFT circular cross-correlation.

    Args:
        profiles: ``Tensor[U, V, *grid]`` (grid 1-D or 2-D), zero-mean along the grid and
            unit-norm per unit (see :func:`_normalise`).

    Returns:
        ``sim`` Tensor[U, U] in [-1, 1], the largest ``Σ z_u(x) z_w(x + s)`` over circular
        shifts ``s`` (sub-step, parabolic), and ``shift`` Tensor[U, U, d], that ``s`` in grid
        steps in [-n/2, n/2): ``w``'s preferred parameter minus ``u``'s.
    """
    n_units, n_var, grid = profiles.shape[0], profiles.shape[1], tuple(profiles.shape[2:])
    dims = tuple(range(-len(grid), 0))
    spec = torch.fft.rfftn(profiles.float(), dim=dims)  # float32: 2× faster, ~1e-6 error
    fshape = spec.shape[2:]
    freq = spec.reshape(n_units, n_var, -1).permute(2, 0, 1)  # [F, U, V]
    rows = max(1, _CHUNK // max(1, n_units * math.prod(grid)))
    sims, shifts = [], []
    for i in range(0, n_units, rows):
        cross = freq[:, i : i + rows].conj() @ freq.transpose(1, 2)  # [F, c, U]: Σ_v conj(Z_u) Z_w
        cross = cross.permute(1, 2, 0).reshape(-1, n_units, *fshape)
        corr = torch.fft.irfftn(cross, s=grid, dim=dims)  # [c, U, *grid]
        value, position = _subgrid_peak(corr, grid)
        sims.append(value)
        sizes = torch.tensor(grid, dtype=position.dtype)
        shifts.append(torch.remainder(position + sizes / 2, sizes) - sizes / 2)
    sim, shift = torch.cat(sims).clamp(-1.0, 1.0).double(), torch.cat(shifts).double()
    sim.fill_diagonal_(1.0)
    shift[torch.arange(n_units), torch.arange(n_units)] = 0.0
    return sim, shift


def _own_peaks(responses: Responses, grid: tuple[int, ...]) -> Tensor:
    """``Tensor[U, 2]``: each unit's own (hue, angle) peak in degrees, on a hue_rotation grid."""
    _, position = _subgrid_peak(responses.tunings().reshape(-1, *grid).double(), grid)
    start = responses.params.reshape(*grid, 2)[0, 0].double()  # (hue, angle) at index (0, 0)
    return torch.remainder(start + position * (360.0 / grid[0]), 360.0)


# -- communities, consistency, families --------------------------------------------
def _communities(sim: Tensor, threshold: float, seed: int) -> list[list[int]]:
    """Louvain communities (size >= 2) of the graph linking pairs with ``sim >= threshold``.

    Edges weigh the similarity above the threshold, ``(sim − t) / (1 − t)``, and each
    connected component is split on its own, so that modularity's resolution limit
    (relative to the whole layer) does not merge small families joined by weak links.
    """
    n = sim.shape[0]
    iu, iv = torch.triu_indices(n, n, 1)
    weight = sim[iu, iv]
    keep = weight >= threshold
    excess = (weight[keep] - threshold) / (1.0 - threshold + 1e-9)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(zip(iu[keep].tolist(), iv[keep].tolist(), excess.tolist()))
    found: list[list[int]] = []
    for component in nx.connected_components(graph):
        if len(component) >= 2:
            parts = nx.community.louvain_communities(graph.subgraph(component), weight="weight", seed=seed)
            found += [sorted(c) for c in parts if len(c) >= 2]
    return sorted(found, key=lambda c: c[0])


def _synchronise(sim: Tensor, phase: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Synchronise relative phases ``phase[u, v] ≈ θ_v − θ_u`` (radians), batched over ``...``.

    The phases θ are those of the leading eigenvector of the Hermitian matrix
    ``sim · exp(−i·phase)``; the residuals ``phase[u, v] − (θ_v − θ_u)`` measure cycle consistency.

    Args:
        sim: Tensor[..., m, m] symmetric pair weights. phase: Tensor[..., m, m], antisymmetric.

    Returns:
        ``theta`` Tensor[..., m]; ``member`` Tensor[..., m], each member's sim-weighted mean
        cos(residual); ``score`` Tensor[...] in [0, 1], the mean over pairs of sim · cos(residual).
    """
    m = sim.shape[-1]
    weight = sim.clamp_min(0.0) * (1.0 - torch.eye(m, dtype=sim.dtype))
    h = torch.polar(sim.clamp_min(0.0), -phase)
    theta = torch.linalg.eigh(0.5 * (h + h.mH)).eigenvectors[..., :, -1].angle()
    agree = torch.cos(phase - (theta[..., None, :] - theta[..., :, None])) * weight
    member = agree.sum(-1) / weight.sum(-1).clamp_min(1e-12)
    return theta, member, (agree.sum((-1, -2)) / (m * (m - 1))).clamp(0.0, 1.0)


def _consistency(sim: Tensor, shift: Tensor, grid: tuple[int, ...], chars: list[tuple[int, ...]]) -> tuple[Tensor, Tensor, Tensor]:
    """Synchronise each character's phases ``2π Σ_j c_j·shift_j / n_j`` of a group (or batch of groups).

    Returns:
        ``theta`` Tensor[..., m, len(chars)], the worst ``member`` consistency over the
        characters Tensor[..., m], and the mean ``score`` Tensor[...].
    """
    sizes = torch.tensor(grid, dtype=shift.dtype)
    out = [_synchronise(sim, 2 * math.pi * (shift * torch.tensor(c, dtype=shift.dtype) / sizes).sum(-1)) for c in chars]
    return torch.stack([o[0] for o in out], -1), torch.stack([o[1] for o in out]).amin(0), torch.stack([o[2] for o in out]).mean(0)


def _spectra(profiles: Tensor, grid: tuple[int, ...]) -> Tensor:
    """Per unit, what :func:`_symmetry` needs: 1-D, the power of each harmonic ``[U, steps//2 + 1]``;
    2-D, the correlation of the profile with itself shifted by (180°, 180°) ``[U]``."""
    if len(grid) == 2:
        return (profiles * profiles.roll((grid[0] // 2, grid[1] // 2), (-2, -1))).flatten(1).sum(1)
    return torch.fft.rfft(profiles, dim=-1).abs().square().sum(1)


def _symmetry(spectra: Tensor, grid: tuple[int, ...], min_similarity: float) -> tuple[list[tuple[int, ...]], float]:
    """The characters to synchronise and the period of a group, from its members' :func:`_spectra`.

    1-D: the largest harmonic k in {4, 2} whose multiples hold >= 75% of the tuning energy
    gives period 360/k (else k = 1, period 360). 2-D: if the profiles are unchanged by
    (hue + 180, angle + 180) the group is coupled and (hue ± angle) are synchronised, else
    hue and angle separately; period 360.
    """
    if len(grid) == 2:
        coupled = grid[0] % 2 == 0 and float(spectra.mean()) >= min_similarity
        return ([(1, 1), (1, -1)] if coupled else [(1, 0), (0, 1)]), 360.0
    k, period = harmonic_period(spectra.sum(0), grid[0])
    return [(k,)], period


def _prune(
    group: list[int], spectra: Tensor, sim: Tensor, shift: Tensor, grid: tuple[int, ...], min_size: int, min_similarity: float
) -> tuple[list[tuple[int, ...]], float, Tensor, list[int]]:
    """Drop inconsistent or weakly similar members of ``group`` (in place), worst first.

    A member stays if its consistency is >= 0.8 and its median similarity to the
    others >= ``min_similarity``.

    Returns:
        The kept group's characters, period and phases ``[m, len(chars)]``, and the dropped members.
    """
    dropped: list[int] = []
    while True:
        chars, period = _symmetry(spectra[group], grid, min_similarity)
        sub = sim[group][:, group]
        theta, member, _ = _consistency(sub, shift[group][:, group], grid, chars)
        if len(group) < min_size:
            return chars, period, theta, dropped
        others = sub.masked_fill(torch.eye(len(group), dtype=torch.bool), float("nan")).nanmedian(dim=1).values
        bad = (member < _MIN_CONSISTENCY) | (others < min_similarity)
        if not bool(bad.any()):
            return chars, period, theta, dropped
        dropped.append(group.pop(int(torch.where(bad, member + others, torch.full_like(member, math.inf)).argmin())))


def _anchor(theta: Tensor, chars: list[tuple[int, ...]], anchors: Tensor, start: float) -> Tensor:
    """Synchronised phases → parameters (degrees), anchored by one common offset.

    1-D: each member's tuning curve is shifted back by its phase and the curves are
    averaged into a template, whose sub-step peak fixes the offset: exact for clean
    copies, and robust to noise (a single curve's own peak is not). 2-D: the offset is
    the circular mean of the members' own peaks minus their phases.

    Args:
        theta: Tensor[m, len(chars)] synchronised phases (radians, arbitrary common offset).
        chars: ``[(k,)]``, ``[(1, 0), (0, 1)]``, or coupled ``[(1, 1), (1, -1)]`` (hue ± angle).
        anchors: 1-D, the normalised tunings Tensor[m, steps]; 2-D, own peaks Tensor[m, 2].
        start: the grid's first parameter (1-D).

    Returns:
        Tensor[m, d]: 1-D, the angle in [0, 360/k); 2-D, (hue, angle), hue in [0, 180) if coupled.
    """
    if len(chars) == 1:
        k, n = chars[0][0], anchors.shape[-1]
        delta = theta[:, 0] * n / (2 * math.pi * k)  # each member's shift, in steps
        rotate = torch.polar(torch.ones_like(delta)[:, None], 2 * math.pi * torch.arange(n // 2 + 1) * delta[:, None] / n)
        template = torch.fft.irfft(torch.fft.rfft(anchors) * rotate, n=n).mean(0)  # Σ_u T_u(s + δ_u)
        _, peak = _subgrid_peak(template, (n,))
        return torch.remainder(start + (peak + delta[:, None]) * 360.0 / n, 360.0 / k)
    own_phase = torch.deg2rad(anchors @ torch.tensor(chars, dtype=anchors.dtype).T)
    offset = torch.polar(torch.ones_like(theta), own_phase - theta).sum(0).angle()  # circular mean
    phase = torch.rad2deg(torch.remainder(theta + offset, 2 * math.pi))
    if chars[0] == (1, 0):
        return phase
    hue = torch.remainder((phase[:, 0] + phase[:, 1]) / 2, 180.0)  # φ1 = hue + angle, φ2 = hue − angle
    return torch.stack([hue, torch.remainder(phase[:, 0] - hue, 360.0)], -1)


def _build(
    group: list[int], chars: list[tuple[int, ...]], period: float, pos: Tensor, sim: Tensor,
    grid: tuple[int, ...], responses: Responses, ids: list[int],
) -> tuple[Family, list[int]]:  # fmt: skip
    """Order, deduplicate and describe one consistent group (score and p-value filled later).

    Of members whose parameters ``pos`` ([m, d], degrees) are within half a grid step, the
    one most similar to the rest of the group stays; the others are listed as duplicates.

    Returns:
        The family and its members' rows, in the family's order.
    """
    quality = sim[group][:, group].clamp_min(0.0).sum(1)
    coupled = chars[0] == (1, 1)

    def distance(a: int, b: int) -> float:
        diff = (torch.remainder(pos[a] - pos[b] + period / 2, period) - period / 2).abs().max()
        alt = (torch.remainder(pos[a] - pos[b], 360.0) - 180.0).abs().max() if coupled else diff
        return float(torch.minimum(diff, alt))

    kept: list[int] = []
    duplicates: list[tuple[int, int]] = []
    for i in sorted(range(len(group)), key=lambda j: (-float(quality[j]), j)):
        close = min(((distance(i, j), j) for j in kept), default=(math.inf, -1))
        if close[0] < _DUPLICATE_STEPS * 360.0 / grid[-1]:
            duplicates.append((ids[group[i]], ids[group[close[1]]]))
        else:
            kept.append(i)
    kept.sort(key=lambda i: (float(pos[i, -1]), float(pos[i, 0]), i))
    preferred = [float(pos[i, -1]) for i in kept]
    family = Family(
        layer=responses.layer, transform=responses.transform, units=[ids[group[i]] for i in kept],
        preferred=preferred, period=period, score=0.0, p_value=1.0,
        holes=holes(preferred, period) if len(grid) == 1 else [],
        preferred_hue=[float(pos[i, 0]) for i in kept] if len(grid) == 2 else None,
        duplicates=sorted(duplicates),
    )  # fmt: skip
    return family, [group[i] for i in kept]


def _significance(
    rows: list[int], sim: Tensor, shift: Tensor, grid: tuple[int, ...], chars: list[tuple[int, ...]], null: Tensor
) -> tuple[float, float]:
    """Score of the family ``rows`` and its p-value against random sets (batched).

    Args:
        null: Tensor[n_null, n] random permutations of the selective units; each null
            set is the first ``len(rows)`` entries of a row.
    """
    idx = torch.tensor(rows)
    _, _, score = _consistency(sim[idx][:, idx], shift[idx][:, idx], grid, chars)
    if len(null) == 0:
        return float(score), 1.0
    pick = null[:, : len(rows)]
    _, _, scores = _consistency(sim[pick[:, :, None], pick[:, None, :]], shift[pick[:, :, None], pick[:, None, :]], grid, chars)
    return float(score), (1 + int((scores >= score - 1e-9).sum())) / (1 + len(null))


# -- flip ---------------------------------------------------------------------------
def _flip_pairs(
    responses: Responses, active: Tensor, min_size: int, min_selectivity: float, min_similarity: float, n_null: int, gen: torch.Generator
) -> FamilyList:
    """Mutual best matches of ``u(x)`` against ``v(flip x)`` (correlation over variants)."""
    a, b = responses.values[..., 0].double(), responses.values[..., 1].double()
    asym = (a - b).norm(dim=1) / (a.norm(dim=1) + b.norm(dim=1)).clamp_min(1e-12)
    x, y = torch.cat([a, b], 1), torch.cat([b, a], 1)
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    x, y = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12), y / y.norm(dim=1, keepdim=True).clamp_min(1e-12)
    corr = x @ y.T  # corr[u, v]: u's responses against v's to the mirrored stimuli; symmetric
    own = corr.diagonal()  # how well a unit is its own mirror image
    is_candidate = active & (asym >= min_selectivity)
    candidates = torch.nonzero(is_candidate).flatten()
    sub = corr[candidates][:, candidates].clamp(-1.0, 1.0)
    best = sub.clone().fill_diagonal_(-math.inf).argmax(dim=1)
    # a pair is a mutual best match that mirrors better than either unit mirrors itself
    pairs = [
        (i, j) for i, j in enumerate(best.tolist())
        if i < j and int(best[j]) == i and float(sub[i, j]) >= min_similarity
        and float(sub[i, j]) > max(float(own[candidates[i]]), float(own[candidates[j]]))
    ] if min_size <= 2 and len(candidates) >= 2 else []  # fmt: skip
    paired = torch.zeros_like(active)
    for i, j in pairs:
        paired[candidates[i]] = paired[candidates[j]] = True
    selective = is_candidate & ((own < min_similarity) | paired)
    ids = [responses.units[r] for r in torch.nonzero(selective).flatten().tolist()]
    out = FamilyList(invariant=[responses.units[r] for r in torch.nonzero(active & ~selective).flatten().tolist()], selective=ids)
    if not pairs:
        return out
    prefers = responses.preferred[candidates]
    null = torch.rand(n_null, len(candidates), generator=gen).argsort(dim=1)[:, :2]
    null_scores = sub[null[:, 0], null[:, 1]].clamp_min(0.0)
    cand_ids = [responses.units[r] for r in candidates.tolist()]
    for i, j in pairs:
        pair = sorted((i, j), key=lambda r: (float(prefers[r]), cand_ids[r]))
        score = float(sub[i, j].clamp(0.0, 1.0))
        p_value = (1 + int((null_scores >= score - 1e-9).sum())) / (1 + n_null)
        out.append(Family(responses.layer, "flip", [cand_ids[r] for r in pair], [0.0, 1.0], 2.0, score, p_value))
    out.sort(key=lambda f: (-f.score, f.units[0]))
    return out
