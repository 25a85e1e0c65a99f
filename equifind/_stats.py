"""Statistics shared by every test equifind prints: permutation p-values, their floor, BH q-values.

A permutation p-value ``(1 + #null >= observed) / (1 + n_null)`` can never fall below
``1 / (1 + n_null)``; at that floor the data only say "p ≤ floor", and :func:`format_p`
prints it so. Lists of tests (the families of one layer, the circuits of one scan)
carry Benjamini–Hochberg q-values (:func:`bh_q`, SciPy's ``false_discovery_control``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import false_discovery_control

__all__ = ["permutation_p", "p_floor", "bh_q", "format_p", "check_null_size", "floor_limits_q", "DEFAULT_Q"]

DEFAULT_Q = 0.05  #: what equifind calls significant: q ≤ 0.05


def p_floor(n_null: int) -> float:
    """The smallest permutation p-value ``n_null`` draws can give, ``1 / (1 + n_null)``."""
    return 1.0 / (1 + int(n_null))


def permutation_p(n_at_least: int, n_null: int) -> float:
    """``(1 + n_at_least) / (1 + n_null)``: the p-value when ``n_at_least`` null draws reach the observed value."""
    return (1 + int(n_at_least)) / (1 + int(n_null))


def bh_q(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values of a list of p-values (NaN stays NaN, and is not counted).

    Args:
        p_values: one p-value per test, each in [0, 1] or NaN.

    Returns:
        One q-value per test, in the same order; ``q ≥ p``.
    """
    p = np.asarray([float(v) for v in p_values], dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return [float(v) for v in out]


def format_p(p: float, n_null: int | None = None, name: str = "p") -> str:
    """``"p = 0.031"``, or ``"p ≤ 0.005"`` when ``p`` sits at the floor of ``n_null`` draws.

    Args:
        p: the p-value (or q-value, with ``name="q"``).
        n_null: the number of null draws behind it (None: no floor is known).
        name: the symbol to print.
    """
    if p is None or not math.isfinite(float(p)):
        return f"{name} = n/a"
    if n_null is not None and n_null > 0 and float(p) <= p_floor(n_null) + 1e-12:
        return f"{name} ≤ {p_floor(n_null):.2g}"
    return f"{name} = {float(p):.2g}"


def check_null_size(n_null: int, alpha: float, what: str = "n_null") -> None:
    """Raise unless ``n_null`` draws can reach ``alpha`` (the p floor ``1/(1 + n_null)`` ≤ alpha).

    Raises:
        ValueError: the floor is above ``alpha``; the message names the smallest ``n_null`` that works.
    """
    if not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    if p_floor(n_null) > float(alpha) + 1e-12:
        need = math.ceil(1.0 / float(alpha) - 1.0 - 1e-9)
        raise ValueError(
            f"{what}={n_null} cannot reach significance at {alpha:g}: the smallest p-value it gives is "
            f"1/(1 + {n_null}) = {p_floor(n_null):.3g}; use {what} >= {need}"
        )


def floor_limits_q(p_values: Sequence[float], n_null: int, what: str, alpha: float = DEFAULT_Q) -> str | None:
    """Why BH cannot call the tests at the p floor significant on their own, or None when it can.

    With k tests of which f sit at the floor ``1/(1 + n_null)``, BH calls those f
    significant on their own only if the floor is at most ``f·alpha/k``. Below that,
    whether they are significant hinges on the other tests' p-values, and a larger null
    would settle it: the message names ``ceil(k/alpha) − 1``, with which one test alone
    can reach ``alpha``.

    Args:
        p_values: the p-values of one BH family of tests (NaN: not a test).
        n_null: the null draws behind each p-value (0: no null, nothing to say).
        what: the tests' name in the message ("families", "circuit checks").
        alpha: the q threshold.
    """
    p = np.asarray([float(v) for v in p_values], dtype=np.float64)
    p = p[np.isfinite(p)]
    if not n_null or not len(p):
        return None
    k, floor = len(p), p_floor(n_null)
    at_floor = int((p <= floor + 1e-12).sum())
    if not at_floor or floor <= at_floor * alpha / k + 1e-12:
        return None
    return (
        f"{at_floor} of {k} {what} sit at the p floor 1/(1 + n_null) = {floor:.2g}, above what "
        f"Benjamini-Hochberg needs to call them significant on their own ({at_floor} x {alpha:g}/{k} = "
        f"{at_floor * alpha / k:.2g}); their q-values are limited by n_null={n_null}, not by the data. "
        f"Use n_null >= {math.ceil(k / alpha) - 1} (a test alone can then reach q <= {alpha:g})."
    )
