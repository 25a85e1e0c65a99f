"""Model: layers, units, preprocessing checks, receptive fields on hand-made networks."""

from __future__ import annotations

import pytest
import torch

import equifind as ef
from nets import tiny_net


@pytest.fixture
def tiny():
    return ef.load_model(tiny_net(), name="tiny", device="cpu")


def test_receptive_fields_analytic(tiny):
    # conv3x3 -> 3; conv3x3 stride 2 -> 3 + 2 = 5; next conv3x3 at stride 2 -> 5 + 2*2 = 9.
    assert tiny.receptive_field("0", input_size=33).size == 3
    assert tiny.receptive_field("2", input_size=33).size == 5
    rf = tiny.receptive_field("5", input_size=33)
    assert rf.size == 9 and rf.map_size == (17, 17) and rf.unit == (8, 8)
    assert rf.center == (16.0, 16.0) and rf.box == (12, 20, 12, 20)


def test_receptive_field_is_cached(tiny):
    assert tiny.receptive_field("2") is tiny.receptive_field("2")


def test_receptive_field_clipped_on_small_inputs(tiny):
    assert tiny.receptive_field("5", input_size=5).clipped


def test_unknown_layer_names_closest(tiny):
    with pytest.raises(KeyError, match="did you mean"):
        tiny.num_units("55")


def test_unit_out_of_range_gives_layer_size(tiny):
    assert tiny.check_units("2", [0, 5]) == [0, 5]
    assert tiny.check_units("2") == list(range(6))
    with pytest.raises(IndexError, match="6 units"):
        tiny.check_units("2", [6])
    with pytest.raises(ValueError, match="integers"):
        tiny.check_units("2", [1.5])


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
        (torch.zeros(1, 1, 8, 8), r"\[N, 3, H, W\]"),
        (torch.zeros(3, 8, 8), r"\[N, 3, H, W\]"),
        (torch.full((1, 3, 8, 8), 2.0), r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), -0.5), r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_bad_images_raise_value_error(tiny, images, match):
    with pytest.raises(ValueError, match=match):
        tiny(images)


def test_call_runs_the_module(tiny):
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(tiny(x), tiny.module(x))
