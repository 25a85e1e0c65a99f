"""Feature visualisations: one batched optimisation, each image drives its own unit."""

from __future__ import annotations

import pytest
import torch

import equifind as ef
from equifind.featurevis import feature_visualizations
from planted import centred, planted_layer


@pytest.fixture(scope="module")
def planted():
    p = planted_layer()
    return p, ef.load_model(p.net, preprocess=centred, name="planted", device="cpu")


def test_each_image_drives_its_own_unit(planted):
    p, model = planted
    units = p.edges[::2]  # four edge detectors 90° apart
    fv = feature_visualizations(model, "1", units, steps=48, seed=0)
    assert fv.images.shape == (4, 3, ef.probe_geometry(model, "1").canvas, ef.probe_geometry(model, "1").canvas)
    assert float(fv.images.min()) >= 0.0 and float(fv.images.max()) <= 1.0
    with torch.no_grad(), ef.record(model, ["1"]) as rec:
        model(fv.images)
    acts = rec["1"][:, units]  # [image, unit]
    assert torch.equal(acts.argmax(dim=0), torch.arange(4)), acts
    assert [row["unit"] for row in fv.params] == units
    assert fv.params[0]["activation"] == pytest.approx(float(acts[0, 0]), rel=1e-5)


def test_seeded_and_restores_global_rng(planted):
    _, model = planted
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = feature_visualizations(model, "1", [0, 1], steps=3, seed=7)
    after = torch.rand(1)
    b = feature_visualizations(model, "1", [0, 1], steps=3, seed=7)
    assert torch.equal(a.images, b.images)
    assert torch.equal(before, after)  # the caller's random stream is untouched


@pytest.mark.parametrize(
    "kwargs, err",
    [(dict(units=[]), ValueError), (dict(units=[999]), IndexError), (dict(steps=0), ValueError), (dict(layer="x"), KeyError)],
)
def test_bad_input(planted, kwargs, err):
    _, model = planted
    args = {"layer": "1", "units": [0], **kwargs}
    with pytest.raises(err):
        feature_visualizations(model, args.pop("layer"), args.pop("units"), **args)


def test_a_unit_dead_at_initialisation_comes_alive_through_the_redirected_relu(monkeypatch):
    """Unit 0: an edge filter with bias −0.3 (grey, and lucent's near-grey initial image, give
    ReLU(−0.3) = 0: no gradient), which an edge image can drive to about +1.7. With the redirected ReLU its visualization drives it above 0
    after 32 steps (seen: 0.60; the live unit 0.91); with a plain ReLU (the mode made a passthrough) it stays at exactly 0."""
    from torch import nn

    from equifind.featurevis import _RedirectedReLUs
    from planted import K, oriented_edge

    conv = nn.Conv2d(3, 2, K, padding=K // 2)
    with torch.no_grad():
        conv.weight.copy_(torch.stack([oriented_edge(0.0), oriented_edge(90.0)]) * 4)
        conv.bias.copy_(torch.tensor([-0.3, 0.0]))
    model = ef.load_model(nn.Sequential(conv, nn.ReLU()), preprocess=centred, name="dead", device="cpu")
    alive = feature_visualizations(model, "1", [0, 1], steps=32, seed=0)
    assert alive.params[0]["activation"] > 0.05, alive.params
    monkeypatch.setattr(_RedirectedReLUs, "__torch_function__", lambda self, func, types, args=(), kwargs=None: func(*args, **(kwargs or {})))
    dead = feature_visualizations(model, "1", [0, 1], steps=32, seed=0)
    assert dead.params[0]["activation"] == 0.0, dead.params
    assert dead.params[1]["activation"] > 0.05  # the live unit moves either way
