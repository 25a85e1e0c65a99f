"""``report``: the page of a scan, family, family score or circuit, and figure files on request.

Layout of ``out_dir`` (other files there, such as a saved scan, are left alone)::

    out_dir/index.html                       the page ("html" in formats, the default)
    out_dir/figures/<stem>.png|svg|pdf       the selected families' and circuits' figures, one file per
                                             figure and image format asked for

The page is :func:`equifind.report.browser.write_page`; it links each exported figure from its
family or circuit (keys :func:`~equifind.report.browser.family_key` /
:func:`~equifind.report.browser.circuit_key`). Figures are drawn by worker processes (``spawn``
context, Agg backend, one torch thread each); a figure job is a draw function's name and its small,
picklable arguments (the family and only its members' rows of the Responses). The report is written
into a staging directory beside ``out_dir`` and moved into place only when everything succeeded;
``index.html`` and ``figures/`` of a previous report are replaced.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure

from .._progress import progress_bar
from .._stats import DEFAULT_Q
from ..families import Family, rank_families
from ..responses import Responses
from ..score import FamilyScore
from ..transforms import Transform, as_transform
from . import figures as F
from ._data import hue_and_angle, member_rows, members_of
from ._files import (
    DEFAULT_FORMATS, FIGURES_DIR, IMAGE_FORMATS, INDEX, REPORT_FORMATS, ReportFormat, check_formats, check_writable,
    save_figure, slug, staged_report,
)  # fmt: skip
from .browser import ExportedFigure, circuit_key, family_key, write_page
from .weights import weight_diagram

__all__ = ["report", "Selection", "DEFAULT_TOP", "MAX_DEFAULT_WORKERS", "MIN_FIGURES_PER_WORKER"]

#: ``families=`` / ``circuits=``: the top N (int ≥ 0), ``"all"``, or a sequence of objects or keys.
Selection = int | Literal["all"] | Sequence[Any]
#: Families and circuits that get figure files by default (each).
DEFAULT_TOP = 20
#: Worker processes when ``workers=None`` (fewer on a machine with fewer cores, or for few figures).
MAX_DEFAULT_WORKERS = 4
#: Figures per worker below which ``workers=None`` starts fewer workers (a spawned worker takes seconds
#: to import torch and equifind, about what a few figures take to draw).
MIN_FIGURES_PER_WORKER = 8

_SCAN_ATTRS = ("model", "layers", "transforms", "families")
_CIRCUIT_ATTRS = ("weights", "kind")

#: The figure functions a job may name (``_FigureJob.draw``), so that a job pickles as a name.
_DRAW: dict[str, Callable[..., Figure]] = {
    "tuning": F.tuning_heatmap, "polar": F.polar_tuning, "stimuli": F.stimulus_strip,
    "equivariance": F.equivariance_matrix, "hue_orientation": F.hue_orientation_map,
    "heldout_pairs": F.heldout_pairs, "heldout_answers": F.heldout_answers, "weights": weight_diagram,
}  # fmt: skip


@dataclass(frozen=True)
class _FigureJob:
    """One figure to export: picklable, so that a worker process can draw it.

    Attributes:
        key: the family's or circuit's key in the page (``family_key`` / ``circuit_key``).
        stem: the file name without extension, under ``figures/``.
        title: the figure's caption on the page.
        draw: the figure function's name (a key of ``_DRAW``).
        args: its arguments (a Family or FamilyScore and its members' Responses, a circuit, ...).
    """

    key: str
    stem: str
    title: str
    draw: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Entry:
    """A family or circuit that may get figures: its page key, file stem and what its figures need."""

    key: str
    stem: str
    obj: Any
    responses: Responses | None = None
    heldout_images: F.HeldoutImages | None = None


def report(
    obj: Any,
    out_dir: str | os.PathLike,
    formats: Sequence[ReportFormat] = DEFAULT_FORMATS,
    *,
    responses: Responses | None = None,
    families: Selection = DEFAULT_TOP,
    circuits: Selection = DEFAULT_TOP,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Write the page of a scan, family, family score or circuit, and figure files on request.

    Args:
        obj: a :class:`~equifind.ScanResult` (anything with ``model``, ``layers``, ``transforms``,
            ``families`` and optionally ``responses``, ``circuits``, ``config``, ``heldout_images``;
            each family's :class:`~equifind.FamilyScore` is its ``equivariance``), a
            :class:`~equifind.Family`, a :class:`~equifind.FamilyScore`, or a ``CircuitScore``
            (anything with ``weights`` and ``kind``).
        out_dir: the report directory; created if missing. Its ``index.html`` and ``figures/``
            are replaced; nothing else in it is touched.
        formats: any of ``"html"`` (``index.html``, the page) and ``"png"``, ``"svg"``, ``"pdf"``
            (figure files under ``figures/``, linked from the page). Default: the page only.
            Without ``"html"`` no ``index.html`` is written.
        responses: for a Family or FamilyScore: the layer's :class:`~equifind.Responses` for its
            transform, needed for the tuning, stimulus and equivariance figures and shown by the
            page. A scan carries its own.
        families: the families that get figure files when an image format is asked for: an int N,
            the first N of the whole scan as :func:`~equifind.families.rank_families` ranks them
            (confirmed by weights first, then discovery q ≤ the config's alpha, then larger, then
            more equivariant; flip pairs explained by rotation last; ties keep the scan's order:
            layers, then transforms, then each list's order); ``"all"``; or a sequence of the
            scan's Family objects or of their keys (``browser.family_key``). For a lone Family or
            FamilyScore the scan is that one family (key ``family_key(layer, transform, 0)``).
        circuits: the same for circuits: the N highest symmetry scores (ties: saved order),
            ``"all"``, or a sequence of the scan's circuits or their keys (``browser.circuit_key``).
        workers: worker processes drawing the figures; None: ``min(4, os.cpu_count(), ceil(figures / 8))``
            (a few figures are drawn in this process: a spawned worker takes seconds to start); 1: drawn
            in this process. The workers are spawned and import the main module: a script calling
            report() with more than one must do so under ``if __name__ == "__main__":``.
        progress: show a progress bar over the figures drawn.

    Returns:
        ``out_dir`` as a Path (the page is ``out_dir / "index.html"``).

    Raises:
        TypeError: an unsupported ``obj``; ``responses`` that is not a Responses; a ``families``,
            ``circuits`` or ``workers`` of the wrong type (a bool, a float, ...).
        ValueError: an unknown format; ``responses`` given for a scan or circuit, or not matching
            the family; a negative N, an unknown string, or a family / circuit / key that is not
            the scan's (each message names the bad value and what is valid); ``workers`` < 1.
        NotADirectoryError: ``out_dir`` exists and is a file.
        PermissionError: ``out_dir`` (or the folder it would be created in) is not writable.
        Exception: a figure that fails to draw raises its own exception type, the message naming
            the figure; nothing of the report is written then.
    """
    fmts = check_formats(formats, REPORT_FORMATS)
    images = tuple(f for f in fmts if f in IMAGE_FORMATS)
    _check_workers(workers)
    if responses is not None and not isinstance(responses, Responses):
        raise TypeError(f"responses must be an equifind Responses or None, got {type(responses).__name__}")
    fams, circs = _entries(obj, responses)
    chosen = _select(families, fams, "families", _family_rank(obj)) + _select(circuits, circs, "circuits", _circuit_rank)
    check_writable(out_dir)
    jobs = [job for entry in chosen for job in _jobs(entry)] if images else []
    with staged_report(out_dir) as stage:
        _export_figures(jobs, stage / FIGURES_DIR, images, workers=_worker_count(workers, len(jobs)), progress=progress)
        if "html" in fmts:
            write_page(obj, stage / INDEX, responses=responses, exported=_links(jobs, images))
    return Path(out_dir)


def _check_workers(workers: int | None) -> None:
    """Check ``workers``: None or an int ≥ 1.

    Raises:
        TypeError: not None or an int (a bool included).
        ValueError: below 1.
    """
    if workers is None:
        return
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be None or an int ≥ 1, got {workers!r}")
    if workers < 1:
        raise ValueError(f"workers must be None or an int ≥ 1, got {workers}")


def _worker_count(workers: int | None, n_figures: int) -> int:
    """The processes to draw ``n_figures`` with: ``workers`` as given; None: ``min(MAX_DEFAULT_WORKERS, cores,
    ceil(n_figures / MIN_FIGURES_PER_WORKER))``, at least 1 (1: in this process)."""
    if workers is not None:
        return workers
    return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1, math.ceil(n_figures / MIN_FIGURES_PER_WORKER)))


