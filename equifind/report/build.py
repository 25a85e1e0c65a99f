"""``report``: figures and an ``index.html`` for a scan, a family, a family score or a circuit.

Layout of ``out_dir`` (other files there, such as a saved scan, are left alone)::

    out_dir/index.html                       the page ("html" in formats)
    out_dir/figures/<name>.png|svg|pdf       one file per figure and format

The report is drawn into a staging directory beside ``out_dir`` and moved into
place only when everything succeeded; ``index.html`` and ``figures/`` of a
previous report are replaced.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .._evidence import null_size, q_and_p
from .._progress import progress_bar
from .._stats import DEFAULT_Q
from ..families import Family, rank_families, weight_verdict_text
from ..responses import Responses
from ..score import FamilyScore
from ..transforms import Transform, as_transform
from . import figures as F
from ._data import hue_and_angle
from ._files import (
    FIGURES_DIR, IMAGE_FORMATS, INDEX, REPORT_FORMATS, ReportFormat, check_formats, check_writable, save_figure, slug,
    staged_report,
)  # fmt: skip
from .html import Card, FigureLink, Page, Section, Table, write_index
from .weights import weight_diagram

__all__ = ["report"]

_SCAN_ATTRS = ("model", "layers", "transforms", "families")
_CIRCUIT_ATTRS = ("weights", "kind")
_NULLS = {"angles": "random member angles", "kernels": "rearranged kernels", "orders": "permuted member orders"}
_MAX_LISTED = 40  # units listed in a paragraph before "…"


@dataclass
class _Job:
    stem: str
    draw: Callable[[], Figure]


@dataclass
class _Builder:
    """Collects the figures a page needs (drawn later, inside the staging directory)."""

    images: tuple[str, ...]
    jobs: list[_Job] = field(default_factory=list)

    def figure(self, card: Card, stem: str, title: str, draw: Callable[[], Figure]) -> None:
        """Plan figure ``figures/<stem>.<fmt>`` and show it in ``card`` (nothing without image formats)."""
        if not self.images:
            return
        self.jobs.append(_Job(stem, draw))
        card.figures.append(FigureLink(title, {fmt: f"{FIGURES_DIR}/{stem}.{fmt}" for fmt in self.images}))


def report(
    obj: Any,
    out_dir: str | os.PathLike,
    formats: Sequence[ReportFormat] = REPORT_FORMATS,
    *,
    responses: Responses | None = None,
    max_families: int | None = 8,
    max_circuits: int | None = 24,
    progress: bool = False,
) -> Path:
    """Write the figures and an HTML page for a scan, family, family score or circuit.

    Args:
        obj: a :class:`~equifind.ScanResult` (anything with ``model``, ``layers``,
            ``transforms``, ``families`` and optionally ``responses``, ``circuits``,
            ``matches``, ``config``, ``heldout_images``, ``summary()``; each family's
            :class:`~equifind.FamilyScore` is its ``equivariance``), a
            :class:`~equifind.Family`, a :class:`~equifind.FamilyScore`, or a
            ``CircuitScore`` (anything with ``weights`` and ``kind``).
        out_dir: the report directory; created if missing. Its ``index.html`` and
            ``figures/`` are replaced; nothing else in it is touched.
        formats: any of ``"png"``, ``"svg"``, ``"pdf"`` (figure files) and ``"html"``
            (``index.html``, showing the PNGs, else the SVGs).
        responses: for a Family or FamilyScore: the layer's :class:`~equifind.Responses`
            for its transform, needed for the tuning, stimulus and equivariance figures
            (without them, the page says what is missing).
        max_families: for a scan: families per layer and transform drawn as figures
            (those confirmed by weights first, then those with discovery q ≤ the config's
            alpha, then the largest, then the most equivariant); the others get a card
            without figures. None: all.
        max_circuits: for a scan: circuits drawn as weight diagrams (highest score
            first); the others get a card without figures. None: all.
        progress: show a progress bar while the figures are drawn.

    Returns:
        ``out_dir`` as a Path (the page is ``out_dir / "index.html"``).

    Raises:
        TypeError: an unsupported ``obj``, or ``responses`` that is not a Responses.
        ValueError: an unknown format; ``responses`` given for a scan or circuit, or
            not matching the family (layer, transform, units).
        NotADirectoryError: ``out_dir`` exists and is a file.
        PermissionError: ``out_dir`` (or the folder it would be created in) is not writable; checked
            before any figure is drawn.
    """
    fmts = check_formats(formats, REPORT_FORMATS)
    check_writable(out_dir)
    for name, limit in (("max_families", max_families), ("max_circuits", max_circuits)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"{name} must be None or an int >= 0, got {limit!r}")
    builder = _Builder(tuple(f for f in fmts if f in IMAGE_FORMATS))
    if responses is not None and not isinstance(responses, Responses):
        raise TypeError(f"responses must be an equifind Responses or None, got {type(responses).__name__}")
    if isinstance(obj, (Family, FamilyScore)):
        page = _family_page(builder, obj, responses)
    elif all(hasattr(obj, a) for a in _CIRCUIT_ATTRS):
        _no_responses(obj, responses)
        page = _circuit_page(builder, obj)
    elif all(hasattr(obj, a) for a in _SCAN_ATTRS):
        _no_responses(obj, responses)
        page = _scan_page(builder, obj, max_families, max_circuits)
    else:
        raise TypeError(
            f"report() takes a ScanResult, Family, FamilyScore or CircuitScore, got {type(obj).__name__}"
        )
    with staged_report(out_dir) as stage:
        for job in progress_bar(builder.jobs, desc="report figures", unit="fig", enabled=progress):
            save_figure(job.draw(), stage / FIGURES_DIR / job.stem, builder.images)
        if "html" in fmts:
            write_index(page, stage / INDEX)
    return Path(out_dir)


def _no_responses(obj: Any, responses: Responses | None) -> None:
    if responses is not None:
        raise ValueError(f"responses= is only for a Family or FamilyScore, not a {type(obj).__name__}")


# --------------------------------------------------------------------------- text


def _num(x: Any, spec: str = ".3f") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(v) else format(v, spec)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _units(layer: str, units: Sequence[int], limit: int | None = None) -> str:
    shown = list(units) if limit is None else list(units)[:limit]
    text = ", ".join(f"{layer}:{int(u)}" for u in shown)
    return text + (f", … ({len(units)} in all)" if limit is not None and len(units) > limit else "")


def _legend(alpha: float) -> str:
    """What the q and p of the cards mean, and the significance rule."""
    return (
        f"Significant means q ≤ {alpha:g}. Discovery q / p: the test that found the family (its null re-runs "
        "the discovery on surrogate responses), q by Benjamini–Hochberg over the families of one layer and "
        "transform. Equivariance q / p: the family's equivariance score against random unit sets of the layer, "
        "q over the same families. Circuit q / p: the symmetry score against rearranged kernels, q over the "
        "checks of one transform. A p at its floor prints as p ≤ 1/(1 + n_null), n_null the null draws. "
        "Weights: \"confirmed by weights\" when a significant circuit from the layer below enters exactly the "
        "family's units (the best such circuit is named), \"not confirmed\" when the weights were checked and "
        "none does, \"weights not checked\" with circuits off, in the first scanned layer, or for a transform "
        "circuits do not cover (hue_rotation). Families confirmed by weights are listed first. A flip pair whose "
        "two units are members of one rotation family at mirrored angles is \"explained by rotation\": the "
        "rotation family already holds it, so it is listed last and not counted as a family. Held-out: the best "
        "families of a layer and transform, tested on stimuli never used for discovery (each member's feature "
        "visualization, its top natural patches) against random unit sets scored the same way; q by "
        "Benjamini–Hochberg over every validated family of the scan, per source; \"held out\" when the "
        f"combined (or only) source's q ≤ {alpha:g}, \"did not hold out\" otherwise."
    )


def _matched(matches: Sequence[dict[str, Any]], layer: str, transform: str, units: Sequence[int]) -> str:
    found = []
    for m in matches:
        if m.get("layer") == layer and m.get("transform") == transform and set(m.get("found_units", [])) & set(units):
            found.append(f"{m.get('label', '?')} (overlap {_num(100 * float(m.get('overlap', math.nan)), '.0f')}%)")
    return "; ".join(found) if found else "none"


# --------------------------------------------------------------------------- family cards


def _family_card(
    builder: _Builder, family: Family | None, score: FamilyScore | None, responses: Responses | None,
    matches: Sequence[dict[str, Any]], name: str, title: str, draw: str | None = None, *, n_null: int | None = None,
    circuit_n_null: int | None = None, alpha: float = DEFAULT_Q, heldout_images: F.HeldoutImages | None = None,
) -> Card:  # fmt: skip
    """A family's card; ``draw``: why it has no figures (None: draw them); ``n_null`` and ``circuit_n_null``: the
    null draws of family and circuit tests whose result does not say its own (older files); ``alpha``: the
    held-out verdict's threshold; ``heldout_images``: the layer and transform's held-out images (scan)."""
    main: Family | FamilyScore = family if family is not None else score  # type: ignore[assignment]
    layer, t = main.layer, main.transform  # t: a Transform; it writes parameters and periods
    units = list(family.units) if family is not None else list(score.order)  # type: ignore[union-attr]
    if family is not None:
        preferred = list(family.preferred)
    else:
        preferred = [float(score.preferred.get(u, math.nan)) for u in units]  # type: ignore[union-attr]
    card = Card(title, f"card-{name}")
    card.fields.append(("units", _units(layer, units)))
    card.fields.append(("preferred", ", ".join(t.format_param(p) for p in preferred)))
    if family is not None and family.preferred_hue is not None:  # hue shifts, in degrees like the angles
        card.fields.append(("preferred hue", ", ".join(t.format_param(p) for p in family.preferred_hue)))
    card.fields.append(("period", t.format_period(main.period)))
    if score is not None:
        card.fields.append(("equivariance score", f"{_num(score.equivariance)} (1.0 = exact f(g·x) = P_g f(x))"))
        evidence = q_and_p(score.q_value, score.p_value, null_size(score, n_null))
        card.fields.append(("equivariance q / p", f"{evidence}; null: random unit sets of the layer, "
                                                  f"mean {_num(score.null_mean)}"))
        card.fields.append(("invariance score", _num(score.invariance)))
        card.fields.append(("coverage", _num(score.coverage, ".2f")))
        card.fields += _heldout_fields(score, alpha)
    else:
        card.fields.append(("equivariance score", "not scored"))
    if family is not None:
        card.fields.append(("discovery score", _num(family.score)))
        card.fields.append(("discovery q / p", q_and_p(family.q_value, family.p_value, null_size(family, n_null))))
        if family.colour_index is not None:
            card.fields.append(("colour index", f"{_num(family.colour_index, '.2f')} (members' mean; colour / (colour + grey) "
                                                "drive: 1 colour-opponent, ≈ 0.37 colour-blind)"))
        card.fields.append(("weights", weight_verdict_text(family, circuit_n_null)))
        if family.explained_by is not None:
            e = family.explained_by
            by = as_transform(e["transform"])  # saved by name
            card.fields.append(("explained by", (
                f"the {by} family {_units(layer, e['units'], _MAX_LISTED)} (period {by.format_period(e['period'])}): "
                f"its members at {', '.join(by.format_param(a) for a in e['angles'])}, mirrored angles "
                f"(sum off 0 by {e['mismatch']:.1f}°); not counted as a finding")))  # fmt: skip
    holes = score.holes if score is not None else family.holes  # type: ignore[union-attr]
    if t.period is None:  # no circle, so no gaps around it
        card.fields.append(("holes", "n/a (no period)"))
    else:
        card.fields.append(("holes", ", ".join(t.format_param(h) for h in holes) if holes else "none"))
    if family is not None and family.duplicates:
        card.fields.append(("duplicates", ", ".join(f"{layer}:{a} (= {layer}:{b})" for a, b in family.duplicates)))
    card.fields.append(("matched labels", _matched(matches, layer, t, units)))
    if draw is None:
        _family_figures(builder, card, main, family, responses, name)
        _heldout_figures(builder, card, score, heldout_images or {}, name)
    else:
        card.notes.append(f"No figures: {draw}.")
    return card


def _family_figures(
    builder: _Builder, card: Card, main: Family | FamilyScore, family: Family | None, responses: Responses | None, name: str
) -> None:
    t = main.transform
    if not builder.images:
        card.notes.append("No figures: no image format (png, svg, pdf) was requested.")
        return
    if responses is None:
        card.notes.append(
            "No tuning, stimulus or equivariance figures: they need the layer's Responses "
            "(pass responses= to report(), or keep them in the ScanResult)."
        )
    else:
        builder.figure(card, f"{name}__tuning", "tuning curves (members × transform, normalised per row)",
                       lambda: F.tuning_heatmap(main, responses))  # fmt: skip
        if t.circular:
            builder.figure(card, f"{name}__polar", "polar tuning", lambda: F.polar_tuning(main, responses))
        if responses.stimuli is not None:
            builder.figure(card, f"{name}__stimuli", "best stimulus of each member at its preferred parameter",
                           lambda: F.stimulus_strip(main, responses))  # fmt: skip
        else:
            card.notes.append("No stimulus strip: these responses carry no stimuli.")
        builder.figure(card, f"{name}__equivariance", "responses to the first member's stimulus under each transform step",
                       lambda: F.equivariance_matrix(main, responses))  # fmt: skip
    if hue_and_angle(t) and (responses is not None or (family is not None and family.preferred_hue is not None)):
        builder.figure(card, f"{name}__hue_orientation", "preferred hue × orientation",
                       lambda: F.hue_orientation_map(main, responses))  # fmt: skip


def _heldout_fields(score: FamilyScore, alpha: float) -> list[tuple[str, str]]:
    """The card's held-out fields: each source's equivariance, q (p) and null mean, and the verdict; none when
    the family was not validated."""
    main = score.heldout_test
    if main is None:
        return []
    per = "; ".join(
        f"{key} {_num(test.equivariance)} {q_and_p(test.q_value, test.p_value, test.n_null or None)}, random sets "
        f"{_num(test.null_mean)}" for key, test in score.heldout.items()
    )
    return [("held-out equivariance", per), ("held-out verdict", main.verdict(alpha))]


def _heldout_figures(builder: _Builder, card: Card, score: FamilyScore | None, images: F.HeldoutImages, name: str) -> None:
    """The held-out figures of a validated family: the pair matrix, and the answers where its images are known."""
    if score is None or not score.heldout or not builder.images:
        return
    builder.figure(card, f"{name}__heldout_pairs", "held-out equivariance of each member pair, per source",
                   lambda: F.heldout_pairs(score))  # fmt: skip
    if any(s in score.heldout and images.get(s) for s in ("feature_vis", "patches")):
        builder.figure(card, f"{name}__heldout_answers", "held-out images: member 0's moved to each member's position, "
                       "and the member that answers it", lambda: F.heldout_answers(score, images))  # fmt: skip
    else:
        card.notes.append("No held-out answers figure: the held-out images are not known here (a scan keeps them).")


def _family_page(builder: _Builder, obj: Family | FamilyScore, responses: Responses | None) -> Page:
    family = obj if isinstance(obj, Family) else None
    score = obj if isinstance(obj, FamilyScore) else None
    if family is not None:
        score = family.equivariance  # the family's own score, when it carries one
    name = f"{slug(obj.layer)}__{slug(obj.transform.name)}__family"
    n = len(family.units) if family is not None else len(obj.order)  # type: ignore[union-attr]
    title = f"{obj.layer} · {obj.transform} family of {n} units"
    card = _family_card(builder, family, score, responses, (), name, title)
    header = [("layer", obj.layer), ("transform", obj.transform.name),
              ("responses", repr(responses) if responses else "not given")]  # fmt: skip
    return Page(f"equifind report: {title}", header, [Section("Family", "family", paragraphs=[_legend(DEFAULT_Q)], cards=[card])])


# --------------------------------------------------------------------------- circuits


def _circuit_card(builder: _Builder, c: Any, i: int, draw: str | None = None, *, n_null: int | None = None) -> Card:
    """A circuit's card; ``draw``: why it has no figure (None: draw it); ``n_null``: as for :func:`_family_card`."""
    src, tgt = str(getattr(c, "source_layer", "source")), str(getattr(c, "target_layer", "target"))
    t = str(getattr(c, "transform", ""))
    name = f"circuit{i:02d}__{slug(src)}__{slug(tgt)}__{slug(t or 'any')}"
    shape = tuple(getattr(c.weights, "shape", ()))
    card = Card(f"{src} → {tgt} · {t} · {c.kind}", f"card-{name}")
    card.fields += [
        ("kind", str(c.kind)), ("transform", t or "n/a"),
        ("symmetry score", f"{_num(getattr(c, 'score', None))} (mean cosine with the predicted kernels; 1.0 exact)"),
        ("q / p", f"{q_and_p(getattr(c, 'q_value', None), getattr(c, 'p_value', None), null_size(c, n_null))}; "
                  f"null: {_NULLS.get(getattr(c, 'null', ''), 'n/a')}, mean {_num(getattr(c, 'null_mean', None))}"),
        ("rotation gain", f"{_num(getattr(c, 'rotation_gain', None))} (score minus the score with the transform "
                          f"left out; significant above 2 × {_num(getattr(c, 'gain_sd', None))}, its null SD)"),
        ("1×1-path share", f"{_num(getattr(c, 'pointwise_share', None))} (weights' energy through 1×1 convolutions "
                           "and pools, which cannot show a rotation)"),
        ("ceiling", f"{_num(getattr(c, 'ceiling', None))} (what exactly rotated smooth kernels of this size score)"),
        ("source units", _units(src, getattr(c, "source_units", None) or range(shape[1] if len(shape) > 1 else 0))),
        ("target units", _units(tgt, getattr(c, "target_units", None) or range(shape[0] if shape else 0))),
        ("weights", " × ".join(str(s) for s in shape) + " (target, source, kh, kw)"),
    ]  # fmt: skip
    if not builder.images:
        card.notes.append("No figures: no image format (png, svg, pdf) was requested.")
    elif draw is not None:
        card.notes.append(f"No figures: {draw}.")
        return card
    builder.figure(card, f"{name}__weights", "expanded weights (red excitation, blue inhibition)", lambda: weight_diagram(c))
    return card


