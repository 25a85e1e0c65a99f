"""Figures of equifind.report on small synthetic families, responses and circuits.

The builders at the top (``rotation_case``, ``hue_case``, ``flip_case``,
``scale_case``, ``hue_rotation_case``, ``make_circuit``) are shared with test_html.py and
test_browser.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import equifind as ef  # noqa: E402
from equifind.families import Family  # noqa: E402
from equifind.report import (  # noqa: E402
    equivariance_matrix,
    hue_orientation_map,
    hue_rgb,
    polar_tuning,
    save_figure,
    stimulus_strip,
    tuning_heatmap,
    weight_diagram,
)
from equifind.score import FamilyScore, score_responses  # noqa: E402

SIZE = 21  # stimulus canvas (pixels)
CENTER = ((SIZE - 1) / 2, (SIZE - 1) / 2)


# --------------------------------------------------------------------------- builders


def _vm(theta: torch.Tensor, mu: float, period: float = 360.0, kappa: float = 3.0) -> torch.Tensor:
    return torch.exp(kappa * (torch.cos(2 * math.pi * (theta - mu) / period) - 1.0))


def _bars(n_variants: int = 2) -> torch.Tensor:
    """Dark bars through the centre (variant v is 1 + 2v pixels wide), on grey."""
    yy = torch.arange(SIZE, dtype=torch.float32)[:, None].expand(SIZE, SIZE)
    out = torch.full((n_variants, 3, SIZE, SIZE), 0.5)
    for v in range(n_variants):
        bar = ((yy - CENTER[0]).abs() <= v) & (torch.arange(SIZE)[None, :] > CENTER[1])  # a half bar: period 360
        out[v, :, bar] = 0.1
    return out


def _disk(rgb: np.ndarray) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    inside = (yy - CENTER[0]) ** 2 + (xx - CENTER[1]) ** 2 <= (SIZE / 4) ** 2
    img = torch.full((3, SIZE, SIZE), 0.5)
    img[:, inside] = torch.as_tensor(rgb, dtype=torch.float32)[:, None]
    return img


def rotation_case(layer: str = "conv2d1", members: int = 8, steps: int = 16, extra: int = 4, seed: int = 0):
    """A rotation family of ``members`` units 45° apart (units 0..members-1) plus ``extra`` noise units."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.arange(steps) * (360.0 / steps)
    n = members + extra
    values = 0.05 * torch.rand(n, 2, steps, generator=gen)
    for u in range(members):
        for v, gain in enumerate((1.0, 0.6)):
            values[u, v] += gain * _vm(theta, u * 360.0 / members)
    for u in range(members, n):
        values[u] += 0.5 * torch.rand(2, steps, generator=gen)
    resp = ef.Responses(values, theta, layer=layer, transform="rotation", stimuli=_bars(),
                        meta={"center": list(CENTER), "canvas": SIZE})  # fmt: skip
    fam = Family(layer, "rotation", list(range(members)), [u * 360.0 / members for u in range(members)],
                 360.0, 0.97, 0.005, holes=[], q_value=0.005, n_null=199)  # p at its floor 1/(1 + 199)  # fmt: skip
    return fam, resp


def hue_case(layer: str = "conv2d2", members: int = 6, steps: int = 12):
    """A hue family: unit u prefers the red-orange disk shifted by u·60°."""
    theta = torch.arange(steps) * (360.0 / steps)
    values = torch.stack([_vm(theta, u * 360.0 / members) for u in range(members)])[:, None]
    stimuli = _disk(hue_rgb(0.0))[None]
    resp = ef.Responses(values, theta, layer=layer, transform="hue", stimuli=stimuli, meta={"center": list(CENTER)})
    fam = Family(layer, "hue", list(range(members)), [u * 360.0 / members for u in range(members)], 360.0, 0.9, 0.01,
                 holes=[], q_value=0.01, n_null=199)  # fmt: skip
    return fam, resp