# --------------------------------------------------------------------------- what may get figures


def _entries(obj: Any, responses: Responses | None) -> tuple[list[_Entry], list[_Entry]]:
    """The families and the circuits of ``obj`` that may get figures, in the scan's order.

    Raises:
        TypeError: ``obj`` is none of the kinds :func:`report` takes.
        ValueError: ``responses`` given for a scan or a circuit, or not of the family's layer, transform
            and units.
    """
    if isinstance(obj, (Family, FamilyScore)):
        if responses is not None:
            member_rows(members_of(obj), responses)  # they match the family
        t = obj.transform
        stem = f"{slug(obj.layer)}__{slug(t.name)}__family"
        return [_Entry(family_key(obj.layer, t.name, 0), stem, obj, responses)], []
    if responses is not None and (_has(obj, _CIRCUIT_ATTRS) or _has(obj, _SCAN_ATTRS)):
        raise ValueError(f"responses= is only for a Family or FamilyScore, not a {type(obj).__name__}")
    if _has(obj, _CIRCUIT_ATTRS):
        return [], [_circuit_entry(obj, 0)]
    if _has(obj, _SCAN_ATTRS):
        return _scan_families(obj), [_circuit_entry(c, i) for i, c in enumerate(getattr(obj, "circuits", None) or [])]
    raise TypeError(f"report() takes a ScanResult, Family, FamilyScore or CircuitScore, got {type(obj).__name__}")


