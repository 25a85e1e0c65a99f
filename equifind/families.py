"""Family discovery: group a layer's units into equivariant families.

A family is a set of units that are transformed copies of one feature: unit
``w`` responds to ``g·x`` as unit ``u`` responds to ``x``, so its responses over
the transform grid are ``u``'s circularly shifted. :func:`find_families`
compares every pair of selective units at once by one batched FFT circular
cross-correlation (shape similarity and best relative shift), links similar
units in a graph, splits it into communities (Louvain, igraph) and keeps the
members whose shifts are cycle-consistent, ``shift(u, w) ≈ shift(u, v) +
shift(v, w)``: the phases of the leading eigenvector of ``H[u, v] = sim(u, v) ·
exp(−2πi·k·shift(u, v)/360)`` synchronise all relative shifts, and each member's
residuals show whether it fits. Groups that are one family split in two are then
merged (rotated copies whose second peak at +180° differs in height; :func:`_merge`).
Flip pairs are mutual best matches of ``u(x)``
against ``v(flip x)`` that mirror each other better than either mirrors itself.

>>> fams = find_families(responses)          # responses: Responses of one layer
>>> fams[0].units, fams[0].preferred, fams[0].period, fams.invariant
"""

from __future__ import annotations

import functools
import math
import random
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import igraph
import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from ._checks import check_n_null
from ._circle import harmonic_period, holes
from ._evidence import q_and_p
from ._stats import DEFAULT_Q, bh_q, floor_limits_q, format_p, permutation_p
from .responses import Responses
from .transforms import Flip, Rotation, Transform, as_transform
from .unitref import REPR_UNITS, format_unit_ref

if TYPE_CHECKING:
    from .score import FamilyScore

__all__ = [
    "Family", "FamilyList", "find_families", "rank_families", "is_significant",
    "best_weight_support", "weight_verdict_text", "CONFIRMED", "NOT_CONFIRMED", "NOT_CHECKED",
    "explain_flip_pairs", "MIRROR_TOLERANCE", "DEFAULT_MIN_COLOUR_INDEX",
]  # fmt: skip

_MIN_CONSISTENCY = 0.8  # a member's similarity-weighted mean cos(shift residual) (cos 37°)
_MIN_DIRECTED = 4  # fewest members whose consistent shifts over 360° override a 180°/90° period (see _prune)
_COHESION_MARGIN = 0.15  # a member whose median similarity is this far below the group's median is an outlier
_MERGE_MARGIN = 0.05  # groups merge when alike across as within, up to this (see _merge)
_DUPLICATE_STEPS = 0.5  # members whose preferred params are closer (grid steps) are duplicates
_TIE_DECIMALS = 9  # scores equal to this many decimals are ties, broken by position
_CHUNK = 1 << 24  # elements per block of the pairwise correlation
#: The three weight verdicts (:attr:`Family.weight_verdict`).
CONFIRMED = "confirmed by weights"
NOT_CONFIRMED = "not confirmed"
NOT_CHECKED = "weights not checked"
#: The keys every :attr:`Family.weight_support` holds ("p_value" and "n_null" are optional).
SUPPORT_KEYS: tuple[str, ...] = ("kind", "source_layer", "source_units", "score", "q_value", "rotation_gain")
_LISTED_UNITS = 8  # source units written out in a verdict before "…"
_REPR_FAMILIES = 20  # family sizes a FamilyList's repr lists before "…"
#: Degrees by which the preferred angles of a flip pair's units in one rotation family may
#: miss mirrored angles (θ_u + θ_v ≡ 0 mod 180°) and still count as mirrored
#: (:func:`explain_flip_pairs`): 4 steps of the default 64-step grid, about twice the spread
#: (SD ≈ 10°) of θ_u + θ_v over the flip pairs inside googlenet's conv2d0 and conv2d2
#: rotation families. Random angles would match with chance 2·22.5/180 = 25%.
MIRROR_TOLERANCE = 22.5
#: The keys every :attr:`Family.explained_by` holds.
EXPLAINED_KEYS: tuple[str, ...] = ("transform", "units", "period", "angles", "mismatch")
#: The default ``min_colour_index`` of :func:`find_families`: see its docstring and the README.
DEFAULT_MIN_COLOUR_INDEX = 0.5