def _circuit_page(builder: _Builder, c: Any) -> Page:
    card = _circuit_card(builder, c, 0)
    section = Section("Circuit", "circuit", paragraphs=[_legend(DEFAULT_Q)], cards=[card])
    return Page(f"equifind report: circuit {card.title}", [("kind", str(c.kind))], [section])


# --------------------------------------------------------------------------- scans


@dataclass(frozen=True)
class _ScanContext:
    """What every part of a scan page needs: the significance rule and the config's null sizes."""

    alpha: float
    n_null: int | None
    circuit_n_null: int | None
    min_score: float | None
    matches: tuple[dict[str, Any], ...]
    max_families: int | None

    @classmethod
    def of(cls, config: dict[str, Any], matches: Sequence[dict[str, Any]], max_families: int | None) -> _ScanContext:
        return cls(float(config.get("alpha", DEFAULT_Q)), config.get("n_null"), config.get("circuit_n_null"),
                   config.get("circuit_min_score"), tuple(matches), max_families)  # fmt: skip


def _confirmed(fams: Sequence[Family]) -> str:
    """How many of one layer and transform's families are confirmed by weights; "not checked" when their
    weights were not (for a layer and transform the verdicts share that), "n/a" without families."""
    if not fams:
        return "n/a"
    if not any(f.weight_checked for f in fams):
        return "not checked"
    return str(sum(f.weight_support is not None for f in fams))


