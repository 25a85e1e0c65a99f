"""Hue means colour, on the real BVLC GoogLeNet: a colour-blind conv2d0 has no hue family, the real one does."""

from __future__ import annotations

import copy

import pytest
import torch

import equifind as ef

pytestmark = [pytest.mark.slow, pytest.mark.weights]


def colour_blind(model: ef.Model) -> ef.Model:
    """googlenet_bvlc with conv2d0 made colour-blind: each filter's B, G, R weights replaced by their mean.

    The preprocessing is BGR × 255 minus a per-channel mean, so equal weights make conv2d0
    depend on R + G + B only.
    """
    module = copy.deepcopy(model.module)
    conv = module.conv2d0_pre_relu_conv
    with torch.no_grad():
        conv.weight.copy_(conv.weight.mean(dim=1, keepdim=True).expand_as(conv.weight))
    return ef.load_model(module, name="googlenet_bvlc_colourblind", preprocess=model.preprocess, device="cpu")


def test_conv2d0_hue_families_need_colour(googlenet: ef.Model) -> None:
    """Colour-blind conv2d0: every unit's colour index is below the threshold and no hue family is
    significant (before the gate: 61 of 64 units hue-selective, 4 significant hue families). Real
    conv2d0: a hue family of >= 4 members at q <= 0.05 whose members all pass (seen: 4 families
    of 4, 4, 8, 5 units; colour index 0.19-0.47 or 0.53-0.97, none between)."""
    blind = colour_blind(googlenet)
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