def _has(obj: Any, attrs: Sequence[str]) -> bool:
    return all(hasattr(obj, a) for a in attrs)


def _circuit_entry(c: Any, i: int) -> _Entry:
    src, tgt = str(getattr(c, "source_layer", "source")), str(getattr(c, "target_layer", "target"))
    t = str(getattr(c, "transform", "") or "any")
    return _Entry(circuit_key(i), f"circuit{i:02d}__{slug(src)}__{slug(tgt)}__{slug(t)}", c)


def _scan_families(res: Any) -> list[_Entry]:
    """Every family of a scan: layers in order, then transforms, then each list's order."""
    responses = getattr(res, "responses", None) or {}
    heldout = getattr(res, "heldout_images", None) or {}
    out: list[_Entry] = []
    for layer in res.layers:
        for t in (as_transform(name) for name in res.transforms):  # names in a saved scan
            fams = res.families.get(layer, {}).get(t) or []
            resp = responses.get(layer, {}).get(t)
            images = heldout.get(layer, {}).get(t)
            out += [_Entry(family_key(layer, t.name, i), f"{slug(layer)}__{slug(t.name)}__f{i:02d}", fam, resp, images)
                    for i, fam in enumerate(fams)]  # fmt: skip
    return out


def _family_rank(obj: Any) -> Callable[[list[_Entry]], list[int]]:
    """Rank a scan's families as :func:`rank_families` does, at the config's alpha, across the whole scan."""
    alpha = float((getattr(obj, "config", None) or {}).get("alpha", DEFAULT_Q))

    def rank(entries: list[_Entry]) -> list[int]:
        fams = [e.obj for e in entries]
        if not all(isinstance(f, Family) for f in fams):  # a lone FamilyScore
            return list(range(len(fams)))
        scores = [getattr(f, "equivariance", None) for f in fams]
        return rank_families(fams, [s.equivariance if s is not None else None for s in scores], alpha=alpha)

    return rank


def _circuit_rank(entries: list[_Entry]) -> list[int]:
    """Highest symmetry score first; a missing or non-finite score last; ties keep the saved order."""

    def score(i: int) -> float:
        value = getattr(entries[i].obj, "score", None)
        value = math.nan if value is None else float(value)
        return value if math.isfinite(value) else -math.inf

    return sorted(range(len(entries)), key=score, reverse=True)


