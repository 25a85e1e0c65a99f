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

__all__ = ["closest", "unknown_name", "check_images", "check_units", "check_distinct", "check_n_null"]


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


def check_distinct(units: Sequence[int], what: str = "units") -> None:
    """Raise unless every entry of ``units`` appears once.

    Raises:
        ValueError: naming the first repeated unit, where it repeats, and the list.
    """
    seen: dict[int, int] = {}
    for i, u in enumerate(units):
        if u in seen:
            raise ValueError(
                f"{what} repeat unit {u} (positions {seen[u]} and {i} of {list(units)}); give each unit once"
            )
        seen[u] = i


def check_n_null(n_null: object, *, zero: str | None = None, minimum: int = 0) -> int:
    """``n_null`` (the null draws behind a permutation p-value) as an int, else a ValueError naming it.

    Args:
        n_null: the value received.
        zero: what ``n_null=0`` means for this call (e.g. "no test: p_value is NaN"), said in the
            message; None: 0 is refused (the call needs a p-value).
        minimum: the smallest positive value the call accepts (besides 0 when ``zero`` is given).

    Raises:
        ValueError: a bool, a non-integer, a negative number, 0 where a p-value is needed, or
            fewer than ``minimum`` draws.
    """
    valid = f"an int >= {max(1, minimum)}" + (f", or 0 ({zero})" if zero is not None else "")
    if isinstance(n_null, bool):
        raise ValueError(f"n_null must be {valid}, got {n_null!r}")
    try:
        n = operator.index(n_null)  # int, numpy ints; not 1.5 or "200"
    except TypeError:
        raise ValueError(f"n_null must be {valid}, got {n_null!r} ({type(n_null).__name__})") from None
    if n < 0 or (n == 0 and zero is None) or 0 < n < minimum:
        why = " (a p-value needs null draws)" if n == 0 else ""
        raise ValueError(f"n_null must be {valid}, got {n}{why}")
    return n