def _summary_row(ctx: _ScanContext, layer: str, t: Transform, fams: Sequence[Family],
                 resp: Responses | None) -> list[str]:  # fmt: skip
    """One row of the summary table: counts, families at q ≤ alpha and confirmed by weights, the most
    equivariant family's q (p) (each family's ``equivariance``), and the flip pairs explained by rotation
    ("n/a" for transforms other than a mirror pair), which the other counts leave out."""
    n_explained = sum(getattr(f, "explained_by", None) is not None for f in fams)
    selective, invariant = len(getattr(fams, "selective", [])), len(getattr(fams, "invariant", []))  # FamilyList's
    fams = [f for f in fams if getattr(f, "explained_by", None) is None]
    best = max((f.equivariance for f in fams if f.equivariance is not None), key=lambda s: s.equivariance, default=None)
    evidence = q_and_p(best.q_value, best.p_value, null_size(best, ctx.n_null)) if best else "n/a"
    return [
        layer, t.name, str(len(resp.units)) if resp is not None else "n/a",
        str(selective), str(invariant), str(len(fams)),
        str(sum(f.q_value <= ctx.alpha for f in fams)), _confirmed(fams), str(sum(len(f.units) for f in fams)),
        _num(best.equivariance) if best else "n/a", evidence, str(n_explained) if t.discovery == "pair" else "n/a",
    ]  # fmt: skip


