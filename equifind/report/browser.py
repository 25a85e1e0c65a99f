"""The report page: one self-contained, offline HTML family browser driven by the scan's own data.

CONTRACT (stub, replaced by the real browser; the names and signatures below are fixed):

- :func:`family_key` / :func:`circuit_key`: the id of a family / circuit in the page (its URL hash
  and the key of ``exported``), shared with the figure export in :mod:`equifind.report.build`.
- :func:`write_page`: writes ``index.html`` for a ScanResult (or stand-in), Family, FamilyScore or
  CircuitScore.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._files import write_text

__all__ = ["family_key", "circuit_key", "write_page", "ExportedFigure"]

#: One exported figure: (title, {format: path relative to the page}).
ExportedFigure = tuple[str, dict[str, str]]


def family_key(layer: str, transform: str, index: int) -> str:
    """The id of family ``index`` of ``scan.families[layer][transform]`` (a lone Family: index 0)."""
    return f"family:{layer}|{transform}|{int(index)}"


def circuit_key(index: int) -> str:
    """The id of circuit ``index`` of ``scan.circuits`` (in their saved order; a lone circuit: 0)."""
    return f"circuit:{int(index)}"


def write_page(
    obj: Any,
    path: Path,
    *,
    responses: Any | None = None,
    exported: Mapping[str, Sequence[ExportedFigure]] | None = None,
) -> None:
    """Write the page for ``obj`` to ``path`` (stub: lists the ids; the browser replaces it).

    Args:
        obj: as :func:`equifind.report.report` takes.
        path: the ``index.html`` to write (inside report()'s staging directory).
        responses: a lone Family / FamilyScore's Responses (None for scans and circuits).
        exported: figure files written by the export, by family / circuit key, shown as links.
    """
    keys: list[str] = []
    families = getattr(obj, "families", None)
    if isinstance(families, Mapping):
        for layer, by_t in families.items():
            for t, fams in by_t.items():
                keys += [family_key(layer, str(t), i) for i in range(len(fams))]
    keys += [circuit_key(i) for i in range(len(getattr(obj, "circuits", None) or []))]
    data = {"keys": keys, "exported": {k: list(v) for k, v in (exported or {}).items()}}
    write_text(path, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>equifind</title></head><body>"
               f"<pre>{html.escape(json.dumps(data, indent=1))}</pre></body></html>")
