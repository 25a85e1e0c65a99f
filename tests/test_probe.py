"""probe(): planted networks with known preferences, an e2cnn C4 network, and googlenet conv2d0."""

from __future__ import annotations

import pytest
import torch

import equifind as ef
from planted import centred, e2cnn_layer, planted_layer

STEPS = 36
STEP = 360.0 / STEPS


def circ_dist(a: torch.Tensor | float, b: torch.Tensor | float, period: float = 360.0) -> torch.Tensor:
    d = torch.remainder(torch.as_tensor(a) - torch.as_tensor(b), period)
    return torch.minimum(d, period - d)


@pytest.fixture(scope="module")
def planted():
    p = planted_layer()
    return p, ef.load_model(p.net, preprocess=centred, name="planted", device="cpu")


@pytest.fixture(scope="module")
def rotation(planted):
    _, model = planted
    return ef.probe(model, "1", transform="rotation", steps=STEPS, progress=False)


def test_responses_shape_and_meta(planted, rotation):
    p, model = planted
    assert rotation.values.shape[0] == model.num_units("1") and rotation.values.shape[2] == STEPS
    assert rotation.layer == "1" and rotation.transform == "rotation"
    assert rotation.units == list(range(model.num_units("1")))
    assert len(rotation.variants) == rotation.values.shape[1]
    assert rotation.meta["canvas"] >= rotation.meta["rf_size"] == 15
    canvas = rotation.meta["canvas"]
    assert rotation.stimuli.shape == (len(rotation.variants), 3, canvas, canvas)  # as the network saw them


def test_planted_rotation_preferences(planted, rotation):
    p, _ = planted
    pref = rotation.preferred
    # Edge detectors (period 360): the planted angle, within one grid step.
    assert bool((circ_dist(pref[p.edges], torch.tensor(p.edge_angles)) <= STEP).all()), pref[p.edges]
    # Line detectors (period 180): the planted angle modulo 180.
    assert bool((circ_dist(pref[p.bars], torch.tensor(p.bar_angles), 180.0) <= STEP).all()), pref[p.bars]


def test_invariant_units_are_less_selective(planted, rotation):
    p, _ = planted
    sel = rotation.selectivity
    assert float(sel[p.invariant].max()) < 0.1
    assert float(sel[p.invariant].max()) < float(sel[p.edges + p.bars].min())


def test_planted_hue_preferences(planted):
    p, model = planted
    hue = ef.probe(model, "1", transform="hue", steps=STEPS, progress=False)
    assert bool((circ_dist(hue.preferred[p.hues], torch.tensor(p.hue_angles)) <= STEP).all()), hue.preferred[p.hues]
    # Selectivity is the tuning's swing as a fraction of the unit's natural-image scale
    # (probe fills it): seen 0.67-1.0 (1.0 for all with natural=False, the shape-only measure).
    assert float(hue.selectivity[p.hues].min()) > 0.5


def test_planted_flip_pair_swaps(planted):
    p, model = planted
    flip = ef.probe(model, "1", transform="flip", progress=False)
    assert flip.values.shape[2] == 2
    a, b = p.flips
    # a's response to x equals b's response to flip(x), for every stimulus.
    torch.testing.assert_close(flip.values[a, :, 0], flip.values[b, :, 1], atol=1e-5, rtol=1e-4)
    assert float(flip.values[a].std()) > 1e-3


def test_units_subset_and_determinism(planted):
    _, model = planted
    a = ef.probe(model, "1", transform="flip", units=[3, 1], progress=False, seed=5)
    b = ef.probe(model, "1", transform="flip", units=[3, 1], progress=False, seed=5)
    assert a.units == [3, 1] and torch.equal(a.values, b.values)


def test_batch_size_does_not_change_results(planted):
    _, model = planted
    a = ef.probe(model, "1", transform="rotation", steps=8, batch_size=7, progress=False)
    b = ef.probe(model, "1", transform="rotation", steps=8, batch_size=500, progress=False)
    torch.testing.assert_close(a.values, b.values)


