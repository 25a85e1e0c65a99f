"""Weight circuits: the symmetry of the expanded weights between two unit sets.

"The equivariant behavior we observe in neurons is really a reflection of a
deeper symmetry that exists in the weights" (Olah et al., Distill 2020). For a
family ``b`` in one layer and a family (or invariant units) ``a`` in an earlier
one, the weights should satisfy ``W[T(b), T(a)] = T·W[b, a]``: transforming both
units transforms the spatial kernel between them.

>>> cs = ef.circuit_symmetry(m, source=("conv2d1", [3, 7, 9, 12]), target=fam)
>>> cs.kind, cs.score, cs.p_value

Conventions:
    * The weights are :func:`~equifind.expanded_weights` (:mod:`equifind.expanded`:
      the network's linear view between the layers).
    * Kernels move by the transform's own action on kernels
      (:meth:`Transform.apply_kernels <equifind.transforms.Transform.apply_kernels>`):
      a rotation by a positive angle turns a kernel counter-clockwise as
      displayed (row 0 at the top), about its centre ``((kh-1)/2, (kw-1)/2)``
      (+90 equals ``torch.rot90(k, 1, dims=(-2, -1))``), flip mirrors the
      columns, and hue, which does not move kernels
      (:attr:`~equifind.transforms.Transform.moves_kernels` False), acts on units
      only: hue→hue weights depend on the hue difference alone (a circulant).
    * The transforms a circuit can be checked for are those with
      :attr:`~equifind.transforms.Transform.circuits` (``names(circuits=True)``);
      a transform of two elements (``discovery == "pair"``: flip) has pairs for
      families.
    * Symmetry scores compare each kernel with its prediction from the moved
      kernels of its symmetry class (cosine per target unit, averaged), against
      a null of random member angles (or rearranged kernels, or relabelled
      families), beside the gain over leaving the kernels unmoved; see
      :func:`circuit_symmetry`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_distinct, check_n_null, closest
from ._stats import DEFAULT_Q, bh_q, check_null_size, floor_limits_q, format_p, permutation_p
from .expanded import check_model, check_order, circuit_weights, expanded_weights
from .models.base import Model
from .transforms import Transform, as_transform, names, rotate_kernels, rotation_ceiling
from .unitref import REPR_UNITS, format_unit_ref

# expanded_weights, rotate_kernels and rotation_ceiling live in equifind.expanded and
# equifind.transforms; they stay importable from here, where they used to be.
__all__ = ["circuit_symmetry", "find_circuits", "CircuitScore", "Units", "expanded_weights", "rotate_kernels",
           "rotation_ceiling"]

Kind = Literal["invariant→equivariant", "equivariant→invariant", "equivariant→equivariant"]
Reference = Literal["mean", "first"]
Null = Literal["angles", "kernels", "orders"]
ANGLE_GRID = 72  #: the "angles" null draws member angles on this many steps of the period (5° for rotation)
GAIN_SPREAD = 2.0  #: a significant circuit's rotation gain exceeds this many standard deviations of the null gains


@dataclass(frozen=True)
class Units:
    """Units of one layer given by hand, for :func:`circuit_symmetry`.

    Attributes:
        layer: the layer name.
        units: unit indices; for a family, in family order.
        invariant: True (default): units invariant to the transform, each its own
            feature. False: a family spread evenly over the period, unit ``i`` at
            ``i * period / n`` (the same as passing the tuple ``(layer, units)``).
    """

    layer: str
    units: Sequence[int]
    invariant: bool = True


@dataclass(frozen=True)
class _Side:
    layer: str
    units: list[int]
    angles: Tensor | None  # float64 parameter per unit, in order; None: invariant units
    period: float


@dataclass
class CircuitScore:
    """How well the weights between two unit sets carry the transform's symmetry.

    Attributes:
        kind: "invariant→equivariant", "equivariant→invariant" or "equivariant→equivariant".
        transform: the :class:`~equifind.transforms.Transform` (rotation, hue or flip: one with
            ``circuits``); equal to its name, saved by name, and a name given here is converted.
        score: mean over target units of the cosine similarity between the unit's
            kernels (``weights[t]``, its predicted pairs) and their prediction (1: exact).
        p_value: ``(1 + #null >= score) / (1 + n_null)``.
        q_value: the Benjamini–Hochberg q-value over the checks of one :func:`find_circuits`
            call (``q >= p``); for a single :func:`circuit_symmetry` call, ``q = p``.
        null_mean: mean null score (NaN when ``n_null == 0``).
        weights: expanded weights ``Tensor[target, source, kh, kw]``, units in the
            order of ``target_units`` and ``source_units``.
        cosines: ``Tensor[target, source]``, each 2-D kernel's cosine with its
            prediction (NaN for kernels that have no reference).
        source_layer, target_layer: layer names.
        source_units, target_units: unit indices, in family order.
        source_preferred, target_preferred: each unit's transform parameter
            (degrees; 0/1 for flip), or None for invariant units.
        reference: "mean" or "first"; null: "angles", "kernels" or "orders" (see :func:`circuit_symmetry`).
        n_null: number of null draws.
        rotation_gain: ``score`` minus the score with the transform left out (the same
            references with kernels unmoved; hue: each kernel predicted from the same
            source unit): what the family's transform adds to the prediction.
        gain_sd: the standard deviation of the rotation gain over the null draws (each draw's
            score minus its own baseline): the yardstick of ``rotation_gain``.
        pointwise_share: the share of the circuit's squared weights that comes through
            1×1 paths (only 1×1 convolutions, pools and pointwise ops between the layers);
            near 1, the kernels cannot show a rotation (NaN: not measured).
        ceiling: what a perfect circuit of smooth kernels of this size scores
            (:meth:`Transform.kernel_ceiling <equifind.transforms.Transform.kernel_ceiling>`:
            :func:`rotation_ceiling` for rotation, 1.0 for flip and hue, whose moves are exact):
            compare scores of different kernel sizes as ``score / ceiling``.
    """

    kind: Kind
    transform: Transform
    score: float
    p_value: float
    null_mean: float
    weights: Tensor
    cosines: Tensor
    source_layer: str
    target_layer: str
    source_units: list[int]
    target_units: list[int]
    source_preferred: list[float] | None = None
    target_preferred: list[float] | None = None
    reference: str = "mean"
    null: str = "angles"
    n_null: int = 0
    q_value: float = math.nan
    rotation_gain: float = math.nan
    gain_sd: float = math.nan
    pointwise_share: float = math.nan
    ceiling: float = math.nan

    def __post_init__(self) -> None:
        self.transform = as_transform(self.transform)  # a name (as saved) reads back as the transform
        for name in ("null_mean", "q_value", "rotation_gain", "gain_sd", "pointwise_share", "ceiling"):
            if getattr(self, name) is None:  # None (how to_dict writes NaN) reads back as NaN
                setattr(self, name, math.nan)

    def __repr__(self) -> str:
        """Short: the two unit sets, the score and its test, the weights' shape (not the weights)."""
        src = format_unit_ref(self.source_layer, self.source_units, limit=REPR_UNITS)
        tgt = format_unit_ref(self.target_layer, self.target_units, limit=REPR_UNITS)
        return (
            f"CircuitScore({self.transform.name}, {self.kind}, {src} → {tgt}, score {self.score:.3f}, "
            f"{format_p(self.q_value, self.n_null, 'q')}, {format_p(self.p_value, self.n_null)}, "
            f"rotation_gain {self.rotation_gain:.3f}, weights {list(self.weights.shape)})"
        )

    def is_significant(self, alpha: float = DEFAULT_Q) -> bool:
        """The rule :func:`find_circuits` keeps circuits by: ``q_value <= alpha`` and a
        ``rotation_gain`` above 0 and above ``GAIN_SPREAD`` (2) standard deviations of the
        null draws' gains.

        The q-value says the transform's angles predict the weights better than random
        angles do; the gain, that moving the kernels at all adds to the prediction
        (isotropic or identical kernels are predicted as well unmoved, and gain nothing).
        """
        return bool(self.q_value <= alpha and self.rotation_gain > max(0.0, GAIN_SPREAD * self.gain_sd))

    def to_dict(self, max_weights: int = 4096) -> dict[str, Any]:
        """JSON-friendly dict; ``weights`` as nested lists when it has at most ``max_weights`` entries."""
        keys = ("kind", "transform", "score", "p_value", "source_layer", "target_layer", "source_units",
                "target_units", "source_preferred", "target_preferred", "reference", "null", "n_null")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out["transform"] = self.transform.name
        for name in ("null_mean", "q_value", "rotation_gain", "gain_sd", "pointwise_share", "ceiling"):
            value = getattr(self, name)
            out[name] = None if math.isnan(value) else value
        out["cosines"] = [[None if math.isnan(v) else v for v in row] for row in self.cosines.tolist()]
        out["weights_shape"] = list(self.weights.shape)
        if self.weights.numel() <= max_weights:
            out["weights"] = self.weights.tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, weights: Tensor | None = None,
                  cosines: Tensor | None = None) -> CircuitScore:  # fmt: skip
        """Rebuild a check from :meth:`to_dict`'s output (the transform by its name).

        Args:
            data: the dict; files written before a field existed read it as its default.
            weights: ``Tensor[target, source, kh, kw]``, for a dict written without its
                weights (``max_weights`` smaller than their size; a scan keeps them in ``.npz``).
            cosines: ``Tensor[target, source]`` in place of the dict's (NaN for its None).

        Returns:
            A :class:`CircuitScore`.

        Raises:
            ValueError: no weights in ``data`` and none given.
        """
        d = {k: v for k, v in data.items() if k not in ("weights_shape", "weights", "cosines")}
        if weights is None:
            if "weights" not in data:
                raise ValueError("the dict holds no weights (written with a smaller max_weights): pass weights=")
            weights = torch.tensor(data["weights"], dtype=torch.float32)
        if cosines is None:
            cosines = torch.tensor([[math.nan if v is None else v for v in row] for row in data["cosines"]],
                                   dtype=weights.dtype)
        return cls(**d, weights=weights, cosines=cosines)


