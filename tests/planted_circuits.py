"""Planted networks with known weight circuits, for tests/test_circuits.py.

Every planted net is ``AvgPool2d(4) · Conv2d(3→C1) · ReLU · Conv2d(C1→C2)``
(layers "0" … "3"; the pool keeps the maps small at the 224 input size).
Layer "2" (the ReLU) holds the source units, layer "3" the target units; the
expanded weights "2"→"3" are exactly the second conv's kernels, which are
planted as transformed copies of templates:

* invariant→equivariant: ``W[b_j, a] = g_j · K_a``;
* equivariant→invariant: ``W[b, a_i] = g_i · K_b``;
* equivariant→equivariant: ``W[b_j, a_i] = g_j · K_{(i-j) mod n}``;

with ``g_j`` the rotation by ``θ_j = j·360/n`` counter-clockwise as displayed
(exact ``torch.rot90`` for n = 4; an analytic smooth template sampled at the
rotated coordinates for other n), the mirror of the columns for flip (j ∈ {0, 1}),
and nothing for hue (hue acts by relabelling only: a circulant). The first conv
plants matching features (rotated, mirrored or hue-rotated copies; radially
symmetric, mirror-symmetric or grey kernels for the invariant units) and a
few random distractor units sit in both layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# NTSC RGB -> YIQ rows (Y, I, Q), as in equifind.transforms; hue = angle in (I, Q).
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=torch.float64
)


@dataclass
class Planted:
    """A planted net with the units of its circuit.

    Attributes:
        net: the module (RGB in, conv map out).
        source_layer, source_units, source_invariant: the source side ("2"; a family in
            order, members at ``j * 360 / n`` (flip: 0, 1), or invariant units).
        target_layer, target_units, target_invariant: the target side ("3"), likewise.
        weights: the planted block ``Tensor[target, source, k, k]`` (units in order).
    """

    net: nn.Sequential
    source_layer: str
    source_units: list[int]
    source_invariant: bool
    target_layer: str
    target_units: list[int]
    target_invariant: bool
    weights: Tensor


def smooth_template(size: int, gen: torch.Generator, blobs: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """Random blob parameters (x, y, amplitude) of a smooth template (Gaussian blobs, sigma 1.1 px)."""
    r = (size - 1) / 2 * 0.55
    xy = (torch.rand(blobs, 2, generator=gen, dtype=torch.float64) * 2 - 1) * r
    amp = torch.randn(blobs, generator=gen, dtype=torch.float64)
    return xy[:, 0], xy[:, 1], amp


def _template(kind: str, size: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Blob parameters of a "blobs", "isotropic" or "oriented" template (see :func:`planted`)."""
    if kind == "blobs":
        return smooth_template(size, gen)
    amp = torch.randn(1, generator=gen, dtype=torch.float64).abs() + 0.5
    if kind == "isotropic":
        return torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), amp
    if kind != "oriented":
        raise ValueError(f"template must be 'blobs', 'isotropic' or 'oriented', got {kind!r}")
    d = 0.3 * (size - 1) / 2 + 0.35  # the dipole's half-separation (px)
    angle = float(torch.rand(1, generator=gen)) * 2 * math.pi
    dx, dy = d * math.cos(angle), d * math.sin(angle)
    bx = torch.tensor([dx, -dx, 0.4 * dy], dtype=torch.float64)
    by = torch.tensor([dy, -dy, -0.4 * dx], dtype=torch.float64)
    return bx, by, amp * torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)  # the third blob breaks the mirror symmetry


def render(template: tuple[Tensor, Tensor, Tensor], size: int, degrees: float, mirror: bool = False) -> Tensor:
    """The template rotated by ``degrees`` CCW as displayed (then mirrored), sampled on ``size × size`` pixels."""
    bx, by, amp = template
    if mirror:
        bx = -bx
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    # A point (x, y) (y down) moves to (x c + y s, -x s + y c) under CCW-on-screen rotation.
    rx, ry = bx * c + by * s, -bx * s + by * c
    d = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(d, d, indexing="ij")
    k = (amp[:, None, None] * torch.exp(-((xx - rx[:, None, None]) ** 2 + (yy - ry[:, None, None]) ** 2) / (2 * 1.1**2)))
    return k.sum(0).float()


