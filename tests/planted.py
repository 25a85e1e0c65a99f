"""Planted networks whose equivariant families are known exactly.

``planted_layer`` is one conv layer (+ ReLU) whose filters are rotated copies of
an oriented template (smooth analytic templates, any angle), hue-rotated copies
of a colour centre-surround template, a left/right flipped pair, isotropic
(rotation-invariant) units and random units. ``e2cnn_layer`` is an e2cnn C_N
network with regular fields, exported to a plain ``nn.Conv2d`` with its output
channels shuffled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


K = 15  # kernel side
SIGMA = 3.0


def _coords(k: int = K) -> tuple[Tensor, Tensor]:
    r = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    return y, x


def oriented_edge(angle_deg: float, k: int = K) -> Tensor:
    """An odd-symmetric (edge) Gabor, dark→bright along direction ``angle`` (CCW as displayed), ``[3, k, k]``.

    At angle 0 it prefers the ``equifind.stimuli.edge`` of contrast +1 (dark left, bright right).
    """
    y, x = _coords(k)
    a = math.radians(angle_deg)
    # Direction (cos a, sin a) in displayed coordinates: x right, y up = -row.
    u = x * math.cos(a) - y * math.sin(a)
    g = torch.exp(-(x**2 + y**2) / (2 * SIGMA**2)) * torch.sin(2 * math.pi * u / (4 * SIGMA))
    return (g / g.abs().sum()).expand(3, k, k).float() / 3


def oriented_bar(angle_deg: float, k: int = K) -> Tensor:
    """An even-symmetric (line) Gabor: period 180°, ``[3, k, k]``."""
    y, x = _coords(k)
    a = math.radians(angle_deg)
    u = x * math.cos(a) - y * math.sin(a)
    g = torch.exp(-(x**2 + y**2) / (2 * SIGMA**2)) * torch.cos(2 * math.pi * u / (3 * SIGMA))
    g = g - g.mean()
    return (g / g.abs().sum()).expand(3, k, k).float() / 3


def colour_center_surround(hue_deg: float, k: int = K) -> Tensor:
    """Prefers a centre of hue ``hue_deg`` on a surround of the opposite hue (chroma only), ``[3, k, k]``."""
    y, x = _coords(k)
    d = torch.exp(-(x**2 + y**2) / (2 * 2.0**2)) - 0.5 * torch.exp(-(x**2 + y**2) / (2 * 4.0**2))
    iq = torch.tensor([math.cos(math.radians(hue_deg)), math.sin(math.radians(hue_deg))], dtype=torch.float64)
    from equifind.transforms import RGB_TO_YIQ

    # response = sum over pixels of d * chroma(x) · iq  = <RGB_TO_YIQ[1:]^T iq, rgb>
    w_rgb = RGB_TO_YIQ[1:].double().T @ iq  # [3]
    w = w_rgb[:, None, None] * d[None]
    return (w / w.abs().sum()).float() * 4


def isotropic(k: int = K) -> Tensor:
    """A luminance difference of Gaussians: rotation-invariant, ``[3, k, k]``."""
    y, x = _coords(k)
    d = torch.exp(-(x**2 + y**2) / (2 * 1.5**2)) - 0.4 * torch.exp(-(x**2 + y**2) / (2 * 3.5**2))
    return (d / d.abs().sum()).expand(3, k, k).float() / 3


def asymmetric(k: int = K) -> Tensor:
    """A curve-like template with no mirror symmetry about the vertical axis, ``[3, k, k]``."""
    y, x = _coords(k)
    g = torch.exp(-((x - 2) ** 2 + (y + 2) ** 2) / (2 * 2.0**2)) - torch.exp(-((x + 3) ** 2 + (y - 1) ** 2) / (2 * 2.5**2))
    g = g + 0.5 * torch.exp(-((x - 4) ** 2 + (y - 4) ** 2) / 4.0)
    return (g / g.abs().sum()).expand(3, k, k).float() / 3


@dataclass
class Planted:
    """A planted one-layer network and its known families (unit indices, in family order)."""

    net: nn.Module
    edges: list[int] = field(default_factory=list)  # rotation family, period 360
    edge_angles: list[float] = field(default_factory=list)
    bars: list[int] = field(default_factory=list)  # rotation family, period 180
    bar_angles: list[float] = field(default_factory=list)
    hues: list[int] = field(default_factory=list)  # hue family, period 360
    hue_angles: list[float] = field(default_factory=list)
    flips: tuple[int, int] = (-1, -1)  # a left/right pair
    invariant: list[int] = field(default_factory=list)
    random: list[int] = field(default_factory=list)


def _add_invariant_and_random(
    filters: list[Tensor], tags: list[tuple[str, float]], n_invariant: int, n_random: int, gen: torch.Generator
) -> None:
    """Append isotropic (rotation-invariant) filters of growing gain, then seeded random ones."""
    for i in range(n_invariant):
        filters.append(isotropic() * (1.0 + 0.3 * i))
        tags.append(("invariant", 0.0))
    for _ in range(n_random):
        w = torch.randn(3, K, K, generator=gen)
        filters.append(w / w.abs().sum() * 2)
        tags.append(("random", 0.0))


def planted_layer(
    n_edges: int = 8, n_bars: int = 4, n_hues: int = 6, n_invariant: int = 3, n_random: int = 4,
    edge_offset: float = 10.0, missing_edge: int | None = None, noise: float = 0.0, seed: int = 0,
) -> Planted:  # fmt: skip
    """A conv layer whose filters are planted families, channels in a seeded random order.

    Args:
        missing_edge: index (0..n_edges-1) of an edge angle to leave out (a hole).
        noise: std of Gaussian noise added to every filter, relative to its max |weight|.
    """
    gen = torch.Generator().manual_seed(seed)
    filters: list[Tensor] = []
    tags: list[tuple[str, float]] = []
    for i in range(n_edges):
        if i != missing_edge:
            a = edge_offset + 360.0 * i / n_edges
            filters.append(oriented_edge(a))
            tags.append(("edge", a))
    for i in range(n_bars):
        a = 25.0 + 180.0 * i / n_bars
        filters.append(oriented_bar(a))
        tags.append(("bar", a))
    for i in range(n_hues):
        h = 360.0 * i / n_hues
        filters.append(colour_center_surround(h))
        tags.append(("hue", h))
    filters += [asymmetric(), asymmetric().flip(-1)]
    tags += [("flip", 0.0), ("flip", 1.0)]
    _add_invariant_and_random(filters, tags, n_invariant, n_random, gen)
    weight = torch.stack(filters)
    if noise:
        weight = weight + noise * weight.abs().amax(dim=(1, 2, 3), keepdim=True) * torch.randn(weight.shape, generator=gen)
    order = torch.randperm(len(filters), generator=gen)  # new channel c holds planted filter order[c]
    conv = nn.Conv2d(3, len(filters), K, padding=K // 2)
    with torch.no_grad():
        conv.weight.copy_(weight[order])
        conv.bias.zero_()
    net = nn.Sequential(conv, nn.ReLU())
    where = {int(old): new for new, old in enumerate(order.tolist())}
    out = Planted(net)
    for old, (kind, value) in enumerate(tags):
        unit = where[old]
        if kind == "edge":
            out.edges.append(unit), out.edge_angles.append(value)
        elif kind == "bar":
            out.bars.append(unit), out.bar_angles.append(value)
        elif kind == "hue":
            out.hues.append(unit), out.hue_angles.append(value)
        elif kind == "invariant":
            out.invariant.append(unit)
        elif kind == "random":
            out.random.append(unit)
    flip_units = [where[old] for old, (kind, _) in enumerate(tags) if kind == "flip"]
    out.flips = (flip_units[0], flip_units[1])
    return out


def centred(images: Tensor) -> Tensor:
    """Preprocessing for planted nets: grey 0.5 → 0, so a blank image gives no response."""
    return images - 0.5


@dataclass
class E2Layer:
    """An exported e2cnn C_N layer: ``fields[i]`` lists the channels of regular field i in group order."""

    net: nn.Module
    n: int
    fields: list[list[int]]
    trivial: list[int]


def e2cnn_layer(n: int = 4, regular: int = 4, trivial: int = 2, depth: int = 1, seed: int = 0) -> E2Layer:
    """A C_n-equivariant network (regular fields, ReLU), exported to plain convs, output channels shuffled.

    Args:
        n: rotation group order (4 or 8).
        regular: regular fields in each layer (each a family of n units).
        trivial: trivial (invariant) fields in the last layer.
        depth: number of R2Conv layers (1 or 2).
    """
    from e2cnn import gspaces
    from e2cnn import nn as enn

    torch.manual_seed(seed)
    gs = gspaces.Rot2dOnR2(N=n)
    in_type = enn.FieldType(gs, 3 * [gs.trivial_repr])
    layers: list[enn.EquivariantModule] = []
    t = in_type
    for d in range(depth):
        last = d == depth - 1
        out = enn.FieldType(gs, regular * [gs.regular_repr] + (trivial * [gs.trivial_repr] if last else []))
        layers += [enn.R2Conv(t, out, kernel_size=9, padding=4, initialize=True), enn.ReLU(out)]
        t = out
    model = enn.SequentialModule(*layers)
    model.eval()
    plain = model.export().eval()
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    last_conv = convs[-1]
    gen = torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(last_conv.out_channels, generator=gen)  # new channel c = old channel perm[c]
    with torch.no_grad():
        last_conv.weight.copy_(last_conv.weight[perm].clone())
        if last_conv.bias is not None:
            last_conv.bias.copy_(last_conv.bias[perm].clone())
    where = {int(old): new for new, old in enumerate(perm.tolist())}
    fields = [[where[f * n + i] for i in range(n)] for f in range(regular)]
    trivial_units = [where[regular * n + j] for j in range(trivial)]
    return E2Layer(plain, n, fields, trivial_units)


@dataclass
class Decoy:
    """A planted layer whose ``family`` is rotated copies on grey images only (see :func:`decoy_layer`)."""

    net: nn.Module
    family: list[int]  # in the order of the planted angles (CCW, 360/n apart)
    angles: list[float]
    invariant: list[int] = field(default_factory=list)
    random: list[int] = field(default_factory=list)


def colour_opponent(gen: torch.Generator, k: int = K, sigma: float = 2.0) -> Tensor:
    """A smooth random colour-opponent kernel, ``[3, k, k]``: zero sum over the three input
    channels at every pixel (so it gives exactly 0 on any grey image, R = G = B), under a
    Gaussian envelope; normalised to abs-sum 1."""
    y, x = _coords(k)
    noise = torch.randn(3, k, k, generator=gen, dtype=torch.float64)
    blur = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    noise = torch.fft.irfft2(torch.fft.rfft2(noise) * torch.fft.rfft2(torch.fft.ifftshift(blur)), s=(k, k))  # circular blur
    noise = noise - noise.mean(dim=0, keepdim=True)  # opponent: R + G + B = 0 at each pixel
    w = noise * torch.exp(-(x**2 + y**2) / (2 * (k / 4) ** 2))
    return (w / w.abs().sum()).float()


def decoy_layer(
    n_family: int = 8, colour: float = 4.0, n_invariant: int = 3, n_random: int = 8, seed: int = 0
) -> Decoy:
    """A conv layer (+ ReLU) with a family that is equivariant on grey images and not otherwise.

    The family's kernels are an oriented edge rotated by 360/``n_family`` (their luminance
    part, equal in R, G and B) plus a per-unit random :func:`colour_opponent` part of abs-sum
    ``colour`` (the luminance part's is 1). On grey images the colour part is exactly zero,
    so on grey discovery stimuli the units are exact rotated copies; on coloured images
    (natural patches, feature visualizations) the random colour parts dominate and are not.
    ``colour=0`` gives the same layer without the colour part: a true family (the control).
    Channels in a seeded random order; biases zero.
    """
    gen = torch.Generator().manual_seed(seed)
    filters: list[Tensor] = []
    tags: list[tuple[str, float]] = []
    for i in range(n_family):
        a = 10.0 + 360.0 * i / n_family
        opp = colour_opponent(gen)
        filters.append(oriented_edge(a) + colour * opp)
        tags.append(("family", a))
    _add_invariant_and_random(filters, tags, n_invariant, n_random, gen)
    order = torch.randperm(len(filters), generator=gen)
    conv = nn.Conv2d(3, len(filters), K, padding=K // 2)
    with torch.no_grad():
        conv.weight.copy_(torch.stack(filters)[order])
        conv.bias.zero_()
    where = {int(old): new for new, old in enumerate(order.tolist())}
    out = Decoy(nn.Sequential(conv, nn.ReLU()), [], [])
    for old, (kind, value) in enumerate(tags):
        if kind == "family":
            out.family.append(where[old]), out.angles.append(value)
        elif kind == "invariant":
            out.invariant.append(where[old])
        else:
            out.random.append(where[old])
    return out
