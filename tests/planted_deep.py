"""Planted-network variants for end-to-end discovery tests (built on :mod:`planted`).

``planted_layer`` draws its luminance filters (edges, bars, isotropic and flip units)
with equal RGB weights, ``(R + G + B) / 3``. A hue rotation in YIQ keeps the luma
``Y = 0.299 R + 0.587 G + 0.114 B`` but not ``R + G + B``, so those filters respond to
hue-rotated colour stimuli with a cosine hue tuning of their own: for the hue
transform they are genuinely (weakly) hue-selective, not invariant.
:func:`luma_planted` gives them luma weights instead — identical responses to grey
images (the weights sum to 1 either way), exactly hue-invariant ones to colour stimuli
in gamut — so the same network has a clean hue ground truth too.
"""

from __future__ import annotations

import torch

from equifind.transforms import RGB_TO_YIQ
from planted import Planted, planted_layer

__all__ = ["luma_planted", "grey_units"]


def grey_units(p: Planted) -> list[int]:
    """The planted units whose templates are luminance filters (all but hue and random units)."""
    return sorted(p.edges + p.bars + list(p.flips) + p.invariant)


def luma_planted(**kwargs: object) -> Planted:
    """``planted_layer(**kwargs)`` with its luminance filters weighted by luma instead of ``(R+G+B)/3``.

    For each luminance unit the channel mean of its filter (template plus the mean of any
    planted noise) is redistributed over R, G, B in proportion to the YIQ luma weights;
    the per-channel deviations from that mean (the noise's colour part) are kept.
    """
    p = planted_layer(**kwargs)  # type: ignore[arg-type]
    conv = p.net[0]
    luma = (3.0 * RGB_TO_YIQ[0]).to(conv.weight.dtype)[:, None, None]  # sums to 3
    units = grey_units(p)
    with torch.no_grad():
        w = conv.weight[units]
        mean = w.mean(dim=1, keepdim=True)
        conv.weight[units] = mean * luma + (w - mean)
    return p
