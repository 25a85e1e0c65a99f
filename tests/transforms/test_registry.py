"""The registry and the Transform interface: names, identity, what each group says about itself."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from equifind.transforms import (TRANSFORMS, Flip, Hue, HueRotation, Rotation, Scale, Transform, as_transform,
                                 get_transform, names, register)


def test_names_and_lookup():
    assert names() == ("rotation", "hue", "flip", "scale", "hue_rotation")
    assert names(circuits=True) == ("rotation", "hue", "flip")
    assert names(scores=True) == ("rotation", "hue", "flip", "scale")
    assert names(colour=True) == ("hue", "hue_rotation")
    for name in names():
        tf = as_transform(name)
        assert isinstance(tf, TRANSFORMS[name]) and as_transform(tf) is tf and get_transform(name) == tf


@pytest.mark.parametrize("bad, hint", [("rotaton", "did you mean 'rotation'"), ("zoom", "valid: 'rotation'"), (3, "valid")])
def test_unknown_names_list_the_valid_ones(bad, hint):
    with pytest.raises(KeyError, match=hint):
        as_transform(bad)


def test_a_transform_equals_its_name_and_pickles():
    assert Rotation() == "rotation" and "rotation" == Rotation() and Rotation() != "hue"
    assert Rotation() == Rotation() and Rotation() != Hue()
    assert {Rotation(): 1}["rotation"] == 1  # hash by name
    assert str(Scale()) == "scale" and f"{Flip()}" == "flip" and repr(Hue()) == "Hue()"
    assert pickle.loads(pickle.dumps(HueRotation())) == "hue_rotation"
    with pytest.raises(TypeError):
        json.dumps(Rotation())  # saved by .name, never by accident


def test_register_refuses_a_taken_name_and_non_transforms():
    class Other(Rotation):
        name = "rotation"

    with pytest.raises(ValueError, match="taken by Rotation"):
        register(Other)
    with pytest.raises(ValueError, match="Transform subclass"):
        register(int)  # type: ignore[arg-type]
    assert register(Rotation) is Rotation  # registering the same class again is harmless


def test_what_each_group_says():
    assert [as_transform(n).period for n in names()] == [360.0, 360.0, 2.0, None, 360.0]
    assert [as_transform(n).discovery for n in names()] == ["circle", "circle", "pair", "line", "circle"]
    assert Rotation().circular and Hue().circular and not Flip().circular and not Scale().circular
    assert Rotation().sub_periods and not Hue().sub_periods
    assert not Hue().moves_kernels and Rotation().moves_kernels and Scale().aperture_after
    assert HueRotation().scan_max_steps == 16 and Rotation().scan_max_steps is None
    assert Rotation().format_param(45) == "45.0°" and Rotation().format_tick(45) == "45°"
    assert Flip().format_tick(1) == "mirrored" and Flip().format_period(2.0) == "2 (original, mirrored)"
    assert Scale().format_param(2 ** 0.5) == "×1.41" and Scale().format_period(None) == "none"


def test_check_grid_per_group():
    assert Rotation().check_grid(Rotation().grid(8)) == (8,)
    assert Flip().check_grid(Flip().grid(1)) == (2,)
    assert HueRotation().check_grid(HueRotation().grid(4)) == (4, 4)
    assert Scale().check_grid(Scale().grid(9)) == (9,)
    with pytest.raises(ValueError, match="entry 2 is 190, expected 180"):
        Hue().check_grid(torch.tensor([0.0, 90.0, 190.0, 270.0]))
    with pytest.raises(ValueError, match="evenly spaced in log-scale"):
        Scale().check_grid(torch.tensor([0.5, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="zoom factors > 0"):
        Scale().check_grid(torch.tensor([0.0, 1.0, 2.0, 4.0]))
    with pytest.raises(ValueError, match=">= 4"):
        Rotation().check_steps(3)


def test_scale_grid_spans_two_octaves_each_way():
    g = Scale().grid(17)
    assert float(g[0]) == pytest.approx(0.25) and float(g[-1]) == pytest.approx(4.0) and float(g[8]) == pytest.approx(1.0)
    assert Scale().log_step(g) == pytest.approx(0.25)


def test_achromatic_grid_is_the_rotation_part():
    assert Hue().achromatic_grid(Hue().grid(8)) == (None, None)
    spatial, angles = HueRotation().achromatic_grid(HueRotation().grid(4))
    assert spatial == "rotation" and torch.equal(angles, torch.tensor([0.0, 90.0, 180.0, 270.0]))


def test_every_registered_transform_is_complete():
    """What a new transform must provide (docs/architecture.md, "Adding a transform")."""
    for name, cls in TRANSFORMS.items():
        tf = cls()
        assert isinstance(tf, Transform) and tf.name == name
        grid = tf.grid(max(tf.min_steps, 4))
        assert tf.check_grid(grid)
        images = torch.rand(2, 3, 9, 9)
        assert tf.apply_grid(images, grid[:2]).shape == (2, 2, 3, 9, 9)
        assert tf.apply_kernels(torch.rand(2, 1, 3, 3), grid[:2]).shape == (2, 1, 3, 3)
        assert isinstance(tf.axis_label, str) and tf.format_tick(grid[1] if grid.dim() == 1 else grid[1, 1])
