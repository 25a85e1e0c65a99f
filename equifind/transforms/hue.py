"""Hue: rotation of the YIQ chroma plane about the grey axis, in degrees."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import Center, Params, check_images
from .rotation import Circular
from .base import Transform

__all__ = ["Hue", "RGB_TO_YIQ", "YIQ_TO_RGB", "HUE_ORIENTATIONS", "colour_stimuli"]

#: NTSC RGB -> YIQ matrix (rows Y, I, Q), float64, Tensor[3, 3].
RGB_TO_YIQ: Tensor = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
#: Exact inverse of :data:`RGB_TO_YIQ`, float64, Tensor[3, 3].
YIQ_TO_RGB: Tensor = torch.linalg.inv(RGB_TO_YIQ)

#: Orientations (degrees) of the colour edges and bars in the auto hue stimuli: a colour edge
#: or bar of any orientation is within 30° of one of them.
HUE_ORIENTATIONS: tuple[float, ...] = (0.0, 60.0, 120.0)


class Hue(Circular, Transform):
    """Rotation of the YIQ chroma plane about the grey axis, in degrees."""

    name = "hue"
    circuits = True
    colour = True
    moves_kernels = False  # hue acts on units (their labels), not on kernels
    axis_label = "hue shift of the stimulus (degrees)"

    @staticmethod
    def matrix(degrees: Params) -> Tensor:
        """The linear map on RGB for a hue rotation.

        Args:
            degrees: a float, or Tensor[N].

        Returns:
            Tensor[3, 3] (or Tensor[N, 3, 3]) float64, acting on column RGB
            vectors: ``rgb_out = M @ rgb``.
        """
        theta = torch.deg2rad(torch.as_tensor(degrees, dtype=torch.float64))
        c, s = torch.cos(theta), torch.sin(theta)
        one, zero = torch.ones_like(c), torch.zeros_like(c)
        rot = torch.stack(
            [
                torch.stack([one, zero, zero], -1),
                torch.stack([zero, c, -s], -1),
                torch.stack([zero, s, c], -1),
            ],
            -2,
        )
        return YIQ_TO_RGB.to(rot.device) @ rot @ RGB_TO_YIQ.to(rot.device)

    def _unclipped(self, images: Tensor, params: Tensor) -> Tensor:
        m = self.matrix(params).to(images.dtype)
        return torch.einsum("nij,njhw->nihw", m, images)

    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        return self._unclipped(images, params).clamp(0.0, 1.0)

    def apply_with_gamut(self, images: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        """Hue-rotate and report how much had to be clipped.

        Args:
            images: Tensor[N, 3, H, W], float RGB in [0, 1].
            params: a float or Tensor[N] of degrees.

        Returns:
            ``(out, clipped)``: out Tensor[N, 3, H, W] clipped to [0, 1];
            clipped Tensor[N], the fraction of values (over channels and
            pixels) that were outside [0, 1] by more than 1e-6 before clipping.

        Raises:
            ValueError: for bad images or params.
        """
        check_images(images)
        raw = self._unclipped(images, self._params(params, images.shape[0], images))
        outside = (raw < -1e-6) | (raw > 1.0 + 1e-6)
        return raw.clamp(0.0, 1.0), outside.flatten(1).to(images.dtype).mean(dim=1)


    def default_stimuli(self, geometry: Any, *, device: torch.device | str | None = None, seed: int = 0) -> Any:
        """Colour-contrast edges and bars at :data:`HUE_ORIENTATIONS` and three colour centre-surrounds, at hue 0."""
        from .. import stimuli as st

        return st.StimulusSet.cat(colour_stimuli(geometry, device))


def colour_stimuli(geometry: Any, device: torch.device | str | None) -> list[Any]:
    """The hue set: :data:`HUE_ORIENTATIONS` colour-contrast edges and as many colour bars (width about
    rf/6, on the opposite hue), so that colour-contrast units of any orientation are driven within 30° of
    their preference, and three colour centre-surrounds (radii rf/8, rf/5, rf/3): 9 variants at hue 0."""
    from .. import stimuli as st

    s, rf = geometry.canvas, geometry.rf_size
    common = dict(center=geometry.center, radius=geometry.radius, device=device)
    return [
        st.color_contrast(s, hues=(0.0,), orientations=HUE_ORIENTATIONS, **common),
        st.color_bar(s, hues=(0.0,), widths=(max(1.5, round(rf / 6)),), orientations=HUE_ORIENTATIONS, **common),
        st.center_surround(s, hues=(0.0,), radii=(rf / 8, rf / 5, rf / 3), **common),
    ]
