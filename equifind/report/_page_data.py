"""The data of the family browser page: one JSON-able dict for a scan, a family, a family score or a circuit.

What the views plot is shipped small, as the page needs it and no more:

- a family's tuning curves ``[members, steps]`` and its equivariance matrix ``[members, steps]``, each row
  scaled to [0, 1] (as the figures normalise them) and stored as uint8, base64;
- a member's responses to every stimulus variant ``[variants, steps]``, scaled to [0, 1] over the whole
  matrix (so variants compare), uint8, base64, with the real minimum and maximum;
- a circuit's weights ``[target, source, kh, kw]`` as int8 of the largest ``|w|`` (stored + 128), base64;
- the best stimuli and held-out images as PNG thumbnails of at most :data:`THUMB` pixels, data URIs.

Every number is a plain float (NaN as None), so the dict is strict JSON.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as TF
from PIL import Image

from .._stats import DEFAULT_Q
from ..families import Family
from ..responses import Responses
from ..score import FamilyScore
from ..transforms import Transform, as_transform
from ._data import (
    Members, expected_peaks, hue_and_angle, hue_grid, hue_rgb, member_hues, member_rows, members_of, normalise_rows,
    preferred_stimuli, tuning_curves,
)  # fmt: skip
from ._page_text import circuit_fields, circuit_summary, family_fields, incomplete_banner, legend, not_scanned

__all__ = ["page_data", "family_key", "circuit_key", "unit_key", "quantise_rows", "THUMB"]

THUMB = 64  # largest side of a thumbnail, pixels
_SCAN_ATTRS = ("model", "layers", "transforms", "families")
_CIRCUIT_ATTRS = ("weights", "kind")
_VARIANT_LABEL = 60  # characters of a variant's description


def family_key(layer: str, transform: str, index: int) -> str:
    """The id of family ``index`` of ``scan.families[layer][transform]`` (a lone Family: index 0)."""
    return f"family:{layer}|{transform}|{int(index)}"


def circuit_key(index: int) -> str:
    """The id of circuit ``index`` of ``scan.circuits`` (in their saved order; a lone circuit: 0)."""
    return f"circuit:{int(index)}"


def unit_key(layer: str, transform: str, unit: int) -> str:
    """The id of a unit's view: its responses to ``transform``'s probe."""
    return f"unit:{layer}|{transform}|{int(unit)}"


# --------------------------------------------------------------------------- numbers


def _f(x: Any) -> float | None:
    """A finite float, else None (strict JSON has no NaN)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def quantise_rows(x: np.ndarray) -> str:
    """``x [n, s]``, each row scaled to [0, 1] (flat rows 0), as base64 uint8 (0 … 255), row-major."""
    return _b64(np.rint(normalise_rows(np.asarray(x, dtype=np.float64)) * 255).astype(np.uint8))


def _quantise_matrix(x: np.ndarray) -> tuple[str, float, float]:
    """``x [v, s]`` scaled to [0, 1] over the whole matrix as base64 uint8, and its min and max."""
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo if hi - lo > 1e-12 else 1.0
    return _b64(np.rint((x - lo) / span * 255).astype(np.uint8)), lo, hi


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(255 * min(max(float(c), 0.0), 1.0))):02x}" for c in rgb[:3])