def _select(selection: Selection, entries: list[_Entry], name: str, rank: Callable[[list[_Entry]], list[int]]) -> list[_Entry]:
    """The entries ``selection`` picks (see :func:`report`'s ``families``), ranked ones in rank order.

    Raises:
        TypeError: a bool, or neither an int, a string nor a sequence.
        ValueError: a negative N, a string other than "all", an item that is not one of ``entries``.
    """
    valid = f"{name} must be an int ≥ 0 (the top N), 'all', or a sequence of the scan's {name} or their keys"
    if isinstance(selection, bool):
        raise TypeError(f"{valid}; got {selection!r}")
    if isinstance(selection, int):
        if selection < 0:
            raise ValueError(f"{valid}; got {selection}")
        return [entries[i] for i in rank(entries)[:selection]]
    if isinstance(selection, str):
        if selection != "all":
            raise ValueError(f"{valid}; got {selection!r}")
        return [entries[i] for i in rank(entries)]
    if not isinstance(selection, Sequence):
        raise TypeError(f"{valid}; got {type(selection).__name__}")
    chosen: list[_Entry] = []
    for item in selection:
        entry = _find(item, entries, name)
        if entry not in chosen:
            chosen.append(entry)
    return chosen


def _find(item: Any, entries: list[_Entry], name: str) -> _Entry:
    """The entry ``item`` names: its key, or the object itself (the same one, else an equal one).

    Raises:
        ValueError: none does (the message names ``item`` and a few valid keys).
    """
    if isinstance(item, str):
        found = [e for e in entries if e.key == item]
    else:
        found = [e for e in entries if e.obj is item] or [e for e in entries if _equal(e.obj, item)]
    if found:
        return found[0]
    keys = [e.key for e in entries]
    shown = ", ".join(repr(k) for k in keys[:3]) + (f", … ({len(keys)} in all)" if len(keys) > 3 else "")
    what = repr(item) if isinstance(item, str) else f"{type(item).__name__} {item!r}"
    raise ValueError(f"{name}: {what} is not one of this report's {name}; valid keys: {shown or 'none'}")


def _equal(a: Any, b: Any) -> bool:
    """``a == b`` as a plain bool (False where the comparison cannot say, as for tensors)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


# --------------------------------------------------------------------------- figure jobs


def _jobs(entry: _Entry) -> list[_FigureJob]:
    """The figures of a family or a circuit."""
    if isinstance(entry.obj, (Family, FamilyScore)):
        return _family_jobs(entry)
    return [_FigureJob(entry.key, f"{entry.stem}__weights", "expanded weights (red excitation, blue inhibition)",
                      "weights", (entry.obj,))]  # fmt: skip


def _family_jobs(entry: _Entry) -> list[_FigureJob]:
    """Tuning, polar, stimulus, equivariance, hue × orientation and held-out figures, as far as the family's
    transform and the data given allow. Each job holds only the members' rows of the Responses."""
    main: Family | FamilyScore = entry.obj
    family = main if isinstance(main, Family) else None
    score = family.equivariance if family is not None else main
    t: Transform = main.transform
    units = list(family.units) if family is not None else list(main.order)  # type: ignore[union-attr]
    resp = entry.responses.subset(units) if entry.responses is not None else None
    jobs: list[_FigureJob] = []

    def add(what: str, title: str, *args: Any) -> None:
        jobs.append(_FigureJob(entry.key, f"{entry.stem}__{what}", title, what, args))

    if resp is not None:
        add("tuning", "tuning curves (members × transform, normalised per row)", main, resp)
        if t.circular:
            add("polar", "polar tuning", main, resp)
        if resp.stimuli is not None:
            add("stimuli", "best stimulus of each member at its preferred parameter", main, resp)
        add("equivariance", "responses to the first member's stimulus under each transform step", main, resp)
    if hue_and_angle(t) and (resp is not None or (family is not None and family.preferred_hue is not None)):
        add("hue_orientation", "preferred hue × orientation", main, resp)
    if isinstance(score, FamilyScore) and score.heldout:
        add("heldout_pairs", "held-out equivariance of each member pair, per source", score)
        images = _member_images(entry.heldout_images or {}, units)
        if any(s in score.heldout and images.get(s) for s in ("feature_vis", "patches")):
            add("heldout_answers", "held-out images: member 0's moved to each member's position, and the member that "
                "answers it", score, images)  # fmt: skip
    return jobs


