"""Input checks shared by the public API: clear errors that name the bad value.

Library code raises; it never asserts or prints. Every message says what was
received and what would be valid.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["closest", "unknown_name", "check_images", "check_units"]


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to ``name`` (difflib ratio), best first."""
    return difflib.get_close_matches(str(name), list(valid), n=n, cutoff=0.4)


def unknown_name(kind: str, name: object, valid: Sequence[str], hint: str = "") -> KeyError:
    """A ``KeyError`` for an unknown name that lists the closest valid names.

    Args:
        kind: what was looked up, e.g. ``"layer"`` or ``"model"``.
        name: the name received.
        valid: every valid name.
        hint: an extra sentence, e.g. how to list the valid names.
    """
    near = closest(str(name), valid)
    msg = f"unknown {kind} {name!r}"
    if near:
        msg += f"; did you mean {', '.join(repr(c) for c in near)}?"
    if len(valid) <= 20:
        msg += f" Valid: {', '.join(repr(v) for v in valid)}."
    else:
        msg += f" ({len(valid)} valid names, e.g. {', '.join(repr(v) for v in list(valid)[:5])}, ...)"
    if hint:
        msg += " " + hint
    return KeyError(msg)


def check_images(images: object, *, name: str = "images") -> Tensor:
    """Check that ``images`` is a float NCHW RGB batch with values in [0, 1].

    Args:
        images: candidate ``Tensor[N, 3, H, W]``.
        name: the argument's name, for the message.

    Returns:
        The same tensor.

    Raises:
        ValueError: not a tensor, not floating point, not 4-D with 3 channels,
            containing NaN/inf, or with values outside [0, 1].
    """
    if not isinstance(images, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [N, 3, H, W], got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor with RGB values in [0, 1], got dtype {images.dtype}"
            " (for uint8 images divide by 255)"
        )
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3, H, W] (RGB, channels first), got {tuple(images.shape)}")
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
    images_ = images.detach()
    finite = torch.isfinite(images_)
    if not bool(finite.all()):
        raise ValueError(f"{name} contains {int((~finite).sum())} NaN or infinite values")
    lo, hi = float(images_.min()), float(images_.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have values in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return images


def check_units(units: Iterable[int], size: int, layer: str) -> list[int]:
    """Check unit indices against a layer of ``size`` channels.

    Raises:
        IndexError: an index outside ``0 .. size-1``.
        ValueError: an index that is not an integer.
    """
    out: list[int] = []
    for u in units:
        if isinstance(u, bool):
            raise ValueError(f"unit indices must be integers, got {u!r} for layer {layer!r}")
        try:
            i = operator.index(u.item() if isinstance(u, Tensor) else u)
        except TypeError:
            raise ValueError(f"unit indices must be integers, got {u!r} for layer {layer!r}") from None
        if not 0 <= i < size:
            raise IndexError(f"unit {i} is out of range for layer {layer!r}, which has {size} units (0..{size - 1})")
        out.append(i)
    return out
