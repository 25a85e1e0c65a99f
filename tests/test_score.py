"""score_family: f(g·x) = P_g f(x) on planted and e2cnn families, random sets as controls."""

from __future__ import annotations

import pytest
import torch

import equifind as ef
from equifind.score import score_family, score_responses
from planted import centred, e2cnn_layer
from synthetic_responses import Spec, planted_1d, structure_free

STEPS = 36


def cyclic_equal(found: list[int], expected: list[int]) -> bool:
    i = found.index(expected[0])
    return found[i:] + found[:i] == expected


@pytest.mark.parametrize(
    "family, transform, period",
    [("edges", "rotation", 360.0), ("bars", "rotation", 180.0), ("hues", "hue", 360.0)],
)
def test_true_families_score_high_and_in_planted_order(planted, family, transform, period):
    p, model = planted
    units = getattr(p, family)
    fs = score_family(model, "1", list(reversed(units)), transform=transform, steps=STEPS)
    assert fs.equivariance >= 0.9, fs.summary()
    assert fs.p_value < 0.05 and fs.null_mean < 0.5
    assert fs.period == period
    assert cyclic_equal(fs.order, units)  # planted angles increase with the planted list
    assert fs.invariance < 0.5  # copies, not merely invariant units
    assert fs.coverage > 0.9 and fs.holes == []
    assert set(fs.preferred) == set(units) and fs.units == list(reversed(units))


def test_a_known_period_is_used_instead_of_the_estimate(planted):
    """Bars repeat every 180°: told so, the period matches the estimate. Told 360°, the family
    is ordered over 360° but keeps its score: g comes from the measured positions, and a
    180°-periodic tuning curve shifted by δ or δ + 180° is the same curve."""
    p, model = planted
    resp = ef.probe(model, "1", "rotation", steps=STEPS, progress=False)
    estimated = score_responses(resp, p.bars, n_null=20)
    given = score_responses(resp, p.bars, n_null=20, period=180.0)
    wrong = score_responses(resp, p.bars, n_null=20, period=360.0)
    assert given.period == estimated.period == 180.0 and given.equivariance == estimated.equivariance
    assert wrong.period == 360.0 and wrong.equivariance == pytest.approx(given.equivariance, abs=1e-6)
    assert given.equivariance > 0.95
    with pytest.raises(ValueError, match=r"period must divide the rotation grid's 360 .* got 100"):
        score_responses(resp, p.bars, period=100)


def test_flip_pair(planted):
    p, model = planted
    fs = score_family(model, "1", list(p.flips), transform="flip")
    assert fs.equivariance >= 0.95 and fs.period == 2.0
    assert sorted(fs.order) == sorted(p.flips)


def test_random_units_score_clearly_lower(planted):
    p, model = planted
    true = score_family(model, "1", p.edges[::2], steps=STEPS)  # four edges 90° apart
    rand = score_family(model, "1", p.random, steps=STEPS)
    assert rand.equivariance < true.equivariance - 0.4
    # The planted family sits at the floor 1 / (1 + n_null); the random set is not significant
    # at 1 % (over seeds 0-4 it lies at 0.035-0.065: random kernels share some structure with the
    # pool of planted units they are compared against, so 0.05 would be a knife edge).
    assert true.p_value == pytest.approx(1 / 201)
    assert rand.p_value > 0.01


def test_hole_is_reported(planted):
    p, model = planted
    fs = score_family(model, "1", p.edges[:3] + p.edges[4:], steps=STEPS)  # 145° missing
    assert len(fs.holes) == 1 and abs(fs.holes[0] - p.edge_angles[3]) < 15.0
    assert fs.coverage < 0.95


def test_e2cnn_fields_score_high():
    e2 = e2cnn_layer(n=4, regular=3, trivial=2)
    model = ef.load_model(e2.net, preprocess=centred, name="e2cnn", device="cpu")
    resp = ef.probe(model, model.layers[-1], steps=STEPS, progress=False)
    for field in e2.fields:
        fs = score_responses(resp, field)
        assert fs.equivariance >= 0.9, fs.summary()
        assert cyclic_equal(fs.order, field)  # e2cnn's channel order is the CCW order


