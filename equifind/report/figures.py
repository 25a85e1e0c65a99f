"""Figures of one family: tuning heatmap, polar tuning, stimulus strip, equivariance matrix, hue × orientation,
and for a family validated on held-out stimuli its answers and held-out pair matrix.

Each function takes a :class:`~equifind.Family` or :class:`~equifind.FamilyScore`
(the members in family order) and the layer's :class:`~equifind.Responses`, and
returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
figure registry, no backend switch, nothing to close); save it with
:func:`save_figure`. Responses are normalised per member (row) to [0, 1], so one
colour scale serves the whole figure.

>>> fig = tuning_heatmap(family, responses)
>>> save_figure(fig, "out/mixed3b_rotation_tuning", ("png", "svg"))
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.ticker import NullFormatter, NullLocator

from ..families import Family
from ..heldout import HeldoutSource
from ..responses import Responses
from ..score import FamilyScore
from ..transforms import Transform, names
from ._data import (
    Members, expected_peaks, hue_and_angle, hue_angle, hue_grid, hue_rgb, member_hues, member_rows, members_of,
    normalise_rows, preferred_stimuli, tuning_curves,
)  # fmt: skip
from ._files import save_figure  # re-exported

__all__ = [
    "tuning_heatmap",
    "polar_tuning",
    "stimulus_strip",
    "equivariance_matrix",
    "hue_orientation_map",
    "heldout_answers",
    "heldout_pairs",
    "hue_rgb",
    "save_figure",
]

_CMAP = "viridis"
_NORMALISED = "normalised response\n(per row: 0 = min, 1 = max)"


# --------------------------------------------------------------------------- axes


def _log_edges(x: np.ndarray) -> np.ndarray:
    """Cell edges of a log-spaced grid ``x [S]``: geometric midpoints, half a step beyond each end (``[S + 1]``)."""
    if x.ndim != 1 or len(x) < 1 or not (x > 0).all() or not (np.diff(x) > 0).all():
        raise ValueError(f"a log axis needs ascending positive parameters, got {x.tolist()}")
    lx = np.log(x)
    half = np.diff(lx) / 2 if len(x) > 1 else np.array([math.log(2.0)])
    return np.exp(np.concatenate([[lx[0] - half[0]], lx[:-1] + half, [lx[-1] + half[-1]]]))


def _heatmap(ax: Axes, data: np.ndarray, x: np.ndarray, transform: Transform) -> ScalarMappable:
    """Rows × grid columns in [0, 1]: one column per grid step, or, for a transform on a log axis
    (:attr:`~equifind.transforms.Transform.log_axis`), cells at the grid's parameters on a log x axis."""
    if not transform.log_axis:
        return ax.imshow(data, aspect="auto", cmap=_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    n = data.shape[0]
    ax.set_xscale("log")
    edges = _log_edges(x)
    mesh = ax.pcolormesh(edges, np.arange(n + 1) - 0.5, data, cmap=_CMAP, vmin=0.0, vmax=1.0, shading="flat")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(n - 0.5, -0.5)  # row 0 on top, as imshow draws it
    return mesh


def _set_param_ticks(ax: Axes, x: np.ndarray, transform: Transform, max_ticks: int = 9) -> None:
    """Tick labels from the transform (:meth:`~equifind.transforms.Transform.format_tick`): at column
    indices, or at the parameters themselves on a log axis."""
    step = max(1, math.ceil(len(x) / max_ticks))
    idx = list(range(0, len(x), step))
    if transform.log_axis:
        ax.set_xticks([float(x[i]) for i in idx])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xticks(idx)
    ax.set_xticklabels([transform.format_tick(float(x[i])) for i in idx])


def _unit_ticks(ax: Axes, units: list[int], axis: str = "y", max_ticks: int = 40) -> None:
    step = max(1, math.ceil(len(units) / max_ticks))
    idx = list(range(0, len(units), step))
    labels = [str(units[i]) for i in idx]
    if axis == "y":
        ax.set_yticks(idx)
        ax.set_yticklabels(labels)
    else:
        ax.set_xticks(idx)
        ax.set_xticklabels(labels)


def _period_text(period: float | None) -> str:
    """A family's period in a figure title ("none" without one)."""
    return "none" if period is None else f"{period:g}"


def _title(m: Members, what: str) -> str:
    return f"{m.layer} · {m.transform} family of {len(m.units)} units (period {_period_text(m.period)})\n{what}"


# --------------------------------------------------------------------------- figures


def tuning_heatmap(family: Family | FamilyScore, responses: Responses) -> Figure:
    """Members × transform parameter: each member's tuning curve, normalised per row.

    Rows are sorted by preferred parameter; a member's curve is its response to
    its best stimulus variant over the transform grid (hue_rotation: over
    orientation, at the member's best hue). Scale's zoom factors lie on a log axis.

    Args:
        family: the family (members in family order).
        responses: the layer's responses for the family's transform.

    Returns:
        The figure.

    Raises:
        ValueError: responses of another layer or transform, or lacking members.
        TypeError: arguments of the wrong type.
    """
    m = members_of(family)
    x, curves, _ = tuning_curves(m, responses)
    order = sorted(range(len(m.units)), key=lambda i: (m.preferred[i], i))
    data = normalise_rows(curves[order])
    units = [m.units[i] for i in order]
    fig = Figure(figsize=(7.0, min(12.0, 2.2 + 0.25 * len(units))), layout="constrained")
    ax = fig.add_subplot()
    im = _heatmap(ax, data, x, m.transform)
    _set_param_ticks(ax, x, m.transform)
    _unit_ticks(ax, units)
    ax.set_xlabel(m.transform.axis_label)
    ax.set_ylabel(f"{m.layer} unit (sorted by preferred)")
    ax.set_title(_title(m, "tuning curves"), fontsize=9)
    fig.colorbar(im, ax=ax, label=_NORMALISED, shrink=0.9)
    return fig


def polar_tuning(family: Family | FamilyScore, responses: Responses) -> Figure:
    """Each member's tuning curve on a polar axis, coloured by its preferred angle or hue.

    Rotation families are coloured with a cyclic colour map over the family's period;
    hue families in the colour at the centre of each member's preferred stimulus (else
    the colour of its preferred hue parameter); hue_rotation families in the colour of
    each member's preferred hue parameter.

    Args:
        family: a rotation, hue or hue_rotation family.
        responses: the layer's responses for that transform.

    Returns:
        The figure.

    Raises:
        ValueError: a transform that is not circular (flip, scale), or bad responses.
    """
    m = members_of(family)
    tf = m.transform
    if not tf.circular:
        raise ValueError(f"polar_tuning needs a circular transform {list(names(circular=True))}, got {tf.name!r}")
    x, curves, hues = tuning_curves(m, responses)
    data = normalise_rows(curves)
    full = float(tf.period)  # a circular transform's period is one full turn
    theta = np.deg2rad(np.append(x, x[0] + full) * (360.0 / full))
    fig = Figure(figsize=(6.0, 5.2), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    cyclic = matplotlib.colormaps["twilight_shifted"]
    if not tf.colour:  # an angle: a cyclic colour map over the family's period
        period = m.period if m.period is not None and math.isfinite(m.period) and m.period > 0 else full
        colours = [cyclic((p % period) / period) for p in m.preferred]
    elif hues is not None:  # hue_rotation: the preferred hue shift (a contrast has no single hue)
        colours = [tuple(c) for c in hue_rgb(hues)]
    else:
        colours = [tuple(c) for c in hue_rgb(member_hues(m, responses, np.asarray(m.preferred, dtype=np.float64)))]
    for i, u in enumerate(m.units):
        r = np.append(data[i], data[i, 0])
        ax.plot(theta, r, color=colours[i], linewidth=1.6, label=f"{u}")
        peak = int(np.argmax(data[i]))
        ax.plot([theta[peak]], [1.0], "o", color=colours[i], markersize=4)
    ax.set_rlim(0.0, 1.05)
    ax.set_rticks([0.5, 1.0])
    ax.set_rlabel_position(22.5)
    ax.set_title(_title(m, f"polar tuning; angle: {tf.axis_label}; radius: normalised response"), fontsize=8)
    if len(m.units) <= 16:
        ax.legend(title=f"{m.layer} unit", loc="upper left", bbox_to_anchor=(1.05, 1.0), fontsize=7, title_fontsize=7)
    if not tf.colour:
        sm = ScalarMappable(norm=Normalize(0.0, period), cmap=cyclic)
        fig.colorbar(sm, ax=ax, label="preferred angle (degrees)", shrink=0.6, location="left")
    return fig


def stimulus_strip(family: Family | FamilyScore, responses: Responses, *, columns: int = 12) -> Figure:
    """Each member's best stimulus transformed to its preferred parameter, in family order.

    The stimulus is ``responses.stimuli[best variant]`` transformed by the grid
    parameter of the member's peak response (about ``responses.meta["center"]``); the
    unit number is written under each image, the parameter above.

    Args:
        family: the family.
        responses: the layer's responses, with ``stimuli``.
        columns: images per row of the strip.

    Returns:
        The figure.

    Raises:
        ValueError: responses without stimuli, or not matching the family; ``columns < 1``.
    """
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    m = members_of(family)
    images, labels = preferred_stimuli(m, responses)
    n = len(m.units)
    ncols = min(n, columns)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(5.0, 1.05 * ncols), 0.8 + 1.45 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i].permute(1, 2, 0).numpy(), interpolation="bilinear")
        ax.set_xlabel(str(m.units[i]), fontsize=8)
        ax.set_title(labels[i], fontsize=7)
    fig.suptitle(_title(m, f"best stimuli at the preferred parameter ({m.layer} unit below)"), fontsize=8)
    return fig