def thumbnail(image: torch.Tensor | np.ndarray) -> str:
    """``image [3, H, W]`` (float in [0, 1] or uint8) as a PNG data URI, shrunk to at most :data:`THUMB` pixels."""
    t = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"a thumbnail needs an image [3, H, W], got shape {tuple(t.shape)}")
    h, w = t.shape[1:]
    scale = THUMB / max(h, w)
    if scale < 1:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        t = TF.interpolate(t[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    pixels = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- context


@dataclass
class _Page:
    """What the views share and the families and circuits fill in while the page data is built."""

    alpha: float = DEFAULT_Q
    n_null: int | None = None
    circuit_n_null: int | None = None
    matches: Sequence[dict[str, Any]] = ()
    exported: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    grids: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    shrunk: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # see _shrunk

    def links(self, key: str) -> list[dict[str, Any]]:
        """Exported figure files of ``key``: ``[{"title", "files": {fmt: path}}]``."""
        return [{"title": str(title), "files": {str(k): str(v) for k, v in dict(files).items()}}
                for title, files in self.exported.get(key, ())]  # fmt: skip


def _grid_key(layer: str, t: Transform) -> str:
    return f"{layer}|{t.name}"


def _variant_label(v: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v[k]:g}" if isinstance(v[k], float) else f"{k}={v[k]}" for k in v)
    return text if len(text) <= _VARIANT_LABEL else text[: _VARIANT_LABEL - 1] + "…"


def _tick(t: Transform, p: Any) -> str:
    if hue_and_angle(t):
        return f"{float(p[0]):g}°/{float(p[1]):g}°"
    return t.format_tick(float(p))


def _grid(page: _Page, resp: Responses) -> str:
    """Register the steps of ``resp``'s grid (tick labels, tuning-curve axis, variants); its key."""
    t = resp.transform
    key = _grid_key(resp.layer, t)
    if key in page.grids:
        return key
    if hue_and_angle(t):
        n = hue_grid(resp)
        tuning_x = resp.params.double().view(n, n, 2)[0, :, 1].numpy()  # orientation at the best hue
    else:
        tuning_x = resp.params.double().numpy()
    page.grids[key] = {
        "ticks": [_tick(t, p) for p in resp.params],
        "tuningTicks": [t.format_tick(float(x)) for x in tuning_x],
        "tuningDeg": [float(x) * 360.0 / float(t.period) for x in tuning_x] if t.circular else None,
        "axis": t.axis_label, "log": bool(t.log_axis),
        "variants": [_variant_label(v) for v in resp.variants],
        "hueBlocks": hue_grid(resp) if hue_and_angle(t) else None,
    }  # fmt: skip
    return key


# --------------------------------------------------------------------------- families


def _polar_colours(m: Members, resp: Responses, hues: np.ndarray | None) -> list[str]:
    """Each member's colour in the polar plot, as the polar figure colours it."""
    if not m.transform.colour:
        full = float(m.transform.period)
        period = m.period if m.period is not None and math.isfinite(m.period) and m.period > 0 else full
        cyclic = matplotlib.colormaps["twilight_shifted"]
        return [_hex(cyclic((p % period) / period)) for p in m.preferred]
    if hues is None:
        hues = member_hues(m, resp, np.asarray(m.preferred, dtype=np.float64))
    return [_hex(c) for c in hue_rgb(hues)]


def _shrunk(resp: Responses, cache: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] | None = None) -> Responses:
    """``resp`` with its stimuli shrunk to at most :data:`THUMB` pixels and ``meta["center"]`` moved with them.

    The best-stimulus thumbnails are drawn from these: moving (rotating, hue-shifting, mirroring, zooming)
    a thumbnail about the moved centre shows what moving the full stimulus and shrinking it shows, at a
    fraction of the cost (a scan page moves hundreds of stimuli). ``cache``: shrunk stimuli by the memory and
    shape of the full ones (kept with them, so the memory is not reused), shared by the families of a layer
    and transform (``Responses.subset`` shares the stimuli's memory, not the tensor object)."""
    if resp.stimuli is None or max(resp.stimuli.shape[-2:]) <= THUMB:
        return resp
    h, w = resp.stimuli.shape[-2:]
    scale = THUMB / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    cache = {} if cache is None else cache
    key = (resp.stimuli.data_ptr(), *resp.stimuli.shape)
    if key not in cache:
        small = TF.interpolate(resp.stimuli, size=size, mode="bilinear", antialias=True, align_corners=False)
        cache[key] = (resp.stimuli, small.clamp(0.0, 1.0))
    small = cache[key][1]
    meta = dict(resp.meta)
    if meta.get("center") is not None:
        cy, cx = (float(c) for c in meta["center"])
        meta["center"] = [(cy + 0.5) * size[0] / h - 0.5, (cx + 0.5) * size[1] / w - 0.5]
    return Responses(resp.values, resp.params, layer=resp.layer, transform=resp.transform, units=resp.units,
                     variants=resp.variants, meta=meta, stimuli=small)  # fmt: skip


def _plots(m: Members, resp: Responses, page: _Page) -> dict[str, Any]:
    """The plot data of a family with its members' responses (see the module docstring for the encodings)."""
    rows = member_rows(m, resp)
    small = _shrunk(resp, page.shrunk)
    _, curves, hues = tuning_curves(m, resp)
    v0 = int(resp.best_variant_indices[rows[0]])
    eq = normalise_rows(resp.values[rows, v0, :].double().numpy())
    cols, rws = ([], []) if hue_and_angle(m.transform) else expected_peaks(m, eq, resp)
    plots: dict[str, Any] = {
        "grid": _grid(page, resp),
        "tuning": quantise_rows(curves), "steps": int(curves.shape[1]),
        "order": sorted(range(len(m.units)), key=lambda i: (m.preferred[i], i)),
        "matrix": quantise_rows(eq), "matrixSteps": int(eq.shape[1]), "matrixUnit": m.units[0],
        "peaks": [[int(r), float(c)] for r, c in zip(rws, cols)],
        "colours": _polar_colours(m, small, hues) if m.transform.circular else None,
        "stimuli": None,
    }  # fmt: skip
    if resp.stimuli is not None:
        images, labels = preferred_stimuli(m, small)
        plots["stimuli"] = [{"unit": u, "label": lab.replace("\n", " "), "src": thumbnail(img)}
                            for u, lab, img in zip(m.units, labels, images)]  # fmt: skip
    return plots


def _add_units(page: _Page, key: str, m: Members, resp: Responses) -> None:
    """Register the unit views of a family's members (each: its responses to every variant)."""
    grid = _grid(page, resp)
    for u, row in zip(m.units, member_rows(m, resp)):
        ukey = unit_key(m.layer, m.transform.name, u)
        if ukey not in page.units:
            values = resp.values[row].double().numpy()  # [variants, steps]
            data, lo, hi = _quantise_matrix(values)
            page.units[ukey] = {"key": ukey, "layer": m.layer, "transform": m.transform.name, "unit": int(u),
                                "grid": grid, "values": data, "lo": lo, "hi": hi, "variants": int(values.shape[0]),
                                "steps": int(values.shape[1]), "best": int(values.max(axis=1).argmax()),
                                "families": []}  # fmt: skip
        page.units[ukey]["families"].append(key)


def _heldout_thumbs(images: Mapping[str, Mapping[int, Any]] | None, units: Sequence[int]) -> list[dict[str, Any]]:
    """The first held-out image of each member, per source (feature visualizations first)."""
    out = []
    for source in sorted(images or {}, key=lambda s: (s != "feature_vis", s)):
        for u in units:
            imgs = images[source].get(int(u))  # type: ignore[index]
            if imgs is not None and len(imgs):
                out.append({"source": source, "unit": int(u), "src": thumbnail(imgs[0])})
    return out


def _family_entry(page: _Page, key: str, index: int, family: Family | None, score: FamilyScore | None,
                  resp: Responses | None, images: Mapping[str, Mapping[int, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """One family's view data: its table columns, card fields, members and plots (None without responses)."""
    main: Family | FamilyScore = family if family is not None else score  # type: ignore[assignment]
    m = members_of(main)
    t = m.transform
    heldout = None if score is None or score.heldout_test is None else bool(score.heldout_test.held_out(page.alpha))
    explained = family is not None and family.explained_by is not None
    entry = {
        "key": key, "layer": m.layer, "transform": t.name, "n": len(m.units),
        "title": f"{m.layer} · {t} · family {index + 1}: {len(m.units)} units, period {t.format_period(m.period)}"
                 + (" (explained by rotation)" if explained else ""),
        "units": [int(u) for u in m.units], "preferred": [t.format_param(p) for p in m.preferred],
        "holes": [t.format_param(h) for h in (score.holes if score is not None else family.holes)]  # type: ignore[union-attr]
        if t.period is not None else [],
        "period": _f(m.period), "periodText": t.format_period(m.period),
        "score": _f(family.score) if family else None, "q": _f(family.q_value) if family else None,
        "eq": _f(score.equivariance) if score else None, "eqQ": _f(score.q_value) if score else None,
        "heldout": heldout, "weights": family.weight_verdict if family else None,
        "colour": _f(family.colour_index) if family else None, "explained": explained,
        "fields": [list(f) for f in family_fields(family, score, page.matches, alpha=page.alpha, n_null=page.n_null,
                                                  circuit_n_null=page.circuit_n_null)],
        "plots": None, "heldoutImages": _heldout_thumbs(images, m.units) if score is not None and score.heldout else [],
        "exported": page.links(key), "circuits": [],
    }  # fmt: skip
    if resp is not None:
        member_rows(m, resp)  # the family's units are in the responses (else ValueError)
        mine = resp.subset(m.units)  # per-unit summaries of the members only, not of the whole layer
        entry["plots"] = _plots(m, mine, page)
        _add_units(page, key, m, mine)
    return entry


# --------------------------------------------------------------------------- circuits


def _weights(c: Any) -> dict[str, Any]:
    """``c.weights [T, S, kh, kw]`` as int8 of the largest |w| (stored + 128, base64)."""
    w = c.weights
    w = w.detach().to("cpu", torch.float64).numpy() if isinstance(w, torch.Tensor) else np.asarray(w, dtype=np.float64)
    if w.ndim != 4 or 0 in w.shape or not np.isfinite(w).all():
        raise ValueError(f"circuit weights must be a finite, non-empty [target, source, kh, kw] array, got shape {w.shape}")
    vmax = float(np.abs(w).max()) or 1.0
    q = (np.rint(w / vmax * 127) + 128).astype(np.uint8)
    return {"shape": [int(s) for s in w.shape], "data": _b64(q), "vmax": vmax}


def _family_of(families: Mapping[str, Any], layer: str, transform: str, units: Sequence[int] | None) -> str | None:
    """The key of the family of ``families[layer][transform]`` whose units are ``units`` (as a set), or None."""
    if units is None:
        return None
    wanted = {int(u) for u in units}
    for i, fam in enumerate(families.get(layer, {}).get(transform, None) or ()):
        if set(fam.units) == wanted:
            return family_key(layer, transform, i)
    return None


def _circuit_entry(page: _Page, key: str, c: Any, families: Mapping[str, Any]) -> dict[str, Any]:
    src, tgt = str(getattr(c, "source_layer", "source")), str(getattr(c, "target_layer", "target"))
    t = str(getattr(c, "transform", ""))
    shape = tuple(getattr(c.weights, "shape", ()))
    weights = _weights(c)
    return {
        "key": key, "title": f"{src} → {tgt} · {t} · {c.kind}", "kind": str(c.kind),
        "sourceLayer": src, "targetLayer": tgt, "score": _f(getattr(c, "score", None)),
        "q": _f(getattr(c, "q_value", None)),
        "sourceUnits": [int(u) for u in (getattr(c, "source_units", None) or range(shape[1]))],
        "targetUnits": [int(u) for u in (getattr(c, "target_units", None) or range(shape[0]))],
        "sourceFamily": _family_of(families, src, t, getattr(c, "source_units", None)),
        "targetFamily": _family_of(families, tgt, t, getattr(c, "target_units", None)),
        "fields": [list(f) for f in circuit_fields(c, n_null=page.circuit_n_null)],
        "weights": weights, "exported": page.links(key),
    }  # fmt: skip


# --------------------------------------------------------------------------- pages


def _bar(layer: str, t: Transform, fams: Sequence[Family], resp: Responses | None) -> dict[str, Any]:
    """How a layer's units split for one transform: in families, selective only, invariant, achromatic, silent."""
    in_fam = {int(u) for f in fams if getattr(f, "explained_by", None) is None for u in f.units}
    counts = {
        "families": len(in_fam),
        "selective": len({int(u) for u in getattr(fams, "selective", [])} - in_fam),
        "invariant": len(getattr(fams, "invariant", [])),
        "achromatic": len(getattr(fams, "achromatic", [])),
    }
    probed = len(resp.units) if resp is not None else None
    counts["silent"] = max(0, probed - sum(counts.values())) if probed is not None else None
    return {"layer": layer, "transform": t.name, "probed": probed, **counts}


def _scan_page(res: Any, page: _Page) -> dict[str, Any]:
    layers, transforms = [str(x) for x in res.layers], [as_transform(t) for t in res.transforms]
    responses = getattr(res, "responses", None) or {}
    heldout_images = getattr(res, "heldout_images", None) or {}
    families, bars = [], []
    for layer in layers:
        for t in transforms:
            fams = res.families.get(layer, {}).get(t.name)
            if fams is None:
                continue
            resp = responses.get(layer, {}).get(t.name)
            bars.append(_bar(layer, t, fams, resp))
            images = heldout_images.get(layer, {}).get(t.name)
            families += [_family_entry(page, family_key(layer, t.name, i), i, f, f.equivariance, resp, images)
                         for i, f in enumerate(fams)]  # fmt: skip
    circuits = [_circuit_entry(page, circuit_key(i), c, res.families) for i, c in enumerate(getattr(res, "circuits", None) or [])]
    config = getattr(res, "config", None) or {}
    summary = getattr(res, "summary", None)
    return {
        "kind": "scan", "title": f"equifind: {res.model}", "model": str(res.model), "layers": layers,
        "transforms": [t.name for t in transforms],
        "config": [[str(k), json.dumps(v, sort_keys=True, default=str)] for k, v in sorted(config.items())],
        "banner": incomplete_banner(res), "notScanned": not_scanned(res),
        "circuitSummary": circuit_summary(res, len(circuits), page.alpha),
        "summary": str(summary()) if callable(summary) else None,
        "bars": bars, "families": families, "circuits": circuits,
    }  # fmt: skip


def _family_page(obj: Family | FamilyScore, responses: Responses | None, page: _Page) -> dict[str, Any]:
    family = obj if isinstance(obj, Family) else None
    score = family.equivariance if family is not None else obj
    entry = _family_entry(page, family_key(obj.layer, obj.transform.name, 0), 0, family, score, responses)  # type: ignore[arg-type]
    return {"kind": "family", "title": f"equifind: {entry['title']}", "layers": [obj.layer],
            "transforms": [obj.transform.name], "families": [entry], "circuits": []}  # fmt: skip


def page_data(obj: Any, responses: Responses | None = None,
              exported: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The page's data for a scan (or stand-in), Family, FamilyScore or CircuitScore.

    Returns:
        A JSON-able dict: ``kind`` ("scan", "family", "circuit"), ``title``, ``legend``, ``alpha``,
        ``families`` and ``circuits`` (lists of view data, each with its ``key``), ``units`` (unit key ->
        data), ``grids`` (``"layer|transform"`` -> tick labels and variants), and for a scan ``model``,
        ``layers``, ``transforms``, ``config``, ``banner``, ``summary`` and ``bars``.

    Raises:
        TypeError: an unsupported ``obj``, or ``responses`` that is not a Responses.
        ValueError: ``responses`` for a scan or circuit, or not matching the family.
    """
    if responses is not None and not isinstance(responses, Responses):
        raise TypeError(f"responses must be an equifind Responses or None, got {type(responses).__name__}")
    is_family = isinstance(obj, (Family, FamilyScore))
    if responses is not None and not is_family:
        raise ValueError(f"responses= is only for a Family or FamilyScore, not a {type(obj).__name__}")
    with _one_thread():
        return _page_data(obj, responses, exported, is_family)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: the page makes thousands of tiny tensor operations, for which a thread
    pool only adds hand-offs (on a busy machine its threads wait on each other: 8× slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _page_data(obj: Any, responses: Responses | None, exported: Mapping[str, Sequence[Any]] | None,
               is_family: bool) -> dict[str, Any]:  # fmt: skip
    config = getattr(obj, "config", None) or {}
    page = _Page(float(config.get("alpha", DEFAULT_Q)), config.get("n_null"), config.get("circuit_n_null"),
                 list(getattr(obj, "matches", None) or []), dict(exported or {}))  # fmt: skip
    if is_family:
        data = _family_page(obj, responses, page)
    elif all(hasattr(obj, a) for a in _CIRCUIT_ATTRS):
        circuit = _circuit_entry(page, circuit_key(0), obj, {})
        data = {"kind": "circuit", "title": f"equifind: circuit {circuit['title']}", "families": [], "circuits": [circuit]}
    elif all(hasattr(obj, a) for a in _SCAN_ATTRS):
        data = _scan_page(obj, page)
    else:
        raise TypeError(f"the page takes a ScanResult, Family, FamilyScore or CircuitScore, got {type(obj).__name__}")
    _link_circuits(data)
    return {**data, "alpha": page.alpha, "legend": legend(page.alpha), "units": page.units, "grids": page.grids}


def _link_circuits(data: dict[str, Any]) -> None:
    """Give each family the circuits that enter or leave it: ``[{"key", "role": "in" | "out"}]``."""
    by_key = {f["key"]: f for f in data["families"]}
    for c in data["circuits"]:
        for role, fkey in (("in", c["targetFamily"]), ("out", c["sourceFamily"])):
            if fkey in by_key:
                by_key[fkey]["circuits"].append({"key": c["key"], "role": role, "title": c["title"]})
