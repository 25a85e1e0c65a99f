"""Responses: construction from arrays, summaries, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import equifind as ef


def von_mises(angles: torch.Tensor, mu: float, kappa: float = 4.0) -> torch.Tensor:
    return torch.exp(kappa * (torch.cos(torch.deg2rad(angles - mu)) - 1))


@pytest.fixture
def responses() -> ef.Responses:
    params = torch.arange(36) * 10.0
    curves = [von_mises(params, mu) for mu in (0.0, 93.0, 181.5, 355.0)] + [torch.full((36,), 0.7)]
    values = torch.stack([torch.stack([0.5 * c, c]) for c in curves])  # [5 units, 2 variants, 36]
    values[0] = values[0].flip(0)  # unit 10's best variant is variant 0
    return ef.Responses(values, params, layer="l", transform="rotation", units=[10, 11, 12, 13, 14])


def test_summaries(responses):
    assert responses.best_variant(10) == 0 and responses.best_variant(11) == 1
    torch.testing.assert_close(responses.tuning(10), responses.values[0, 0])
    torch.testing.assert_close(responses.tuning(11), responses.values[1, 1])
    pref = responses.preferred
    assert pref.shape == (5,)
    # Sub-step precision: 93 and 181.5 lie between grid points.
    assert abs(float(pref[1]) - 93.0) < 1.0 and abs(float(pref[2]) - 181.5) < 1.0
    assert abs(float(pref[3]) - 355.0) < 1.0
    assert 0.0 <= float(pref.min()) and float(pref.max()) < 360.0
    sel = responses.selectivity
    assert float(sel[4]) == 0.0 and bool((sel[:4] > 0.9).all())
    assert responses.period == 360.0


def test_from_numpy_and_defaults():
    r = ef.Responses(np.ones((3, 8)), np.arange(8) * 45.0, layer="x", transform="hue")
    assert r.values.shape == (3, 1, 8) and r.units == [0, 1, 2] and r.variants == [{"variant": 0}]


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(values=np.ones((2, 3, 4)), params=np.arange(5)), ValueError, "5 entries"),
        (dict(values=np.ones(4), params=np.arange(4)), ValueError, r"\[units, variants, steps\]"),
        (dict(values=np.full((1, 1, 2), np.nan), params=np.arange(2)), ValueError, "NaN"),
        (dict(values=np.ones((2, 1, 2)), params=np.arange(2), units=[1]), ValueError, "unit indices"),
        (dict(values=np.ones((1, 1, 2)), params=np.arange(2), transform="twist"), KeyError, "twist"),
    ],
)
def test_bad_construction(kwargs, err, match):
    kwargs = {"layer": "l", "transform": "rotation", **kwargs}
    with pytest.raises(err, match=match):
        ef.Responses(**kwargs)


def test_unknown_unit(responses):
    with pytest.raises(IndexError, match="not in these responses"):
        responses.tuning(3)


def test_save_load_roundtrip_is_atomic(responses, tmp_path):
    responses.meta["model"] = "m"
    path = responses.save(tmp_path / "sub" / "resp")
    assert path.name == "resp.npz" and [p.name for p in path.parent.iterdir()] == ["resp.npz"]
    back = ef.Responses.load(tmp_path / "sub" / "resp")
    assert torch.equal(back.values, responses.values) and torch.equal(back.params, responses.params)
    assert back.units == responses.units and back.meta == {"model": "m"} and back.layer == "l"
    with pytest.raises(FileNotFoundError):
        ef.Responses.load(tmp_path / "none.npz")


def test_failed_save_leaves_nothing(responses, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        responses.save(tmp_path / "r.npz")
    assert list(tmp_path.iterdir()) == []


def test_subset(responses):
    sub = responses.subset([12, 10])
    assert sub.units == [12, 10] and torch.equal(sub.values[1], responses.values[0])
    assert math.isclose(float(sub.preferred[0]), float(responses.preferred[2]))


def test_stimuli_roundtrip_as_8_bit(tmp_path):
    stim = torch.rand(2, 3, 5, 5)
    r = ef.Responses(np.ones((1, 2, 4)), np.arange(4) * 90.0, layer="l", transform="rotation", stimuli=stim)
    back = ef.Responses.load(r.save(tmp_path / "r"))
    assert back.stimuli.shape == (2, 3, 5, 5)
    assert float((back.stimuli - stim).abs().max()) <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="stimuli must be"):
        ef.Responses(np.ones((1, 2, 4)), np.arange(4), layer="l", transform="rotation", stimuli=torch.rand(3, 3, 5, 5))


def _with_grey() -> ef.Responses:
    """Three units: an opponent one (grey leaves it at its blank), a colour-blind-like one, one nothing moves."""
    values = torch.tensor([[[1.0, 3.0, 1.0, -1.0]], [[1.0, 1.4, 1.0, 0.6]], [[0.5, 0.5, 0.5, 0.5]]])
    achromatic = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0], [0.5, 0.5, 0.5]])  # +, -, blank
    return ef.Responses(values, [0.0, 90.0, 180.0, 270.0], layer="l", transform="hue", achromatic=achromatic,
                        meta={"achromatic": {"columns": "+, -, blank"}})  # fmt: skip


def test_colour_index():
    ci = _with_grey().colour_index
    assert ci is not None
    assert float(ci[0]) == 1.0 and abs(float(ci[1]) - 0.4 / 1.4) < 1e-6 and math.isnan(float(ci[2]))
    assert ef.Responses(torch.zeros(2, 1, 4), [0.0, 90.0, 180.0, 270.0], layer="l", transform="hue").colour_index is None


def test_achromatic_save_load_subset(tmp_path):
    r = _with_grey()
    back = ef.Responses.load(r.save(tmp_path / "r"))
    torch.testing.assert_close(back.achromatic, r.achromatic)
    assert back.meta["achromatic"] == {"columns": "+, -, blank"}
    sub = r.subset([2, 0])
    torch.testing.assert_close(sub.achromatic, r.achromatic[[2, 0]])
    torch.testing.assert_close(sub.colour_index[1:], r.colour_index[:1])


@pytest.mark.parametrize("bad, match", [(torch.zeros(2, 3), r"achromatic must be \[3 units"), (torch.zeros(3, 1), "G >= 2"),
                                        (torch.full((3, 2), math.nan), "NaN")])  # fmt: skip
def test_bad_achromatic(bad, match):
    with pytest.raises(ValueError, match=match):
        ef.Responses(torch.zeros(3, 1, 4), [0.0, 90.0, 180.0, 270.0], layer="l", transform="hue", achromatic=bad)
