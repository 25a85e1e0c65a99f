"""Validation of the images, parameters and geometry that transforms take (shared by every group)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

Params = float | Tensor
Center = tuple[float, float] | None


def check_images(images: Tensor) -> None:
    """Raise ValueError unless ``images`` is a float Tensor[N, 3, H, W]."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor[N, 3, H, W], got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [N, 3, H, W], got {list(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a float tensor in [0, 1], got dtype {images.dtype}")


def resolve_center(center: Center, height: int, width: int) -> tuple[float, float]:
    """The centre ``(cy, cx)`` in pixels; the image centre when ``center`` is None."""
    if center is None:
        return ((height - 1) / 2.0, (width - 1) / 2.0)
    try:
        cy, cx = (float(v) for v in center)
    except (TypeError, ValueError) as err:
        raise ValueError(f"center must be a pair (cy, cx) of floats in pixels, got {center!r}") from err
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise ValueError(f"center must be finite, got {center!r}")
    return cy, cx


def params_1d(params: Params, n: int, images: Tensor, name: str) -> Tensor:
    """One parameter per image: Tensor[n] (float64) on the images' device."""
    p = as_float64(params, images, name)
    if p.dim() == 0:
        p = p.expand(n)
    elif p.shape != (n,):
        raise ValueError(
            f"{name} params must be a float or a Tensor[N] with N={n} (one per image), "
            f"got shape {list(p.shape)}"
        )
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} params must be finite, got {show(p)}")
    return p


def as_float64(params: object, images: Tensor, name: str) -> Tensor:
    """``params`` as a float64 tensor on the images' device."""
    try:
        return torch.as_tensor(params, dtype=torch.float64, device=images.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} params must be a float or a tensor of floats, got {params!r}") from err


def show(values: Tensor, limit: int = 8) -> str:
    """A short text of a tensor's values for error messages."""
    flat = values.flatten().tolist()
    more = f", ... ({len(flat)} values)" if len(flat) > limit else ""
    return "[" + ", ".join(f"{v:g}" for v in flat[:limit]) + more + "]"


def wrap(x: Params, period: float) -> Params:
    """``x`` modulo ``period`` in [0, period) for floats and tensors."""
    r = x % period
    if isinstance(r, Tensor):
        return torch.where(r >= period, r - period, r)
    return r - period if r >= period else r



def positive_float(value: object, what: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else ValueError."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a number of pixels, got {value!r}") from err
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be finite and {bound} pixels, got {value!r}")
    return v



def check_downsample(images: Tensor, factor: object) -> int:
    """``factor`` as an int >= 1 that divides the images' height and width, else ValueError."""
    h, w = images.shape[-2:]
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1 or h % factor or w % factor:
        raise ValueError(f"downsample must be a positive int dividing the image size {h}x{w}, got {factor!r}")
    return factor



def check_steps(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"grid needs an integer number of steps n >= 1, got {n!r}")

