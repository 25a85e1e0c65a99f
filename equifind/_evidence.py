"""How equifind prints the evidence of one test: ``"q = 0.02 (p = 0.012)"``, a p at its floor as ``"p ≤ 0.005"``.

Shared by :meth:`equifind.ScanResult.summary` and the report, so that every printed
p-value stands beside its q-value and is printed the same way.
"""

from __future__ import annotations

from typing import Any

from ._stats import format_p

__all__ = ["q_and_p", "null_size"]


def null_size(obj: Any, fallback: int | None = None) -> int | None:
    """``obj.n_null`` when it is set (> 0), else ``fallback`` (e.g. the scan config's; files from before n_null was kept)."""
    n = getattr(obj, "n_null", 0)
    return int(n) if isinstance(n, int) and n > 0 else fallback


def q_and_p(q: float | None, p: float | None, n_null: int | None = None) -> str:
    """``"q = 0.02 (p = 0.012)"``; at the floor of ``n_null`` draws ``"q ≤ 0.005 (p ≤ 0.005)"``; unknown: ``"n/a"``.

    Args:
        q: the Benjamini–Hochberg q-value (NaN or None: unknown).
        p: the p-value (NaN or None: unknown).
        n_null: the null draws behind ``p`` (None: no floor is known).
    """
    return f"{format_p(_float(q), n_null, 'q')} ({format_p(_float(p), n_null)})"


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
