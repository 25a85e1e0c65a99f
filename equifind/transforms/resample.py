"""Moving pixels: one geometry for images and kernels.

A spatial group element is a ``2 × 2`` matrix ``A`` acting on pixel displacements
``(x, y)`` from a centre (x right, y down), read **output → input**: the output
pixel at ``c + d`` takes the input's value at ``c + A d``. Images are sampled there
bilinearly (:func:`resample_images`, exact nearest neighbour for maps that permute
pixel centres); kernels through the smooth model of :mod:`equifind.transforms.kernels`
at the same points (:func:`sample_points`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import Center, resolve_center

__all__ = ["rotation_matrices", "mirror_matrices", "zoom_matrices", "sample_points", "sampling_grids", "resample_images",
           "is_pixel_permutation"]

_SNAP_TOL = 1e-9  # maps this close to integer ones count as pixel permutations


def rotation_matrices(degrees: Tensor) -> Tensor:
    """Output -> input maps, Tensor[N, 2, 2] float64, for CCW-as-displayed rotations."""
    rad = torch.deg2rad(degrees.to(torch.float64))
    c, s = torch.cos(rad), torch.sin(rad)
    # Make multiples of 90 degrees exact (cos 90 is 6e-17 in floating point).
    c = torch.where(c.abs() < 1e-12, torch.zeros_like(c), c)
    s = torch.where(s.abs() < 1e-12, torch.zeros_like(s), s)
    # With y downwards, CCW on screen sends displacement (x, y) to
    # (x c + y s, -x s + y c); the sampler needs the inverse.
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)



def mirror_matrices(mirror: Tensor) -> Tensor:
    """Output -> input maps, Tensor[N, 2, 2] float64, for horizontal mirrors (``mirror`` 0 keep, 1 mirror)."""
    sign = 1.0 - 2.0 * mirror
    zero = torch.zeros_like(sign)
    return torch.stack([torch.stack([sign, zero], -1), torch.stack([zero, torch.ones_like(sign)], -1)], -2)


def zoom_matrices(factors: Tensor) -> Tensor:
    """Output -> input maps, Tensor[N, 2, 2] float64, for zooms by ``factors`` (> 1 enlarges content)."""
    inv = 1.0 / factors
    zero = torch.zeros_like(inv)
    return torch.stack([torch.stack([inv, zero], -1), torch.stack([zero, inv], -1)], -2)


def sample_points(matrices: Tensor, kh: int, kw: int) -> tuple[Tensor, Tensor]:
    """Where each output pixel of a ``kh × kw`` kernel reads its input.

    Args:
        matrices: Tensor[M, 2, 2] float64, output -> input maps about the kernel centre
            ``((kh - 1) / 2, (kw - 1) / 2)``.
        kh, kw: the kernel's height and width.

    Returns:
        ``(x, y)``, each Tensor[M, kh, kw] float64: the input point in pixels from the
        centre (x right, y down).
    """
    dy = torch.arange(kh, dtype=torch.float64, device=matrices.device) - (kh - 1) / 2
    dx = torch.arange(kw, dtype=torch.float64, device=matrices.device) - (kw - 1) / 2
    a = matrices[:, :, :, None, None]
    x_in = a[:, 0, 0] * dx[None, None, :] + a[:, 0, 1] * dy[None, :, None]
    y_in = a[:, 1, 0] * dx[None, None, :] + a[:, 1, 1] * dy[None, :, None]
    return x_in, y_in


def is_pixel_permutation(matrices: Tensor, cy: float, cx: float) -> Tensor:
    """Whether each map sends pixel centres exactly onto pixel centres, Tensor[N] bool.

    ``p -> c + A (p - c)`` does so iff ``A`` is an integer matrix and the
    offset ``c - A c`` is an integer vector.
    """
    centre = torch.tensor([cx, cy], dtype=torch.float64, device=matrices.device)
    offset = centre - matrices @ centre  # [N, 2]
    values = torch.cat([matrices.flatten(1), offset], dim=1)
    return ((values - values.round()).abs() < _SNAP_TOL).all(dim=1)


def sampling_grids(images: Tensor, matrices: Tensor, center: Center) -> Tensor:
    """``F.grid_sample`` grids (align_corners=True) sampling at ``c + A (p - c)``.

    Args:
        images: Tensor[N, 3, H, W] (for the size, dtype and device).
        matrices: Tensor[M, 2, 2] float64, ``A`` acting on ``(x, y)`` pixel
            displacements (output -> input).
        center: ``(cy, cx)`` or None.

    Returns:
        Tensor[M, H, W, 2] in the images' dtype.
    """
    h, w = images.shape[-2:]
    cy, cx = resolve_center(center, h, w)
    a = matrices.to(device=images.device, dtype=torch.float64)
    # Normalised coordinates (align_corners=True): p = D (q + 1), D = diag((W-1)/2, (H-1)/2).
    d = torch.tensor([max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0], dtype=torch.float64, device=images.device)
    c = torch.tensor([cx, cy], dtype=torch.float64, device=images.device)
    linear = a * d[None, None, :] / d[None, :, None]  # D^-1 A D
    shift = (c + (a @ (d - c)[:, None]).squeeze(-1)) / d - 1.0  # D^-1 (c + A (D 1 - c)) - 1
    theta = torch.cat([linear, shift[:, :, None]], dim=2)
    return F.affine_grid(theta, [a.shape[0], 3, h, w], align_corners=True).to(images.dtype)


def resample_images(images: Tensor, matrices: Tensor, center: Center) -> Tensor:
    """Sample ``images`` at ``c + A (p - c)`` for each output pixel ``p``.

    Maps that permute pixel centres are sampled with nearest neighbour
    (exact); the others bilinearly.

    Args:
        images: Tensor[N, 3, H, W].
        matrices: Tensor[N, 2, 2] float64, ``A`` acting on ``(x, y)`` pixel
            displacements (output -> input).
        center: ``(cy, cx)`` or None.

    Returns:
        Tensor[N, 3, H, W]; content from outside the image is mid-grey 0.5.
    """
    cy, cx = resolve_center(center, *images.shape[-2:])
    grid = sampling_grids(images, matrices, center)
    centred = images - 0.5
    exact = is_pixel_permutation(matrices.to(device=images.device, dtype=torch.float64), cy, cx)
    out = torch.empty_like(images)
    for mode, chosen in (("nearest", exact), ("bilinear", ~exact)):
        if bool(chosen.all()):
            out = F.grid_sample(centred, grid, mode=mode, padding_mode="zeros", align_corners=True)
        elif bool(chosen.any()):
            out[chosen] = F.grid_sample(
                centred[chosen], grid[chosen], mode=mode, padding_mode="zeros", align_corners=True
            )
    return out + 0.5

