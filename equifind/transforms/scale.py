"""Scale: zoom about the centre by a factor ``s > 0`` (``s > 1`` enlarges content). No period."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._checks import Params, show
from .base import PixelTransform, check_grid_size
from .resample import zoom_matrices

__all__ = ["Scale"]


class Scale(PixelTransform):
    """Zoom about the centre by a factor ``s > 0``; ``s > 1`` enlarges content.

    The probe's grid is log-spaced over :attr:`OCTAVES` octaves about 1, so that a
    feature at several sizes gives tuning curves shifted along log-scale; the ends
    of the grid are not neighbours (no period, ``discovery = "line"``).
    """

    name = "scale"
    period = None
    identity = 1.0
    discovery = "line"
    min_steps = 4
    aperture_after = True  # zooming in pushes content past the aperture's edge: apply it again after
    axis_label = "zoom factor of the stimulus"
    log_axis = True  # factors multiply: plots show them on a log axis
    #: Octaves below and above 1 that :meth:`grid` spans: factors ``2**-2 … 2**2``.
    OCTAVES: ClassVar[float] = 2.0

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        p = super()._params(params, n, like)
        if not (p > 0).all():
            raise ValueError(f"scale params must be factors > 0, got {show(p)}")
        return p

    def matrices(self, params: Tensor) -> Tensor:
        return zoom_matrices(params)

    def grid(self, n: int) -> Tensor:
        """``n`` factors log-spaced from ``2**-OCTAVES`` to ``2**OCTAVES`` inclusive (``[1.0]`` for n = 1).

        Args:
            n: number of steps, >= 1.

        Returns:
            Tensor[n].

        Raises:
            ValueError: if ``n < 1``.
        """
        check_grid_size(n)
        if n == 1:
            return torch.tensor([1.0])
        return torch.logspace(-self.OCTAVES, self.OCTAVES, n, base=2.0, dtype=torch.float64).to(torch.get_default_dtype())

    def check_grid(self, params: Tensor) -> tuple[int, ...]:
        """A 1-D grid of >= 4 zoom factors > 0, ascending and evenly spaced in log-scale."""
        if params.dim() != 1 or len(params) < self.min_steps:
            raise ValueError(f"scale responses need >= {self.min_steps} zoom factors, got params of shape {tuple(params.shape)}")
        if not bool((params > 0).all()):
            raise ValueError(f"scale params must be zoom factors > 0, got {show(params)}")
        logs = torch.log2(params.double())
        steps = logs.diff()
        bad = torch.nonzero((steps - steps.mean()).abs() > 1e-3 * steps.mean().abs()).flatten()
        if float(steps.mean()) <= 0 or len(bad):
            i = int(bad[0]) + 1 if len(bad) else 1
            raise ValueError(f"scale params must be ascending and evenly spaced in log-scale (as Scale.grid(n)); "
                             f"entry {i} is {float(params[i]):g} after {float(params[i - 1]):g}, got {show(params)}")
        return (len(params),)

    def log_step(self, params: Tensor) -> float:
        """The grid's step in octaves (log2 of the ratio of neighbouring factors)."""
        return float(torch.log2(params.double()).diff().mean())

    def compose(self, a: Params, b: Params) -> Params:
        return a * b

    def inverse(self, a: Params) -> Params:
        return 1.0 / a

    def format_param(self, value: Any) -> str:
        return f"×{float(value):.3g}"

    def format_tick(self, value: Any) -> str:
        return f"×{float(value):.2g}"

    def format_period(self, period: float | None) -> str:
        return "none"

    def default_stimuli(self, geometry: Any, *, device: torch.device | str | None = None, seed: int = 0) -> Any:
        """The rotation set (gratings, edges, lines, curves) and rings of both polarities at a quarter and half
        the field's radius: every variant at zoom 1, small enough that the grid's largest zoom still fits."""
        from .. import stimuli as st
        from .rotation import oriented_stimuli

        s, rf = geometry.canvas, geometry.rf_size
        common = dict(center=geometry.center, radius=geometry.radius, device=device)
        rings = st.circle(s, radii=(rf / 16, rf / 8), widths=(max(1.0, round(rf / 16)),), polarities=(1.0, -1.0), **common)
        return st.StimulusSet.cat([*oriented_stimuli(geometry, device), rings])