def equivariance_matrix(family: Family | FamilyScore, responses: Responses) -> Figure:
    """Responses of every member to the first member's best stimulus under each transform step.

    Rows are the members in family order; column ``s`` is the response to ``g_s·x``,
    ``x`` the first member's best stimulus; rows are normalised to [0, 1]. For a true
    family, f(g·x) = P_g f(x): each member peaks where g carries the first member's
    preference onto its own, a diagonal band; circles mark those expected peaks
    (rotation, hue and flip).

    Args:
        family: the family.
        responses: the layer's responses for the family's transform.

    Returns:
        The figure.

    Raises:
        ValueError: responses not matching the family.
    """
    m = members_of(family)
    rows = member_rows(m, responses)
    v0 = int(responses.best_variant_indices[rows[0]])
    data = normalise_rows(responses.values[rows, v0, :].double().numpy())
    n, s = data.shape
    x = responses.params.double().numpy()
    fig = Figure(figsize=(7.0, min(12.0, 2.6 + 0.25 * n)), layout="constrained")
    ax = fig.add_subplot()
    im = _heatmap(ax, data, x, m.transform)
    _unit_ticks(ax, m.units)
    ax.set_ylabel(f"{m.layer} unit (family order)")
    cols: list[float] = []
    if hue_and_angle(m.transform):
        k = hue_grid(responses)
        grid = responses.params.double().view(k, k, 2)
        ax.set_xticks([i * k for i in range(k)])
        ax.set_xticklabels([f"{float(h):g}°" for h in grid[:, 0, 0]])
        for i in range(1, k):
            ax.axvline(i * k - 0.5, color="white", linewidth=0.5)
        ax.set_xlabel("g = (hue shift, rotation): hue blocks (degrees), rotation 0–360° within each")
    else:
        _set_param_ticks(ax, x, m.transform)
        ax.set_xlabel(f"g: {m.transform.axis_label}")
        cols, rws = expected_peaks(m, data, responses)
        if cols:
            ax.scatter(cols, rws, s=28, facecolors="none", edgecolors="white", linewidths=1.2)
        if not m.transform.log_axis:
            ax.set_xlim(-0.5, s - 0.5)
    what = f"f(g·x) = P_g f(x)? x = best stimulus of unit {m.units[0]}" + ("; ○ expected peaks" if cols else "")
    ax.set_title(_title(m, what), fontsize=9)
    fig.colorbar(im, ax=ax, label=_NORMALISED, shrink=0.9)
    return fig


