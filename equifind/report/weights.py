"""Distill-style weight diagrams of a circuit: a grid of kernels, red excitation / blue inhibition."""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from .._evidence import null_size, q_and_p
from ._page_text import num

__all__ = ["weight_diagram", "weight_mosaic"]

_CMAP = "RdBu_r"  # high (excitation) red, low (inhibition) blue


def _weights(circuit: Any) -> np.ndarray:
    w = getattr(circuit, "weights", None)
    if w is None:
        raise TypeError(f"expected a CircuitScore-like object with .weights, got {type(circuit).__name__}")
    if isinstance(w, torch.Tensor):
        w = w.detach().to("cpu", torch.float64).numpy()
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"circuit weights must be a non-empty [target, source, kh, kw] array, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"circuit weights contain {int((~np.isfinite(w)).sum())} NaN or infinite entries")
    return w


def weight_mosaic(weights: np.ndarray, gap: int = 1) -> np.ndarray:
    """Tile ``[target, source, kh, kw]`` kernels into one image, NaN between kernels.

    Args:
        weights: ``[T, S, kh, kw]``.
        gap: pixels of NaN between neighbouring kernels.

    Returns:
        ``[T * (kh + gap) - gap, S * (kw + gap) - gap]``; kernel ``(t, s)`` starts at
        row ``t * (kh + gap)``, column ``s * (kw + gap)``.

    Raises:
        ValueError: ``weights`` is not 4-D, or ``gap < 0``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4:
        raise ValueError(f"weights must be [target, source, kh, kw], got shape {weights.shape}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    t, s, kh, kw = weights.shape
    out = np.full((t * (kh + gap) - gap, s * (kw + gap) - gap), np.nan)
    for i in range(t):
        for j in range(s):
            r, c = i * (kh + gap), j * (kw + gap)
            out[r : r + kh, c : c + kw] = weights[i, j]
    return out


def _units(circuit: Any, name: str, n: int) -> list[int]:
    units = getattr(circuit, name, None)
    if units is None:
        return list(range(n))
    units = [int(u) for u in units]
    if len(units) != n:
        raise ValueError(f"circuit.{name} lists {len(units)} units but the weights have {n}")
    return units


def weight_diagram(circuit: Any, *, max_labels: int = 32) -> Figure:
    """The expanded weights of a circuit as a grid of kernels (Distill style).

    Rows are the target units, columns the source units, each in family order;
    every cell is the spatial kernel from that source to that target. One colour
    scale, symmetric about zero, covers the whole grid: red is excitation, blue
    inhibition, white zero.

    Args:
        circuit: a :class:`equifind.circuits.CircuitScore` (or any object with
            ``weights`` ``[target, source, kh, kw]`` and optionally ``kind``,
            ``transform``, ``score``, ``p_value``, ``q_value``, ``n_null``,
            ``source_layer``, ``target_layer``, ``source_units``, ``target_units``).
        max_labels: at most this many unit labels per axis.

    Returns:
        The figure (not registered with pyplot).

    Raises:
        TypeError: ``circuit`` has no ``weights``.
        ValueError: weights that are not a finite, non-empty 4-D array, or unit
            lists of the wrong length.
    """
    w = _weights(circuit)
    t, s, kh, kw = w.shape
    src = _units(circuit, "source_units", s)
    tgt = _units(circuit, "target_units", t)
    gap = 1 if max(kh, kw) > 1 else 0
    mosaic = weight_mosaic(w, gap)
    vmax = float(np.abs(w).max()) or 1.0
    cell = min(0.7, max(0.12, 9.0 / max(s, t)))
    fig = Figure(figsize=(max(5.5, 2.6 + s * cell), 2.2 + t * cell), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[_CMAP].with_extremes(bad="white")
    im = ax.imshow(mosaic, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    step_s, step_t = max(1, math.ceil(s / max_labels)), max(1, math.ceil(t / max_labels))
    cols = list(range(0, s, step_s))
    rows = list(range(0, t, step_t))
    ax.set_xticks([j * (kw + gap) + (kw - 1) / 2 for j in cols])
    ax.set_xticklabels([str(src[j]) for j in cols], fontsize=7, rotation=90 if s > 12 else 0)
    ax.set_yticks([i * (kh + gap) + (kh - 1) / 2 for i in rows])
    ax.set_yticklabels([str(tgt[i]) for i in rows], fontsize=7)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    src_layer = str(getattr(circuit, "source_layer", "source"))
    tgt_layer = str(getattr(circuit, "target_layer", "target"))
    ax.set_xlabel(f"source: {src_layer} unit", fontsize=8)
    ax.set_ylabel(f"target: {tgt_layer} unit", fontsize=8)
    kind = str(getattr(circuit, "kind", "circuit"))
    transform = getattr(circuit, "transform", None)
    title = f"{kind}" + (f" ({transform})" if transform else "")
    evidence = q_and_p(getattr(circuit, "q_value", None), getattr(circuit, "p_value", None), null_size(circuit))
    title += f"\nscore {num(getattr(circuit, 'score', None), '.3f')}, {evidence}"
    null = getattr(circuit, "null_mean", None)
    if null is not None:
        title += f", null mean {num(null, '.3f')}"
    ax.set_title(f"{title}\n{src_layer} → {tgt_layer}, kernels {kh}×{kw}", fontsize=9)
    fig.colorbar(im, ax=ax, label="expanded weight\n(red excitation, blue inhibition)", shrink=0.8)
    return fig
