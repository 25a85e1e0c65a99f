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
        """An ascending, log-evenly spaced grid of >= :attr:`min_steps` finite zoom factors > 0.

        Raises:
            ValueError: params not 1-D, too few, a factor <= 0 or not finite, or factors not
                evenly spaced in log-scale (ascending), naming the offending entry.
        """
        p = torch.as_tensor(params).double()
        if p.dim() != 1 or len(p) < self.min_steps:
            raise ValueError(f"scale params must be Tensor[steps] of >= {self.min_steps} zoom factors, got shape {tuple(p.shape)}")
        bad = torch.nonzero(~torch.isfinite(p) | (p <= 0)).flatten()
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"scale params must be finite zoom factors > 0; entry {i} is {float(p[i]):g}")
        logs = torch.log2(p)
        n = len(p)
        step = float(logs[-1] - logs[0]) / (n - 1)
        if not step > 0:
            raise ValueError(
                f"scale params must ascend log-evenly (e.g. Scale().grid(n)), got first {float(p[0]):g} and last {float(p[-1]):g}"
            )
        expected = logs[0] + step * torch.arange(n, dtype=torch.float64)
        off = torch.nonzero((logs - expected).abs() > 1e-3 * step).flatten()
        if len(off):
            i = int(off[0])
            raise ValueError(
                f"scale params must be evenly spaced in log-scale ({n} factors from {float(p[0]):g} to {float(p[-1]):g}, "
                f"ratio {2.0**step:.4g} per step); entry {i} is {float(p[i]):g}, expected {float(2.0 ** expected[i]):.4g}"
            )
        return (n,)

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
        """The rotation set (gratings, edges, lines, curves) and achromatic disks, bright and dark, of radius
        rf/8, rf/5 and rf/3, which drive centre-surround units of every size somewhere on the zoom grid;
        every variant at zoom 1."""
        from .. import stimuli as st
        from .rotation import oriented_stimuli

        s, rf = geometry.canvas, geometry.rf_size
        common = dict(center=geometry.center, radius=geometry.radius, device=device)
        sets = oriented_stimuli(geometry, device)
        for r in (rf / 8, rf / 5, rf / 3):
            # A ring centred at (r - 0.5) / 2 of width r + 0.5 is the full disk of radius r, its centre pixel included.
            disk = st.circle(s, radii=((r - 0.5) / 2,), widths=(r + 0.5,), **common)
            sets.append(st.StimulusSet(disk.images, [dict(p, kind="disk", disk_radius=r) for p in disk.params]))
        return st.StimulusSet.cat(sets)
