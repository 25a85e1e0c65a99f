"""Hue × rotation: the direct product of the two circle groups; params ``(hue_deg, angle_deg)``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from ._checks import Center, Params, as_float64, show, wrap
from .base import Transform, circle_grid
from .hue import Hue, colour_stimuli
from .rotation import Circular, Rotation, check_circle

__all__ = ["HueRotation"]


class HueRotation(Circular, Transform):
    """Hue shift, then rotation; params ``(hue_deg, angle_deg)`` per image."""

    name = "hue_rotation"
    period = 360.0
    identity: ClassVar[tuple[float, float]] = (0.0, 0.0)  # type: ignore[assignment]
    param_shape = (2,)
    colour = True
    scores = False  # score_family and circuit checks take one circle group at a time
    scan_max_steps = 16  # steps per axis: the grid has steps² parameters
    axis_label = "orientation (degrees) at the member's best hue"

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        p = as_float64(params, like, self.name)
        if p.shape == (2,):
            p = p.expand(n, 2)
        elif p.shape != (n, 2):
            raise ValueError(
                f"hue_rotation params must be a pair (hue_deg, angle_deg) or a Tensor[N, 2] "
                f"with N={n}, got shape {list(p.shape)}"
            )
        if not torch.isfinite(p).all():
            raise ValueError(f"hue_rotation params must be finite, got {show(p)}")
        return p

    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        hued = Hue()._apply(images, params[:, 0], center)
        return Rotation()._apply(hued, params[:, 1], center)

    def grid(self, n: int) -> Tensor:
        """The ``n x n`` grid of (hue, angle), hue-major.

        Args:
            n: steps per component, >= 1.

        Returns:
            Tensor[n * n, 2]: row ``i * n + j`` is ``(360 i / n, 360 j / n)``.

        Raises:
            ValueError: if ``n < 1``.
        """
        steps = circle_grid(n, 360.0)
        hue, angle = torch.meshgrid(steps, steps, indexing="ij")
        return torch.stack([hue.reshape(-1), angle.reshape(-1)], dim=-1)

    def compose(self, a: Params, b: Params) -> Params:
        return wrap(torch.as_tensor(a, dtype=torch.float64) + torch.as_tensor(b, dtype=torch.float64), 360.0)

    def inverse(self, a: Params) -> Params:
        return wrap(-torch.as_tensor(a, dtype=torch.float64), 360.0)


    def check_grid(self, params: Tensor) -> tuple[int, ...]:
        """A hue-major ``n × n`` grid (as :meth:`grid` makes), n >= :attr:`min_steps`, each axis evenly spaced over 360°."""
        p = params
        n = math.isqrt(len(p)) if p.dim() == 2 else 0
        if p.dim() != 2 or p.shape[1] != 2 or n * n != len(p) or n < self.min_steps:
            raise ValueError(
                f"hue_rotation params must be Tensor[n*n, 2] of (hue, angle), n >= {self.min_steps}, got shape {tuple(p.shape)}"
            )
        cube = p.reshape(n, n, 2)
        for axis, what in ((0, "hue"), (1, "angle")):
            line = cube[:, 0, 0] if axis == 0 else cube[0, :, 1]
            check_circle(line, f"hue_rotation {what}s")
            other = cube[..., axis] - (line[:, None] if axis == 0 else line[None, :])
            if float(other.abs().max()) > 1e-3:
                raise ValueError(f"hue_rotation params must be a hue-major n × n grid (as HueRotation.grid(n)); the {what}s are not")
        return (n, n)

    def apply_kernels(self, kernels: Tensor, params: Tensor) -> Tensor:
        """Kernels move by the rotation part; the hue part relabels units."""
        p = torch.as_tensor(params, dtype=torch.float64, device=kernels.device).reshape(-1, 2)
        return Rotation().apply_kernels(kernels, p[:, 1])

    def achromatic_grid(self, params: Tensor) -> tuple[Transform | None, Tensor | None]:
        """Grey stimuli see the rotation part: every orientation of the grid."""
        return Rotation(), torch.unique(params[:, 1])

    def default_stimuli(self, geometry: Any, *, device: torch.device | str | None = None, seed: int = 0) -> Any:
        """The hue set (see :func:`~equifind.transforms.hue.colour_stimuli`), turned over the grid's angles."""
        from .. import stimuli as st

        return st.StimulusSet.cat(colour_stimuli(geometry, device))