def _parse(obj: object, role: str
           ) -> tuple[str, list[Any], list[float] | None, float | None, str | Transform | None, bool]:  # fmt: skip
    """(layer, units, preferred, period, transform, invariant) of a family, ``Units`` or ``(layer, units)``."""
    if isinstance(obj, Units):
        return obj.layer, list(obj.units), None, None, None, obj.invariant
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str):
        return obj[0], list(obj[1]), None, None, None, False
    if all(hasattr(obj, a) for a in ("layer", "units", "preferred", "period", "transform")):
        fam: Any = obj
        period = None if fam.period is None else float(fam.period)  # None: a transform without a period (scale)
        if isinstance(fam.preferred, Mapping):  # a FamilyScore: its cyclic order and unit -> parameter
            order = list(getattr(fam, "order", fam.units))
            return fam.layer, order, [float(fam.preferred[u]) for u in order], period, fam.transform, False
        return fam.layer, list(fam.units), [float(v) for v in fam.preferred], period, fam.transform, False
    raise ValueError(
        f"{role} must be a Family or FamilyScore (.layer, .units, .preferred, .period, .transform), "
        f"circuits.Units(layer, units, invariant=True) or a (layer, units) tuple; got {type(obj).__name__}"
    )


def _circuit_transform(transform: object) -> Transform:
    """``transform`` (a name or a Transform) as a Transform that circuits handle
    (:attr:`~equifind.transforms.Transform.circuits`), else ValueError naming the valid ones."""
    try:
        tf = as_transform(transform)  # type: ignore[arg-type]
    except KeyError:
        tf = None
    if tf is None or not tf.circuits:
        valid = names(circuits=True)
        near = closest(str(transform), valid)
        raise ValueError(f"transform {str(transform)!r} is not supported by circuits; valid: {list(valid)}"
                         + (f" (did you mean {near[0]!r}?)" if near else ""))
    return tf