def flip_case(layer: str = "conv2d2"):
    """Units 3 and 5 of 6 are a flip pair."""
    values = 0.1 * torch.rand(6, 2, 2, generator=torch.Generator().manual_seed(1))
    values[3, 0] = torch.tensor([1.0, 0.1])
    values[5, 0] = torch.tensor([0.1, 1.0])
    resp = ef.Responses(values, [0.0, 1.0], layer=layer, transform="flip", stimuli=_bars(2), meta={"center": list(CENTER)})
    return Family(layer, "flip", [3, 5], [0.0, 1.0], 2.0, 0.99, 0.02, q_value=0.03, n_null=199), resp


SCALE_PREFERRED = [0.5, 2**-0.5, 1.0, 2**0.5, 2.0]  # zoom factors, half an octave apart


def scale_case(layer: str = "conv2d1", steps: int = 16, extra: int = 2):
    """A scale family: unit u's tuning is a bump along log2(zoom) at ``SCALE_PREFERRED[u]`` (no period), on the
    probe's log-spaced grid; ``extra`` noise units follow."""
    grid = ef.Scale().grid(steps)
    members = len(SCALE_PREFERRED)
    values = 0.05 * torch.rand(members + extra, 2, steps, generator=torch.Generator().manual_seed(2))
    for u, pref in enumerate(SCALE_PREFERRED):
        bump = torch.exp(-0.5 * ((torch.log2(grid) - math.log2(pref)) / 0.35) ** 2)
        for v, gain in enumerate((1.0, 0.6)):
            values[u, v] += gain * bump
    resp = ef.Responses(values, grid, layer=layer, transform="scale", stimuli=_bars(), meta={"center": list(CENTER)})
    fam = Family(layer, "scale", list(range(members)), list(SCALE_PREFERRED), None, 0.93, 0.005, holes=[],
                 q_value=0.005, n_null=199)  # fmt: skip
    return fam, resp


def hue_rotation_case(layer: str = "mixed3a", n: int = 6):
    """Four colour-contrast units peaking at (hue, angle) = (60 i, 90 i) on an n × n grid."""
    grid = ef.HueRotation().grid(n)
    members = 4
    values = torch.zeros(members, 1, n * n)
    for u in range(members):
        values[u, 0] = _vm(grid[:, 0], 60.0 * u) * _vm(grid[:, 1], 90.0 * u)
    left = torch.arange(SIZE)[None, :].expand(SIZE, SIZE) < CENTER[1]
    img = torch.empty(3, SIZE, SIZE)
    img[:, left] = torch.as_tensor(hue_rgb(0.0), dtype=torch.float32)[:, None]
    img[:, ~left] = torch.as_tensor(hue_rgb(180.0), dtype=torch.float32)[:, None]
    resp = ef.Responses(values, grid, layer=layer, transform="hue_rotation", stimuli=img[None], meta={"center": list(CENTER)})
    fam = Family(layer, "hue_rotation", list(range(members)), [90.0 * u for u in range(members)], 360.0, 0.8, 0.03,
                 preferred_hue=[60.0 * u for u in range(members)])  # fmt: skip
    return fam, resp


def make_circuit(targets: int = 4, sources: int = 3, k: int = 5, source_layer: str = "conv2d1",
                 target_layer: str = "conv2d2", seed: int = 0, score: float = 0.91) -> ef.CircuitScore:  # fmt: skip
    """A CircuitScore with random weights."""
    w = torch.randn(targets, sources, k, k, generator=torch.Generator().manual_seed(seed))
    w[0, 0, 0, 0] = -5.0  # the largest |w| is negative: a symmetric scale must still reach +5
    fields = dict(kind="equivariant→equivariant", transform="rotation", score=score, p_value=0.004, q_value=0.012,
                  n_null=249, null_mean=0.21, rotation_gain=0.3, gain_sd=0.05, pointwise_share=0.1, weights=w, cosines=torch.full((targets, sources), 0.9), source_layer=source_layer,
                  target_layer=target_layer, source_units=list(range(10, 10 + sources)),
                  target_units=list(range(20, 20 + targets)))  # fmt: skip
    return ef.CircuitScore(**fields)


def as_score(fam: Family, resp: ef.Responses) -> FamilyScore:
    return score_responses(resp, fam.units, n_null=10)


# --------------------------------------------------------------------------- tests