def _layer_section(builder: _Builder, ctx: _ScanContext, layer: str, t: Transform, fams: Sequence[Family],
                   resp: Responses | None, heldout_images: F.HeldoutImages | None = None) -> Section:  # fmt: skip
    """The cards of one layer and transform, the most worth a look first (rank_families at q ≤ alpha:
    confirmed by weights first, then significant, larger, more equivariant)."""
    sub = Section(f"{layer} · {t}", f"layer-{slug(layer)}--{slug(t.name)}", level=3)
    invariant = list(getattr(fams, "invariant", []))
    findings = [f for f in fams if getattr(f, "explained_by", None) is None]
    n_sig = sum(f.q_value <= ctx.alpha for f in findings)
    explained = len(fams) - len(findings)
    sub.paragraphs.append(
        f"{_count(len(findings), 'family', 'families')} ({n_sig} with discovery q ≤ {ctx.alpha:g}"
        + (f"; besides, {_count(explained, 'flip pair')} explained by a rotation family of the layer, listed last"
           if explained else "") + "); "
        f"{_count(len(getattr(fams, 'selective', [])), 'selective unit')}; {_count(len(invariant), 'invariant unit')}"
        + (f": {_units(layer, invariant, _MAX_LISTED)}" if invariant else ".")
    )
    if not fams:
        sub.paragraphs.append("No families found.")
    scores = [f.equivariance for f in fams]
    order = rank_families(fams, [sc.equivariance if sc is not None else None for sc in scores], alpha=ctx.alpha)
    for rank, i in enumerate(order):
        fam, sc = fams[i], scores[i]
        name = f"{slug(layer)}__{slug(t.name)}__f{i:02d}"
        title = f"{layer} · {t} · family {i + 1}: {len(fam.units)} units, period {t.format_period(fam.period)}" + (
            " (explained by rotation)" if getattr(fam, "explained_by", None) is not None else "")
        skip = None if ctx.max_families is None or rank < ctx.max_families else (
            f"only the first {ctx.max_families} families of {layer} · {t} are drawn "
            f"(confirmed by weights first, then discovery q ≤ {ctx.alpha:g}, then largest; "
            "report(..., max_families=None) draws all)")
        sub.cards.append(_family_card(builder, fam, sc, resp, ctx.matches, name, title, skip, n_null=ctx.n_null,
                                      circuit_n_null=ctx.circuit_n_null, alpha=ctx.alpha,
                                      heldout_images=heldout_images))  # fmt: skip
    return sub