def hue_orientation_map(family: Family | FamilyScore, responses: Responses | None = None) -> Figure:
    """Preferred hue against preferred orientation of a hue_rotation family.

    Each member sits at its (hue, orientation) peak, drawn in its hue's colour, or,
    when the responses carry stimuli, as its preferred stimulus (as in the Distill
    article's colour-contrast grid); the unit number is written beside it.

    Args:
        family: a hue_rotation family.
        responses: the layer's hue_rotation responses; without them, the family's
            ``preferred_hue`` and ``preferred`` are used.

    Returns:
        The figure.

    Raises:
        ValueError: a family of another transform, or no way to know the hues.
    """
    m = members_of(family)
    if not hue_and_angle(m.transform):
        which = list(names(colour=True, param_shape=(2,)))
        raise ValueError(f"hue_orientation_map needs a family of a (hue, angle) transform {which}, got {m.transform.name!r}")
    hue, angle = hue_angle(m, responses)
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    thumbs = None
    if responses is not None and responses.stimuli is not None:
        thumbs, _ = preferred_stimuli(m, responses)
    ax.scatter(hue, angle, c=hue_rgb(hue), s=60, edgecolors="black", linewidths=0.5, zorder=2)
    for i, u in enumerate(m.units):
        if thumbs is not None:
            img = thumbs[i].permute(1, 2, 0).numpy()
            box = OffsetImage(img, zoom=28.0 / max(img.shape[:2]))
            ax.add_artist(AnnotationBbox(box, (hue[i], angle[i]), frameon=True, pad=0.1, zorder=3))
        ax.annotate(str(u), (hue[i], angle[i]), xytext=(0, -22 if thumbs is not None else -10),
                    textcoords="offset points", ha="center", va="top", fontsize=7, zorder=4)  # fmt: skip
    ax.set_xlim(-30.0, 390.0)
    ax.set_ylim(-45.0, 390.0)
    ax.set_xticks(range(0, 361, 45))
    ax.set_yticks(range(0, 361, 45))
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.set_xlabel("preferred hue shift (degrees, YIQ)")
    ax.set_ylabel("preferred orientation (degrees)")
    ax.set_title(_title(m, f"hue × orientation ({m.layer} unit below each)"), fontsize=9)
    return fig