CASES = {
    "rotation-heatmap": lambda: tuning_heatmap(*rotation_case()),
    "rotation-polar": lambda: polar_tuning(*rotation_case()),
    "rotation-strip": lambda: stimulus_strip(*rotation_case()),
    "rotation-matrix": lambda: equivariance_matrix(*rotation_case()),
    "hue-polar": lambda: polar_tuning(*hue_case()),
    "flip-matrix": lambda: equivariance_matrix(*flip_case()),
    "scale-heatmap": lambda: tuning_heatmap(*scale_case()),
    "scale-strip": lambda: stimulus_strip(*scale_case()),
    "scale-matrix": lambda: equivariance_matrix(*scale_case()),
    "hue_rotation-map": lambda: hue_orientation_map(*hue_rotation_case()),
    "weights": lambda: weight_diagram(make_circuit()),
}


@pytest.mark.parametrize("name", list(CASES))
def test_figure_files_in_every_format(tmp_path: Path, name: str) -> None:
    fig = CASES[name]()
    paths = save_figure(fig, tmp_path / name, ("png", "svg", "pdf"), dpi=80)
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert all(p.is_file() and p.stat().st_size > 500 for p in paths)
    img = mpimg.imread(paths[0])
    w_in, h_in = fig.get_size_inches()
    assert img.shape[2] in (3, 4)
    assert abs(img.shape[1] - w_in * 80) <= 2 and abs(img.shape[0] - h_in * 80) <= 2
    assert paths[1].read_text().lstrip().startswith("<?xml") and "<svg" in paths[1].read_text()
    assert paths[2].read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left
    assert plt.get_fignums() == []


def test_figures_are_reproducible(tmp_path: Path) -> None:
    a = save_figure(tuning_heatmap(*rotation_case()), tmp_path / "a", ("png", "svg", "pdf"), dpi=60)
    b = save_figure(tuning_heatmap(*rotation_case()), tmp_path / "b", ("png", "svg", "pdf"), dpi=60)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.suffix


def test_heatmap_rows_sorted_by_preferred_and_normalised() -> None:
    fam, resp = rotation_case()
    score = as_score(fam, resp)
    for obj in (fam, score):
        data = np.asarray(tuning_heatmap(obj, resp).axes[0].images[0].get_array())
        assert data.shape == (8, 16)
        assert np.allclose(data.max(1), 1.0) and np.allclose(data.min(1), 0.0)
        peaks = data.argmax(1)
        assert list(peaks) == sorted(peaks)  # member u peaks at step 2u
        assert list(peaks) == [2 * u for u in range(8)]


def test_equivariance_matrix_is_a_diagonal_band_with_expected_peaks() -> None:
    fam, resp = rotation_case()
    ax = equivariance_matrix(fam, resp).axes[0]
    data = np.asarray(ax.images[0].get_array())
    c0 = int(data[0].argmax())
    assert [int(r.argmax()) for r in data] == [(c0 + 2 * i) % 16 for i in range(8)]
    marks = ax.collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(marks))) == sorted((float((c0 + 2 * i) % 16), float(i)) for i in range(8))


def test_stimulus_strip_shows_transformed_best_stimuli_with_units() -> None:
    fam, resp = rotation_case()
    fig = stimulus_strip(fam, resp)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_xlabel() for ax in shown] == [str(u) for u in fam.units]
    expected = ef.Rotation().apply(resp.stimuli[[0]], 135.0, center=CENTER)[0].permute(1, 2, 0).numpy()
    assert np.allclose(np.asarray(shown[3].images[0].get_array()), expected, atol=1e-6)
    assert shown[3].get_title() == "135°"


def test_weight_diagram_has_one_symmetric_red_blue_scale() -> None:
    c = make_circuit()
    fig = weight_diagram(c)
    ims = [im for ax in fig.axes for im in ax.images]
    assert len(ims) == 1  # one image, one colour scale for the whole grid
    lo, hi = ims[0].get_clim()
    assert lo == -hi and hi == pytest.approx(float(c.weights.abs().max()))
    red, blue = ims[0].cmap(ims[0].norm(hi)), ims[0].cmap(ims[0].norm(lo))
    assert red[0] > red[2] and blue[2] > blue[0]  # excitation red, inhibition blue
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "11", "12"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["20", "21", "22", "23"]
    assert "equivariant→equivariant" in ax.get_title() and "0.910" in ax.get_title()
    assert "q = 0.012 (p ≤ 0.004)" in ax.get_title()  # p at its floor 1/(1 + 249), q beside it


