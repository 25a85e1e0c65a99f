"""Moving convolution kernels: the smooth kernel model, and the rotation ceiling it implies.

Kernels move by the same output -> input maps as images (:mod:`.resample`), read
through a smooth model instead of bilinear sampling (see :func:`move_kernels`).
A transform's action on kernels (:meth:`Transform.apply_kernels`) is one call here.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .resample import mirror_matrices, rotation_matrices, sample_points

__all__ = ["move_kernels", "rotate_kernels", "rotation_ceiling"]


#: Kernels whose longer side is at most this many pixels move with the smooth model of
#: :func:`move_kernels`; longer ones (where its dense operator costs side⁴ per kernel) bilinearly.
_SMOOTH_MAX_SIDE = 11
_RBF_SIGMA = 1.0  # px: width of the Gaussian basis function on each pixel centre
_ENVELOPE = 0.4  # std of the Gaussian envelope, as a fraction of the kernel's longer side
_CHUNK = 2**21  # operator entries built at once (float64)


def _check_moves(kernels: object, degrees: Tensor | float, flip: Tensor | None) -> tuple[Tensor, Tensor]:
    """Validated ``(degrees, mirror)``, float64 on the kernels' device: ``Tensor[1]`` or ``Tensor[N]`` each."""
    _check_kernels(kernels)
    n = kernels.shape[0]  # type: ignore[union-attr]
    deg = torch.as_tensor(degrees, dtype=torch.float64, device=kernels.device)
    mirror = torch.as_tensor(0.0 if flip is None else flip, dtype=torch.float64, device=kernels.device)
    for name, v in (("degrees", deg), ("flip", mirror)):
        if v.dim() > 1 or v.numel() not in (1, n):
            raise ValueError(f"{name} must be a float or a Tensor[{n}] (one per kernel), got shape {list(v.shape)}")
    return torch.remainder(deg.reshape(-1), 360.0), mirror.reshape(-1)


def _move_bilinear(kernels: Tensor, x_in: Tensor, y_in: Tensor) -> Tensor:
    """``grid_sample`` of ``kernels [N, C, kh, kw]`` at the points ``[N or 1, kh, kw]``; zeros outside."""
    n, _, kh, kw = kernels.shape
    # align_corners=False: pixel i of a side of size k sits at (2i + 1) / k - 1.
    grid = torch.stack([(2 * (x_in + (kw - 1) / 2) + 1) / kw - 1, (2 * (y_in + (kh - 1) / 2) + 1) / kh - 1], -1)
    return F.grid_sample(kernels, grid.expand(n, kh, kw, 2).to(kernels.dtype), mode="bilinear",
                         padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=64)
def _pixel_weights(side: int, tau: float) -> Tensor:
    """``Tensor[side, side]`` float64 (CPU): ``Φ⁻¹ diag(1 / e)``, with Φ the 1-D Gaussian Gram matrix of the
    ``side`` pixel centres and ``e`` the envelope (std ``tau``) there."""
    d = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    gram = torch.exp(-((d[:, None] - d[None, :]) ** 2) / (2 * _RBF_SIGMA**2))
    return torch.linalg.inv(gram) * torch.exp(d**2 / (2 * tau**2))


def _cardinal(points: Tensor, side: int, tau: float) -> Tensor:
    """``Tensor[*points.shape, side]`` float64: weight of each pixel along one axis in the value at ``points``
    (px from the centre) of the enveloped 1-D interpolant ``e(t) Σ_j L_j(t) f_j / e(t_j)``, with ``L_j`` the
    Gaussian-RBF cardinal functions (``L_j(t_i) = δ_ij``) and ``e`` the Gaussian envelope of std ``tau``.

    Two exponentials per point instead of one per pixel: with ``t`` the distance from the first pixel,
    ``exp(−(t − k)²/2σ²) = exp(−t²/2σ²) · exp(t/σ²)^k · exp(−k²/2σ²)`` (no overflow for sides ≤ 11)."""
    k = torch.arange(side, dtype=torch.float64, device=points.device)
    t = points + (side - 1) / 2
    head = torch.exp(-(t**2) / (2 * _RBF_SIGMA**2) - points**2 / (2 * tau**2))[..., None]
    step = torch.exp(t / _RBF_SIGMA**2)[..., None].expand(*points.shape, side - 1)
    powers = torch.cat([torch.ones_like(head), torch.cumprod(step, -1)], -1)
    basis = head * powers * torch.exp(-(k**2) / (2 * _RBF_SIGMA**2))
    return basis @ _pixel_weights(side, tau).to(points.device)


