"""``index.html``: a self-contained page (inline CSS, no scripts, no external resources).

The page is described by small dataclasses (:class:`Page`, :class:`Section`,
:class:`Card`, :class:`FigureLink`, :class:`Table`) holding plain text; every text
is escaped with :func:`html.escape` when rendered, and figure paths are
URL-quoted, so layer names such as ``"block<1>"`` are safe. Images are referenced
by relative paths next to the page (PNG preferred, else SVG), with links to every
format written.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ._files import write_text

__all__ = ["Page", "Section", "Card", "FigureLink", "Table", "render_page", "write_index"]

_SHOWN = ("png", "svg")  # formats an <img> can show, in order of preference

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f6f4}
header,main{max-width:1280px;margin:0 auto;padding:0 24px}
header{padding-top:20px}
h1{font-size:24px;margin:0 0 8px}
h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;margin:8px 0;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eeeeea}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px}
nav a{margin-right:12px}
.cards{display:flex;flex-direction:column;gap:16px}
.card{background:#fff;border:1px solid #d8d8d4;border-radius:6px;padding:12px 16px}
.card h4{margin:0 0 8px;font-size:15px}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 10px}
.card dt{color:#555}
.card dd{margin:0;word-break:break-word}
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;flex:0 1 560px;max-width:100%}
figure img{width:100%;height:auto;border:1px solid #eee;display:block}
figcaption{font-size:12px;color:#555}
.note{color:#8a5a00;font-size:13px;margin:4px 0}
.muted{color:#666}
.banner{background:#fff3cd;border:2px solid #c77c00;border-radius:6px;padding:10px 14px;margin:10px 0;color:#5a3b00}
.banner strong{display:block;font-size:16px;margin-bottom:4px}
"""


@dataclass
class FigureLink:
    """A figure written in one or more formats.

    Attributes:
        title: caption.
        files: format (``"png"``, ``"svg"``, ``"pdf"``) → path relative to ``index.html``.
    """

    title: str
    files: dict[str, str]


@dataclass
class Table:
    """A table of text cells; ``numeric`` columns are right-aligned."""

    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)


@dataclass
class Card:
    """One family or circuit: a title, label/value fields, figures and notes."""

    title: str
    anchor: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    figures: list[FigureLink] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    """A heading (level 2 or 3) with paragraphs, an optional table and cards."""

    title: str
    anchor: str
    level: int = 2
    paragraphs: list[str] = field(default_factory=list)
    table: Table | None = None
    cards: list[Card] = field(default_factory=list)
    preformatted: str | None = None


@dataclass
class Page:
    """The whole report page; ``banner``: a warning shown above everything (e.g. an incomplete scan), a
    heading line then its details."""

    title: str
    header: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    banner: list[str] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(path: str) -> str:
    return _e(quote(path.replace(os.sep, "/"), safe="/._-"))


def _table(t: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in t.header)
    body = []
    for row in t.rows:
        cells = "".join(f'<td class="num">{_e(c)}</td>' if i in t.numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(f: FigureLink) -> str:
    shown = next((f.files[k] for k in _SHOWN if k in f.files), None)
    links = " · ".join(f'<a href="{_href(p)}">{_e(k)}</a>' for k, p in f.files.items())
    img = f'<img src="{_href(shown)}" alt="{_e(f.title)}">' if shown is not None else ""
    return f"<figure>{img}<figcaption>{_e(f.title)} — {links}</figcaption></figure>"


def _card(c: Card) -> str:
    parts = [f'<article class="card" id="{_e(c.anchor)}"><h4>{_e(c.title)}</h4>']
    if c.fields:
        parts.append("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in c.fields) + "</dl>")
    parts += [f'<p class="note">{_e(n)}</p>' for n in c.notes]
    if c.figures:
        parts.append('<div class="figs">' + "".join(_figure(f) for f in c.figures) + "</div>")
    parts.append("</article>")
    return "".join(parts)


def _section(s: Section) -> str:
    level = 3 if s.level >= 3 else 2
    parts = [f'<section id="{_e(s.anchor)}"><h{level}>{_e(s.title)}</h{level}>']
    parts += [f"<p>{_e(p)}</p>" for p in s.paragraphs]
    if s.table is not None:
        parts.append(_table(s.table))
    if s.preformatted is not None:
        parts.append(f"<pre>{_e(s.preformatted)}</pre>")
    if s.cards:
        parts.append('<div class="cards">' + "".join(_card(c) for c in s.cards) + "</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _banner(lines: list[str]) -> str:
    """The warning box of a page: the first line in bold, the others as paragraphs (nothing without lines)."""
    if not lines:
        return ""
    rest = "".join(f"<p>{_e(line)}</p>" for line in lines[1:])
    return f'<div class="banner" role="alert"><strong>{_e(lines[0])}</strong>{rest}</div>'


def render_page(page: Page) -> str:
    """The HTML text of ``page`` (UTF-8, inline CSS, no scripts).

    Args:
        page: the page description.

    Returns:
        A complete HTML document.
    """
    nav = " ".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in page.sections if s.level <= 2)
    header = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in page.header)
    body = "\n".join(_section(s) for s in page.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(page.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(page.title)}</h1>"
        + _banner(page.banner)
        + (f"<table>{header}</table>" if header else "")
        + (f"<nav>{nav}</nav>" if nav else "")
        + "</header>\n<main>\n"
        + body
        + "\n</main>\n</body>\n</html>\n"
    )


def write_index(page: Page, path: str | os.PathLike) -> Path:
    """Render ``page`` and write it to ``path`` atomically.

    Returns:
        The path written.
    """
    return write_text(path, render_page(page))
