"""natural: photographs, natural patches, each unit's natural response scale, and probe's use of it."""

from __future__ import annotations

import gc
import math
import socket
import time
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import equifind as ef
from equifind import natural
from equifind.probe import probe_geometry
from equifind.record import record
from nets import tiny_net
from planted import centred, colour_center_surround, oriented_edge


def conv_model(weight: torch.Tensor, bias: torch.Tensor | None = None, *, pool: bool = False) -> ef.Model:
    """One 'same'-padded conv layer (layer "0"), optionally followed by a global average pool ("1")."""
    k = weight.shape[-1]
    conv = nn.Conv2d(3, weight.shape[0], k, padding=k // 2, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    net = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1)) if pool else nn.Sequential(conv)
    return ef.load_model(net, name="conv", device="cpu")


def one_unit_model() -> ef.Model:
    """A 5×5 conv with one unit and its negation, doubled: responses r and −2r."""
    w = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    return conv_model(torch.cat([w, -2 * w]), torch.tensor([0.1, -0.2]))


@pytest.fixture
def one_unit() -> ef.Model:
    return one_unit_model()


# --------------------------------------------------------------------------- photographs and patches


def test_photographs_load_offline_as_rgb_in_unit_range(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access in a test that must run offline")

    natural._photographs_u8.cache_clear()
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    photos = natural.photographs()
    assert len(photos) == len(natural.PHOTOGRAPHS) == 5
    for p in photos:
        assert p.dtype == torch.float32 and p.dim() == 3 and p.shape[0] == 3
        assert min(p.shape[1:]) >= 300
        assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0
        assert float((p[0] - p[2]).abs().mean()) > 0.02  # colour, not grey
    photos[0].zero_()  # a copy: the cache is untouched
    assert float(natural.photographs()[0].max()) > 0


def test_natural_patches_shape_range_and_seeded_reproducibility():
    a = natural.natural_patches(33, 20, seed=3)
    assert a.shape == (20, 3, 33, 33) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, natural.natural_patches(33, 20, seed=3))
    assert not torch.equal(a, natural.natural_patches(33, 20, seed=4))
    # Many distinct patches, not one crop repeated.
    assert len({round(float(x), 4) for x in a.mean(dim=(1, 2, 3))}) == 20


def test_natural_patches_at_scale_one_are_exact_unflipped_crops():
    patches = natural.natural_patches(12, 6, seed=0, scales=(1.0, 1.0))
    photos = natural.photographs()
    for patch in patches:
        found = False
        for photo in photos:
            # Candidate top-left corners: where the photo's pixel equals the patch's first pixel.
            hits = (photo[:, : -11, : -11] == patch[:, :1, :1]).all(dim=0).nonzero()
            found = found or any(torch.equal(photo[:, y : y + 12, x : x + 12], patch) for y, x in hits.tolist())
        assert found


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0, "n": 4}, "size must be an int >= 1, got 0"),
        ({"size": 16, "n": 0}, "n must be an int >= 1, got 0"),
        ({"size": 16, "n": 2.5}, "n must be an int >= 1, got 2.5"),
        ({"size": 16, "n": 4, "scales": (0.0, 2.0)}, r"0 < min <= max"),
        ({"size": 16, "n": 4, "scales": (2.0, 1.0)}, r"0 < min <= max"),
        ({"size": 16, "n": 4, "scales": (1.0,)}, r"\(min, max\) pair"),
    ],
)
def test_natural_patches_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        natural.natural_patches(**kwargs)


# --------------------------------------------------------------------------- natural scale: exact values