def test_hue_colours_follow_the_yiq_hue() -> None:
    assert hue_rgb(0.0)[0] > hue_rgb(0.0)[2]  # red-orange
    cyan = hue_rgb(180.0)
    assert cyan[2] > cyan[0] and cyan[1] > cyan[0]
    fam, resp = hue_case()
    lines = [ln for ln in polar_tuning(fam, resp).axes[0].lines if len(ln.get_xdata()) > 1]
    colours = np.array([matplotlib.colors.to_rgb(ln.get_color()) for ln in lines])
    assert np.allclose(colours, hue_rgb(np.asarray(fam.preferred)), atol=0.03)


def test_bad_inputs_raise_clear_errors() -> None:
    fam, resp = rotation_case()
    with pytest.raises(ValueError, match="polar_tuning needs a circular transform"):
        polar_tuning(*flip_case())
    with pytest.raises(ValueError, match="hue_rotation"):
        hue_orientation_map(fam, resp)
    with pytest.raises(ValueError, match="layer"):
        tuning_heatmap(fam, rotation_case(layer="other")[1])
    with pytest.raises(ValueError, match=r"units \[20\]"):
        tuning_heatmap(Family("conv2d1", "rotation", [0, 20], [0.0, 90.0], 360.0, 1.0, 0.0), resp)
    with pytest.raises(ValueError, match="no stimuli"):
        stimulus_strip(fam, ef.Responses(resp.values, resp.params, layer="conv2d1", transform="rotation"))
    with pytest.raises(TypeError, match="Family or FamilyScore"):
        tuning_heatmap("conv2d1:3", resp)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown format 'jpg'"):
        save_figure(weight_diagram(make_circuit()), "x", ("png", "jpg"))
    with pytest.raises(ValueError, match=r"\[target, source, kh, kw\]"):
        weight_diagram(SimpleNamespace(weights=torch.zeros(3, 3), kind="x"))


def test_hue_rotation_map_without_responses_uses_family_hues() -> None:
    fam, _ = hue_rotation_case()
    ax = hue_orientation_map(fam).axes[0]
    offsets = np.asarray(ax.collections[0].get_offsets())
    assert np.allclose(offsets, np.stack([fam.preferred_hue, fam.preferred], 1))
    fam.preferred_hue = None
    with pytest.raises(ValueError, match="preferred_hue"):
        hue_orientation_map(fam)


def test_scale_family_on_a_log_axis_of_zoom_factors() -> None:
    fam, resp = scale_case()
    grid = resp.params.double().numpy()
    for draw in (tuning_heatmap, equivariance_matrix):
        ax = draw(fam, resp).axes[0]
        assert ax.get_xscale() == "log"
        assert not ax.images  # cells at the zoom factors, not at column indices
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[0] == "×0.25" and all(t.startswith("×") for t in labels)
        assert np.allclose(ax.get_xticks(), grid[::2])  # ticks at the grid's factors
        lo, hi = ax.get_xlim()
        assert lo < grid[0] < grid[-1] < hi and ax.get_xlabel().endswith("zoom factor of the stimulus")
        assert "(period none)" in ax.get_title()
    data = np.asarray(tuning_heatmap(fam, resp).axes[0].collections[0].get_array()).reshape(5, 16)
    assert np.allclose(data.max(1), 1.0) and np.allclose(data.min(1), 0.0)
    peaks = [float(grid[i]) for i in data.argmax(1)]  # rows by preferred zoom: peaks ascend, each near its factor
    assert peaks == sorted(peaks)
    assert np.allclose(np.log2(peaks), np.log2(SCALE_PREFERRED), rtol=0.0, atol=4 / 15 / 2 + 1e-6)  # within half a grid step
    strip = stimulus_strip(fam, resp)
    assert [ax.get_title() for ax in strip.axes if ax.images] == [ef.Scale().format_tick(p) for p in peaks]
    with pytest.raises(ValueError, match="polar_tuning needs a circular transform"):
        polar_tuning(fam, resp)