def _circuit_section(builder: _Builder, ctx: _ScanContext, circuits: list[Any], max_circuits: int | None,
                     not_run: Sequence[str] = ()) -> Section:  # fmt: skip
    """The circuits found; ``not_run``: transforms whose circuits the scan should have checked but did not."""
    circ = Section("Circuits", "circuits")
    rule = (f"q ≤ {ctx.alpha:g} (Benjamini–Hochberg over the checks of each transform)"
            + (f" and symmetry score ≥ {ctx.min_score:g}" if ctx.min_score is not None else ""))
    if not_run:
        circ.paragraphs.append(f"Circuits of {', '.join(not_run)} not run: the scan stopped before them "
                               "(run it again with the same out directory to finish it).")
    if circuits or not not_run:
        circ.paragraphs.append(f"{_count(len(circuits), 'circuit')} with {rule}." if circuits
                               else f"No circuits with {rule}.")
    circuits = sorted(circuits, key=lambda c: -float(getattr(c, "score", -math.inf)))
    circ.cards = [
        _circuit_card(builder, c, i, None if max_circuits is None or i < max_circuits else
                      f"only the {max_circuits} highest-scoring circuits are drawn (report(..., max_circuits=None) draws all)",
                      n_null=ctx.circuit_n_null)
        for i, c in enumerate(circuits)
    ]  # fmt: skip
    return circ