def _sides(model: Model, source: object, target: object, transform: str | Transform | None
           ) -> tuple[_Side, _Side, Transform]:  # fmt: skip
    """Validated source and target sides and the transform (see :func:`circuit_symmetry`)."""
    parsed = {"source": _parse(source, "source"), "target": _parse(target, "target")}
    given = {p[4] for p in parsed.values()} - {None}
    if transform is None:
        if len(given) > 1:
            raise ValueError(f"source and target families have different transforms {sorted(map(str, given))}")
        transform = given.pop() if given else "rotation"
    tf = _circuit_transform(transform)
    sides = {}
    for role, (layer, units, preferred, period, fam_transform, invariant) in parsed.items():
        if fam_transform is not None and fam_transform != tf:
            raise ValueError(f"{role} family is a {str(fam_transform)!r} family, but transform={tf.name!r}")
        model.check_layer(layer)
        if not units:
            raise ValueError(f"{role} has no units (layer {layer!r}); give at least one")
        units = model.check_units(layer, units)
        check_distinct(units, f"{role} units of layer {layer!r}")
        if invariant:
            sides[role] = _Side(layer, units, None, tf.period)
            continue
        if len(units) < 2:
            raise ValueError(f"{role} family of layer {layer!r} has {len(units)} unit; a family needs at least 2")
        if preferred is None:
            if tf.discovery == "pair" and len(units) != 2:
                raise ValueError(f"a {tf.name} family has 2 units, {role} of layer {layer!r} has {len(units)}")
            period = tf.period
            preferred = [i * period / len(units) for i in range(len(units))]
        if len(preferred) != len(units) or not period or period <= 0:
            raise ValueError(f"{role} family of layer {layer!r}: {len(units)} units but preferred={preferred}, "
                             f"period={period}")
        sides[role] = _Side(layer, units, torch.tensor(preferred, dtype=torch.float64), float(period))
    src, tgt = sides["source"], sides["target"]
    if src.angles is None and tgt.angles is None:
        raise ValueError("source and target are both invariant units: there is no symmetry to check")
    check_order(model, src.layer, tgt.layer)
    return src, tgt, tf