@pytest.mark.parametrize("q", [99.0, 50.0, 100.0, 0.5, 12.345])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_percentile_matches_torch_quantile(q, n):
    x = torch.randn(5, n, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(natural._percentile(x, q), torch.quantile(x, q / 100.0, dim=1))


def test_natural_scale_of_one_conv_unit_equals_a_hand_computation(one_unit):
    natural.clear_cache()
    n, seed = 12, 5
    scale = ef.natural_scale(one_unit, "0", n_patches=n, seed=seed)
    # Documented scheme: crops of 2 × the probe canvas, every position whose 5×5 field lies
    # inside the crop: for a stride-1 conv, exactly the "valid" convolution.
    canvas = probe_geometry(one_unit, "0").canvas
    patches = natural.natural_patches(2 * canvas, n, seed=seed)
    conv = one_unit.module[0]
    by_hand = F.conv2d(patches, conv.weight, conv.bias).abs()  # [n, 2, S-4, S-4]
    assert by_hand.shape[-1] == 2 * canvas - 4
    expected = torch.quantile(by_hand.transpose(0, 1).reshape(2, -1), 0.99, dim=1)
    assert scale.shape == (2,) and scale.dtype == torch.float32
    torch.testing.assert_close(scale, expected, rtol=1e-5, atol=1e-6)
    # The negated, doubled unit: twice the magnitudes, twice the scale.
    torch.testing.assert_close(scale[1], 2 * scale[0])
    p50 = ef.natural_scale(one_unit, "0", n_patches=n, seed=seed, percentile=50.0)
    torch.testing.assert_close(p50, torch.quantile(by_hand.transpose(0, 1).reshape(2, -1), 0.5, dim=1), rtol=1e-5, atol=1e-6)


def test_layer_whose_field_fills_the_input_uses_centre_responses_of_canvas_crops():
    w = torch.randn(1, 3, 3, 3, generator=torch.Generator().manual_seed(2))
    model = conv_model(w, pool=True)  # layer "1": a global average: its field is the whole image
    natural.clear_cache()
    scale = ef.natural_scale(model, "1", n_patches=6, seed=1)
    canvas = probe_geometry(model, "1").canvas
    assert canvas == model.input_size
    patches = natural.natural_patches(canvas, 4 * 6, seed=1)  # documented: 4 canvas crops per patch
    by_hand = F.conv2d(patches, w, model.module[0].bias, padding=1).mean(dim=(2, 3)).abs()[:, 0]
    torch.testing.assert_close(scale[0], torch.quantile(by_hand, 0.99), rtol=1e-5, atol=1e-6)


def test_map_positions_are_the_centre_responses_of_the_canvas_patches_around_them():
    model = ef.load_model(tiny_net(), name="tiny", device="cpu")
    layer = "5"  # stride 2, field 9
    canvas = probe_geometry(model, layer).canvas
    plan = natural._plan(model, layer, canvas)
    assert plan.crop == 2 * canvas and plan.rows is not None and len(plan.rows) > 3
    image = natural.natural_patches(plan.crop, 1, seed=7)
    with torch.no_grad(), record(model, [layer], at="map") as rec:
        model(image)
    full = rec[layer][0]
    with torch.no_grad(), record(model, [layer], at="map") as rec:
        model(image[:, :, :canvas, :canvas])
    centre = (rec[layer].shape[-1] - 1) // 2  # the centre unit's index on a canvas-sized image
    checked = 0
    for r in plan.rows:
        for c in plan.cols:
            y0, x0 = 2 * (r - centre), 2 * (c - centre)  # the canvas whose centre unit is (r, c)
            if min(y0, x0) < 0 or max(y0, x0) + canvas > plan.crop:
                continue
            with torch.no_grad(), record(model, [layer], at="center") as rec:
                model(image[:, :, y0 : y0 + canvas, x0 : x0 + canvas])
            torch.testing.assert_close(rec[layer][0], full[:, r, c], rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked >= 4


# --------------------------------------------------------------------------- responding, selectivity


def test_a_unit_tuned_at_2_percent_of_its_natural_scale_is_not_responding():
    params = torch.arange(36) * 10.0
    bump = torch.exp(4 * (torch.cos(torch.deg2rad(params)) - 1))  # peak 1 at 0°
    scale = torch.tensor([3.0, 3.0])
    values = torch.stack([0.02 * 3.0 * bump, 0.5 * 3.0 * bump])[:, None, :]
    resp = ef.Responses(values, params, layer="l", transform="rotation", natural_scale=scale)
    assert resp.responding().tolist() == [False, True]
    torch.testing.assert_close(resp.selectivity, torch.tensor([0.02, 0.5]), rtol=1e-3, atol=1e-4)
    # Without a natural scale, the weak unit passes (2% of the layer's largest >= 1%).
    bare = ef.Responses(values, params, layer="l", transform="rotation")
    assert bare.responding().tolist() == [True, True]


def test_probe_of_a_colour_unit_that_the_stimuli_barely_drive_is_not_responding():
    # Unit 0: a luminance edge. Unit 1: a red/cyan colour centre-surround (photographs
    # drive it; the achromatic rotation stimuli cannot) plus 2% of the edge.
    edge = oriented_edge(0.0)
    weight = torch.stack([edge, colour_center_surround(0.0) + 0.02 * edge])
    conv = nn.Conv2d(3, 2, weight.shape[-1], padding=weight.shape[-1] // 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    model = ef.load_model(nn.Sequential(conv, nn.ReLU()), preprocess=centred, name="weak", device="cpu")
    resp = ef.probe(model, "1", steps=36, progress=False)
    ratio = resp.peak / resp.natural_scale
    # Seen: peak / natural scale 3.6 (edge), 0.048 (colour unit).
    assert float(ratio[0]) > 1.0 and float(ratio[1]) < 0.1
    assert resp.responding().tolist() == [True, False]
    assert ef.probe(model, "1", steps=36, progress=False, natural=False).responding().tolist() == [True, True]


# --------------------------------------------------------------------------- cache


def test_cache_measures_once_follows_weight_edits_and_does_not_keep_the_model_alive(monkeypatch):
    one_unit = one_unit_model()
    natural.clear_cache()
    calls = []
    real = natural.natural_patches
    monkeypatch.setattr(natural, "natural_patches", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = ef.natural_scale(one_unit, "0", n_patches=4)
    again = ef.natural_scale(one_unit, "0", n_patches=4)
    assert len(calls) == 1 and torch.equal(first, again)
    again.zero_()  # callers get copies
    assert torch.equal(ef.natural_scale(one_unit, "0", n_patches=4), first) and len(calls) == 1
    ef.natural_scale(one_unit, "0", n_patches=4, seed=1)  # another key
    ef.natural_scale(one_unit, "0", n_patches=4, percentile=90.0)  # the same responses, another percentile
    assert len(calls) == 2
    conv = one_unit.module[0]
    with torch.no_grad():  # in place, through the parameter: its version counter moves
        conv.weight.mul_(2.0)
        conv.bias.mul_(2.0)
    torch.testing.assert_close(ef.natural_scale(one_unit, "0", n_patches=4), 2 * first)
    assert len(calls) == 3
    conv.weight.data.mul_(0.5)  # around the version counter: the parameter sums move
    conv.bias.data.mul_(0.5)
    torch.testing.assert_close(ef.natural_scale(one_unit, "0", n_patches=4), first)
    assert len(calls) == 4
    natural.clear_cache(one_unit)
    ef.natural_scale(one_unit, "0", n_patches=4)
    assert len(calls) == 5
    ref = weakref.ref(one_unit)
    assert ref() in natural._CACHE
    del one_unit, conv
    gc.collect()
    assert ref() is None and len(natural._CACHE) == 0


# --------------------------------------------------------------------------- probe


def test_probe_fills_natural_scale_and_saves_it(planted, tmp_path):
    _, model = planted
    resp = ef.probe(model, "1", steps=12, progress=False)
    n = model.num_units("1")
    assert resp.natural_scale is not None and resp.natural_scale.shape == (n,)
    assert bool(torch.isfinite(resp.natural_scale).all()) and bool((resp.natural_scale >= 0).all())
    assert int((resp.natural_scale > 0).sum()) == n  # every planted unit sees photographs
    assert resp.meta["natural_scale"] == {"percentile": 99.0, "n_patches": natural.DEFAULT_N_PATCHES}
    torch.testing.assert_close(resp.natural_scale, ef.natural_scale(model, "1"))
    sub = ef.probe(model, "1", steps=12, units=[5, 2], progress=False)
    torch.testing.assert_close(sub.natural_scale, resp.natural_scale[[5, 2]])
    back = ef.Responses.load(resp.save(tmp_path / "r"))
    assert back.natural_scale is not None and torch.equal(back.natural_scale, resp.natural_scale)
    assert back.meta["natural_scale"] == resp.meta["natural_scale"]
    bare = ef.probe(model, "1", steps=12, progress=False, natural=False)
    assert bare.natural_scale is None and "natural_scale" not in bare.meta
    torch.testing.assert_close(bare.values, resp.values)


def test_probe_works_on_any_model():
    model = ef.load_model(tiny_net(), name="tiny", device="cpu")
    resp = ef.probe(model, "5", steps=8, progress=False)
    assert resp.natural_scale.shape == (5,) and bool((resp.natural_scale > 0).all())


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"percentile": 0.0}, r"percentile must be a number in \(0, 100\], got 0.0"),
        ({"percentile": 100.5}, r"percentile must be a number in \(0, 100\], got 100.5"),
        ({"percentile": -1}, r"got -1"),
        ({"percentile": math.nan}, r"got nan"),
        ({"percentile": "99"}, r"got '99'"),
        ({"n_patches": 0}, r"n_patches must be an int >= 1 .*got 0"),
        ({"n_patches": 3.0}, r"n_patches must be an int >= 1 .*got 3.0"),
        ({"n_patches": True}, r"n_patches must be an int >= 1 .*got True"),
    ],
)
def test_natural_scale_bad_arguments(one_unit, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ef.natural_scale(one_unit, "0", **kwargs)


def test_natural_scale_unknown_layer_or_not_a_model(one_unit):
    with pytest.raises(KeyError, match="unknown layer 'O'"):
        ef.natural_scale(one_unit, "O")
    with pytest.raises(ValueError, match="needs an equifind.Model .* got Sequential"):
        ef.natural_scale(one_unit.module, "0")


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_googlenet_conv2d2_natural_scale(googlenet):
    probe_geometry(googlenet, "conv2d2")  # receptive fields measured (and cached) once, as in probe
    natural.photographs()
    natural.clear_cache(googlenet)
    t0 = time.perf_counter()
    scale = ef.natural_scale(googlenet, "conv2d2")
    t_natural = time.perf_counter() - t0
    t0 = time.perf_counter()
    ef.probe(googlenet, "conv2d2", progress=False, natural=False)
    t_probe = time.perf_counter() - t0
    print(f"\nconv2d2: natural_scale {t_natural:.3f} s, rotation probe {t_probe:.3f} s")
    assert scale.shape == (192,) and bool(torch.isfinite(scale).all())
    # Seen: 191 of 192 units above 0 (median about 120).
    assert int((scale > 0).sum()) >= 0.9 * 192
    resp = ef.probe(googlenet, "conv2d2", progress=False)  # the cached scale
    assert torch.equal(resp.natural_scale, scale)
    # Seen: 185 of 192 respond (stimulus peak >= 10% of the natural scale).
    assert int(resp.responding().sum()) >= 0.5 * 192


# --------------------------------------------------------------------------- top patches


def test_top_patches_shapes_centre_responses_and_distinct_crops():
    """Each returned patch, probed alone, drives its unit's centre as the returned response says
    (rtol 1e-4); responses descend; a unit's k patches are different images (one per crop)."""
    w = torch.stack([oriented_edge(30.0), colour_center_surround(0.0), oriented_edge(200.0)])
    model = conv_model(w, torch.zeros(3))
    canvas = probe_geometry(model, "0").canvas
    images, responses = ef.top_patches(model, "0", [2, 0], 3, n_patches=16)
    assert images.shape == (2, 3, 3, canvas, canvas) and responses.shape == (2, 3)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    with torch.no_grad(), record(model, ["0"], at="center") as rec:
        model(images.flatten(0, 1))
    centre = rec["0"].view(2, 3, -1)
    torch.testing.assert_close(torch.stack([centre[0, :, 2], centre[1, :, 0]]), responses, rtol=1e-4, atol=1e-6)
    assert bool((responses[:, :-1] >= responses[:, 1:]).all())
    for i in range(2):
        for a in range(3):
            for b in range(a + 1, 3):
                assert not torch.equal(images[i, a], images[i, b])


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_top_patches_bad_k(one_unit, k):
    with pytest.raises(ValueError, match=f"k must be.*{k!r}"):
        ef.top_patches(one_unit, "0", [0], k, n_patches=4)


def test_top_patches_more_patches_than_crops(one_unit):
    with pytest.raises(ValueError, match="raise n_patches"):
        ef.top_patches(one_unit, "0", [0], 10_000, n_patches=4)
