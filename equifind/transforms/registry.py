"""The registry of transforms: names to classes, and the one conversion every public entry point calls."""

from __future__ import annotations

from .._checks import closest
from .base import Transform
from .flip import Flip
from .hue import Hue
from .hue_rotation import HueRotation
from .rotation import Rotation
from .scale import Scale

__all__ = ["TRANSFORMS", "as_transform", "get_transform", "register", "names"]

#: Every transform equifind knows, by name (:func:`register` adds one).
TRANSFORMS: dict[str, type[Transform]] = {}


def register(cls: type[Transform]) -> type[Transform]:
    """Add a transform class to :data:`TRANSFORMS` under its ``name`` (usable as a class decorator).

    Raises:
        ValueError: ``cls`` is not a Transform subclass with a name, or the name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Transform)) or not isinstance(getattr(cls, "name", None), str):
        raise ValueError(f"register takes a Transform subclass with a class attribute `name`, got {cls!r}")
    if TRANSFORMS.get(cls.name, cls) is not cls:
        raise ValueError(f"transform name {cls.name!r} is taken by {TRANSFORMS[cls.name].__name__}")
    TRANSFORMS[cls.name] = cls
    return cls


for _cls in (Rotation, Hue, Flip, Scale, HueRotation):
    register(_cls)


def names(**having: object) -> tuple[str, ...]:
    """The registered names, optionally only those whose class attributes match, e.g. ``names(scores=True)``."""
    return tuple(n for n, cls in TRANSFORMS.items() if all(getattr(cls, k) == v for k, v in having.items()))


def as_transform(transform: str | Transform) -> Transform:
    """A transform from its name (an instance passes through): called once at each public entry point.

    Args:
        transform: a registered name (``"rotation"``, ``"hue"``, ``"flip"``, ``"scale"``,
            ``"hue_rotation"``) or a :class:`Transform` instance.

    Returns:
        A :class:`Transform` instance.

    Raises:
        KeyError: an unknown name, listing the valid names and the closest match.
    """
    if isinstance(transform, Transform):
        return transform
    if not isinstance(transform, str) or transform not in TRANSFORMS:
        near = closest(str(transform), TRANSFORMS)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise KeyError(f"unknown transform {transform!r}; {hint}valid: {', '.join(map(repr, TRANSFORMS))}")
    return TRANSFORMS[transform]()


#: The name :func:`as_transform` had before the registry (kept for existing code).
get_transform = as_transform
