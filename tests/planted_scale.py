"""Planted networks for scale-family discovery, with known answers.

``scale_layer`` is one conv layer (+ ReLU): a luminance centre-surround template
(a balanced difference of Gaussians, surround 1.6× the centre) at 5 sizes spaced by
√2 (one octave every two sizes), the scale family; units whose response does not depend
on the zoom (a constant: zero kernel, positive bias); and seeded random kernels.
``same_size=True`` plants the template at *one* size in the 5 units instead (with
different gains): the same feature copied, which is not a scale family. Channels are in a
seeded random order. Kernels are normalised to abs-sum 1 before the gain, so zoomed
copies respond equally strongly (``k_a(x) = k(x / a) / a²``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from planted import _coords

K = 31  # kernel side: holds the largest surround (σ 6.4 px) to ±2.3σ
SIGMA0 = 1.0  # centre σ (px) of the smallest planted size
RATIO = math.sqrt(2.0)  # size ratio between neighbouring members
SURROUND = 1.6  # surround σ / centre σ
N_SIZES = 5


def centre_surround(sigma: float, k: int = K) -> Tensor:
    """A balanced luminance DoG (on-centre), centre σ ``sigma``, surround ``SURROUND``·σ, ``[3, k, k]``, abs-sum 1."""
    y, x = _coords(k)
    rr = x**2 + y**2

    def gauss(s: float) -> Tensor:
        g = torch.exp(-rr / (2 * s**2))
        return g / g.sum()

    d = gauss(sigma) - gauss(SURROUND * sigma)
    return (d / d.abs().sum()).expand(3, k, k).float() / 3


@dataclass
class PlantedScale:
    """A planted one-layer network: ``family`` in ascending size, their centre σ, and the controls."""

    net: nn.Module
    family: list[int] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    invariant: list[int] = field(default_factory=list)
    random: list[int] = field(default_factory=list)


def scale_layer(same_size: bool = False, n_invariant: int = 2, n_random: int = 6, seed: int = 0) -> PlantedScale:
    """A conv layer (+ ReLU, padding 0) with a planted scale family (see the module docstring).

    Args:
        same_size: plant the smallest-but-two size (σ = 2 px, the middle one) in all 5 units,
            with gains 1, 1.3, 1.6, ... (not a scale family: one size).
        n_invariant: constant units (zero kernel, bias 0.5).
        n_random: seeded random kernels (abs-sum 2).
        seed: seeds the random kernels and the channel order.
    """
    gen = torch.Generator().manual_seed(seed)
    filters: list[Tensor] = []
    bias: list[float] = []
    tags: list[tuple[str, float]] = []
    for i in range(N_SIZES):
        sigma = SIGMA0 * RATIO ** (2 if same_size else i)
        filters.append(centre_surround(sigma) * (1.0 + 0.3 * i if same_size else 1.0))
        bias.append(0.0)
        tags.append(("family", sigma))
    for _ in range(n_invariant):
        filters.append(torch.zeros(3, K, K))
        bias.append(0.5)
        tags.append(("invariant", 0.0))
    for _ in range(n_random):
        w = torch.randn(3, K, K, generator=gen)
        filters.append(w / w.abs().sum() * 2)
        bias.append(0.0)
        tags.append(("random", 0.0))
    order = torch.randperm(len(filters), generator=gen)  # new channel c holds planted filter order[c]
    conv = nn.Conv2d(3, len(filters), K)  # padding 0: only the probe's centre unit matters, 8× less work
    with torch.no_grad():
        conv.weight.copy_(torch.stack(filters)[order])
        conv.bias.copy_(torch.tensor(bias)[order])
    where = {int(old): new for new, old in enumerate(order.tolist())}
    out = PlantedScale(nn.Sequential(conv, nn.ReLU()))
    for old, (kind, value) in enumerate(tags):
        if kind == "family":
            out.family.append(where[old]), out.sigmas.append(value)
        elif kind == "invariant":
            out.invariant.append(where[old])
        else:
            out.random.append(where[old])
    return out