def _member_images(images: F.HeldoutImages, units: Sequence[int]) -> dict[str, dict[int, Any]]:
    """The held-out images (``source -> unit -> [k, 3, H, W]``) of ``units`` only."""
    return {source: {u: by_unit[u] for u in units if u in by_unit} for source, by_unit in images.items()}


def _links(jobs: Sequence[_FigureJob], formats: Sequence[str]) -> dict[str, list[ExportedFigure]]:
    """The page's links: by family / circuit key, each figure's title and its files relative to the page."""
    links: dict[str, list[ExportedFigure]] = {}
    for job in jobs:
        links.setdefault(job.key, []).append((job.title, {fmt: f"{FIGURES_DIR}/{job.stem}.{fmt}" for fmt in formats}))
    return links


# --------------------------------------------------------------------------- drawing, in worker processes


def _export_figures(
    jobs: Sequence[_FigureJob], folder: Path, formats: Sequence[str], *, workers: int = 1, progress: bool = False
) -> list[Path]:
    """Draw ``jobs`` and save each as ``folder/<stem>.<fmt>`` for every format (in ``workers`` processes).

    With ``workers`` > 1 and more than one job, a ``spawn`` process pool draws them (each worker: Agg, one
    torch thread). On the first failure the jobs not started are cancelled, the running ones are waited
    for, and the failure is raised (its own type; the message names the figure).

    Returns:
        The files written, in the order of ``jobs`` and ``formats``.

    Raises:
        BrokenProcessPool: a worker died (killed, out of memory, or a script without a ``__main__`` guard,
            which every spawned worker re-runs); the message says so.
    """
    bar = progress_bar(total=len(jobs), desc="report figures", unit="fig", enabled=progress and bool(jobs))
    with bar:
        if workers == 1 or len(jobs) <= 1:
            return [p for job in jobs for p in _tick(bar, _draw_and_save(job, folder, formats))]
        written: dict[int, list[Path]] = {}
        pool = ProcessPoolExecutor(min(workers, len(jobs)), multiprocessing.get_context("spawn"), _init_worker)
        try:
            futures = {pool.submit(_draw_and_save, job, folder, formats): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                written[futures[future]] = _tick(bar, future.result())
        except BrokenProcessPool as err:
            raise BrokenProcessPool(_BROKEN) from err
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [p for i in range(len(jobs)) for p in written[i]]


_BROKEN = ("a figure worker process died (killed, out of memory, or it could not start). Worker processes are "
           "spawned and import the main script: a script that calls report() with workers > 1 must do so under "
           "`if __name__ == \"__main__\":`; workers=1 draws in this process")


def _tick(bar: Any, paths: list[Path]) -> list[Path]:
    bar.update()
    return paths


def _init_worker() -> None:
    """A figure worker: the Agg backend, one torch thread (the workers share the cores)."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    torch.set_num_threads(1)


def _draw_and_save(job: _FigureJob, folder: Path, formats: Sequence[str]) -> list[Path]:
    """Draw one job and save its files; a failure is re-raised as its own type, naming the figure."""
    try:
        return save_figure(_DRAW[job.draw](*job.args), folder / job.stem, formats)
    except Exception as err:
        raise _naming(err, job.stem) from None


def _naming(err: Exception, stem: str) -> Exception:
    """``err`` with the figure named: a new exception of its type and message prefixed by ``figure <stem>:``,
    or, for a type that cannot be built from one message, ``err`` itself with a note."""
    try:
        named = type(err)(f"figure {stem}: {err}")
    except Exception:
        err.add_note(f"while drawing figure {stem}")
        return err
    return named.with_traceback(err.__traceback__)
