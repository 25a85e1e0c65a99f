"""Units of a layer written as text: ``"mixed3b:12"``, ``"mixed3b:12,34"``.

The command line takes units in this form and summaries print them in it, so a
unit list read in a summary can be pasted back into ``equifind score``.

>>> parse_unit_ref("mixed3b:12,34")
UnitRef(layer='mixed3b', units=(12, 34))
>>> format_unit_ref("mixed3b", [12, 34, 56], limit=2)
'mixed3b:12,34,…'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["UnitRef", "UNIT_REF_FORM", "REPR_UNITS", "parse_unit_ref", "parse_unit_refs", "one_layer", "format_unit_ref"]

#: The form :func:`parse_unit_ref` reads, as error messages and help texts show it.
UNIT_REF_FORM = "LAYER:UNIT[,UNIT...] (e.g. mixed3b:12,34)"


@dataclass(frozen=True)
class UnitRef:
    """Some units of one layer.

    Attributes:
        layer: the layer name (it may itself hold ``:``; the last one separates the units).
        units: the unit indices, in the order given (repeats kept: the caller decides).
    """

    layer: str
    units: tuple[int, ...]

    def __str__(self) -> str:
        return format_unit_ref(self.layer, self.units)


def parse_unit_ref(text: str) -> UnitRef:
    """Read ``"LAYER:UNIT[,UNIT...]"``, e.g. ``"mixed3b:12"`` or ``"mixed3b:12,34"``.

    Spaces around the layer and the units are ignored.

    Args:
        text: the reference.

    Returns:
        A :class:`UnitRef`.

    Raises:
        ValueError: no ``:``, an empty layer, no units, or a unit that is not a whole
            number ≥ 0; the message quotes ``text`` and shows the expected form.
    """
    if not isinstance(text, str):
        raise ValueError(f"a unit reference must be a string {UNIT_REF_FORM}, got {text!r}")
    layer, colon, rest = text.rpartition(":")
    layer = layer.strip()
    if not colon or not layer:
        raise ValueError(f"bad unit reference {text!r}: expected {UNIT_REF_FORM}")
    items = [item.strip() for item in rest.split(",")]
    bad = [item for item in items if not (item.isascii() and item.isdigit())]
    if bad:
        if items == [""]:
            what = "no units"
        elif bad[0] == "":
            what = "an empty unit between commas"
        else:
            what = f"{bad[0]!r} is not a unit number (a whole number ≥ 0)"
        raise ValueError(f"bad unit reference {text!r}: {what}; expected {UNIT_REF_FORM}")
    return UnitRef(layer, tuple(int(item) for item in items))


def parse_unit_refs(texts: str | Iterable[str]) -> list[UnitRef]:
    """Read several references (each as :func:`parse_unit_ref`), e.g. ``["mixed3a:1,2", "mixed3b:7"]``.

    Raises:
        ValueError: any bad reference (the first one, quoted), or none at all.
    """
    refs = [parse_unit_ref(t) for t in ([texts] if isinstance(texts, str) else list(texts))]
    if not refs:
        raise ValueError(f"no unit references given; expected {UNIT_REF_FORM}")
    return refs


def one_layer(refs: Sequence[UnitRef]) -> UnitRef:
    """Merge references to one layer into one (units in the order given), e.g. ``a:1`` and ``a:2,3`` -> ``a:1,2,3``.

    Raises:
        ValueError: no references, or references to more than one layer (the message names them).
    """
    if not refs:
        raise ValueError(f"no unit references given; expected {UNIT_REF_FORM}")
    layers = list(dict.fromkeys(r.layer for r in refs))
    if len(layers) > 1:
        shown = ", ".join(str(r) for r in refs)
        raise ValueError(f"units of one layer are needed, got {len(layers)} layers {layers}: {shown}")
    return UnitRef(layers[0], tuple(u for r in refs for u in r.units))


#: Units a short repr (``Family``, ``FamilyScore``, ``CircuitScore``) lists before "…".
REPR_UNITS = 12


def format_unit_ref(layer: str, units: Iterable[int], *, limit: int | None = None) -> str:
    """``"mixed3b:12,34"``: the form :func:`parse_unit_ref` reads.

    Args:
        layer: the layer name.
        units: unit indices.
        limit: show at most this many units, then ``,…`` (None: all).

    Raises:
        ValueError: ``limit`` below 1.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int ≥ 1, got {limit!r}")
    shown = [int(u) for u in units]
    more = limit is not None and len(shown) > limit
    text = ",".join(str(u) for u in (shown[:limit] if more else shown))
    return f"{layer}:{text}{',…' if more else ''}"