def move(kernel: Tensor, transform: str, member: int, n: int, exact: bool, template=None) -> Tensor:
    """``g_member · kernel`` (``kernel`` [..., k, k]); smooth rotations re-render ``template`` instead."""
    if transform == "flip":
        return kernel.flip(-1) if member % 2 else kernel
    if transform == "hue":
        return kernel
    if exact:
        return torch.rot90(kernel, member * 4 // n, dims=(-2, -1))
    return render(template, kernel.shape[-1], member * 360.0 / n)


def _layer1(kind: str, transform: str, n: int, size: int, gen: torch.Generator) -> Tensor:
    """First-conv kernels ``[n, 3, size, size]``: a family (kind "eq") or invariant units (kind "inv")."""
    d = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(d, d, indexing="ij")
    if kind == "inv":
        out = []
        for _ in range(n):
            if transform == "rotation":  # radially symmetric centre-surround
                a, b = torch.rand(2, generator=gen) + 0.5
                k = torch.exp(-(xx**2 + yy**2) / (2 * a**2)) - 0.5 * torch.exp(-(xx**2 + yy**2) / (2 * (a + b) ** 2))
                out.append(k * torch.randn(3, 1, 1, generator=gen))
            else:  # flip: mirror-symmetric; hue: grey (luma only)
                k = torch.randn(size, size, generator=gen)
                k = k + k.flip(-1) if transform == "flip" else k
                out.append(k.expand(3, size, size) * (1.0 if transform == "flip" else torch.rand(1, generator=gen)))
        return torch.stack(out)
    if transform == "rotation":  # an oriented edge at n angles
        return torch.stack([
            (torch.tanh(xx * math.cos(t) - yy * math.sin(t)) * torch.exp(-(xx**2 + yy**2) / 4)).expand(3, size, size)
            for t in (2 * math.pi * j / n for j in range(n))
        ])
    if transform == "flip":
        k = torch.randn(3, size, size, generator=gen)
        return torch.stack([k, k.flip(-1)])
    # hue: a centre-surround colour template whose chroma turns by 360/n per member
    yiq_inv = torch.linalg.inv(_RGB_TO_YIQ).float()
    blob = torch.exp(-(xx**2 + yy**2) / 2)
    out = []
    for j in range(n):
        h = 2 * math.pi * j / n
        yiq = torch.tensor([0.0, math.cos(h), math.sin(h)])
        out.append(torch.einsum("c,hw->chw", yiq_inv @ yiq, blob))
    return torch.stack(out)


def planted(
    kind: str,
    transform: str = "rotation",
    n: int = 4,
    m: int = 6,
    size: int = 5,
    exact: bool = True,
    shuffle: bool = False,
    seed: int = 0,
    template: str = "blobs",
    moved: bool = True,
    noise: float = 0.0,
) -> Planted:
    """A planted two-layer circuit.

    Args:
        kind: "inv→eq", "eq→inv" or "eq→eq".
        transform: "rotation", "flip" or "hue".
        n: family size (2 for flip).
        m: number of invariant units.
        size: second-layer kernel side.
        exact: rotations by ``torch.rot90`` (n must be 4); else analytic smooth templates.
        shuffle: permute the planted kernels across all (target, source) pairs (seeded): the broken control.
        seed: seeds templates, distractors and the shuffle.
        template: "blobs" (random Gaussian blobs), "isotropic" (one centred blob: no
            orientation) or "oriented" (a dipole at a random angle: one smooth oriented kernel).
        moved: False plants the unmoved template for every member (``W[b_j, a_i] = K_i``):
            the same, unrotated kernels everywhere, a circuit without the symmetry.
        noise: Gaussian noise added to the planted block, times its standard deviation.
    """
    gen = torch.Generator().manual_seed(seed)
    if transform == "flip":
        n = 2
    src_kind, tgt_kind = kind.split("→")
    ns, nt = (n if src_kind == "eq" else m), (n if tgt_kind == "eq" else m)
    extra1, extra2 = 3, 2
    c1, c2 = ns + extra1, nt + extra2
    k1 = 5
    w1 = torch.randn(c1, 3, k1, k1, generator=gen) * 0.3
    w1[:ns] = _layer1(src_kind, transform, ns, k1, gen)
    w2 = torch.randn(c2, c1, size, size, generator=gen) * 0.3
    n_templates = m if kind != "eq→eq" else n
    templates = [_template(template, size, gen) for _ in range(n_templates)]
    kernels = [render(t, size, 0.0) for t in templates]
    block = torch.zeros(nt, ns, size, size)
    for j in range(nt):
        for i in range(ns):
            if not moved:
                block[j, i] = kernels[i % len(kernels)]
            elif kind == "inv→eq":
                block[j, i] = move(kernels[i], transform, j, n, exact, templates[i])
            elif kind == "eq→inv":
                block[j, i] = move(kernels[j], transform, i, n, exact, templates[j])
            else:
                r = (i - j) % n
                block[j, i] = move(kernels[r], transform, j, n, exact, templates[r])
    if noise:
        block = block + noise * block.std() * torch.randn(block.shape, generator=gen)
    if shuffle:
        order = torch.randperm(nt * ns, generator=gen)
        block = block.reshape(nt * ns, size, size)[order].reshape(nt, ns, size, size)
    w2[:nt, :ns] = block
    # Interleave: the planted units are not simply the first channels.
    p1, p2 = torch.randperm(c1, generator=gen), torch.randperm(c2, generator=gen)
    w1, w2 = w1[p1], w2[p2][:, p1]
    src_units = [int(torch.nonzero(p1 == i)) for i in range(ns)]
    tgt_units = [int(torch.nonzero(p2 == j)) for j in range(nt)]
    net = nn.Sequential(
        nn.AvgPool2d(4),
        nn.Conv2d(3, c1, k1, padding=k1 // 2),
        nn.ReLU(),
        nn.Conv2d(c1, c2, size, padding=size // 2),
    )
    with torch.no_grad():
        net[1].weight.copy_(w1)
        net[3].weight.copy_(w2)
        net[1].bias.normal_(0, 0.1, generator=gen)
        net[3].bias.normal_(0, 0.1, generator=gen)
    return Planted(net, "2", src_units, src_kind == "inv", "3", tgt_units, tgt_kind == "inv", block)


class MixedBlock(nn.Module):
    """A small InceptionV1-like stem and block, with the block's four branches concatenated.

    stem: conv 3→6 (3×3) · ReLU (layer "stem") · LRN · 3×3/2 max pool (ceil mode);
    block: 1×1 (→4), 1×1 (→3) · ReLU · 3×3 (→5), 1×1 (→2) · ReLU · 5×5 (→3),
    3×3/1 max pool (pad 1) · 1×1 (→2), each · ReLU, concatenated (layer "mixed", 14 units).
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.pool0 = nn.AvgPool2d(4)
        self.stem_conv = nn.Conv2d(3, 6, 3, padding=1)
        self.stem = nn.ReLU()
        self.b1 = nn.Conv2d(6, 4, 1)
        self.b3r = nn.Conv2d(6, 3, 1)
        self.b3 = nn.Conv2d(3, 5, 3, padding=1)
        self.b5r = nn.Conv2d(6, 2, 1)
        self.b5 = nn.Conv2d(2, 3, 5, padding=2)
        self.bp = nn.Conv2d(6, 2, 1)
        self.mixed = Concat()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(self.stem_conv(self.pool0(x)))
        x = nn.functional.local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=1.0)
        x = nn.functional.max_pool2d(x, 3, 2, ceil_mode=True)
        relu = torch.relu
        b1 = relu(self.b1(x))
        b3 = relu(self.b3(relu(self.b3r(x))))
        b5 = relu(self.b5(relu(self.b5r(x))))
        bp = relu(self.bp(nn.functional.max_pool2d(x, 3, 1, padding=1)))
        return self.mixed([b1, b3, b5, bp])


class Concat(nn.Module):
    """Concatenate along channels (the mixed layer's module)."""

    def forward(self, parts: list[Tensor]) -> Tensor:
        return torch.cat(parts, dim=1)


def mixed_block_expected(block: MixedBlock) -> Tensor:
    """Expanded weights "stem" → "mixed" by direct composition: ``Tensor[14, 6, 11, 11]``.

    In the pooled map the block is a 5×5 linear kernel per (target, stem channel):
    1×1, bottleneck·3×3 and bottleneck·5×5 products, and the 1×1 after a 3×3
    average; the stride-2 3×3 average before it spreads each tap over 3×3 stem
    positions two apart (a transposed convolution), giving 11×11.
    """
    w = lambda conv: conv.weight.detach()  # noqa: E731
    k = torch.zeros(14, 6, 5, 5)
    k[0:4, :, 2, 2] = w(block.b1)[:, :, 0, 0]
    k[4:9, :, 1:4, 1:4] = torch.einsum("tmyx,ms->tsyx", w(block.b3), w(block.b3r)[:, :, 0, 0])
    k[9:12] = torch.einsum("tmyx,ms->tsyx", w(block.b5), w(block.b5r)[:, :, 0, 0])
    k[12:14, :, 1:4, 1:4] = (w(block.bp)[:, :, 0, 0] / 9.0)[:, :, None, None].expand(2, 6, 3, 3)
    ones = torch.ones(1, 1, 3, 3) / 9.0
    flat = k.reshape(14 * 6, 1, 5, 5)
    return nn.functional.conv_transpose2d(flat, ones, stride=2).reshape(14, 6, 11, 11)
