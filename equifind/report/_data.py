"""The data behind a family's figures: members in family order, tuning curves, preferred stimuli, hues.

Pure functions of a :class:`~equifind.Family` / :class:`~equifind.FamilyScore` and the
layer's :class:`~equifind.Responses`; :mod:`equifind.report.figures` draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..families import Family
from ..responses import Responses
from ..score import FamilyScore
from ..transforms import RGB_TO_YIQ, YIQ_TO_RGB, Transform

__all__ = [
    "Members", "members_of", "member_rows", "normalise_rows", "hue_grid", "hue_and_angle", "tuning_curves",
    "hue_rgb", "preferred_stimuli", "member_hues", "expected_peaks", "hue_angle",
]  # fmt: skip


@dataclass(frozen=True)
class Members:
    """The members of a family in family order.

    ``period`` is the family's period, None for a transform without one (scale).
    """

    layer: str
    transform: Transform
    units: list[int]
    preferred: list[float]
    period: float | None
    preferred_hue: list[float] | None


def members_of(family: Family | FamilyScore) -> Members:
    """The members of a Family (its ``units``) or FamilyScore (its ``order``), in family order.

    Raises:
        TypeError: ``family`` is neither.
    """
    if isinstance(family, Family):
        return Members(family.layer, family.transform, list(family.units), list(family.preferred),
                        _period(family.period), family.preferred_hue)  # fmt: skip
    if isinstance(family, FamilyScore):
        order = list(family.order)
        pref = [float(family.preferred.get(u, math.nan)) for u in order]
        return Members(family.layer, family.transform, order, pref, _period(family.period), None)
    raise TypeError(f"expected an equifind Family or FamilyScore, got {type(family).__name__}")


def _period(period: float | None) -> float | None:
    return None if period is None else float(period)


def hue_and_angle(transform: Transform) -> bool:
    """Whether the transform's parameter is a (hue shift, angle) pair (hue_rotation): a member's tuning
    curve is its orientation tuning at its best hue, and the hue × orientation map applies."""
    return transform.colour and transform.param_shape == (2,)


def member_rows(m: Members, responses: Responses) -> list[int]:
    """Rows of ``responses`` holding the members, in family order."""
    if not isinstance(responses, Responses):
        raise TypeError(f"responses must be an equifind Responses, got {type(responses).__name__}")
    if responses.transform != m.transform:
        raise ValueError(f"responses are for transform {responses.transform!r}, the family for {m.transform!r}")
    if responses.layer != m.layer:
        raise ValueError(f"responses are of layer {responses.layer!r}, the family of {m.layer!r}")
    known = set(responses.units)
    missing = [u for u in m.units if u not in known]
    if missing:
        raise ValueError(f"units {missing} of the {m.layer!r} family are not in the responses ({len(known)} units)")
    if not m.units:
        raise ValueError(f"the {m.layer!r} {m.transform} family has no units")
    return [responses.row(u) for u in m.units]


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to [0, 1] (flat rows become 0)."""
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return (x - lo) / span


def hue_grid(responses: Responses) -> int:
    """Steps per axis of a hue_rotation grid (``params`` is ``[n * n, 2]``, hue-major)."""
    s = responses.params.shape[0]
    n = int(round(math.sqrt(s)))
    if responses.params.dim() != 2 or n * n != s:
        shape = tuple(responses.params.shape)
        raise ValueError(f"hue_rotation responses need an n × n (hue, angle) grid, got params of shape {shape}")
    return n