def _wrap(x: Tensor, period: float) -> Tensor:
    """``x`` modulo ``period`` in (-period/2, period/2]."""
    return x - period * torch.ceil(x / period - 0.5)


def _references(src: _Side, tgt: _Side, reference: Reference, relabel: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs predicting each kernel: ``(p, q, delta)``, kernel p ≈ delta · kernel q, as LongTensor[R] ×2, Tensor[R].

    Kernels are indexed ``p = j * S + i`` (target position j, source position i).
    inv→eq and eq→eq take q from every other target member k (only k = 0 for
    "first"), eq→inv from every other source member; for eq→eq the reference's
    source member is the one at ``θ_i - delta`` (the nearest, for uneven families),
    or member i itself with ``relabel=False`` (no transform of the source side).
    """
    t, s = len(tgt.units), len(src.units)
    if tgt.angles is not None:
        j, k = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
        keep = (k != j) & ((k == 0) if reference == "first" else True)
        j, k = j[keep], k[keep]
        delta = _wrap(tgt.angles[j] - tgt.angles[k], tgt.period)
        i = torch.arange(s).expand(len(j), s)
        l_ = i
        if src.angles is not None and relabel:  # the source member that delta moves onto member i
            l_ = _wrap((src.angles[i] - delta[:, None])[..., None] - src.angles, src.period).abs().argmin(-1)
        return (j[:, None] * s + i).flatten(), (k[:, None] * s + l_).flatten(), delta.repeat_interleave(s)
    i, l_ = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    keep = (l_ != i) & ((l_ == 0) if reference == "first" else True)
    i, l_ = i[keep], l_[keep]
    delta = _wrap(src.angles[i] - src.angles[l_], src.period)
    j = torch.arange(t)[:, None]
    return (j * s + i).flatten(), (j * s + l_).flatten(), delta.repeat(t)


def _null_perms(src: _Side, tgt: _Side, null: Null, n_null: int, gen: torch.Generator) -> Tensor:
    """``LongTensor[1 + n_null, T*S]``: row 0 the identity, then one kernel arrangement per null draw.

    "kernels": a uniformly random arrangement of all the circuit's kernels.
    "orders": a random member order for each equivariant side (the angles stay
    with the positions) and, for an invariant side, a random order of its units
    for each member of the other side.
    """
    t, s = len(tgt.units), len(src.units)
    ident = torch.arange(t * s)[None]
    if null == "kernels":
        return torch.cat([ident, torch.argsort(torch.rand(n_null, t * s, generator=gen), -1)])
    st = torch.argsort(torch.rand(n_null, t, generator=gen), -1)[:, :, None]
    ss = torch.argsort(torch.rand(n_null, s, generator=gen), -1)[:, None, :]
    if tgt.angles is None:  # eq→inv: per source member, an order of the target units
        st = torch.argsort(torch.rand(n_null, s, t, generator=gen), -1).transpose(1, 2)
    elif src.angles is None:  # inv→eq: per target member, an order of the source units
        ss = torch.argsort(torch.rand(n_null, t, s, generator=gen), -1)
    return torch.cat([ident, (st * s + ss).flatten(1)])


def _kernel_table(kernels: Tensor, deltas: Tensor, transform: Transform) -> Tensor:
    """``Tensor[A, P, kh*kw]``: every kernel ``[P, kh, kw]`` moved by every distinct delta ``Tensor[A]``, in one
    :meth:`Transform.apply_kernels <equifind.transforms.Transform.apply_kernels>` call (the P kernels as the
    channels of each of A kernels); unmoved for a transform that does not move kernels (hue)."""
    stack = kernels[None].expand(len(deltas), *kernels.shape)
    return transform.apply_kernels(stack, deltas.to(kernels.device)).flatten(2)


def _check_n_null(n_null: object) -> None:
    check_n_null(n_null, zero="no null: p_value is 1 and null_mean NaN")


def _angle_draws(src: _Side, tgt: _Side, transform: Transform, reference: Reference, n_null: int,
                 gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The "angles" null: ``(q [n_null, R], delta [n_null, R])``, the references of each draw.

    Rotation and hue: every member of each equivariant side gets an independent angle,
    uniform on a grid of ``ANGLE_GRID`` steps over the period (the kernels cannot tell
    finer angles apart, and a grid keeps the moved-kernel table small); the references
    are those of :func:`_references` for these angles. Flip (``discovery == "pair"``): a pair
    has only two assignments, so each reference is mirrored or not at random instead.
    """
    ref_p, ref_q, delta = _references(src, tgt, reference)
    if transform.discovery == "pair":
        return ref_q.expand(n_null, -1), torch.randint(0, 2, (n_null, len(ref_q)), generator=gen).double()

    def draw(side: _Side) -> _Side:
        if side.angles is None:
            return side
        steps = torch.randint(0, ANGLE_GRID, (len(side.units),), generator=gen).double()
        return _Side(side.layer, side.units, steps * side.period / ANGLE_GRID, side.period)

    qs, deltas = [], []
    for _ in range(n_null):
        p, q, d = _references(draw(src), draw(tgt), reference)
        if not torch.equal(p, ref_p):  # the predicted kernels do not depend on the angles
            raise RuntimeError("internal: the references' kernels changed with the angles")
        qs.append(q)
        deltas.append(d)
    if not qs:
        return ref_q[None][:0], delta[None][:0]
    return torch.stack(qs), torch.stack(deltas)


def _score(weights: Tensor, src: _Side, tgt: _Side, transform: Transform, n_null: int, seed: int,
           reference: Reference, null: Null, pointwise: Tensor | None = None) -> CircuitScore:
    """Score precomputed expanded weights ``Tensor[T, S, kh, kw]`` (units in side order).

    Four blocks of rows are scored together: the circuit; its baseline; the ``n_null``
    null draws; their baselines. A baseline predicts from the same references with the
    transform left out: kernels unmoved (rotation, flip), or for a transform that does not
    move kernels (hue, :attr:`~equifind.transforms.Transform.moves_kernels` False), whose only
    action is the relabelling, each kernel from the same source unit. ``rotation_gain`` is the
    circuit's score minus its baseline's, ``gain_sd`` the spread of the draws' gains.
    ``pointwise``: the same weights through 1×1 paths only (see :func:`expanded_weights`).
    """
    if reference not in ("mean", "first") or null not in ("angles", "kernels", "orders"):
        raise ValueError(f"reference must be 'mean' or 'first' and null 'angles', 'kernels' or 'orders', "
                         f"got reference={reference!r}, null={null!r}")
    _check_n_null(n_null)
    t, s = weights.shape[:2]
    dev = weights.device
    kernels = weights.reshape(t * s, *weights.shape[2:])
    flat = kernels.flatten(1)  # [P, K]
    ref_p, ref_q, delta = _references(src, tgt, reference)
    relabels_only = not transform.moves_kernels  # hue: the baseline leaves out the relabelling
    base_q = _references(src, tgt, reference, relabel=False)[1] if relabels_only else ref_q
    gen = torch.Generator().manual_seed(seed)
    ident = torch.arange(t * s)
    if null == "angles":
        q_null, d_null = _angle_draws(src, tgt, transform, reference, n_null, gen)
        perms = ident.expand(n_null + 1, -1)
        sources = torch.cat([ref_q[None], q_null])  # [1 + n, R]: the kernel each reference moves
        base_sources = base_q.expand(n_null + 1, -1) if relabels_only else sources
    else:
        perms = torch.cat([ident[None], _null_perms(src, tgt, null, n_null, gen)[1:]])
        sources, base_sources = perms[:, ref_q], perms[:, base_q]
        d_null = delta.expand(n_null, -1)
    moves = torch.cat([delta[None], d_null])
    perms = torch.cat([perms, perms])
    sources = torch.cat([sources, base_sources])
    deltas = torch.cat([moves, torch.zeros_like(moves)])  # [B, R], B = 2 (1 + n_null)
    uniq, aidx = torch.unique(torch.round(deltas * 1e6) / 1e6, return_inverse=True)
    table = _kernel_table(kernels, uniq, transform)  # [A, P, K]: every move of every row, one call
    perms, sources, aidx, ref_p = perms.to(dev), sources.to(dev), aidx.to(dev), ref_p.to(dev)
    has_ref = torch.zeros(t * s, dtype=torch.bool, device=dev)
    has_ref[ref_p] = True
    rows = has_ref.view(t, s).any(1)
    mask = has_ref.view(1, t, s, 1).to(flat.dtype)
    chunk = max(1, 2**24 // max(1, len(ref_p) * flat.shape[1]))
    scores, cosines = [], torch.empty(0)
    for start in range(0, len(perms), chunk):
        sl = slice(start, start + chunk)
        pred = torch.zeros(len(perms[sl]), t * s, flat.shape[1], dtype=flat.dtype, device=dev)
        pred.index_add_(1, ref_p, table[aidx[sl], sources[sl]])  # sum of the moved references
        actual = flat[perms[sl]]
        if start == 0:
            cosines = F.cosine_similarity(pred[0], actual[0], dim=-1, eps=1e-12)
        per_unit = F.cosine_similarity((pred.view(len(pred), t, s, -1) * mask).flatten(2),
                                       (actual.view(len(pred), t, s, -1) * mask).flatten(2), dim=-1, eps=1e-12)
        scores.append(per_unit[:, rows].mean(1))
    moved, base = torch.cat(scores).double().cpu().view(2, n_null + 1)
    observed, null_scores = float(moved[0]), moved[1:]
    gains = moved - base
    kind: Kind = ("invariant→equivariant" if src.angles is None else
                  "equivariant→invariant" if tgt.angles is None else "equivariant→equivariant")
    p_value = permutation_p(int((null_scores >= observed - 1e-6).sum()), n_null)
    share = math.nan
    if pointwise is not None:
        share = float(pointwise.square().sum() / weights.square().sum().clamp_min(1e-30))
    return CircuitScore(
        kind=kind, transform=transform, score=observed, p_value=p_value, q_value=p_value,
        null_mean=float(null_scores.mean()) if n_null else math.nan,
        weights=weights, cosines=torch.where(has_ref, cosines, math.nan).view(t, s).cpu(),
        source_layer=src.layer, target_layer=tgt.layer, source_units=src.units, target_units=tgt.units,
        source_preferred=None if src.angles is None else src.angles.tolist(),
        target_preferred=None if tgt.angles is None else tgt.angles.tolist(),
        reference=reference, null=null, n_null=n_null, rotation_gain=float(gains[0]),
        gain_sd=float(gains[1:].std()) if n_null > 1 else math.nan, pointwise_share=share,
        ceiling=transform.kernel_ceiling(max(weights.shape[-2:])),
    )  # fmt: skip


def circuit_symmetry(
    model: Model,
    source: object,
    target: object,
    transform: str | Transform | None = None,
    n_null: int = 200,
    seed: int = 0,
    *,
    reference: Reference = "mean",
    null: Null = "angles",
) -> CircuitScore:
    """Check that the expanded weights between two unit sets carry the transform's symmetry.

    Each side is a Family (``.layer``, ``.units`` in order, ``.preferred``,
    ``.period``, ``.transform``), a FamilyScore (its ``.order`` and
    ``.preferred``), ``Units(layer, units, invariant=True)``, or a
    ``(layer, units)`` tuple (a family spread evenly: ``preferred = i*period/n``).
    With ``g`` the transform taking member k to member j (angle ``θ_j - θ_k``):

    * invariant→equivariant: ``W[b_j, a] ≈ g·W[b_k, a]`` for every source unit a;
    * equivariant→invariant: ``W[b, a_i] ≈ g·W[b, a_l]``, g taking a_l to a_i;
    * equivariant→equivariant: ``W[b_j, a_i] ≈ g·W[b_k, a_l]`` with ``a_l`` the
      source member at ``θ_i - (θ_j - θ_k)``: the weights depend only on the
      relative transform.

    ``g·K`` rotates the 2-D kernel (rotation; angles that are not multiples of
    90° lose the corners), mirrors it (flip), or leaves it (hue: a relabelling,
    so hue→hue weights form a circulant). With ``reference="mean"`` (default)
    each kernel is predicted by the average of every other member's kernel of
    its class moved onto it (leave-one-out: no kernel predicts itself, and one
    noisy member cannot spoil every prediction; it also covers uneven
    families); ``"first"`` predicts from the first member's kernels only (for
    eq→eq, the first row's pair of the same relative angle) and leaves the
    first member's own kernels out of the score.

    Score: the mean over target units of the cosine between the unit's kernels
    ``[source, kh, kw]`` (the predicted ones) and their prediction. A cosine
    per target unit rather than per 2-D kernel keeps magnitudes: kernels that
    reach the target through a 1×1 path are single numbers, whose cosine is
    only their sign. ``cosines`` keeps the per-kernel values.

    Null (seeded, ``n_null`` draws; ``p = (1 + #null >= score) / (1 + n_null)``;
    one check is one test, so ``q_value = p_value``):

    * ``"angles"`` (default): the kernels and unit labels stay; each member of each
      equivariant side gets a random angle (uniform on ``ANGLE_GRID`` = 72 steps of the
      period), and the same references are moved by the angles that implies. p answers
      "does moving by the family's angles predict the weights better than moving by
      random angles?". A flip pair has only two assignments, so for flip each
      reference is mirrored or not at random. Invariant→hue circuits move no kernel
      whatever the angles: their p is 1 (the weights cannot show hue).
    * ``"kernels"``: the circuit's kernels rearranged at random. It destroys each source
      unit's sign and magnitude pattern, which exists with or without a symmetry, so
      isotropic or identical kernels pass it: use it only beside the rotation gain.
    * ``"orders"``: each family's order permuted (the angles stay with the positions)
      and, for an invariant side, the order of its units for each member of the other
      side. A cyclic shift of a family is itself a symmetry, so two 4-unit families
      have only 576/16 = 36 distinct relabellings and p can never fall below 1/36.

    ``rotation_gain`` is the score minus the score with the transform left out (same
    references, kernels unmoved; for hue, each kernel predicted from the same source
    unit), ``gain_sd`` the spread of that gain over the null draws;
    :meth:`CircuitScore.is_significant` asks for both q ≤ alpha and a gain above 0 and
    above 2 of those standard deviations.
    ``pointwise_share`` is the share of the weights' energy through 1×1 paths (see
    :func:`expanded_weights`). All kernel moves of the circuit, its baseline and every
    draw are one :meth:`Transform.apply_kernels <equifind.transforms.Transform.apply_kernels>` call on the
    model's device.

    Args:
        model: an :class:`equifind.Model`.
        source: the earlier unit set.
        target: the later unit set.
        transform: a transform with ``circuits`` ("rotation", "hue" or "flip"; a name or a
            :class:`~equifind.transforms.Transform`); default the families' own transform
            ("rotation" when neither side is a Family).
        n_null: number of null draws (0: ``p_value`` 1).
        seed: seeds the null draws.
        reference: "mean" or "first" (see above).
        null: "angles", "kernels" or "orders" (see above).

    Returns:
        A :class:`CircuitScore`.

    Raises:
        KeyError: a layer not in the model. IndexError: a unit out of range.
        ValueError: layers out of order, empty or one-unit families, a unit listed twice
            on one side (named), two invariant sides, a bad ``n_null`` (negative or not
            an int), or an unsupported or mismatched transform.
    """
    check_model(model)
    _check_n_null(n_null)
    src, tgt, tf = _sides(model, source, target, transform)
    weights, pointwise = circuit_weights(model, src.layer, tgt.layer, tgt.units, src.units)
    return _score(weights, src, tgt, tf, n_null, seed, reference, null, pointwise)


def find_circuits(
    model: Model,
    families_by_layer: Mapping[str, Sequence[object]],
    invariant_by_layer: Mapping[str, Sequence[int]] | None = None,
    transform: str | Transform | None = None,
    alpha: float = DEFAULT_Q,
    n_null: int = 200,
    seed: int = 0,
    *,
    min_score: float = -1.0,
    reference: Reference = "mean",
    null: Null = "angles",
    all_checks: bool = False,
) -> list[CircuitScore]:
    """Check every family pair in consecutive layers; return the significant circuits.

    Layers are taken in the dict's order; for each consecutive pair (a, b) every
    source (families of a, plus a's invariant units as one set) is checked
    against every target (families of b, plus b's invariant units), skipping
    invariant→invariant and families of another transform than ``transform``
    (of different transforms, when it is None). Expanded weights are computed
    once per layer pair; each check is exactly ``circuit_symmetry(model, source,
    target, ..., seed=seed)``. The checks of the call are one list of tests: each
    gets the Benjamini–Hochberg q-value over all of them (``q_value``, computed
    before any filtering), and a circuit is significant by
    :meth:`CircuitScore.is_significant`: ``q_value <= alpha`` under the null (default
    "angles") *and* a rotation gain above 2 standard deviations of the null scores.

    Args:
        model: an :class:`equifind.Model`.
        families_by_layer: layer -> families of that layer (Family objects or
            ``(layer, units)`` tuples), layers in forward order; a layer with only
            invariant units is listed with ``[]``.
        invariant_by_layer: layer -> invariant unit indices (optional; its layers
            must be keys of ``families_by_layer``).
        transform, seed, reference, null: as in :func:`circuit_symmetry`.
        alpha: the q-value (BH) threshold: keep circuits with ``q_value <= alpha``
            (default 0.05).
        n_null: null draws per check; the smallest p they give, ``1/(1 + n_null)``,
            must be at most ``alpha``.
        min_score: and with ``score >= min_score`` (default: any score); a floor such
            as 0.5 keeps the circuits whose kernels are mostly predicted by the symmetry.
        all_checks: return every check (q-values set), significant or not.

    Returns:
        The significant :class:`CircuitScore` s (q-values set; every check with
        ``all_checks``), highest score first.

    Raises:
        KeyError: a layer not in the model. ValueError: layers out of forward
            order, a family listed under another layer than its own, alpha
            outside (0, 1], ``n_null`` too small to reach ``alpha`` (the
            message names the smallest that works), or a ``transform`` circuits
            do not handle.
    """
    check_model(model)
    tf = None if transform is None else _circuit_transform(transform)
    _check_n_null(n_null)
    check_null_size(n_null, alpha)
    if not -1.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [-1, 1] (a mean cosine), got {min_score!r}")
    layers = list(families_by_layer)
    invariant = dict(invariant_by_layer or {})
    for layer in [*layers, *invariant]:
        model.check_layer(layer)
        if layer not in families_by_layer:
            raise ValueError(f"invariant_by_layer names layer {layer!r}, which families_by_layer lacks "
                             f"(list it there with [] to fix the layer order); layers: {layers}")
    for name, fams in families_by_layer.items():
        for fam in fams:
            if (own := _parse(fam, "family")[0]) != name:
                raise ValueError(f"a family of layer {own!r} is listed under layer {name!r}")
    found: list[CircuitScore] = []
    for la, lb in zip(layers, layers[1:]):
        check_order(model, la, lb)
        sources = [*families_by_layer[la], *([Units(la, invariant[la])] if invariant.get(la) else [])]
        targets = [*families_by_layer[lb], *([Units(lb, invariant[lb])] if invariant.get(lb) else [])]
        pairs = []
        for a in sources:
            for b in targets:
                given = {_parse(a, "source")[4], _parse(b, "target")[4]} - {None}
                both_invariant = isinstance(a, Units) and isinstance(b, Units)
                if not both_invariant and len(given) < 2 and not (tf is not None and given - {tf}):
                    pairs.append(_sides(model, a, b, tf))
        if not pairs:
            continue
        t_all = sorted({u for _, tgt, _ in pairs for u in tgt.units})
        s_all = sorted({u for src, _, _ in pairs for u in src.units})
        weights, pointwise = circuit_weights(model, la, lb, t_all, s_all)
        t_pos, s_pos = {u: i for i, u in enumerate(t_all)}, {u: i for i, u in enumerate(s_all)}
        for src, tgt, tr in pairs:
            rows, cols = [t_pos[u] for u in tgt.units], [s_pos[u] for u in src.units]
            found.append(_score(weights[rows][:, cols], src, tgt, tr, n_null, seed, reference, null,
                                pointwise[rows][:, cols]))
    for check, q in zip(found, bh_q([c.p_value for c in found])):
        check.q_value = q
    if message := floor_limits_q([c.p_value for c in found], n_null, "circuit checks", alpha):
        warnings.warn(f"find_circuits: {message}", stacklevel=2)
    kept = found if all_checks else [c for c in found if c.is_significant(alpha) and c.score >= min_score]
    return sorted(kept, key=lambda c: -c.score)
