"""The soft circular aperture: stimuli are seen through a disk the size of the receptive field."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import Center, check_images, positive_float, resolve_center

__all__ = ["soft_aperture", "aperture_weight"]


def soft_aperture(
    images: Tensor,
    radius: float,
    center: Center = None,
    background: float = 0.5,
    falloff: float = 2.0,
) -> Tensor:
    """Blend images to a uniform background outside a soft circular disk.

    The weight is 1 up to ``radius - falloff`` pixels from the centre, falls
    to 0 along a half cosine, and is 0 from ``radius`` outwards, so pixels at
    distance >= ``radius`` are exactly ``background`` and pixels within
    ``radius - falloff`` are exactly unchanged.

    Args:
        images: Tensor[N, 3, H, W], float.
        radius: disk radius in pixels, > 0.
        center: ``(cy, cx)`` in pixels; default the image centre.
        background: value outside the disk (mid-grey 0.5).
        falloff: width in pixels of the cosine ramp, >= 0 (0: hard edge).

    Returns:
        Tensor[N, 3, H, W] on the images' device.

    Raises:
        ValueError: for images that are not float [N, 3, H, W], or a radius
            <= 0, or a negative falloff.
    """
    check_images(images)
    weight = aperture_weight(images, radius, center, falloff)
    return images * weight + background * (1.0 - weight)


def aperture_weight(images: Tensor, radius: float, center: Center, falloff: float = 2.0) -> Tensor:
    """The soft disk of :func:`soft_aperture`, Tensor[H, W] in the images' dtype and device."""
    radius = positive_float(radius, "aperture radius")
    falloff = positive_float(falloff, "aperture falloff", allow_zero=True)
    h, w = images.shape[-2:]
    cy, cx = resolve_center(center, h, w)
    ys = torch.arange(h, device=images.device, dtype=torch.float64) - cy
    xs = torch.arange(w, device=images.device, dtype=torch.float64) - cx
    dist = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    if falloff == 0:
        weight = (dist < radius).to(torch.float64)
    else:
        t = ((dist - (radius - falloff)) / falloff).clamp(0.0, 1.0)
        weight = 0.5 * (1.0 + torch.cos(math.pi * t))
    return weight.to(images.dtype)