def test_deterministic(planted):
    p, model = planted
    a = score_family(model, "1", p.random[:3], steps=12, seed=3)
    b = score_family(model, "1", p.random[:3], steps=12, seed=3)
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(layer="9"), KeyError, "unknown layer"),
        (dict(units=[0, 999]), IndexError, "27 units"),
        (dict(units=[0]), ValueError, "at least 2"),
        (dict(units=[1, 1]), ValueError, r"units repeat unit 1 \(positions 0 and 1 of \[1, 1\]\)"),
        (dict(units=[0, 2, 5, 2]), ValueError, r"repeat unit 2 \(positions 1 and 3"),
        (dict(n_null=-1), ValueError, r"n_null must be an int >= 1, or 0 \(no equivariance test.*got -1"),
        (dict(n_null=2.5), ValueError, r"n_null must be .*got 2\.5 \(float\)"),
        (dict(n_null=True), ValueError, r"n_null must be .*got True"),
        (dict(n_null=5, validate="patches"), ValueError, r"n_null=5 cannot reach significance at 0\.05.*>= 19"),
        (dict(transform="hue_rotation"), ValueError, "cannot score hue_rotation families; it scores rotation, hue, flip, scale"),
        (dict(transform="zoom"), KeyError, "unknown transform 'zoom'"),
        (dict(period=0), ValueError, "period must divide"),
    ],
)
def test_bad_input(planted, kwargs, err, match):
    _, model = planted
    args = {"layer": "1", "units": [0, 1], **kwargs}
    with pytest.raises(err, match=match):
        score_family(model, args.pop("layer"), args.pop("units"), steps=8, **args)


def test_to_dict_is_json(planted):
    import json

    p, model = planted
    d = score_family(model, "1", p.hues[:3], transform="hue", steps=12).to_dict()
    assert json.loads(json.dumps(d))["order"] == d["order"]


@pytest.mark.slow
def test_googlenet_any_units(googlenet):
    fs = ef.score_family(googlenet, "conv2d0", [5, 17, 40], steps=16, n_null=50)
    assert 0.0 <= fs.equivariance <= 1.0 and sorted(fs.order) == [5, 17, 40]
    with pytest.raises(IndexError, match="64 units"):
        ef.score_family(googlenet, "conv2d0", [5, 64])
    with pytest.raises(KeyError, match="conv2d0"):
        ef.score_family(googlenet, "conv2d00", [5, 6])


# -- measured positions, calibration, grid size (issue 11) -------------------------------
@pytest.mark.parametrize(
    "angles",
    [[0.0, 40.0, 80.0, 120.0], [10.0, 100.0, 145.0, 190.0, 280.0], [5.0, 20.0, 200.0, 260.0]],
)
def test_uneven_exact_copies_score_one(angles):
    """Exact shifted copies at uneven angles: g comes from the measured positions, so the
    family is exactly equivariant (even spacing gave 0/40/80/120 a score of 0.000, p = 1)."""
    planted = planted_1d([Spec(angles, 360.0, 3.0)], n_random=30, noise=0.0, seed=4)
    fs = score_responses(planted.responses, planted.families[0], n_null=100)
    assert fs.equivariance >= 0.99, fs.summary()
    assert fs.order == planted.families[0] or cyclic_equal(fs.order, planted.families[0])
    assert fs.p_value == pytest.approx(1 / 101) and fs.q_value == fs.p_value


def test_random_unit_sets_give_uniform_p_values():
    """Random sets of units from structure-free layers, 50 seeds: p-values pass a
    Kolmogorov–Smirnov uniformity test at 0.01 (a calibrated test, neither liberal nor dead)."""
    from scipy.stats import kstest

    ps = []
    for seed in range(50):
        resp = structure_free(60, 4, seed=seed, steps=32)
        units = torch.randperm(60, generator=torch.Generator().manual_seed(seed))[:4].tolist()
        ps.append(score_responses(resp, units, n_null=200, seed=seed).p_value)
    assert kstest(ps, "uniform").pvalue > 0.01, sorted(ps)
    assert min(ps) < 0.2 and max(ps) > 0.8  # spread over the whole range, not piled at one end