# --------------------------------------------------------------------------- held-out validation

#: ``source -> unit -> Tensor or uint8 array [k, 3, H, W]``: held-out images (``ScanResult.heldout_images[layer][t]``).
HeldoutImages = Mapping[str, Mapping[int, "np.ndarray | torch.Tensor"]]


def _heldout_title(score: FamilyScore, what: str) -> str:
    return (f"{score.layer} · {score.transform} family of {len(score.order)} units "
            f"(period {_period_text(score.period)}), held-out\n{what}")


def _members_and_positions(score: FamilyScore, test: HeldoutSource) -> tuple[list[int], list[float]]:
    """The family order of ``test`` and each member's position relative to member 0 (as the test used them;
    results saved without them fall back to ``score.order`` and ``score.preferred``)."""
    members = list(test.members) or list(score.order)
    if test.positions:
        return members, list(test.positions)
    tf = score.transform
    if tf.period is None:  # no circle: the parameter that carries member 0's preference onto member j's
        p0 = float(score.preferred.get(members[0], tf.identity))
        return members, [float(tf.compose(float(score.preferred.get(u, p0)), tf.inverse(p0))) for u in members]
    p0 = float(score.preferred.get(members[0], 0.0))
    fam = score.period
    period = float(fam) if fam is not None and math.isfinite(fam) and fam > 0 else float(tf.period)
    return members, [(float(score.preferred.get(u, p0)) - p0) % period for u in members]


def _position_text(transform: Transform, position: float) -> str:
    """A member's position relative to member 0 as the held-out figure labels it: whole units of a circular
    parameter (``"135°"``), the mirror state of a pair (``"1"``), else the transform's parameter text."""
    if transform.circular:
        return transform.format_tick(float(np.rint(position)))  # as f"{position:.0f}", NaN included
    if transform.discovery == "pair":
        return f"{position:.0f}"
    return transform.format_param(position)


