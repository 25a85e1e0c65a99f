"""The report page: one self-contained, offline HTML family browser driven by the scan's own data.

``index.html`` holds a small template, the stylesheet and script of :mod:`equifind.report.assets`
(inlined), and the data of :func:`equifind.report._page_data.page_data` in
``<script type="application/json" id="equifind-data">``. The script draws every view from that data:
an overview (units per layer and transform, largest families, circuits), a sortable and filterable
family table, and a view per family, unit and circuit, chosen by the URL hash
(``index.html#family=<key>``), so every view has a URL and the back button works.

The plots are SVG written by the page's own few hundred lines of plain JavaScript rather than a
plotting library: the page must work offline and from disk with nothing to fetch, a vendored
library would bring its licence and hundreds of kilobytes into every report where this is tens,
and drawing synchronously into the DOM lets a headless browser test check what each view drew.

Keys (:func:`family_key`, :func:`circuit_key`) are shared with the figure export
(:mod:`equifind.report.build`), which passes the figure files it wrote as ``exported``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..responses import Responses
from ._files import write_text
from ._page_data import circuit_key, family_key, page_data

__all__ = ["family_key", "circuit_key", "write_page", "render_browser", "ExportedFigure"]

#: One exported figure: (title, {format: path relative to the page}).
ExportedFigure = tuple[str, dict[str, str]]

# Nothing may load from anywhere: images are data URIs, style and script are inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _asset(name: str) -> str:
    return resources.files("equifind.report").joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """``data`` as JSON that cannot end its ``<script>`` element: every ``<`` is written ``\\u003c``
    (JSON has ``<`` only inside strings, where the escape means the same), so no ``</script>`` or ``<!--``."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def render_browser(data: Mapping[str, Any]) -> str:
    """The page's HTML for :func:`~equifind.report._page_data.page_data`'s output.

    Raises:
        ValueError: ``data`` holds NaN or infinity (not JSON).
    """
    title = html.escape(str(data.get("title", "equifind")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{title}</title>\n<style>\n{_asset('browser.css')}</style>\n</head>\n<body>\n"
        f"<header><h1>{title}</h1><nav id=\"nav\"></nav></header>\n"
        "<main id=\"view\"><noscript>This report draws its views with JavaScript; turn it on to browse.</noscript></main>\n"
        f"<script type=\"application/json\" id=\"equifind-data\">{_json_for_script(data)}</script>\n"
        f"<script>\n{_asset('browser.js')}</script>\n</body>\n</html>\n"
    )


def write_page(
    obj: Any,
    path: str | os.PathLike,
    *,
    responses: Responses | None = None,
    exported: Mapping[str, Sequence[ExportedFigure]] | None = None,
) -> None:
    """Write the family browser for ``obj`` to ``path``.

    Args:
        obj: a :class:`~equifind.ScanResult` (or any object with ``model``, ``layers``, ``transforms``,
            ``families`` and optionally ``responses``, ``circuits``, ``matches``, ``config``,
            ``heldout_images``, ``missing``, ``summary()``), a :class:`~equifind.Family`, a
            :class:`~equifind.FamilyScore`, or a ``CircuitScore`` (anything with ``weights`` and ``kind``).
        path: the ``index.html`` to write.
        responses: a lone Family / FamilyScore's Responses (for its plots and unit views); None otherwise.
        exported: figure files written by the export, by family / circuit key, shown as links.

    Raises:
        TypeError: an unsupported ``obj``, or ``responses`` that is not a Responses.
        ValueError: ``responses`` for a scan or circuit, or not matching the family.
    """
    write_text(Path(path), render_browser(page_data(obj, responses, exported)))
