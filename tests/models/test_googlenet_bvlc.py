"""googlenet_bvlc reproduces Caffe's own activations of bvlc_googlenet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import equifind as ef
from conftest import weight_file

pytestmark = [pytest.mark.slow, pytest.mark.weights]

REFERENCE_LAYERS = ["conv2d1", "conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4e", "mixed5b"]


def test_reference_activations_match_caffe(googlenet):
    ref = np.load(weight_file("bvlc_googlenet_reference.npz"))
    inputs = torch.from_numpy(ref["input"])  # already BGR, mean-subtracted
    with torch.no_grad(), ef.record(googlenet, REFERENCE_LAYERS, at="map", stop_early=False) as rec:
        logits = googlenet.forward_preprocessed(inputs)
    for layer in REFERENCE_LAYERS:
        expected = torch.from_numpy(ref[layer])
        got = rec[layer]
        assert got.shape == expected.shape, layer
        rel = float((got - expected).abs().max() / expected.abs().max())
        assert rel < 1e-5, f"{layer}: relative max difference {rel:.2e}"
    prob = logits.softmax(dim=1)
    expected_prob = torch.from_numpy(ref["prob"])
    assert int(prob.argmax()) == int(expected_prob.argmax()) == 967  # espresso
    assert float((prob - expected_prob).abs().max()) < 1e-5


def test_layers_are_lucid_names(googlenet):
    assert googlenet.layers == [
        "conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b", "mixed4a",
        "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b",
    ]  # fmt: skip
    widths = {"conv2d0": 64, "conv2d2": 192, "mixed3a": 256, "mixed3b": 480, "mixed4a": 512, "mixed5b": 1024}
    for layer, n in widths.items():
        assert googlenet.num_units(layer) == n


def test_caffe_preprocessing_is_bgr_255_minus_mean(googlenet):
    images = torch.zeros(1, 3, 4, 4)
    images[:, 0] = 1.0  # pure red
    x = googlenet.preprocess(images)
    # BGR order: red lands in channel 2; mean (104, 117, 123) subtracted.
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([-104.0, -117.0, 255.0 - 123.0]))


def test_receptive_fields_match_analytic_values(googlenet):
    # conv2d0: 7x7 stride 2. conv2d2: + 3x3 pool stride 2 (+2*2) + 1x1 + 3x3 at stride 4 (+2*4) = 19.
    rf0 = googlenet.receptive_field("conv2d0")
    rf2 = googlenet.receptive_field("conv2d2")
    assert rf0.size == 7 and not rf0.clipped
    assert rf2.size == 19 and not rf2.clipped
    # Both centre units sit at the same input position (the centre of 224 px, stride-aligned).
    assert rf0.center == rf2.center == (110.0, 110.0)
    y0, y1, x0, x1 = rf2.box
    assert (y1 - y0 + 1, x1 - x0 + 1) == (19, 19)