def _scan_page(builder: _Builder, res: Any, max_families: int | None, max_circuits: int | None) -> Page:
    layers, transforms = list(res.layers), [as_transform(t) for t in res.transforms]  # names in a saved scan
    responses = getattr(res, "responses", None) or {}
    matches = list(getattr(res, "matches", None) or [])
    config = getattr(res, "config", None) or {}
    ctx = _ScanContext.of(config, matches, max_families)
    header = [("model", str(res.model)), ("layers", ", ".join(layers)), ("transforms", ", ".join(t.name for t in transforms))]
    header += [(f"config: {k}", json.dumps(v, sort_keys=True, default=str)) for k, v in sorted(config.items())]
    rows: list[list[str]] = []
    layer_sections: list[Section] = []
    missing = _missing_stages(res)
    for layer in layers:
        layer_sections.append(Section(f"layer {layer}", f"layer-{slug(layer)}"))
        for t in transforms:
            fams = res.families.get(layer, {}).get(t)
            if fams is None:
                if ("families", layer, t.name) in missing:
                    layer_sections[-1].paragraphs.append(f"{t.name}: not scanned; the scan stopped before this stage.")
                continue
            resp = responses.get(layer, {}).get(t)
            rows.append(_summary_row(ctx, layer, t, fams, resp))
            images = (getattr(res, "heldout_images", None) or {}).get(layer, {}).get(t)
            layer_sections.append(_layer_section(builder, ctx, layer, t, fams, resp, images))
    summary = Section("Summary", "summary", paragraphs=[_legend(ctx.alpha)])
    summary.table = Table(["layer", "transform", "units probed", "selective", "invariant", "families",
                           f"families at discovery q ≤ {ctx.alpha:g}", "confirmed by weights", "units in families",
                           "best equivariance", "its equivariance q (p)", "flip pairs explained by rotation"], rows,
                          {2, 3, 4, 5, 6, 7, 8, 9, 11})  # fmt: skip
    summary_fn = getattr(res, "summary", None)
    if callable(summary_fn):
        summary.preformatted = str(summary_fn())
    sections = [summary]
    if matches:
        sections.append(Section("Matched labels", "matches", table=Table(
            ["label", "layer", "transform", "overlap", "labelled units", "found units"],
            [[str(m.get("label", "")), str(m.get("layer", "")), str(m.get("transform", "")),
              f"{_num(100 * float(m.get('overlap', math.nan)), '.0f')}%",
              ", ".join(map(str, m.get("label_units", []))), ", ".join(map(str, m.get("found_units", [])))] for m in matches],
            {3})))  # fmt: skip
    sections += layer_sections
    not_run = [t for kind, _, t in missing if kind == "circuits"]
    sections.append(_circuit_section(builder, ctx, list(getattr(res, "circuits", None) or []), max_circuits, not_run))
    return Page(f"equifind report: {res.model}", header, sections, banner=_incomplete_banner(res))


def _missing_stages(res: Any) -> list[tuple[str, str | None, str]]:
    """The stages a scan result lacks (``ScanResult._missing_stages``; none for other objects)."""
    fn = getattr(res, "_missing_stages", None)
    return list(fn()) if callable(fn) else []


def _incomplete_banner(res: Any) -> list[str]:
    """The page's warning for a scan that did not finish: what is missing (nothing for a finished scan)."""
    missing = list(getattr(res, "missing", None) or [])
    if not missing:
        return []
    advice = ("Counts and verdicts below cover only the stages that finished. Run the scan again with the same out "
              "directory and settings to finish it, then report again.")
    return [f"Incomplete scan: {_count(len(missing), 'stage')} did not finish", "Missing: " + "; ".join(missing) + ".",
            advice]