def _as_image(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The first image of ``x`` (``[k, 3, H, W]``, uint8, or float in [0, 1]) as float ``Tensor[1, 3, H, W]`` in [0, 1]."""
    t = (x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x)))[:1]
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def _show(ax: Axes, img: torch.Tensor, label: str, title: str = "", mismatch: bool = False) -> None:
    ax.imshow(img[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy(), interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(label, fontsize=7, color="red" if mismatch else "black")
    if title:
        ax.set_title(title, fontsize=7)
    if mismatch:
        for spine in ax.spines.values():
            spine.set_edgecolor("red")
            spine.set_linewidth(2.0)


def heldout_answers(score: FamilyScore, images: HeldoutImages, source: str | None = None) -> Figure:
    """The Circuits thread's equivariance figure, on a family's held-out images.

    Top row: each member's held-out image (its feature visualization, else its top natural
    patch), in family order. Middle row: member 0's image moved to member j's position
    (rotated, hue-shifted or mirrored by φ_j − φ_0, the discovery positions the held-out test
    used). Bottom row: the image of the member that answers it most strongly
    (:attr:`HeldoutSource.answers <equifind.heldout.HeldoutSource.answers>`), framed red where
    it is not member j.

    Args:
        score: a family score with held-out tests (``score.heldout``).
        images: held-out images, ``source -> unit -> [k, 3, H, W]`` (uint8 or float in [0, 1]).
        source: "feature_vis" or "patches" (default: feature_vis when both images and a test exist).

    Returns:
        The figure.

    Raises:
        ValueError: a family not validated, no images of the source, or a member without an image.
    """
    if not score.heldout:
        raise ValueError(f"the {score.layer!r} {score.transform} family was not validated (FamilyScore.heldout is empty)")
    usable = [s for s in ("feature_vis", "patches") if s in score.heldout and images.get(s)]
    if source is None and not usable:
        raise ValueError(f"no held-out images for the sources tested ({sorted(score.heldout)})")
    source = source or usable[0]
    if source not in usable:
        raise ValueError(f"no held-out test with images for source {source!r}; have {usable}")
    test = score.heldout[source]
    members, positions = _members_and_positions(score, test)
    missing = [u for u in {*members, *test.answers} if u not in images[source]]
    if missing:
        raise ValueError(f"no {source} images of units {sorted(missing)}")
    own = [_as_image(images[source][u]) for u in members]
    tf = score.transform
    pair = tf.discovery == "pair"  # a two-element group: a position is the mirror state, 0 or 1
    moved = [own[0] if j == 0 else tf.apply(own[0], min(1.0, float(positions[j])) if pair else float(positions[j]))
             for j in range(len(members))]  # fmt: skip
    n = len(members)
    fig = Figure(figsize=(max(5.0, 1.05 * n), 4.6), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    for j, u in enumerate(members):
        _show(axes[0, j], own[j], str(u), tf.format_tick(0.0 if j == 0 else 1.0) if pair else
              _position_text(tf, positions[j]))  # fmt: skip
        _show(axes[1, j], moved[j], f"{members[0]} → {_position_text(tf, positions[j])}")
        answer = int(test.answers[j]) if j < len(test.answers) else -1
        _show(axes[2, j], _as_image(images[source][answer]) if answer in images[source] else torch.full((1, 3, 8, 8), 0.5),
              f"answered by {answer}", mismatch=answer != u)  # fmt: skip
    axes[0, 0].set_ylabel("member", fontsize=8)
    axes[1, 0].set_ylabel(f"{members[0]} moved", fontsize=8)
    axes[2, 0].set_ylabel("answered by", fontsize=8)
    hits = sum(int(a) == u for a, u in zip(test.answers, members))
    fig.suptitle(_heldout_title(score, f"{source}: member {members[0]}'s image moved to each member's position, and the "
                                        f"member that answers it ({hits}/{n} match; red: another member)"), fontsize=8)
    return fig


def heldout_pairs(score: FamilyScore) -> Figure:
    """The held-out pair scores of a validated family, one heatmap per source (and "combined").

    Row i, column j: the correlation of unit j's responses to g_ij·x with unit i's to x over the
    held-out images (:attr:`HeldoutSource.pairs <equifind.heldout.HeldoutSource.pairs>`); the
    diagonal is blank. An equivariant family is 1 everywhere.

    Args:
        score: a family score with held-out tests.

    Returns:
        The figure.

    Raises:
        ValueError: a family not validated.
    """
    if not score.heldout:
        raise ValueError(f"the {score.layer!r} {score.transform} family was not validated (FamilyScore.heldout is empty)")
    keys = [k for k in ("feature_vis", "patches", "combined") if k in score.heldout] + [
        k for k in score.heldout if k not in ("feature_vis", "patches", "combined")]
    n = len(score.order)
    side = min(6.0, 1.6 + 0.28 * n)
    fig = Figure(figsize=(side * len(keys) + 1.2, side + 0.9), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    im = None
    for ax, key in zip(axes, keys):
        test = score.heldout[key]
        members = list(test.members) or list(score.order)
        im = ax.imshow(np.asarray(test.pairs, dtype=np.float64), cmap="RdBu_r", vmin=-1.0, vmax=1.0,
                       interpolation="nearest")  # fmt: skip
        _unit_ticks(ax, members, "y")
        _unit_ticks(ax, members, "x")
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("unit j (responses to g_ij·x)", fontsize=8)
        ax.set_ylabel("unit i (responses to x)", fontsize=8)
        ax.set_title(f"{key}: {test.equivariance:.2f} (q = {test.q_value:.3g}; random sets {test.null_mean:.2f})",
                     fontsize=8)  # fmt: skip
    fig.colorbar(im, ax=list(axes), label="pair correlation", shrink=0.8)
    fig.suptitle(_heldout_title(score, "equivariance of each member pair on held-out images"), fontsize=8)
    return fig
