"""Flip: the horizontal mirror, a group of two elements (0 keep, 1 mirror)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import Params, show
from .base import PixelTransform, check_grid_size
from .kernels import turn_matrices
from .resample import mirror_matrices

__all__ = ["Flip"]

#: Orientations (degrees) of the flip probe's curves and edges: none is its own mirror image.
FLIP_ANGLES: tuple[float, ...] = (0.0, 30.0, 60.0, 120.0, 150.0)


class Flip(PixelTransform):
    """Horizontal mirror about the column ``cx``; parameter 0 (keep) or 1 (flip)."""

    name = "flip"
    circuits = True
    period = 2.0
    identity = 0.0
    discovery = "pair"
    axis_label = "stimulus"
    pairs_explained_by = "rotation"  # a mirror pair is often two members of a rotation family

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        p = super()._params(params, n, like)
        if not ((p == 0) | (p == 1)).all():
            raise ValueError(f"flip params must be 0 or 1, got {show(p)}")
        return p

    def matrices(self, params: Tensor) -> Tensor:
        return mirror_matrices(params)

    def kernel_matrices(self, params: Tensor) -> Tensor:
        # A parameter rounds to the nearest state modulo 2 (a difference of positions is 0, ±1).
        mirror = torch.remainder(torch.round(params), 2)
        return turn_matrices(torch.zeros_like(mirror), mirror)

    def grid(self, n: int) -> Tensor:
        """Always ``tensor([0., 1.])`` (the group has two elements).

        Args:
            n: requested steps, >= 1 (ignored beyond validation).

        Returns:
            Tensor[2].

        Raises:
            ValueError: if ``n < 1``.
        """
        check_grid_size(n)
        return torch.tensor([0.0, 1.0])

    def check_grid(self, params: Tensor) -> tuple[int, ...]:
        """Exactly the two states ``[0, 1]``."""
        if params.dim() != 1 or len(params) != 2 or not torch.equal(params, torch.tensor([0.0, 1.0], dtype=params.dtype)):
            raise ValueError(f"flip responses need params [0, 1] (2 steps), got {params.tolist()}")
        return (2,)

    def compose(self, a: Params, b: Params) -> Params:
        return (a + b) % 2

    def inverse(self, a: Params) -> Params:
        return a

    def format_param(self, value: Any) -> str:
        return f"{float(value):g}"

    def format_tick(self, value: Any) -> str:
        return "mirrored" if float(value) >= 0.5 else "original"

    def format_period(self, period: float | None) -> str:
        return f"{period:g} (original, mirrored)"

    def default_stimuli(self, geometry: Any, *, device: torch.device | str | None = None, seed: int = 0) -> Any:
        """Curves and edges turned to :data:`FLIP_ANGLES`, and 24 photograph patches (``seed``)."""
        from .. import stimuli as st
        from .rotation import Rotation, curve_shapes

        s, rf = geometry.canvas, geometry.rf_size
        common = dict(center=geometry.center, radius=geometry.radius, device=device)
        base = st.StimulusSet.cat([st.curve(s, **curve_shapes(rf), **common), st.edge(s, contrasts=(1.0,), **common)])
        angles = torch.tensor(FLIP_ANGLES, device=base.images.device)
        n = len(base)
        rotated = Rotation().apply(
            base.images.repeat(len(angles), 1, 1, 1), angles.repeat_interleave(n),
            center=geometry.center, aperture=geometry.radius,
        )  # fmt: skip
        params = [dict(p, angle=float(a)) for a in angles.tolist() for p in base.params]
        patches = st.photo_patches(s, n=24, seed=seed, device=device)
        return st.StimulusSet.cat([st.StimulusSet(rotated, params), patches])