@pytest.mark.parametrize("batch_size", [2, 7, 500])
def test_values_are_the_centre_unit_on_each_transformed_stimulus(planted, batch_size):
    """values[unit, variant, step] = the centre unit on stimulus `variant` rotated by grid[step]."""
    _, model = planted
    images = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    resp = ef.probe(model, "1", stimuli=images, steps=8, batch_size=batch_size, progress=False)
    shown = resp.stimuli  # [V, 3, canvas, canvas], aperture applied
    rotated = ef.transforms.Rotation().apply(
        shown.repeat_interleave(8, dim=0), resp.params.repeat(3), center=tuple(resp.meta["center"])
    )
    with torch.no_grad(), ef.record(model, ["1"], at="center") as rec:
        model(rotated)
        want = rec["1"].view(3, 8, -1).permute(2, 0, 1)
    torch.testing.assert_close(resp.values, want, atol=1e-4, rtol=1e-4)


def test_stimuli_as_names_set_and_tensor(planted):
    _, model = planted
    by_name = ef.probe(model, "1", stimuli=["edge", "grating"], steps=4, progress=False)
    assert {v["kind"] for v in by_name.variants} == {"edge", "grating"}
    images = torch.rand(3, 3, 20, 20)
    by_tensor = ef.probe(model, "1", stimuli=images, steps=4, progress=False)
    assert by_tensor.values.shape[1] == 3
    stim_set = ef.edge(by_tensor.meta["canvas"], contrasts=(1.0,))
    assert ef.probe(model, "1", stimuli=stim_set, steps=4, progress=False).values.shape[1] == 1


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(layer="2"), KeyError, "unknown layer"),
        (dict(transform="twist"), KeyError, "twist"),
        (dict(stimuli=["edgy"]), KeyError, "edgy"),
        (dict(stimuli=torch.zeros(2, 1, 8, 8)), ValueError, r"\[N, 3, H, W\]"),
        (dict(stimuli=torch.full((2, 3, 8, 8), 2.0)), ValueError, r"\[0, 1\]"),
        (dict(stimuli=42), ValueError, "stimuli must be"),
        (dict(units=[99]), IndexError, "27 units"),
        (dict(steps=0), ValueError, "steps"),
        (dict(batch_size=-1), ValueError, "batch_size"),
    ],
)
def test_bad_input(planted, kwargs, err, match):
    _, model = planted
    kwargs = {"layer": "1", **kwargs}
    with pytest.raises(err, match=match):
        ef.probe(model, progress=False, **kwargs)


def test_e2cnn_c4_fields_are_90_degrees_apart_in_cyclic_order():
    e2 = e2cnn_layer(n=4, regular=4, trivial=2)
    model = ef.load_model(e2.net, preprocess=centred, name="e2cnn_c4", device="cpu")
    layer = model.layers[-1]
    resp = ef.probe(model, layer, steps=STEPS, progress=False)
    pref = resp.preferred
    for field in e2.fields:
        p = pref[field]
        # Consecutive channels of a regular field: +90° each (e2cnn's generator rotates CCW).
        steps = torch.remainder(p.roll(-1) - p, 360.0)
        assert bool((circ_dist(steps, 90.0) <= STEP).all()), p
    sel = resp.selectivity
    all_fields = [u for f in e2.fields for u in f]
    assert float(sel[e2.trivial].max()) < float(sel[all_fields].min())


@pytest.mark.slow
def test_googlenet_conv2d0_is_orientation_selective_and_covers_the_circle(googlenet):
    resp = ef.probe(googlenet, "conv2d0", steps=32, progress=False)
    sel = resp.selectivity
    selective = sel > 0.5
    # Seen: 64 of 64 units above 0.5; preferred angles in all 12 bins of 30°.
    assert int(selective.sum()) >= 48
    bins = torch.histc(resp.preferred[selective], bins=12, min=0.0, max=360.0)
    assert int((bins > 0).sum()) == 12


def test_stimulus_set_at_render_size_is_supersampled_and_at_canvas_size_is_not(planted):
    """A StimulusSet given at ``probe_geometry(...).scaled().canvas`` is transformed at that size and
    reduced (meta supersample > 1); at the canvas size it is used as is (supersample 1)."""
    _, model = planted
    g = ef.probe_geometry(model, "1")
    assert g.supersample > 1
    at_render = ef.stimuli.edge(g.scaled().canvas, contrasts=(1.0,))
    at_canvas = ef.stimuli.edge(g.canvas, contrasts=(1.0,))
    big = ef.probe(model, "1", "rotation", stimuli=at_render, steps=8, progress=False, natural=False)
    small = ef.probe(model, "1", "rotation", stimuli=at_canvas, steps=8, progress=False, natural=False)
    assert big.meta["supersample"] == g.supersample and small.meta["supersample"] == 1
    assert big.values.shape == small.values.shape