@dataclass
class Family:
    """A family of units that are transformed copies of one feature.

    Attributes:
        layer: layer name.
        transform: the :class:`~equifind.transforms.Transform` (equal to its name; saved by name).
        units: unit indices, ordered by preferred parameter (ascending from 0).
        preferred: each unit's preferred parameter in ``[0, period)``: degrees for
            rotation and hue, ``[0, 1]`` for flip, the orientation for hue_rotation. The
            members' synchronised phases (precise relative positions from all pairs and
            variants), offset so that they match the peaks of the members' tuning curves
            (``Responses.preferred``, modulo the period) as a whole.
        period: the family's period: rotation 360, 180 or 90; hue and hue_rotation 360; flip 2;
            None for a transform without one (scale).
        score: in [0, 1]: mean pairwise best-shift similarity weighted by the cosine of
            each pair's cycle-consistency residual (1 for exact shifted copies).
        p_value: the discovery test, selection included: ``(1 + #surrogate discovery runs
            whose best family of at least this size scores >= score) / (1 + n_null)``
            (see :func:`find_families`); never below ``1 / (1 + n_null)``.
        holes: rotation and hue: parameters where members seem missing. Each gap between
            neighbours (around the circle of length ``period``) wider than 1.5× the median
            spacing gets ``round(gap / spacing) - 1`` evenly spaced points: its centre
            for one missing member. Empty for flip and hue_rotation.
        preferred_hue: hue_rotation only: each unit's preferred hue in degrees (in
            ``[0, 180)`` when hue + 180° is orientation + 180°), else None.
        duplicates: ``(unit, member)`` pairs: units with the same tuning as ``member``
            and a preferred parameter within half a grid step of it, left out of ``units``.
        q_value: Benjamini–Hochberg q of ``p_value`` over the families of one
            :func:`find_families` call; significant means q ≤ 0.05.
        n_null: the surrogate runs behind ``p_value`` (its floor is ``1 / (1 + n_null)``).
        weight_support: the best significant circuit into the family from the layer below
            (set by :func:`~equifind.scan`: the highest-scoring one whose target units are
            the family's), as ``{"kind", "source_layer", "source_units", "score", "q_value",
            "rotation_gain"}`` plus the circuit's ``"p_value"`` and ``"n_null"`` (for
            printing q beside p); NaN where the circuit lacks a value (``rotation_gain``
            before circuits had it). None when no significant circuit enters the family,
            or when the weights were not checked: ``weight_checked`` tells which.
        weight_checked: whether the weights from the layer below were checked for this
            family (a scan with circuits on, a layer after the first scanned one, a
            transform circuits cover: rotation, hue, flip). False (the default, and for
            families found outside a scan) means "weights not checked", never "not
            confirmed". See :attr:`weight_verdict`.
        explained_by: flip pairs only: the rotation family that already explains the pair
            (its two units are members at mirrored angles, so the pair is the rotation
            family's mirror image, not a finding of its own), set by
            :func:`explain_flip_pairs` (the scan calls it for every layer holding both
            transforms), as ``{"transform": "rotation", "units": the rotation family's
            units, "period": its period, "angles": the pair's preferred angles in that
            family (pair order), "mismatch": degrees by which θ_u + θ_v misses 0 modulo
            min(period, 180)}``. None: not explained (or not checked). Explained pairs stay
            in the data but are left out of the scan's counts, summary and findings, and
            :func:`rank_families` ranks them last.
        colour_index: hue and hue_rotation families: the members' mean
            ``Responses.colour_index`` (chromatic / (chromatic + achromatic) drive; about
            0.37 for a linear colour-blind unit, 1 for a colour-opponent one); None where
            it was not measured (other transforms, responses without grey versions,
            families saved before it existed): None, not NaN, so that families compare equal.
        equivariance: the family's :class:`~equifind.FamilyScore` (its equivariance test and any
            held-out validation), set by :func:`~equifind.scan`; None when it was not scored.
            Not part of equality (a score holds NaN where a test did not run).
    """

    layer: str
    transform: Transform
    units: list[int]
    preferred: list[float]
    period: float | None
    score: float
    p_value: float
    holes: list[float] = field(default_factory=list)
    preferred_hue: list[float] | None = None
    duplicates: list[tuple[int, int]] = field(default_factory=list)
    q_value: float = math.nan
    n_null: int = 0
    weight_support: dict[str, Any] | None = None
    weight_checked: bool = False
    explained_by: dict[str, Any] | None = None
    colour_index: float | None = None
    equivariance: FamilyScore | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.transform = as_transform(self.transform)
        if len(self.units) != len(self.preferred):
            raise ValueError(f"Family has {len(self.units)} units but {len(self.preferred)} preferred values")
        if self.weight_support is not None:
            _check_support(self.weight_support, self.weight_checked)
        self.explained_by = _explained_from_dict(self.explained_by)

    def __repr__(self) -> str:
        """Short: units (the first :data:`REPR_UNITS`), period, score, the discovery test and the
        weight verdict; every field stays in equality and :meth:`to_dict`."""
        period = "none" if self.period is None else f"{self.period:g}"
        extra = f", explained by {self.explained_by['transform']}" if self.explained_by else ""
        return (
            f"Family({format_unit_ref(self.layer, self.units, limit=REPR_UNITS)}, {self.transform.name}, "
            f"{len(self.units)} units, period {period}, score {self.score:.3f}, "
            f"{format_p(self.q_value, self.n_null, 'q')}, {format_p(self.p_value, self.n_null)}, "
            f"{self.weight_verdict}{extra})"
        )

    @property
    def weight_verdict(self) -> str:
        """:data:`CONFIRMED` (``weight_support`` is set), :data:`NOT_CONFIRMED` (checked, no significant
        circuit enters the family) or :data:`NOT_CHECKED` (the weights from the layer below were not checked)."""
        if self.weight_support is not None:
            return CONFIRMED
        return NOT_CONFIRMED if self.weight_checked else NOT_CHECKED

    def __len__(self) -> int:
        return len(self.units)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (plain ints, floats, lists); :meth:`from_dict` inverts it."""
        out = asdict(self)
        out["transform"] = self.transform.name
        out["duplicates"] = [[int(a), int(b)] for a, b in self.duplicates]
        out["equivariance"] = None if self.equivariance is None else self.equivariance.to_dict()
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
            layer=str(data["layer"]), transform=as_transform(str(data["transform"])), units=[int(u) for u in data["units"]],
            preferred=[float(p) for p in data["preferred"]],
            period=None if data["period"] is None else float(data["period"]),
            score=float(data["score"]), p_value=float(data["p_value"]),
            holes=[float(h) for h in data.get("holes", [])],
            preferred_hue=None if hue is None else [float(h) for h in hue],
            duplicates=[(int(a), int(b)) for a, b in data.get("duplicates", [])],
            q_value=float(data.get("q_value", math.nan)), n_null=int(data.get("n_null", 0)),
            weight_support=_support_from_dict(data.get("weight_support")),
            weight_checked=bool(data.get("weight_checked", False)) or data.get("weight_support") is not None,
            explained_by=data.get("explained_by"),
            colour_index=None if data.get("colour_index") is None else float(data["colour_index"]),
            equivariance=_score_from_dict(data.get("equivariance")),
        )  # fmt: skip


def _score_from_dict(data: dict[str, Any] | None) -> FamilyScore | None:
    if data is None:
        return None
    from .score import FamilyScore

    return FamilyScore.from_dict(data)


def _check_support(support: Any, checked: bool) -> None:
    """Raise ValueError unless ``support`` is a dict with :data:`SUPPORT_KEYS` and ``checked`` is True."""
    if not isinstance(support, dict):
        raise ValueError(f"weight_support must be a dict or None, got {type(support).__name__}")
    missing = [k for k in SUPPORT_KEYS if k not in support]
    if missing:
        raise ValueError(f"weight_support lacks {missing}; it needs {list(SUPPORT_KEYS)}")
    if not checked:
        raise ValueError("a Family with weight_support must have weight_checked=True (support comes from a check)")


def _float(x: Any) -> float:
    """``float(x)``; None (how strict JSON writes NaN) is NaN."""
    return math.nan if x is None else float(x)


def _support_from_dict(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """A saved ``weight_support`` with plain types (None stays None; a missing optional key is NaN or 0)."""
    if data is None:
        return None
    _check_support(data, True)
    return {
        "kind": str(data["kind"]), "source_layer": str(data["source_layer"]),
        "source_units": [int(u) for u in data["source_units"]], "score": _float(data["score"]),
        "q_value": _float(data["q_value"]), "rotation_gain": _float(data["rotation_gain"]),
        "p_value": _float(data.get("p_value")), "n_null": int(data.get("n_null") or 0),
    }  # fmt: skip


def _explained_from_dict(data: Any) -> dict[str, Any] | None:
    """An :attr:`Family.explained_by` with plain types (None stays None).

    Raises:
        ValueError: not a dict or None, or a dict that lacks :data:`EXPLAINED_KEYS`.
    """
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"explained_by must be a dict or None, got {type(data).__name__}")
    missing = [k for k in EXPLAINED_KEYS if k not in data]
    if missing:
        raise ValueError(f"explained_by lacks {missing}; it needs {list(EXPLAINED_KEYS)}")
    return {
        "transform": str(data["transform"]), "units": [int(u) for u in data["units"]], "period": float(data["period"]),
        "angles": [float(a) for a in data["angles"]], "mismatch": float(data["mismatch"]),
    }  # fmt: skip


def explain_flip_pairs(
    flips: Sequence[Family], rotations: Sequence[Family], tolerance: float = MIRROR_TOLERANCE
) -> int:
    """Mark the flip pairs that one rotation family already explains; returns how many.

    A horizontal mirror x → −x takes a stimulus at orientation θ to −θ (mirror-symmetric
    stimuli: lines, gratings) or 180° − θ (edges, curves), so a rotation family's members
    at angles θ_u, θ_v with θ_u + θ_v ≡ 0 (mod 180°) are each other's mirror images: a
    flip pair of those two units says nothing the rotation family did not. Such a pair
    gets :attr:`Family.explained_by` naming the family; every other flip pair gets None
    (whatever it held before). Angles are the rotation family's ``preferred`` values,
    known modulo its period, so the sum is compared modulo ``min(period, 180)`` (90 for a
    period-90 family); "mirrored" means it misses 0 by at most ``tolerance`` degrees
    around that circle. Of several explaining families (not possible for disjoint
    families) the one with the smallest miss wins. Units listed only as a rotation
    family's ``duplicates`` do not count as members.

    Args:
        flips: flip families (``transform == "flip"``, two units each) of one layer.
        rotations: rotation families of the same layer.
        tolerance: degrees, in [0, 45) (at 45 every pair of a period-90 family would match);
            default :data:`MIRROR_TOLERANCE`.

    Returns:
        The number of flip pairs now explained.

    Raises:
        ValueError: a family of the wrong transform, a flip family without two units,
            families of more than one layer, or a tolerance outside [0, 45).
    """
    tol = float(tolerance)
    if not (math.isfinite(tol) and 0.0 <= tol < 45.0):
        raise ValueError(f"tolerance must be in [0, 45) degrees, got {tolerance!r}")
    # This function is about two particular groups: mirror pairs and rotation families.
    for name, fams, want in (("flips", flips, Flip()), ("rotations", rotations, Rotation())):
        wrong = [str(f.transform) for f in fams if f.transform != want]
        if wrong:
            raise ValueError(f"{name} must all be {want.name!r} families, got transform {wrong[0]!r}")
    bad = [list(f.units) for f in flips if len(f.units) != 2]
    if bad:
        raise ValueError(f"a flip family is a pair of units, got units {bad[0]}")
    layers = sorted({f.layer for f in [*flips, *rotations]})
    if len(layers) > 1:
        raise ValueError(f"flips and rotations must come from one layer, got layers {layers}")
    explained = 0
    for pair in flips:
        u, v = pair.units
        best: dict[str, Any] | None = None
        for rot in rotations:
            if u not in rot.units or v not in rot.units:
                continue
            angles = [float(rot.preferred[rot.units.index(w)]) for w in (u, v)]
            modulus = min(float(rot.period), 180.0)
            miss = abs(math.remainder(angles[0] + angles[1], modulus))
            if miss <= tol + 1e-9 and (best is None or miss < best["mismatch"]):
                best = {"transform": rot.transform.name, "units": list(rot.units), "period": float(rot.period),
                        "angles": angles, "mismatch": miss}  # fmt: skip
        pair.explained_by = best
        explained += best is not None
    return explained


def best_weight_support(family: Family, circuits: Iterable[Any]) -> dict[str, Any] | None:
    """The :attr:`Family.weight_support` of ``family``: its best circuit among ``circuits``, or None.

    The highest-scoring circuit (the first of equal scores) whose ``target_layer`` is the
    family's layer, with the family's transform and the family's units as target units
    (as a set). ``circuits`` are significant circuits (``ScanResult.circuits``, as
    :func:`~equifind.find_circuits` returns them), read by attribute; ``q_value``,
    ``p_value`` and ``rotation_gain`` a circuit lacks are NaN.
    """
    units = set(family.units)
    into = [c for c in circuits
            if c.target_layer == family.layer and c.transform == family.transform and set(c.target_units) == units]
    if not into:
        return None
    best = max(into, key=lambda c: float(c.score))
    raw = {k: getattr(best, k) for k in ("kind", "source_layer", "source_units", "score")}
    raw.update(q_value=getattr(best, "q_value", math.nan), p_value=getattr(best, "p_value", math.nan),
               rotation_gain=getattr(best, "rotation_gain", math.nan), n_null=getattr(best, "n_null", 0))  # fmt: skip
    return _support_from_dict(raw)


def weight_verdict_text(family: Family, n_null: int | None = None) -> str:
    """The family's weight verdict as printed by the summary and the report.

    ``"confirmed by weights (kind, from source_layer[units], score 0.93, q = 0.01 (p = 0.002))"``,
    ``"not confirmed"`` or ``"weights not checked"`` (see :attr:`Family.weight_verdict`).

    Args:
        family: the family.
        n_null: the circuit null draws to assume when the support does not say its own
            (for the p floor; e.g. the scan config's ``circuit_n_null``).
    """
    s = family.weight_support
    if s is None:
        return family.weight_verdict
    units = s["source_units"]
    shown = f"{units[:_LISTED_UNITS]}{'…' if len(units) > _LISTED_UNITS else ''}"
    evidence = q_and_p(s["q_value"], s.get("p_value"), s.get("n_null") or n_null)
    return f"{CONFIRMED} ({s['kind']}, from {s['source_layer']}{shown}, score {s['score']:.2f}, {evidence})"


class FamilyList(list[Family]):
    """The families of one layer (best score first), plus the layer's other units.

    Attributes:
        invariant: units that respond (see :func:`find_families`) but are not selective: flat across the transform (for flip: their
            responses are mirror-symmetric, and no partner mirrors them better). Inputs of invariant→equivariant circuits.
        selective: every selective unit, in or out of a family. Units in none of the
            three lists barely respond.
        achromatic: hue and hue_rotation only: units whose hue tuning is selective but
            whose colour index is below ``min_colour_index`` (grey drives them about as
            much as colour or more: luminance units that colour stimuli reach through
            their R+G+B sum); they are in neither ``selective`` nor ``invariant`` and join
            no family. Empty without achromatic data and for other transforms.
    """

    def __init__(
        self, families: Iterable[Family] = (), *, invariant: Sequence[int] = (), selective: Sequence[int] = (),
        achromatic: Sequence[int] = (),
    ) -> None:  # fmt: skip
        super().__init__(families)
        self.invariant = [int(u) for u in invariant]
        self.selective = [int(u) for u in selective]
        self.achromatic = [int(u) for u in achromatic]

    def __repr__(self) -> str:
        """Short: how many families of which sizes, and the sizes of the other lists (equality is the list's)."""
        first = self[0] if len(self) else None
        where = f" of {first.layer!r} {first.transform.name}" if first is not None else ""
        sizes = [len(f) for f in self]
        shown = f"{sizes[:_REPR_FAMILIES]}{'…' if len(sizes) > _REPR_FAMILIES else ''}"
        return (
            f"FamilyList({len(self)} families{where}, sizes {shown}; {len(self.invariant)} invariant, "
            f"{len(self.selective)} selective, {len(self.achromatic)} achromatic units)"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: ``families`` (list of dicts), ``invariant``, ``selective``, ``achromatic``."""
        return {"families": [f.to_dict() for f in self], "invariant": list(self.invariant),
                "selective": list(self.selective), "achromatic": list(self.achromatic)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FamilyList:
        """Rebuild from :meth:`to_dict`'s output (lists it lacks are empty)."""
        return cls((Family.from_dict(f) for f in data.get("families", [])), invariant=data.get("invariant", ()),
                   selective=data.get("selective", ()), achromatic=data.get("achromatic", ()))  # fmt: skip


def rank_families(
    families: Sequence[Family],
    equivariance: Sequence[float | None] | None = None,
    *,
    alpha: float = DEFAULT_Q,
    weights_first: bool = True,
) -> list[int]:
    """Family indices, the most worth a look first.

    Flip pairs a rotation family explains (:attr:`Family.explained_by` set) come last, whatever
    else holds (they are not findings). Then families confirmed by weights (``weight_support``
    set) come first; within that group
    and the rest, significant families (discovery ``q_value <= alpha``; a family saved
    before q-values existed falls back to its ``p_value``) come first, then larger ones,
    then more equivariant ones: ``equivariance[i]`` where given (a
    :class:`~equifind.score.FamilyScore`'s), else the family's own ``score``; a
    non-finite value ranks below every finite one. Ties keep the given order.

    Args:
        families: the families.
        equivariance: optional, one value (or None) per family; a shorter list
            leaves the rest to their own scores.
        alpha: the q-value threshold (equifind's default 0.05).
        weights_first: put the families confirmed by weights first (default); False
            ranks by significance, size and equivariance alone.

    Returns:
        A permutation of ``range(len(families))``.
    """
    given = list(equivariance or [])

    def key(i: int) -> tuple[bool, bool, bool, int, float]:
        eq = given[i] if i < len(given) and given[i] is not None else families[i].score
        confirmed = weights_first and families[i].weight_support is not None
        eq = eq if math.isfinite(eq) else -math.inf
        unexplained = getattr(families[i], "explained_by", None) is None
        return (unexplained, confirmed, is_significant(families[i], alpha), len(families[i].units), eq)

    return sorted(range(len(families)), key=key, reverse=True)


def is_significant(family: Family, alpha: float = DEFAULT_Q) -> bool:
    """Whether a family's discovery q-value (its p-value if it has none) is at most ``alpha``."""
    q = family.q_value if math.isfinite(family.q_value) else family.p_value
    return bool(q <= alpha)


def find_families(
    responses: Responses,
    *,
    min_size: int = 2,
    min_selectivity: float = 0.25,
    min_similarity: float = 0.7,
    min_response: float = 0.1,
    n_null: int = 200,
    seed: int = 0,
    compare: Literal["variants", "tuning"] = "variants",
    progress: bool = False,
    min_colour_index: float = DEFAULT_MIN_COLOUR_INDEX,
) -> FamilyList:
    """Find the families of transformed copies among a layer's units.

    Which units take part. A unit *responds* when its peak |response| to the stimuli
    is at least ``min_response`` (10%) of its natural scale, the 99th percentile of its
    response to natural image patches at its receptive field
    (``Responses.natural_scale``, filled by :func:`~equifind.probe`). It is *selective*
    when its best-variant tuning curve swings (max − min) by at least
    ``min_selectivity`` (25%) of that natural scale. Responses built from arrays
    measured elsewhere have no natural scale: a unit then responds when its peak is at
    least 1% of the layer's largest, and selectivity is the shape-only (max − min) /
    (|max| + |min|) (``Responses.selectivity``). Responding units that are not
    selective are ``invariant``.

    Hue means colour. For "hue" and "hue_rotation", a selective unit also needs a
    ``Responses.colour_index`` of at least ``min_colour_index``: its largest response
    change (from the blank) to the colour stimuli against that to their grey versions
    of equal RGB contrast (:func:`~equifind.stimuli.achromatic_versions`), which
    :func:`~equifind.probe` measures for hue probes. A luminance unit answers hue-shifted
    colour stimuli through its R+G+B sum with a perfectly hue-shifted cosine, so tuning
    shapes alone cannot tell it from a colour unit; the grey versions can (index ≈ 0.37
    for a linear colour-blind unit, 1 for an opponent one). Units below the threshold
    go to ``FamilyList.achromatic``. Responses without grey versions (built from arrays,
    or saved before they existed) are not gated.

    Significance, including the selection. A family is chosen by the same data that
    score it, so comparing it with random unit sets is not a test. Instead the whole
    discovery below (communities, pruning, deduplication, scoring; same settings) is
    re-run on ``n_null`` surrogate data sets that keep each unit's own responses but
    break what units share:

    * two or more compared variants (the default ``compare="variants"`` on a
      multi-stimulus probe, and every flip probe): each unit's variants are permuted
      independently. Every tuning curve, its period, selectivity and the unit's own
      relation between stimuli stay as measured; only the pairing "unit u's response
      to stimulus x" ↔ "unit w's response to the same stimulus x" is broken, and
      that pairing is what makes transformed copies a family;
    * one compared variant (``compare="tuning"``, or a one-stimulus probe): each
      unit's profile keeps its Fourier power per harmonic (its smoothness and period)
      with random phases (a phase-randomised surrogate), which breaks shared tuning
      shapes. A shared shape is then evidence; with one stimulus nothing more is
      measured.

    A family of ``m`` members and score ``s`` gets ``p = (1 + #surrogate runs whose best
    family of at least m members scores ≥ s) / (1 + n_null)``, a max-statistic p-value
    over everything discovery could have found; ``p ≥ 1/(1 + n_null)``. Flip pairs:
    the best pair of each run. ``q_value`` is Benjamini–Hochberg over the families of
    this call; equifind calls a family significant at q ≤ 0.05.

    Args:
        responses: one layer's ``Responses`` (``values``: Tensor[units, variants, steps])
            for "rotation" or "hue" (an evenly spaced grid over 360°, >= 4 steps),
            "flip" (params [0, 1]) or "hue_rotation" (an n × n hue-major grid, n >= 4).
        min_size: fewest members of a family, >= 2 (flip families have exactly 2).
        min_selectivity: the selectivity (see above; for flip, ``|r(x) − r(flip x)| /
            (|r(x)| + |r(flip x)|)`` over all variants) below which a responding unit
            is invariant, not a family member. In [0, 1].
        min_similarity: shape similarity (the best-shift correlation, in [-1, 1]) that
            links two units; also the least median similarity of a member to the
            others, and the flip correlation that pairs two units. In (0, 1].
        min_response: the fraction of a unit's natural scale its stimulus peak must
            reach for it to respond (ignored without a natural scale). In [0, 1].
        n_null: surrogate discovery runs for the p-values (0: no test, ``p_value`` 1).
        seed: seeds the community detection and the surrogates.
        compare: "variants" (default) correlates each unit's whole response matrix
            [variants, steps] under a common shift — transformed copies respond alike to
            every stimulus, so families with the same tuning shape but different
            preferred stimuli stay apart; "tuning" correlates only the best-variant
            tuning curves (``Responses.tuning_curves``). Both agree for one variant. Flip
            always compares all variants.
        progress: a progress bar over the surrogate runs.
        min_colour_index: hue and hue_rotation: the least ``Responses.colour_index`` of a
            selective unit (see "Hue means colour" above), in [0, 1]; 0 turns the gate
            off. Default :data:`DEFAULT_MIN_COLOUR_INDEX`.

    Returns:
        A :class:`FamilyList`, best score first, with ``.invariant``, ``.selective`` and
        ``.achromatic``; each hue family's ``colour_index`` is its members' mean.

    Raises:
        ValueError: ``responses`` is not a Responses; an argument out of range; a
            transform grid that is too small or not evenly spaced
            (:meth:`Transform.check_grid <equifind.transforms.Transform.check_grid>`).
    """
    if not isinstance(responses, Responses):
        raise ValueError(f"responses must be an equifind.Responses, got {type(responses).__name__}")
    _check_args(min_size, min_selectivity, min_similarity, min_response, n_null, seed, compare)
    if isinstance(min_colour_index, bool) or not isinstance(min_colour_index, (int, float)) or not 0.0 <= min_colour_index <= 1.0:
        raise ValueError(f"min_colour_index must be a number in [0, 1], got {min_colour_index!r}")
    grid = _check_grid(responses)
    if not responses.units:
        return FamilyList()
    active = responses.responding(min_response)
    if responses.transform.discovery == "pair":
        return _flip_pairs(responses, active, min_size, min_selectivity, min_similarity, n_null, seed, progress)
    if responses.transform.discovery == "line":
        from .scale_families import find_scale_families

        with threadpool_limits(limits=1, user_api="blas"):
            return find_scale_families(responses, active, min_size=min_size, min_selectivity=min_selectivity,
                                       min_similarity=min_similarity, n_null=n_null, seed=seed, compare=compare,
                                       progress=progress)  # fmt: skip
    with threadpool_limits(limits=1, user_api="blas"):
        return _families(responses, active, grid, min_size, min_selectivity, min_similarity, n_null, seed, compare, progress,
                         float(min_colour_index))  # fmt: skip


def _colour_gate(responses: Responses, min_colour_index: float) -> tuple[Tensor | None, Tensor]:
    """``(colour_index [units] or None, colour [units] bool)``: the units that pass the hue colour gate.

    Every unit passes for rotation/flip and for responses without achromatic data.
    """
    index = responses.colour_index if responses.transform.colour else None
    if index is None:
        return None, torch.ones(len(responses.units), dtype=torch.bool)
    return index, index >= min_colour_index  # NaN (a unit nothing moves) fails


def _families(
    responses: Responses, active: Tensor, grid: tuple[int, ...], min_size: int, min_selectivity: float,
    min_similarity: float, n_null: int, seed: int, compare: str, progress: bool, min_colour_index: float = 0.0,
) -> FamilyList:  # fmt: skip
    """:func:`find_families` for rotation, hue and hue_rotation, its arguments checked.

    Runs with one BLAS thread: discovery makes thousands of small ``eigh`` calls, which
    gain nothing from threads, and OpenBLAS's idle threads spinning between them beside
    torch's own slowed the null 2.4× on two cores.
    """
    shaped = active & (responses.selectivity >= min_selectivity)
    index, colour = _colour_gate(responses, min_colour_index)
    selective = shaped & colour
    rows = torch.nonzero(selective).flatten()
    ids = [responses.units[r] for r in rows.tolist()]
    out = FamilyList(
        invariant=[responses.units[r] for r in torch.nonzero(active & ~shaped).flatten().tolist()], selective=ids,
        achromatic=[responses.units[r] for r in torch.nonzero(shaped & ~colour).flatten().tolist()],
    )  # fmt: skip
    if len(rows) < 2:
        return out
    source = responses.values if compare == "variants" else responses.tuning_curves[:, None, :]
    profiles = _normalise(source[rows].reshape(len(rows), source.shape[1], *grid), len(grid))
    setting = _Setting(grid, min_size, min_similarity, seed, float(responses.params.flatten()[0]))
    spectra = _spectra(profiles, grid)
    tunings = responses.tuning_curves[rows].double()
    groups = _discover(profiles, spectra, _anchors(tunings, grid, responses.params), setting)
    best = _null_best(profiles, spectra, tunings, responses.params, setting, n_null, progress)
    for g in groups:
        fam = Family(
            layer=responses.layer, transform=responses.transform, units=[ids[r] for r in g.rows],
            preferred=[float(v) for v in g.pos[:, -1]], period=g.period, score=g.score,
            p_value=_max_p(best, len(g.rows), g.score, n_null), n_null=n_null,
            holes=holes(g.pos[:, -1].tolist(), g.period) if len(grid) == 1 else [],
            preferred_hue=[float(v) for v in g.pos[:, 0]] if len(grid) == 2 else None,
            duplicates=sorted((ids[a], ids[b]) for a, b in g.duplicates),
            colour_index=None if index is None else float(index[rows[g.rows]].mean()),
        )  # fmt: skip
        out.append(fam)
    _fill_q(out)
    out.sort(key=lambda f: (-f.score, f.units[0]))
    return out


@dataclass(frozen=True)
class _Setting:
    """What every discovery run (observed and surrogate) shares."""

    grid: tuple[int, ...]
    min_size: int
    min_similarity: float
    seed: int
    start: float  # the grid's first parameter


@dataclass
class _Group:
    """One family found by :func:`_discover`, in rows of the compared profiles."""

    rows: list[int]  # members in family order
    pos: Tensor  # [m, d] parameters (degrees): (angle,) or (hue, angle)
    period: float
    score: float
    duplicates: list[tuple[int, int]]  # (row, the member row it duplicates)


def _discover(profiles: Tensor, spectra: Tensor, anchors: Tensor, setting: _Setting, dtype: torch.dtype = torch.float64) -> list[_Group]:
    """Discovery proper on normalised profiles ``[U, V, *grid]``: the same steps for data and surrogates."""
    spec = torch.fft.rfftn(profiles.double(), dim=tuple(range(-len(setting.grid), 0)))
    return _groups(_Links(spec, setting.grid, dtype, setting.min_similarity), spectra, anchors, setting)


def _groups(links: _Links, spectra: Tensor, anchors: Tensor, setting: _Setting) -> list[_Group]:
    """Communities → consistency pruning → parameters → deduplication → score → merging.

    Each community is settled on its own, with the similarities of its members only
    (``links.block``); what pruning drops is tried again as a group of its own. Then
    groups that are one family are merged (:func:`_merge`).
    """
    found: list[_Group] = []
    spectra_np = spectra.numpy()
    for community in _communities(links, setting.min_similarity, setting.seed):
        idx = np.asarray(community, dtype=np.int64)
        block = links.block(idx)
        queue = deque([list(range(len(idx)))])
        while queue:
            group, rest = _settle(queue.popleft(), idx, block, spectra_np, anchors, setting)
            if len(rest) >= setting.min_size:
                queue.append(rest)
            if group is not None:
                found.append(group)
    return _merge(found, links, spectra_np, anchors, setting)


def _median_off_diagonal(x: np.ndarray) -> float:
    """The median of a square matrix's off-diagonal entries (1.0 for a 1 × 1 matrix)."""
    m = len(x)
    return float(np.median(x[~np.eye(m, dtype=bool)])) if m > 1 else 1.0


def _settle(
    group: list[int], idx: np.ndarray, block: _Block, spectra: np.ndarray, anchors: Tensor, setting: _Setting
) -> tuple[_Group | None, list[int]]:
    """Prune, place, deduplicate and score one candidate group.

    Args:
        group: positions in ``idx`` (changed in place: pruning drops members).
        idx: rows of the profiles; ``block``: their similarities (``links.block(idx)``).

    Returns:
        The group (None when fewer than ``min_size`` members stay) and the positions
        pruning dropped.
    """
    grid, sim, shift = setting.grid, block.sim, block.shift
    chars, period, theta, rest = _prune(group, spectra[idx], sim, shift, grid, setting.min_size, setting.min_similarity, lambda: block.odd)
    if len(group) < setting.min_size:
        return None, rest
    pos = _anchor(theta, chars, anchors[idx[group]], setting)
    kept, duplicates = _dedupe(group, chars, period, pos, sim, grid)
    if len(kept) < setting.min_size:
        return None, rest
    local = np.asarray([group[i] for i in kept], dtype=np.int64)
    _, _, score = _consistency(sim[np.ix_(local, local)], shift[np.ix_(local, local)], grid, chars)
    pairs = [(int(idx[a]), int(idx[b])) for a, b in duplicates]
    return _Group(idx[local].tolist(), pos[kept], period, score, pairs), rest


def _merge(groups: list[_Group], links: _Links, spectra: np.ndarray, anchors: Tensor, setting: _Setting) -> list[_Group]:
    """Merge groups that are one family, most alike pair first, until none merges.

    Community detection maximises modularity, and so can split a dense group whose
    similarities vary smoothly across it: rotated copies whose tuning carries a second
    peak at +180° of varying height (0.2 of the peak in one member, 0.9 in another) came
    out as two families, split by echo height. Two groups merge when

    * their members are as alike across the groups as within each: the median echo-blind
      similarity across (:meth:`_Links._alike`) is at least the smaller of the two
      within-group medians minus 0.05, and at least half of the pairs across have plain
      similarity >= ``min_similarity`` (a member whose similarities to most of a union fall
      below it is pruned anyway, so this mostly saves futile tries), and
    * their union settles as one family (:func:`_settle`: every member cycle-consistent,
      its median similarity to the others >= ``min_similarity``, no outlier; pruning drops
      no one).

    A pair that failed is not tried again. So a split stays where the members' responses
    across stimulus variants differ: they are less alike across than within. The null runs
    the same merging, so p-values include it.
    """
    if len(groups) < 2:
        return groups
    rows = np.asarray([r for g in groups for r in g.rows], dtype=np.int64)
    block = links.block(rows)
    where = {int(r): i for i, r in enumerate(rows.tolist())}
    failed: set[frozenset[tuple[int, ...]]] = set()  # pairs of groups (their rows) whose union did not settle
    linked = (block.sim >= setting.min_similarity).astype(np.float64)
    while len(groups) >= 2:
        local = [np.asarray([where[r] for r in g.rows], dtype=np.int64) for g in groups]
        within = [_median_off_diagonal(block.alike[np.ix_(rs, rs)]) for rs in local]
        member = np.zeros((len(rows), len(groups)))
        for j, rs in enumerate(local):
            member[rs, j] = 1.0
        sizes = member.sum(0)
        # At least half of the pairs across linked (plain similarity >= min_similarity), for all pairs of groups at once.
        enough = member.T @ linked @ member >= 0.5 * np.outer(sizes, sizes)
        pairs = []
        for a, b in zip(*np.nonzero(np.triu(enough, 1))):
            if frozenset((tuple(groups[a].rows), tuple(groups[b].rows))) in failed:
                continue
            cross = float(np.median(block.alike[np.ix_(local[a], local[b])]))
            if cross >= min(within[a], within[b]) - _MERGE_MARGIN:
                pairs.append((-round(cross, _TIE_DECIMALS), a, b))
        for _, a, b in sorted(pairs):
            union = np.concatenate([local[a], local[b]])
            sub = block.subset(union)
            group, rest = _settle(list(range(len(union))), union, sub, spectra[rows], anchors[torch.from_numpy(rows)], setting)
            if group is None or rest:
                failed.add(frozenset((tuple(groups[a].rows), tuple(groups[b].rows))))
                continue
            merged = _Group(
                rows[group.rows].tolist(), group.pos, group.period, group.score,
                groups[a].duplicates + groups[b].duplicates + [(int(rows[u]), int(rows[v])) for u, v in group.duplicates],
            )  # fmt: skip
            groups = [g for i, g in enumerate(groups) if i not in (a, b)] + [merged]
            break
        else:
            return groups
    return groups


def _anchors(tunings: Tensor, grid: tuple[int, ...], params: Tensor) -> Tensor:
    """What :func:`_anchor` fixes the common offset with: 1-D, the spectra (``rfft``) of the
    normalised tunings ``[n, steps // 2 + 1]``, computed once for every group and surrogate
    run; 2-D, each unit's own (hue, angle) peak ``[n, 2]`` in degrees."""
    if len(grid) == 1:
        return torch.fft.rfft(_normalise(tunings[:, None], 1)[:, 0])
    _, position = _subgrid_peak(tunings.reshape(-1, *grid), grid)
    start = params.reshape(*grid, 2)[0, 0].double()  # (hue, angle) at index (0, 0)
    return torch.remainder(start + position * (360.0 / grid[0]), 360.0)


# -- the selection-aware null -----------------------------------------------------------
def _surrogate_spectrum(spec: Tensor, grid: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """One surrogate of the profiles' spectra ``spec`` (``rfftn`` over the grid, ``[U, V, *F]``).

    Two or more variants: each unit's variants permuted independently. One variant:
    each unit's phases replaced by those of white noise (Hermitian-symmetric, so the
    surrogate is real), its power per harmonic kept.
    """
    n_units, n_var = spec.shape[:2]
    if n_var >= 2:
        perm = torch.rand(n_units, n_var, generator=gen).argsort(dim=1)
        return spec[torch.arange(n_units)[:, None], perm]
    dims = tuple(range(-len(grid), 0))
    noise = torch.fft.rfftn(torch.randn(n_units, 1, *grid, generator=gen, dtype=torch.float64), dim=dims)
    phase = noise / noise.abs().clamp_min(1e-30)
    return spec * phase.to(spec.dtype)


def _null_best(
    profiles: Tensor, spectra: Tensor, tunings: Tensor, params: Tensor, setting: _Setting, n_null: int, progress: bool
) -> Tensor:
    """``Tensor[n_null, U + 1]``: per surrogate run, the best family score with at least m members (−inf: none)."""
    from ._progress import progress_bar

    n_units, n_var, grid = profiles.shape[0], profiles.shape[1], setting.grid
    best = torch.full((n_null, n_units + 1), -math.inf, dtype=torch.float64)
    if n_null == 0:
        return best
    dims = tuple(range(-len(grid), 0))
    spec = torch.fft.rfftn(profiles.double(), dim=dims).to(torch.complex64)
    gen = torch.Generator().manual_seed(setting.seed + 1)
    keep_anchors = n_var >= 2  # permuting variants keeps every tuning curve (and so its anchors)
    anchors = _anchors(tunings, grid, params)
    for r in progress_bar(range(n_null), desc="discovery null", enabled=progress, leave=False):
        surrogate = _surrogate_spectrum(spec, grid, gen)
        if not keep_anchors:
            curves = torch.fft.irfftn(surrogate.to(torch.complex128), s=grid, dim=dims)[:, 0].reshape(n_units, -1)
            anchors = _anchors(curves, grid, params)
        for g in _groups(_Links(surrogate, grid, torch.float32, setting.min_similarity), spectra, anchors, setting):
            m = len(g.rows)
            best[r, : m + 1] = torch.clamp_min(best[r, : m + 1], g.score)
    return best


def _max_p(best: Tensor, size: int, score: float, n_null: int) -> float:
    """``(1 + #runs whose best family of >= size members scores >= score) / (1 + n_null)``."""
    if n_null == 0:
        return 1.0
    column = best[:, min(size, best.shape[1] - 1)]
    return permutation_p(int((column >= score - 1e-9).sum()), n_null)


def _fill_q(families: Sequence[Family]) -> None:
    """Benjamini–Hochberg q over the families of one call (in place); q = 1 without a test.

    Warns when the p floor decides the count: with k families of which f sit at the floor
    ``1/(1 + n_null)``, BH makes those f significant on their own only if the floor is at
    most f·0.05/k. Below that, whether they are significant hinges on the other families'
    p-values, and a larger null would settle it (on googlenet mixed3b rotation with
    n_null = 200: 0, 7 and 0 families at q ≤ 0.05 for min_similarity 0.65, 0.70, 0.75;
    with n_null = 1000: 7, 7 and 3).
    """
    qs = bh_q([f.p_value for f in families])
    for f, q in zip(families, qs):
        f.q_value = q
    if families and (message := floor_limits_q([f.p_value for f in families], families[0].n_null, "families")):
        warnings.warn(f"{families[0].layer} {families[0].transform}: {message}", stacklevel=4)


# -- input checks ---------------------------------------------------------------------
def _check_args(
    min_size: int, min_selectivity: float, min_similarity: float, min_response: float, n_null: int, seed: int, compare: str
) -> None:
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 2:
        raise ValueError(f"min_size must be an int >= 2, got {min_size!r}")
    if not 0.0 <= float(min_selectivity) <= 1.0:
        raise ValueError(f"min_selectivity must be in [0, 1], got {min_selectivity!r}")
    if not 0.0 < float(min_similarity) <= 1.0:
        raise ValueError(f"min_similarity must be in (0, 1], got {min_similarity!r}")
    if not 0.0 <= float(min_response) <= 1.0:
        raise ValueError(f"min_response must be in [0, 1] (a fraction of the natural scale), got {min_response!r}")
    check_n_null(n_null, zero="no discovery test: p_value is 1")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if compare not in ("variants", "tuning"):
        raise ValueError(f"compare must be 'variants' or 'tuning', got {compare!r}")


def _check_grid(responses: Responses) -> tuple[int, ...]:
    """The transform grid's shape (:meth:`Transform.check_grid`): (steps,), or (n, n) for hue_rotation."""
    return responses.transform.check_grid(responses.params)


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


def _shift_similarity(profiles: Tensor, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """All pairs' best-shift similarity, by one batched FFT circular cross-correlation.

    Args:
        profiles: ``Tensor[U, V, *grid]`` (grid 1-D or 2-D), zero-mean along the grid and
            unit-norm per unit (see :func:`_normalise`).
        dtype: float64 (default; the same families with any thread count) or float32
            (2× faster, ~1e-6 error; the surrogate runs).

    Returns:
        ``sim`` Tensor[U, U] in [-1, 1], the largest ``Σ z_u(x) z_w(x + s)`` over circular
        shifts ``s`` (sub-step, parabolic), and ``shift`` Tensor[U, U, d], that ``s`` in grid
        steps in [-n/2, n/2): ``w``'s preferred parameter minus ``u``'s.
    """
    grid = tuple(profiles.shape[2:])
    spec = torch.fft.rfftn(profiles.double(), dim=tuple(range(-len(grid), 0)))
    return _similarity_from_spectrum(spec, grid, dtype)


def _similarity_from_spectrum(spec: Tensor, grid: tuple[int, ...], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """:func:`_shift_similarity` from the profiles' spectra ``spec`` (``rfftn`` over the grid, ``[U, V, *F]``)."""
    freq = _freq(spec, dtype)
    n_units = freq.shape[1]
    rows = max(1, _CHUNK // max(1, n_units * math.prod(grid)))
    sims, shifts = [], []
    for i in range(0, n_units, rows):
        value, shift = _cross_peak(freq[:, i : i + rows].conj() @ freq.transpose(1, 2), spec.shape[2:], grid)  # [F, c, U]
        sims.append(value)
        shifts.append(shift)
    sim, shift = torch.cat(sims).clamp(-1.0, 1.0).double(), torch.cat(shifts).double()
    sim.fill_diagonal_(1.0)
    shift[torch.arange(n_units), torch.arange(n_units)] = 0.0
    return sim, shift


def _freq(spec: Tensor, dtype: torch.dtype) -> Tensor:
    """Spectra ``[U, V, *F]`` as ``[F, U, V]`` (flattened frequencies first), complex of ``dtype``'s precision."""
    spec = spec.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
    return spec.reshape(spec.shape[0], spec.shape[1], -1).permute(2, 0, 1)


def _cross_peak(cross: Tensor, fshape: torch.Size, grid: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Peaks of circular cross-correlations given by their spectra ``cross`` ``[F, *batch]``:
    ``(value [*batch], shift [*batch, d])``, the shift in grid steps in [-n/2, n/2)."""
    batch = cross.shape[1:]
    corr = torch.fft.irfftn(cross.reshape(len(cross), -1).T.reshape(*batch, *fshape), s=grid, dim=tuple(range(-len(grid), 0)))
    value, position = _subgrid_peak(corr, grid)
    sizes = torch.tensor(grid, dtype=position.dtype)
    return value, torch.remainder(position + sizes / 2, sizes) - sizes / 2


def _multiplicity(n_freq: int, n: int, dtype: torch.dtype) -> Tensor:
    """``[n_freq]``: how often each ``rfft`` frequency of an ``n``-point signal occurs in the full spectrum."""
    k = torch.arange(n_freq)
    return torch.where((k == 0) | (2 * k == n), 1.0, 2.0).to(dtype)


class _Links:
    """The pair similarities one discovery run needs, computed where they can matter.

    The graph of :func:`_communities` links pairs whose best-shift similarity (the peak
    of their circular cross-correlation, see :func:`_shift_similarity`) is at least
    ``threshold``. That peak, parabolic refinement included, cannot exceed
    ``Σ_f |C_f| (1 + ¼ Σ_axes |sin ω_f|) / N`` (``C``: the pair's cross-spectrum over all N
    frequencies; the parabola overshoots its highest sample by at most ⅛ of the
    difference of its neighbours). Pairs under that bound are never linked, so only the
    others get the inverse FFT and peak search, and every pair inside a community gets
    them in :meth:`block`: the same numbers as the dense matrix, at a fraction of the
    cost on the surrogates of the null, where almost no pair links.
    """

    def __init__(self, spec: Tensor, grid: tuple[int, ...], dtype: torch.dtype, threshold: float) -> None:
        """``spec``: the profiles' spectra ``[U, V, *F]``; ``dtype``: float64 or float32 (the null)."""
        self.grid, self.fshape, self.freq = grid, spec.shape[2:], _freq(spec, dtype)
        n_units = self.freq.shape[1]
        weight = self._bound_weights().to(self.freq.real.dtype)
        rows = max(1, _CHUNK // max(1, n_units * len(weight)))
        self.energy = (self.freq.real.square() + self.freq.imag.square()).sum(-1)  # [F, U]
        iu, iv, sims, alike = [], [], [], []
        for i in range(0, n_units, rows):
            cross = self.freq[:, i : i + rows].conj() @ self.freq.transpose(1, 2)  # [F, c, U]
            modulus = (cross.real.square() + cross.imag.square()).sqrt()  # 3× faster than Tensor.abs() (hypot)
            bound = torch.einsum("f,fcu->cu", weight, modulus)
            a, b = torch.nonzero(torch.triu(bound >= threshold - 1e-6, diagonal=i + 1), as_tuple=True)
            if len(a):
                value, shift = _cross_peak(cross[:, a, b], self.fshape, grid)
                iu.append(a + i)
                iv.append(b)
                sims.append(value.double().clamp(-1.0, 1.0))
                # The max: the parabola's peak value can exceed the interpolant's at its shift.
                alike.append(torch.maximum(self._alike(cross[:, a, b], shift, a + i, b)[0], sims[-1]) if len(grid) == 1 else sims[-1])
        self.iu = torch.cat(iu) if iu else torch.zeros(0, dtype=torch.long)
        self.iv = torch.cat(iv) if iv else torch.zeros(0, dtype=torch.long)
        self.sim = torch.cat(sims) if sims else torch.zeros(0, dtype=torch.float64)
        self.alike = torch.cat(alike) if alike else torch.zeros(0, dtype=torch.float64)
        self.n_units = n_units

    def _alike(self, cross: Tensor, shift: Tensor, u: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """Echo-blind similarity of pairs ``(u, w)`` (1-D grids) at their best ``shift``
        (``[..., 1]``, grid steps), from their cross-spectra ``cross`` ``[F, ...]``.

        Each profile is split into its odd and its even harmonics (a second peak at +180°
        of relative height e scales them by 1 − e and 1 + e); with ``C`` a part's
        cross-correlation at the shift and ``E`` its energy, the pair's value is
        ``(C_odd + C_even) / (√(E_odd,u E_odd,w) + √(E_even,u E_even,w))``: 1 for rotated
        copies whatever their echoes, never below the plain correlation (Cauchy–Schwarz).

        Returns:
            ``(alike, odd)``: that value, and the correlation ``C_odd / √(E_odd,u E_odd,w)``
            of the odd parts alone (what tells a direction from its opposite), ``[...]`` each.
        """
        n = self.grid[0]
        dtype = cross.real.dtype  # float32 in the null's runs
        k = torch.arange(cross.shape[0], dtype=dtype).reshape(-1, *([1] * (cross.dim() - 1)))
        angle = (2 * math.pi / n) * k * shift[..., 0].to(dtype)
        part = _multiplicity(cross.shape[0], n, dtype).reshape(k.shape) * (cross.real * angle.cos() - cross.imag * angle.sin())
        odd_energy, even_energy = self.parity_energy
        den_odd = (odd_energy[u] * odd_energy[w]).sqrt()
        den = den_odd + (even_energy[u] * even_energy[w]).sqrt()
        alike = part.sum(0).double() / den.clamp_min(1e-30)
        return alike.clamp(-1.0, 1.0), (part[1::2].sum(0).double() / den_odd.clamp_min(1e-30)).clamp(-1.0, 1.0)

    @functools.cached_property
    def parity_energy(self) -> tuple[Tensor, Tensor]:
        """1-D grids: each unit's energy in the odd and in the even harmonics, ``Tensor[U]`` each (float64)."""
        weighted = self.energy.double() * _multiplicity(len(self.energy), self.grid[0], torch.float64)[:, None]
        return weighted[1::2].sum(0), weighted[0::2].sum(0)

    def _bound_weights(self) -> Tensor:
        """``[F]``: each rfftn frequency's multiplicity in the full spectrum times its
        overshoot factor, over N."""
        axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in self.fshape], indexing="ij")
        last, n_last = axes[-1], self.grid[-1]
        multiplicity = torch.where((last == 0) | (2 * last == n_last), 1.0, 2.0)
        overshoot = 1.0 + 0.25 * sum((2 * math.pi * k / n).sin().abs() for k, n in zip(axes, self.grid))
        return (multiplicity * overshoot).flatten() / math.prod(self.grid)

    def edges(self, threshold: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Linked pairs ``(u, w, sim, alike)``, ``u < w``, in row-major order (``alike``: the
        echo-blind similarity of :meth:`_alike`; the plain ``sim`` on 2-D grids)."""
        keep = self.sim >= threshold
        return self.iu[keep], self.iv[keep], self.sim[keep], self.alike[keep]

    def block(self, idx: np.ndarray) -> _Block:
        """The exact similarities among the units ``idx`` (NumPy, float64): see :class:`_Block`."""
        index = torch.from_numpy(idx)
        sub = self.freq[:, index]
        cross = sub.conj() @ sub.transpose(1, 2)
        value, shift = _cross_peak(cross, self.fshape, self.grid)
        sim, shift = value.clamp(-1.0, 1.0).double(), shift.double()
        sim.fill_diagonal_(1.0)
        shift[torch.arange(len(idx)), torch.arange(len(idx))] = 0.0
        return _Block(self, index, sim.numpy(), shift.numpy(), cross)


class _Block:
    """Similarities among a set of m units (:meth:`_Links.block`); the echo-blind ones
    (:meth:`_Links._alike`) are computed when first asked for.

    Attributes:
        sim: ``[m, m]`` best-shift correlation. shift: ``[m, m, d]`` that shift, grid steps.
    """

    def __init__(self, links: _Links, index: Tensor, sim: np.ndarray, shift: np.ndarray, cross: Tensor) -> None:
        self.links, self.index, self.sim, self.shift, self.cross = links, index, sim, shift, cross

    @functools.cached_property
    def _echo(self) -> tuple[np.ndarray, np.ndarray | None]:
        if len(self.links.grid) != 1:
            return self.sim, None
        i = self.index
        alike, odd = self.links._alike(self.cross, torch.from_numpy(self.shift), i[:, None], i[None, :])
        alike = np.maximum(alike.numpy(), self.sim)  # as in _Links.__init__
        np.fill_diagonal(alike, 1.0)
        odd = odd.numpy().copy()
        np.fill_diagonal(odd, 1.0)
        return alike, odd

    @property
    def alike(self) -> np.ndarray:
        """``[m, m]`` echo-blind similarity at each pair's shift (2-D grids: ``sim``)."""
        return self._echo[0]

    @property
    def odd(self) -> np.ndarray | None:
        """``[m, m]`` correlation of the odd harmonics at each pair's shift (2-D grids: None)."""
        return self._echo[1]

    def subset(self, positions: np.ndarray) -> _Block:
        """The block of the units at ``positions`` (of this block's m)."""
        p = torch.from_numpy(positions)
        out = _Block(self.links, self.index[p], self.sim[np.ix_(positions, positions)],
                     self.shift[np.ix_(positions, positions)], self.cross[:, p][:, :, p])  # fmt: skip
        if "_echo" in self.__dict__:
            alike, odd = self._echo
            out._echo = (alike[np.ix_(positions, positions)], None if odd is None else odd[np.ix_(positions, positions)])
        return out


# -- communities, consistency, families --------------------------------------------
def _communities(links: _Links, threshold: float, seed: int) -> list[list[int]]:
    """Louvain communities (size >= 2) of the graph linking pairs with ``sim >= threshold``.

    Edges weigh the echo-blind similarity (:meth:`_Links._alike`, which rotated copies with
    second peaks of different heights share) above the threshold, ``(alike − t) / (1 − t)``:
    weighted by the plain correlation, Louvain split such a family by echo height. Each
    connected component is split on its own, so that modularity's resolution limit
    (relative to the whole layer) does not merge small families joined by weak links.
    Louvain is igraph's (C; the surrogate runs of the null call it hundreds of times),
    its vertex order drawn from a ``random.Random(seed)`` for each component.
    """
    iu, iv, _, alike = links.edges(threshold)
    excess = ((alike - threshold) / (1.0 - threshold + 1e-9)).tolist()
    graph = igraph.Graph(n=links.n_units, edges=torch.stack([iu, iv], 1).tolist())
    graph.es["weight"] = excess
    found: list[list[int]] = []
    with _igraph_seed(seed):
        for component in graph.connected_components():
            if len(component) < 2:
                continue
            sub = graph.induced_subgraph(component)
            parts = sub.community_multilevel(weights="weight")
            found += [sorted(component[v] for v in part) for part in parts if len(part) >= 2]
    return sorted(found, key=lambda c: c[0])


@contextmanager
def _igraph_seed(seed: int) -> Iterator[None]:
    """igraph draws from Python's ``random`` module by default: give it a private seeded one."""
    igraph.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        igraph.set_random_number_generator(random)


def _synchronise(sim: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Synchronise relative phases ``phase[u, v] ≈ θ_v − θ_u`` (radians) of one group.

    The phases θ are those of the leading eigenvector of the Hermitian matrix
    ``sim · exp(−i·phase)``; the residuals ``phase[u, v] − (θ_v − θ_u)`` measure cycle
    consistency. NumPy, not torch: the groups are small and the surrogate runs of the
    null call this thousands of times, where per-call overhead dominates.

    Args:
        sim: ``[m, m]`` symmetric pair weights. phase: ``[m, m]``, antisymmetric.

    Returns:
        ``theta`` ``[m]``; ``member`` ``[m]``, each member's sim-weighted mean cos(residual);
        ``score`` in [0, 1], the mean over pairs of sim · cos(residual).
    """
    m = sim.shape[-1]
    positive = np.clip(sim, 0.0, None)
    weight = positive * (1.0 - np.eye(m))
    h = positive * np.exp(-1j * phase)
    theta = np.angle(np.linalg.eigh(0.5 * (h + h.conj().T))[1][:, -1])
    agree = np.cos(phase - (theta[None, :] - theta[:, None])) * weight
    member = agree.sum(-1) / np.clip(weight.sum(-1), 1e-12, None)
    return theta, member, float(np.clip(agree.sum() / max(1, m * (m - 1)), 0.0, 1.0))


def _consistency(
    sim: np.ndarray, shift: np.ndarray, grid: tuple[int, ...], chars: list[tuple[int, ...]]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Synchronise each character's phases ``2π Σ_j c_j·shift_j / n_j`` of one group
    (``sim`` ``[m, m]``, ``shift`` ``[m, m, d]``).

    Returns:
        ``theta`` ``[m, len(chars)]``, the worst ``member`` consistency over the characters
        ``[m]``, and the mean ``score``.
    """
    sizes = np.asarray(grid, dtype=np.float64)
    out = [_synchronise(sim, 2 * math.pi * (shift * np.asarray(c, dtype=np.float64) / sizes).sum(-1)) for c in chars]
    return np.stack([o[0] for o in out], -1), np.stack([o[1] for o in out]).min(0), float(np.mean([o[2] for o in out]))


def _spectra(profiles: Tensor, grid: tuple[int, ...]) -> Tensor:
    """Per unit, what :func:`_symmetry` needs: 1-D, the power of each harmonic ``[U, steps//2 + 1]``;
    2-D, the correlation of the profile with itself shifted by (180°, 180°) ``[U]``."""
    if len(grid) == 2:
        return (profiles * profiles.roll((grid[0] // 2, grid[1] // 2), (-2, -1))).flatten(1).sum(1)
    return torch.fft.rfft(profiles, dim=-1).abs().square().sum(1)


def _symmetry(spectra: np.ndarray, grid: tuple[int, ...], min_similarity: float) -> tuple[list[tuple[int, ...]], float]:
    """The characters to synchronise and the period of a group, from its members' :func:`_spectra`.

    1-D: the largest harmonic k in {4, 2} whose multiples hold >= 75% of the tuning energy
    gives period 360/k (else k = 1, period 360); :func:`_prune` overrides that with 360 when
    the odd harmonics are shared and resolve the members' direction. 2-D: if the profiles are unchanged by
    (hue + 180, angle + 180) the group is coupled and (hue ± angle) are synchronised, else
    hue and angle separately; period 360.
    """
    if len(grid) == 2:
        coupled = grid[0] % 2 == 0 and float(spectra.mean()) >= min_similarity
        return ([(1, 1), (1, -1)] if coupled else [(1, 0), (0, 1)]), 360.0
    k, period = harmonic_period(spectra.sum(0), grid[0])
    return [(k,)], period


def _prune(
    group: list[int], spectra: Tensor | np.ndarray, sim: Tensor | np.ndarray, shift: Tensor | np.ndarray,
    grid: tuple[int, ...], min_size: int, min_similarity: float, odd: Callable[[], np.ndarray | None] | None = None,
) -> tuple[list[tuple[int, ...]], float, Tensor, list[int]]:  # fmt: skip
    """Drop inconsistent or weakly similar members of ``group`` (in place), worst first.

    A member stays if its consistency is >= 0.8 and its median similarity to the
    others is >= ``min_similarity`` and, in groups of three or more, no more than 0.15
    below the median of all members' (an outlier is much less like the others than they
    are like each other: a random colour filter at 0.79 beside exact hue-shifted copies at
    1.00). The period is :func:`_symmetry`'s, except that a group of
    >= 4 members whose tuning energy says 180° or 90° gets period 360 when the odd
    harmonics (``odd()``, their correlation at each pair's shift, :attr:`_Block.odd`)
    are shared (median >= ``min_similarity``) and every member is consistent over the
    whole turn: a weaker second peak at +180° (an echo) then resolves each member's
    direction, and its 180°-rotated copy is another member, not a duplicate. Each round drops the worse half of the members
    that fail (at least one) and re-synchronises the rest: a group of m members is
    settled in O(log m) rounds, not m (the null re-runs this hundreds of times).

    Returns:
        The kept group's characters, period and phases ``Tensor[m, len(chars)]``, and the dropped members.
    """
    spectra, sim, shift = np.asarray(spectra), np.asarray(sim), np.asarray(shift)
    dropped: list[int] = []
    while True:
        chars, period = _symmetry(spectra[group], grid, min_similarity)
        idx = np.asarray(group, dtype=np.int64)
        sub, sub_shift = sim[np.ix_(idx, idx)], shift[np.ix_(idx, idx)]
        theta, member, _ = _consistency(sub, sub_shift, grid, chars)
        if odd is not None and chars[0][0] > 1 and len(group) >= _MIN_DIRECTED and (odd_sim := odd()) is not None:
            # The tuning energy says period 360/k. But when the odd harmonics, which break
            # that symmetry, are shared too (median correlation >= min_similarity) and the
            # shifts agree over the whole turn, the members' direction is resolved (an echo
            # at +180°, not a symmetry): period 360, members 180° apart are members, not
            # duplicates. Odd parts that are noise correlate near 0, so a true line family stays 180.
            if _median_off_diagonal(odd_sim[np.ix_(idx, idx)]) >= min_similarity:
                theta_1, member_1, _ = _consistency(sub, sub_shift, grid, [(1,)])
                if float(member_1.min()) >= _MIN_CONSISTENCY:
                    chars, period, theta, member = [(1,)], 360.0, theta_1, member_1
        if len(group) < min_size:
            return chars, period, torch.from_numpy(theta), dropped
        off = sub[~np.eye(len(group), dtype=bool)].reshape(len(group), len(group) - 1) if len(group) > 1 else sub
        others = np.median(off, axis=1) if len(group) > 2 else off.min(axis=1)
        # An outlier: much less like the others than they are like each other (cohesion).
        floor = max(min_similarity, float(np.median(others)) - _COHESION_MARGIN) if len(group) > 2 else min_similarity
        bad = (member < _MIN_CONSISTENCY) | (others < floor)
        if not bad.any():
            return chars, period, torch.from_numpy(theta), dropped
        # Rounded: members that are equally bad up to float error (the two of a pair always
        # are) are then ranked by position, not by the last bits of a sum, which change
        # with the thread count.
        badness = np.where(bad, np.round(member + others, _TIE_DECIMALS), np.inf)
        worst = set(np.argsort(badness, kind="stable")[: max(1, int(bad.sum()) // 2)].tolist())
        dropped += [group[i] for i in sorted(worst, key=lambda i: (badness[i], i))]
        group[:] = [u for i, u in enumerate(group) if i not in worst]


def _anchor(theta: Tensor, chars: list[tuple[int, ...]], anchors: Tensor, setting: _Setting) -> Tensor:
    """Synchronised phases → parameters (degrees), anchored by one common offset.

    1-D: each member's tuning curve is shifted back by its phase and the curves are
    averaged into a template, whose sub-step peak fixes the offset: exact for clean
    copies, and robust to noise (a single curve's own peak is not). 2-D: the offset is
    the circular mean of the members' own peaks minus their phases.

    Args:
        theta: Tensor[m, len(chars)] synchronised phases (radians, arbitrary common offset).
        chars: ``[(k,)]``, ``[(1, 0), (0, 1)]``, or coupled ``[(1, 1), (1, -1)]`` (hue ± angle).
        anchors: the members' :func:`_anchors`: 1-D, the spectra of their normalised tunings
            Tensor[m, steps // 2 + 1]; 2-D, their own peaks Tensor[m, 2].
        setting: the grid (1-D: its size and first parameter).

    Returns:
        Tensor[m, d]: 1-D, the angle in [0, 360/k); 2-D, (hue, angle), hue in [0, 180) if coupled.
    """
    if len(chars) == 1:
        k, n = chars[0][0], setting.grid[0]
        delta = theta[:, 0] * n / (2 * math.pi * k)  # each member's shift, in steps
        rotate = torch.polar(torch.ones_like(delta)[:, None], 2 * math.pi * torch.arange(n // 2 + 1, dtype=torch.float64) * delta[:, None] / n)
        template = (anchors * rotate).mean(0)  # the spectrum of Σ_u T_u(s + δ_u)
        # Folded to the family's period 360/k (only harmonics that are multiples of k): its
        # k peaks are then equal, and which one is highest is not left to float rounding.
        template[torch.arange(len(template)) % k != 0] = 0.0
        peak = _fourier_peak(template, n)
        return torch.remainder(setting.start + (peak + delta[:, None]) * 360.0 / n, 360.0 / k)
    own_phase = torch.deg2rad(anchors @ torch.tensor(chars, dtype=anchors.dtype).T)
    offset = torch.polar(torch.ones_like(theta), own_phase - theta).sum(0).angle()  # circular mean
    phase = torch.rad2deg(torch.remainder(theta + offset, 2 * math.pi))
    if chars[0] == (1, 0):
        return phase
    hue = torch.remainder((phase[:, 0] + phase[:, 1]) / 2, 180.0)  # φ1 = hue + angle, φ2 = hue − angle
    return torch.stack([hue, torch.remainder(phase[:, 0] - hue, 360.0)], -1)


def _fourier_peak(spec: Tensor, n: int, smooth: float = 1.0, iterations: int = 8) -> Tensor:
    """The peak (in grid steps, ``Tensor[1]``) of the periodic curve with ``rfft`` ``spec``
    (``[n // 2 + 1]``), smoothed by a Gaussian of ``smooth`` grid steps, by Newton steps
    on its trigonometric interpolant from the best sample.

    Unlike a parabola through three samples, the result is continuous in the data: a
    peak halfway between two samples is found at the same place whichever sample is
    higher, so float rounding (another thread count) cannot move it. The smoothing does
    what the parabola's three-sample fit did against noise (without it, sample noise on a
    broad curve moved the planted families' peaks by 2-3°; with it, by < 0.5°) and does
    not move the peak of a symmetric curve.
    """
    k = torch.arange(n // 2 + 1, dtype=torch.float64)
    omega = 2 * math.pi * k / n
    spec = spec * torch.exp(-0.5 * (omega * smooth).square())
    weight = torch.where((k == 0) | (2 * k == n), 1.0, 2.0) / n
    x = torch.fft.irfft(spec, n=n).argmax().double()
    for _ in range(iterations):
        wave = spec * torch.polar(torch.ones_like(omega), omega * x)
        slope = -(weight * omega * wave.imag).sum()
        curvature = -(weight * omega.square() * wave.real).sum()
        if curvature >= 0:  # not in a maximum's basin (a flat curve): keep the sample
            break
        x = x - (slope / curvature).clamp(-0.5, 0.5)
    return x.reshape(1)


def _dedupe(
    group: list[int], chars: list[tuple[int, ...]], period: float, pos: Tensor, sim: np.ndarray, grid: tuple[int, ...]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Order and deduplicate one consistent group.

    Of members whose parameters ``pos`` ([m, d], degrees) are within half a grid step, the
    one most similar to the rest of the group stays; the others are listed as duplicates.

    Returns:
        The kept positions in ``group`` (family order: ascending parameter), and
        ``(row, row of the member it duplicates)`` pairs.
    """
    idx = np.asarray(group, dtype=np.int64)
    quality = np.round(np.clip(sim[np.ix_(idx, idx)], 0.0, None).sum(1), _TIE_DECIMALS)  # ties by position (see _prune)
    diff = pos[:, None, :] - pos[None, :, :]  # [m, m, d]
    dist = (torch.remainder(diff + period / 2, period) - period / 2).abs().amax(-1)
    if chars[0] == (1, 1):  # coupled: (hue + 180, angle + 180) is the same unit
        dist = torch.minimum(dist, (torch.remainder(diff, 360.0) - 180.0).abs().amax(-1))
    close = (dist < _DUPLICATE_STEPS * 360.0 / grid[-1]).tolist()
    dists = dist.tolist()
    kept: list[int] = []
    duplicates: list[tuple[int, int]] = []
    for i in sorted(range(len(group)), key=lambda j: (-float(quality[j]), j)):
        near = [j for j in kept if close[i][j]]
        if near:
            duplicates.append((group[i], group[min(near, key=lambda j: (dists[i][j], j))]))
        else:
            kept.append(i)
    kept.sort(key=lambda i: (float(pos[i, -1]), float(pos[i, 0]), i))
    return kept, duplicates


# -- flip ---------------------------------------------------------------------------
def _flip_pairs(
    responses: Responses, active: Tensor, min_size: int, min_selectivity: float, min_similarity: float,
    n_null: int, seed: int, progress: bool,
) -> FamilyList:  # fmt: skip
    """Mutual best matches of ``u(x)`` against ``v(flip x)`` (correlation over variants)."""
    from ._progress import progress_bar

    a, b = responses.values[..., 0].double(), responses.values[..., 1].double()
    asym = (a - b).norm(dim=1) / (a.norm(dim=1) + b.norm(dim=1)).clamp_min(1e-12)
    own = _mirror_corr(a, b).diagonal()  # how well a unit is its own mirror image (kept by the surrogates)
    is_candidate = active & (asym >= min_selectivity)
    candidates = torch.nonzero(is_candidate).flatten()
    ca, cb, cown = a[candidates], b[candidates], own[candidates]
    pairs = _mirror_pairs(_mirror_corr(ca, cb), cown, min_similarity) if min_size <= 2 else []
    paired = torch.zeros_like(active)
    for i, j, _ in pairs:
        paired[candidates[i]] = paired[candidates[j]] = True
    selective = is_candidate & ((own < min_similarity) | paired)
    ids = [responses.units[r] for r in torch.nonzero(selective).flatten().tolist()]
    out = FamilyList(invariant=[responses.units[r] for r in torch.nonzero(active & ~selective).flatten().tolist()], selective=ids)
    if not pairs:
        return out
    # The selection-aware null: each candidate's variants permuted on its own (the
    # pair (x, flip x) stays together), the same pair search, its best pair per run.
    gen = torch.Generator().manual_seed(seed + 1)
    best = torch.full((n_null,), -math.inf, dtype=torch.float64)
    n_cand, n_var = ca.shape
    for r in progress_bar(range(n_null), desc="discovery null", enabled=progress, leave=False):
        perm = torch.rand(n_cand, n_var, generator=gen).argsort(dim=1)
        rows = torch.arange(n_cand)[:, None]
        found = _mirror_pairs(_mirror_corr(ca[rows, perm], cb[rows, perm]), cown, min_similarity)
        best[r] = max((score for _, _, score in found), default=-math.inf)
    prefers = responses.preferred[candidates]
    cand_ids = [responses.units[r] for r in candidates.tolist()]
    for i, j, score in pairs:
        pair = sorted((i, j), key=lambda r: (float(prefers[r]), cand_ids[r]))
        p_value = permutation_p(int((best >= score - 1e-9).sum()), n_null) if n_null else 1.0
        out.append(Family(responses.layer, responses.transform, [cand_ids[r] for r in pair], [0.0, 1.0], 2.0, score, p_value, n_null=n_null))
    _fill_q(out)
    out.sort(key=lambda f: (-f.score, f.units[0]))
    return out


def _mirror_corr(a: Tensor, b: Tensor) -> Tensor:
    """``Tensor[n, n]``: unit u's responses ``(a, b)`` (``[n, V]`` each: x and flip x) against
    v's to the mirrored stimuli ``(b, a)``, correlated over the 2V responses; symmetric."""
    x, y = torch.cat([a, b], 1), torch.cat([b, a], 1)
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    x, y = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12), y / y.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (x @ y.T).clamp(-1.0, 1.0)


def _mirror_pairs(corr: Tensor, own: Tensor, min_similarity: float) -> list[tuple[int, int, float]]:
    """Mutual best matches (``i < j``) that mirror each other at ``>= min_similarity`` and
    better than either mirrors itself (``own``), with their score ``corr[i, j]`` in [0, 1]."""
    if len(corr) < 2:
        return []
    best = corr.clone().fill_diagonal_(-math.inf).argmax(dim=1)
    i = torch.arange(len(corr))
    ok = (best[best] == i) & (i < best)
    score = corr[i, best]
    ok &= (score >= min_similarity) & (score > torch.maximum(own, own[best]))
    return [(int(u), int(best[u]), float(score[u].clamp(0.0, 1.0))) for u in torch.nonzero(ok).flatten()]