def _smooth_operators(x_in: Tensor, y_in: Tensor, dtype: torch.dtype) -> Tensor:
    """``Tensor[M, kh*kw, kh*kw]`` of ``dtype``: the linear maps from a kernel to its moved copy, for the sample
    points ``[M, kh, kw]``. The model is separable (a product of Gaussians), so each entry is a product of
    two 1-D weights (computed in float64): ``op[(i, j), (a, b)] = wy[i, j, a] · wx[i, j, b]``."""
    m, kh, kw = x_in.shape
    tau = _ENVELOPE * max(kh, kw)
    wx, wy = _cardinal(x_in, kw, tau).to(dtype), _cardinal(y_in, kh, tau).to(dtype)  # [M, kh, kw, kw | kh]
    return (wy[..., :, None] * wx[..., None, :]).reshape(m, kh * kw, kh * kw)


def _move_smooth(kernels: Tensor, matrices: Tensor) -> Tensor:
    """Apply the smooth model's operators; one shared operator when every kernel makes the same move."""
    n, c, kh, kw = kernels.shape
    work = torch.promote_types(kernels.dtype, torch.float32)
    flat = kernels.reshape(n, c, kh * kw).to(work)
    if matrices.shape[0] == 1:
        op = _smooth_operators(*sample_points(matrices, kh, kw), work)[0]
        return (flat @ op.T).reshape(n, c, kh, kw).to(kernels.dtype)
    step = max(1, _CHUNK // (kh * kw) ** 2)  # chunks of kernels bound the memory of their [K, K] operators
    out = []
    for i in range(0, n, step):
        op = _smooth_operators(*sample_points(matrices[i : i + step], kh, kw), work)
        out.append(torch.bmm(flat[i : i + step], op.transpose(1, 2)))
    return torch.cat(out).reshape(n, c, kh, kw).to(kernels.dtype)


def move_kernels(kernels: Tensor, matrices: Tensor) -> Tensor:
    """Move a batch of kernels, each by its own output -> input map, without a loop over kernels.

    Model, for kernels up to 11 px a side. Each kernel is a continuous function
    ``f(x) = e(x) Σ_n c_n φ(x − x_n)``: isotropic Gaussian basis functions ``φ``
    (std σ = 1 px) on the pixel centres ``x_n``, under an isotropic Gaussian
    envelope ``e`` (std τ = 0.4 × the longer side), with ``c = Φ⁻¹ (K / e)`` so
    that ``f`` interpolates the pixels exactly (Φ the Gram matrix ``φ(x_n − x_n')``,
    no ridge: λ = 0). The moved kernel is ``f`` read at the moved pixel centres
    (:func:`~equifind.transforms.resample.sample_points`): one linear operator
    ``Tensor[kh·kw, kh·kw]`` per move, built in float64 and applied in the kernels'
    precision (at least float32). Both Gaussians factor over x and y, so the
    operator is a product of 1-D weights and costs ``O((kh·kw)²)`` per move. ``f``
    is the posterior mean of a Gaussian process with the rotation-invariant
    covariance ``e(x) e(x') φ(x − x')``: hence the identity for the identity map and
    exact permutations for quarter turns and mirrors.

    Why (measured on smooth oriented templates: a first plus a second Gaussian
    derivative, σ = side/4, plus an off-centre blob, sampled exactly at 96 angles
    and mirrors; mean / worst cosine to the moved 0° sample):
    bilinear resampling gave 0.969 / 0.910 at 3×3, 0.992 / 0.971 at 5×5 and
    0.993 / 0.976 at 7×7; this model gives 0.995 / 0.983, 0.9997 / 0.9986 and
    0.9991 / 0.9963. Without the envelope (a prior that kernels fade towards their
    border) 3×3 drops to 0.959 (5×5 and 7×7 hardly change). σ and τ: over σ in
    0.8–1.1 px and τ in 0.3–0.6 × side, the templates and a prior-free check on
    real kernels (two rotations of GoogLeNet's 3×3, 5×5 and 7×7 kernels composed
    into an exact quarter turn: 0.94–0.97 here, 0.88–0.91 bilinear) agree on a flat
    optimum around σ = 0.9–1.0 px, τ = 0.4–0.5 × side; σ = 1 px keeps the 1-D Gram
    matrices well conditioned (cond ≤ 50 up to 11 px). λ > 0 would blur every kernel
    even at 0° (λ = 1e-3: 0.9 %, 0.01: 8 % of the kernel changed) and break the exact
    quarter turns, for no gain (0.1 lowers the accuracy). Longer kernels, where the
    dense operator would cost side⁴ per kernel, are resampled bilinearly, zeros
    outside, as images are.

    Outside the square: where the output reads points beyond the outermost pixel
    centres (the rotated-in corners, the border of a zoom out), the kernel holds no
    information. The model continues ``f`` there smoothly, fading with the basis
    functions' tails and the envelope (bilinear: linearly to zero over the half
    pixel past the border, zero beyond). Either is a guess, not data;
    :func:`rotation_ceiling` measures what such losses cost a circuit score.

    Args:
        kernels: ``Tensor[N, C, kh, kw]`` (any number of channels; floating dtype).
        matrices: ``Tensor[1, 2, 2]`` (one move for all) or ``Tensor[N, 2, 2]``, float64
            output -> input maps about the kernel centre.

    Returns:
        ``Tensor[N, C, kh, kw]``, same device and dtype.

    Raises:
        ValueError: kernels not 4-D or not floating point, or matrices of the wrong shape.
    """
    _check_kernels(kernels)
    n, _, kh, kw = kernels.shape
    if not isinstance(matrices, Tensor) or matrices.dim() != 3 or matrices.shape[1:] != (2, 2) or matrices.shape[0] not in (1, n):
        raise ValueError(f"matrices must be a Tensor[1 or {n}, 2, 2], got {getattr(matrices, 'shape', type(matrices))}")
    if kernels.numel() == 0:
        return kernels.clone()
    matrices = matrices.to(device=kernels.device, dtype=torch.float64)
    if max(kh, kw) > _SMOOTH_MAX_SIDE:
        x_in, y_in = sample_points(matrices, kh, kw)
        return _move_bilinear(kernels, x_in, y_in)
    return _move_smooth(kernels, matrices)


def _check_kernels(kernels: object) -> None:
    if not isinstance(kernels, Tensor) or kernels.dim() != 4:
        raise ValueError(f"kernels must be a Tensor[N, C, kh, kw], got {getattr(kernels, 'shape', type(kernels))}")
    if not kernels.is_floating_point():
        raise ValueError(f"kernels must have a floating dtype, got {kernels.dtype}")


def turn_matrices(degrees: Tensor, mirror: Tensor) -> Tensor:
    """Output -> input maps ``Tensor[M, 2, 2]`` float64 of a mirror (first) and a CCW turn (then), broadcast."""
    degrees, mirror = torch.broadcast_tensors(degrees, mirror)
    return mirror_matrices(mirror) @ rotation_matrices(degrees)


def rotate_kernels(kernels: Tensor, degrees: Tensor | float, *, flip: Tensor | None = None) -> Tensor:
    """Rotate (and optionally mirror) a batch of kernels, each by its own angle, without a loop over kernels.

    Positive angles turn counter-clockwise as displayed (row 0 at the top), about the
    kernel centre ``((kh-1)/2, (kw-1)/2)``. A mirror (``flip=1``) reverses the
    columns and is applied before the rotation. Multiples of 90° of a square kernel
    (and 180° of any) are exact pixel permutations, to float rounding (~1e-7):
    +90 equals ``torch.rot90(k, 1, dims=(-2, -1))``. 0° and 1×1 kernels are unchanged.
    The kernels are read through the smooth model of :func:`move_kernels`.

    Args:
        kernels: ``Tensor[N, C, kh, kw]`` (any number of channels; floating dtype).
        degrees: a float, or ``Tensor[N]`` (one angle per kernel).
        flip: optional ``Tensor[N]`` (or a number) of 0/1.

    Returns:
        ``Tensor[N, C, kh, kw]``, same device and dtype.

    Raises:
        ValueError: kernels not 4-D or not floating point, or angles/flips of the wrong length.
    """
    deg, mirror = _check_moves(kernels, degrees, flip)
    return move_kernels(kernels, turn_matrices(deg, mirror))


# The smooth oriented templates of rotation_ceiling, as (φ1°, φ2°, a, b, x0, y0): directions of u and v, weights
# of the second derivative and of the blob, blob offset (x right, y down) in units of the side.
_TEMPLATES = ((0.0, 30.0, 1.5, 1.0, 0.2, -0.1), (70.0, 145.0, -1.2, 0.7, -0.15, 0.2),
              (200.0, 10.0, 1.0, -1.0, 0.1, 0.25), (300.0, 250.0, -2.0, 0.5, -0.25, -0.15))


def _template(size: int, degrees: Tensor, params: tuple[float, ...]) -> Tensor:
    """``Tensor[A, size, size]`` float64: one template of :data:`_TEMPLATES` turned by each of ``degrees``
    (``Tensor[A]``, CCW as displayed), sampled exactly at the pixel centres."""
    phi1, phi2, a, b, x0, y0 = params
    x, y = sample_points(turn_matrices(torch.remainder(degrees, 360.0), torch.zeros_like(degrees)), size, size)
    s = size / 4
    u = x * math.cos(math.radians(phi1)) + y * math.sin(math.radians(phi1))
    v = x * math.cos(math.radians(phi2)) + y * math.sin(math.radians(phi2))
    g = torch.exp(-(x**2 + y**2) / (2 * s**2))
    blob = torch.exp(-((x - x0 * size) ** 2 + (y - y0 * size) ** 2) / (2 * (0.8 * s) ** 2))
    return -u / s * g + a * (v**2 / s**2 - 1) * g + b * blob


@functools.lru_cache(maxsize=None)
def _ceiling(size: int) -> float:
    """:func:`rotation_ceiling` of a valid size."""
    if size == 1:
        return 1.0
    angles = torch.arange(8, dtype=torch.float64) * 45.0
    kernels = torch.stack([_template(size, angles, p) for p in _TEMPLATES], 1)  # [8, T, size, size]
    j, k = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    j, k = j[j != k], k[j != k]  # 7 references per kernel, grouped by the kernel predicted
    moved = rotate_kernels(kernels[k], angles[j] - angles[k])  # [56, T, size, size]: templates as channels
    pred = moved.reshape(8, 7, len(_TEMPLATES), size * size).mean(1)
    return float(F.cosine_similarity(pred, kernels.flatten(2), dim=-1).mean())


def rotation_ceiling(size: int) -> float:
    """The self-consistency ceiling of rotation circuit scores for ``size × size`` kernels.

    What an ideal rotation circuit of smooth kernels scores here: the circuit
    score that :func:`rotate_kernels` can reach at this size, so that scores of
    different kernel sizes can be compared (divide by it, or read them against it).
    Four fixed smooth oriented templates, none with a symmetry, each
    ``t(x) = −(u/σ) G + a (v²/σ² − 1) G + b exp(−|x − x₀|² / (2 (0.8σ)²))``:
    a first Gaussian derivative along ``u``, a second along ``v`` (two directions),
    and an off-centre blob at ``x₀``, with ``G = exp(−|x|²/(2σ²))`` and σ = size/4 px
    (coordinates in px from the centre, y down; the parameters are in ``_TEMPLATES``).
    Each is sampled exactly at 8 angles (45° steps) on the pixel grid; each of
    the 8 kernels is predicted as the mean of the other 7 rotated onto it (the
    circuit score's "mean" reference, leave one out), and the ceiling is the
    mean cosine between kernels and predictions, over kernels and templates.
    Three of the 7 references are quarter turns (exact), four are odd multiples
    of 45°. 1×1 kernels: 1.0 by definition. Deterministic; cached per size.

    Args:
        size: the kernel side in pixels, ``>= 1``.

    Returns:
        The ceiling in [-1, 1] (≥ 0.99 at 3, 5 and 7 px).

    Raises:
        ValueError: size not an int ``>= 1``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (a kernel side in pixels), got {size!r}")
    return _ceiling(size)


