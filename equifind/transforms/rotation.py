"""Rotation: turns by an angle in degrees, counter-clockwise as displayed."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._checks import Params, wrap
from .base import PixelTransform, circle_grid
from .kernels import rotation_ceiling, turn_matrices
from .resample import rotation_matrices

__all__ = ["Rotation", "Circular"]


class Circular:
    """Mixin: a group of angles in degrees, added modulo 360 (rotation, hue)."""

    period: ClassVar[float] = 360.0
    identity: ClassVar[float] = 0.0
    circular: ClassVar[bool] = True
    discovery: ClassVar[str] = "circle"
    min_steps: ClassVar[int] = 4

    def grid(self, n: int) -> Tensor:
        return circle_grid(n, 360.0)

    def compose(self, a: Params, b: Params) -> Params:
        return wrap(a + b, 360.0)

    def inverse(self, a: Params) -> Params:
        return wrap(-a, 360.0)

    def check_grid(self, params: Tensor) -> tuple[int, ...]:
        """A 1-D grid of >= :attr:`min_steps` steps evenly spaced over 360° (any start, ascending)."""
        if params.dim() != 1 or len(params) < self.min_steps:
            raise ValueError(
                f"{self.name} responses need >= {self.min_steps} steps over 360°, got params of shape {tuple(params.shape)}"
            )
        check_circle(params, f"{self.name} params")
        return (len(params),)

    def format_param(self, value: Any) -> str:
        return f"{float(value):.1f}°"

    def format_tick(self, value: Any) -> str:
        return f"{float(value):g}°"

    def format_period(self, period: float | None) -> str:
        return "none" if period is None else f"{period:g}°"


class Rotation(Circular, PixelTransform):
    """Rotation by an angle in degrees, counter-clockwise as displayed."""

    name = "rotation"
    circuits = True
    sub_periods = True
    axis_label = "rotation of the stimulus (degrees)"

    def matrices(self, params: Tensor) -> Tensor:
        return rotation_matrices(params)

    def kernel_matrices(self, params: Tensor) -> Tensor:
        # Angles modulo 360 first, as kernels have always been turned (bit-identical circuit scores).
        deg = torch.remainder(params, 360.0)
        return turn_matrices(deg, torch.zeros_like(deg))

    def kernel_ceiling(self, size: int) -> float:
        return rotation_ceiling(size)

    def default_stimuli(self, geometry: Any, *, device: torch.device | str | None = None, seed: int = 0) -> Any:
        """Gratings, edges, lines and curves at several sizes, each at orientation 0."""
        from .. import stimuli as st

        return st.StimulusSet.cat(oriented_stimuli(geometry, device))


def check_circle(params: Tensor, what: str) -> None:
    """Raise ValueError unless ``params`` is evenly spaced over 360° (any start, ascending)."""
    n = len(params)
    step = 360.0 / n
    expected = params[0] + step * torch.arange(n, dtype=params.dtype)
    error = torch.remainder(params - expected + 180.0, 360.0) - 180.0
    bad = torch.nonzero(error.abs() > 1e-3 * step).flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{what} must be evenly spaced over 360° ({n} steps of {step:g}°); "
            f"entry {i} is {float(params[i]):g}, expected {float(expected[i]) % 360.0:g}"
        )


def frequencies(rf: int) -> tuple[float, ...]:
    """Grating frequencies (cycles per pixel) from 1.5 cycles across the field up to 0.3 cycles/px."""
    lo = 1.5 / rf
    return tuple(sorted({round(min(0.3, lo * k), 4) for k in (1, 2, 4)}))


def line_widths(rf: int) -> tuple[float, ...]:
    """Line widths of the oriented stimuli: about rf/16 and rf/8 pixels."""
    return tuple(sorted({max(1.0, round(rf / 16)), max(1.5, round(rf / 8))}))


def curve_shapes(rf: int) -> dict[str, tuple[float, ...]]:
    """Curve radii, widths and extents of the oriented stimuli."""
    return dict(radii=(rf / 6, rf / 3), widths=line_widths(rf)[:1], extents=(90.0, 180.0))


def oriented_stimuli(geometry: Any, device: torch.device | str | None) -> list[Any]:
    """The rotation set: gratings, edges, lines and curves (both polarities) at orientation 0."""
    from .. import stimuli as st

    s, rf = geometry.canvas, geometry.rf_size
    common = dict(center=geometry.center, radius=geometry.radius, device=device)
    return [
        st.grating(s, frequencies=frequencies(rf), phases=(0.0, 90.0, 180.0), **common),
        st.edge(s, contrasts=(1.0,), **common),
        st.line(s, widths=line_widths(rf), polarities=(1.0, -1.0), **common),
        st.curve(s, **curve_shapes(rf), polarities=(1.0, -1.0), **common),
    ]