def tuning_curves(m: Members, responses: Responses) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each member's tuning curve along the transform.

    Returns:
        ``(x [S], curves [n, S], hues [n] or None)``; for hue_rotation the curve is the
        orientation tuning at the member's best hue (returned in ``hues``).
    """
    rows = member_rows(m, responses)
    tun = responses.tuning_curves[rows].double()
    if not hue_and_angle(m.transform):
        return responses.params.double().numpy(), tun.numpy(), None
    n = hue_grid(responses)
    surf = tun.view(len(rows), n, n)  # [member, hue, angle]
    best_hue = surf.amax(dim=2).argmax(dim=1)
    grid = responses.params.double().view(n, n, 2)
    curves = surf[torch.arange(len(rows)), best_hue]
    return grid[0, :, 1].numpy(), curves.numpy(), grid[best_hue, 0, 0].numpy()


def hue_rgb(hue: float | np.ndarray, luma: float = 0.5, chroma: float = 0.2) -> np.ndarray:
    """RGB colours of YIQ hues, the hue convention of :class:`equifind.Hue`.

    Args:
        hue: degrees, a float or an array of shape ``[n]``.
        luma: Y in [0, 1].
        chroma: radius in the (I, Q) plane; 0.2 stays inside the RGB gamut at luma 0.5.

    Returns:
        ``[3]`` or ``[n, 3]`` RGB in [0, 1] (clipped).
    """
    h = np.deg2rad(np.asarray(hue, dtype=np.float64))
    yiq = np.stack([np.full_like(h, luma), chroma * np.cos(h), chroma * np.sin(h)], axis=-1)
    return np.clip(yiq @ YIQ_TO_RGB.numpy().T, 0.0, 1.0)



def preferred_stimuli(m: Members, responses: Responses) -> tuple[Tensor, list[str]]:
    """Each member's best stimulus transformed to the grid parameter of its peak."""
    rows = member_rows(m, responses)
    if responses.stimuli is None:
        raise ValueError(f"responses of {responses.layer!r} carry no stimuli (Responses.stimuli is None)")
    peaks = responses.tuning_curves[rows].argmax(dim=1)
    best = responses.best_variant_indices[rows]
    params = responses.params[peaks]
    center = responses.meta.get("center")
    images = m.transform.apply(responses.stimuli[best], params, center=tuple(center) if center is not None else None)
    if hue_and_angle(m.transform):
        labels = [f"hue {float(p[0]):g}°\n{float(p[1]):g}°" for p in params]
    else:
        labels = [m.transform.format_tick(float(p)) for p in params]
    return images.clamp(0.0, 1.0), labels


def member_hues(m: Members, responses: Responses, fallback: np.ndarray) -> np.ndarray:
    """The hue (degrees, YIQ) at the centre of each member's preferred stimulus.

    Members whose stimulus is (nearly) grey at the centre, and all members when the
    responses carry no stimuli, get ``fallback`` (their preferred hue parameter).
    """
    if responses.stimuli is None:
        return fallback
    images, _ = preferred_stimuli(m, responses)
    h, w = images.shape[-2:]
    center = responses.meta.get("center")
    cy, cx = (float(center[0]), float(center[1])) if center is not None else ((h - 1) / 2, (w - 1) / 2)
    y0, x0 = min(max(int(round(cy)) - 1, 0), h - 1), min(max(int(round(cx)) - 1, 0), w - 1)
    rgb = images[:, :, y0 : y0 + 3, x0 : x0 + 3].double().mean(dim=(2, 3))  # [n, 3]
    yiq = rgb @ RGB_TO_YIQ.T
    chroma = torch.hypot(yiq[:, 1], yiq[:, 2]).numpy()
    hue = np.rad2deg(torch.atan2(yiq[:, 2], yiq[:, 1]).numpy()) % 360.0
    return np.where(chroma > 0.02, hue, fallback)



def expected_peaks(m: Members, data: np.ndarray, responses: Responses) -> tuple[list[float], list[int]]:
    """Columns where each member should peak if the family is equivariant: shifts around the transform's
    period (one parameter on an evenly spaced grid over it); none for a transform without a period (scale)
    or with a multi-dimensional parameter (hue_rotation)."""
    n, s = data.shape
    span = m.transform.period
    if span is None or m.transform.param_shape != () or not all(math.isfinite(p) for p in m.preferred):
        return [], []
    c0 = int(np.argmax(data[0]))
    step = span / s
    fam = m.period
    fam_period = fam if fam is not None and math.isfinite(fam) and 0 < fam <= span else span
    cols: list[float] = []
    rws: list[int] = []
    for i in range(n):
        offset = (m.preferred[i] - m.preferred[0]) / step
        for k in range(int(round(span / fam_period))):
            cols.append(float((c0 + round(offset + k * fam_period / step)) % s))
            rws.append(i)
    return cols, rws


def hue_angle(m: Members, responses: Responses | None) -> tuple[np.ndarray, np.ndarray]:
    """Each member's preferred (hue, orientation) in degrees."""
    if responses is not None:
        rows = member_rows(m, responses)
        hue_grid(responses)
        peaks = responses.tuning_curves[rows].argmax(dim=1)
        p = responses.params.double()[peaks]
        return p[:, 0].numpy(), p[:, 1].numpy()
    if m.preferred_hue is None:
        raise ValueError("hue_orientation_map needs the layer's responses or a Family with preferred_hue")
    return np.asarray(m.preferred_hue, dtype=np.float64), np.asarray(m.preferred, dtype=np.float64)
