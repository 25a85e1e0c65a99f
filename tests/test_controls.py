"""Negative controls (``equifind.controls``): what they change, and that equifind finds nothing in them.

The googlenet test (hue means colour): a colour-blind conv2d0 has no hue family, the real one does."""

from __future__ import annotations

import pytest
import torch

import equifind as ef



def test_shuffle_variants_keeps_each_tuning_curve_and_is_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    resp = ef.Responses(torch.rand(5, 4, 8, generator=g), torch.arange(8) * 45.0, layer="x", transform="rotation",
                        natural_scale=torch.ones(5))  # fmt: skip
    a, b = ef.controls.shuffle_variants(resp, seed=3), ef.controls.shuffle_variants(resp, seed=3)
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, resp.values)
    for u in range(5):  # the same curves, in another order
        assert sorted(map(tuple, a.values[u].tolist())) == sorted(map(tuple, resp.values[u].tolist()))
    assert torch.equal(a.natural_scale, resp.natural_scale)
    with pytest.raises(ValueError, match="2 variants"):
        ef.controls.shuffle_variants(ef.Responses(torch.rand(5, 8), torch.arange(8) * 45.0, layer="x", transform="rotation"))


def test_colour_blind_copy_sees_the_channel_sum_only() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    m = ef.load_model(net, name="tiny")
    blind = ef.controls.colour_blind(m)
    x = torch.rand(1, 3, 8, 8)
    swapped = x[:, [2, 0, 1]]  # the same channel sum, other colours
    with torch.no_grad():
        assert torch.allclose(blind.module(x), blind.module(swapped), atol=1e-6)
        assert not torch.allclose(m.module(x), m.module(swapped), atol=1e-3)  # the original is unchanged
    with pytest.raises(KeyError):
        ef.controls.colour_blind(m, conv="nope")
    with pytest.raises(ValueError, match="3 input channels"):
        ef.controls.colour_blind(m, conv="2")


@pytest.mark.slow
@pytest.mark.weights


def test_conv2d0_hue_families_need_colour(googlenet: ef.Model) -> None:
    """Colour-blind conv2d0: every unit's colour index is below the threshold and no hue family is
    significant (before the gate: 61 of 64 units hue-selective, 4 significant hue families). Real
    conv2d0: a hue family of >= 4 members at q <= 0.05 whose members all pass (seen: 4 families
    of 4, 4, 8, 5 units; colour index 0.19-0.47 or 0.53-0.97, none between)."""
    blind = ef.controls.colour_blind(googlenet)
    r_blind = ef.probe(blind, "conv2d0", transform="hue", progress=False)
    ci_blind = r_blind.colour_index
    assert ci_blind is not None
    live = r_blind.responding()
    assert float(ci_blind[live].max()) < 0.4  # the linear colour-blind value is 0.367
    f_blind = ef.find_families(r_blind, n_null=200)
    assert not [f for f in f_blind if f.q_value <= 0.05], [(f.units, f.q_value) for f in f_blind]
    assert len(f_blind.achromatic) >= 32  # the gate, not only the tuning shapes, took them out

    r = ef.probe(googlenet, "conv2d0", transform="hue", progress=False)
    ci = r.colour_index
    assert ci is not None
    fams = ef.find_families(r, n_null=200)
    good = [f for f in fams if f.q_value <= 0.05 and len(f) >= 4]
    assert good, [(f.units, f.q_value) for f in fams]
    for f in good:
        assert all(float(ci[r.row(u)]) >= ef.DEFAULT_MIN_COLOUR_INDEX for u in f.units)
        assert f.colour_index >= ef.DEFAULT_MIN_COLOUR_INDEX