def test_too_few_steps_for_the_family_is_an_error():
    planted = planted_1d([Spec([0.0, 60.0, 120.0, 180.0, 240.0, 300.0])], n_random=10, steps=64, seed=0)
    coarse = planted.responses
    few = ef.Responses(coarse.values[..., ::16], coarse.params[::16], layer="x", transform="rotation", units=coarse.units)
    with pytest.raises(ValueError, match=r"4 transform steps cannot score a family of 6 units: need at least .* = 6"):
        score_responses(few, planted.families[0])
    three = ef.Responses(coarse.values[..., :3], coarse.params[:3] * 0 + torch.tensor([0.0, 120.0, 240.0]), layer="x",
                         transform="rotation", units=coarse.units)  # fmt: skip
    with pytest.raises(ValueError, match=r"3 transform steps .* need at least max\(2 members, 4\) = 4"):
        score_responses(three, planted.families[0][:2])


def test_summary_names_the_test_and_prints_the_floor(planted):
    p, model = planted
    fs = score_family(model, "1", p.edges[::2], steps=STEPS, n_null=200)
    assert "equivariance test q ≤ 0.005, p ≤ 0.005" in fs.summary()


# --------------------------------------------------------------------------- scale: shifts without wrap-around


def _scale_responses(seed: int = 0, n_random: int = 40, steps: int = 32) -> ef.Responses:
    """Five units: one two-variant tuning shape shifted along log2-scale by half an octave each (a scale
    family), then ``n_random`` smooth random units."""
    from equifind.transforms import Scale

    grid = Scale().grid(steps)
    logs = torch.log2(grid.double())

    def bump(centre: float, width: float) -> torch.Tensor:
        return torch.exp(-((logs - centre) ** 2) / (2 * width**2)).float()

    rows = [torch.stack([bump(c, 0.5), 0.5 * bump(c + 0.3, 0.3)]) for c in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_random, 2, steps, generator=gen)
    rows += list(torch.nn.functional.avg_pool1d(noise, 5, 1, 2).abs())
    return ef.Responses(torch.stack(rows), grid, layer="L", transform="scale")


def test_scale_family_scores_high_in_size_order_without_a_period():
    resp = _scale_responses()
    fs = score_responses(resp, [3, 0, 4, 1, 2], n_null=200)
    assert fs.order == [0, 1, 2, 3, 4]  # ascending preferred zoom factor
    assert fs.period is None and fs.holes == [] and "period none" in fs.summary()
    assert fs.equivariance > 0.95 and fs.p_value == pytest.approx(1 / 201)
    assert fs.invariance < 0.5  # copies at other sizes, not one size-invariant shape
    assert fs.preferred[0] < fs.preferred[4]
    assert len(fs.per_shift) == 4 and min(fs.per_shift) > 0.9  # pairs 1 … 4 half-octaves apart, no wrap
    assert 0.4 < fs.coverage < 0.6  # 2 of the grid's 4 octaves


def test_scale_random_sets_are_not_families():
    """Negative control: random smooth units placed at their own peaks are not scale families (the test can
    fail: scoring with wrap-around, or at the family's positions, would make some look like one)."""
    resp = _scale_responses(n_random=60)
    ps = []
    for seed in range(20):
        units = torch.randperm(60, generator=torch.Generator().manual_seed(seed))[:4] + 5
        ps.append(score_responses(resp, units.tolist(), n_null=100, seed=seed).p_value)
    assert sum(p <= 0.05 for p in ps) <= 3, ps


def test_scale_refuses_a_period():
    with pytest.raises(ValueError, match="a scale family has no period"):
        score_responses(_scale_responses(), [0, 1, 2], period=360.0)
