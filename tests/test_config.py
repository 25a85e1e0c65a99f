"""Scan settings from TOML and dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from equifind.config import ScanConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["inceptionv1_early", "googlenet_bvlc_early", "efficientnet_lite0"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.toml")
    assert cfg.layers and set(cfg.transforms) == {"rotation", "hue", "flip"}
    assert cfg.model == name.replace("_early", "")


def test_tables_and_overrides():
    cfg = ScanConfig.from_dict({"layers": ["a"], "probe": {"steps": 16}, "circuits": {"enabled": False, "n_null": 5}})
    assert cfg.steps == 16 and cfg.circuits is False and cfg.circuit_n_null == 5 and cfg.layers == ("a",)
    assert cfg.replace(steps=None, seed=3).seed == 3 and cfg.replace(steps=None).steps == 16


def test_fingerprint_ignores_layers_but_not_steps():
    a = ScanConfig(layers=("x",))
    assert a.fingerprint() == ScanConfig(layers=("y",)).fingerprint()
    assert a.fingerprint() != ScanConfig(steps=32).fingerprint()


@pytest.mark.parametrize(
    "data, match",
    [({"stepz": 3}, "unknown scan config keys"), ({"transforms": ["twist"]}, "unknown transforms"), ({"steps": 1}, "steps")],
)
def test_bad_configs(data, match):
    with pytest.raises(ValueError, match=match):
        ScanConfig.from_dict(data)


def test_transforms_come_from_the_registry():
    from equifind.config import DEFAULT_TRANSFORMS
    from equifind.transforms import as_transform, names

    assert ScanConfig().transforms == DEFAULT_TRANSFORMS == ("rotation", "hue", "flip") == names(scores=True, circuits=True)
    assert ScanConfig.from_dict({"transforms": ["scale"]}).transforms == ("scale",)  # any registered transform
    assert ScanConfig(transforms=(as_transform("flip"), "scale")).transforms == ("flip", "scale")  # kept by name
    assert ScanConfig.from_dict(ScanConfig(transforms=("scale", "hue_rotation")).to_dict()).transforms == ("scale", "hue_rotation")
    with pytest.raises(ValueError, match=r"unknown transforms \['twist'\] in the scan config; valid: \['rotation', 'hue', 'flip', 'scale'"):
        ScanConfig(transforms=("rotation", "twist"))
    with pytest.raises(ValueError, match="transforms must be a list of names"):
        ScanConfig(transforms="rotation")


def test_steps_are_checked_by_each_transform():
    with pytest.raises(ValueError, match="steps: rotation needs an integer number of steps >= 4, got 3"):
        ScanConfig(steps=3)
    with pytest.raises(ValueError, match="steps: scale needs an integer number of steps >= 4, got 2"):
        ScanConfig(transforms=("scale",), steps=2)
    with pytest.raises(ValueError, match="steps must be an int, got 8.0"):
        ScanConfig(steps=8.0)
    assert ScanConfig(transforms=("flip",), steps=1).steps == 1  # the flip grid is its two states
    cfg = ScanConfig(transforms=("rotation", "hue_rotation"), steps=64)
    assert cfg.steps_for("rotation") == 64 and cfg.steps_for("hue_rotation") == 16  # hue_rotation's scan_max_steps
    assert ScanConfig(transforms=("hue_rotation",), steps=8).steps_for("hue_rotation") == 8


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(bad)


def test_alpha_is_the_q_threshold_and_null_sizes_must_reach_it():
    assert ScanConfig().alpha == 0.05
    for name in ("inceptionv1_early", "googlenet_bvlc_early", "efficientnet_lite0"):
        assert load_config(CONFIGS / f"{name}.toml").alpha == 0.05
    ScanConfig(n_null=19, circuit_n_null=19)  # the floor 1/20 reaches 0.05
    ScanConfig(n_null=0)  # no discovery null: p = 1, allowed
    ScanConfig(circuits=False, circuit_n_null=0)  # circuits off: their null size does not matter
    with pytest.raises(ValueError, match=r"n_null=10 cannot reach significance at 0\.05.*use n_null >= 19"):
        ScanConfig(n_null=10)
    with pytest.raises(ValueError, match=r"circuit_n_null=0 .*use circuit_n_null >= 19"):
        ScanConfig(circuit_n_null=0)
    with pytest.raises(ValueError, match=r"circuit_n_null=50 cannot reach significance at 0\.01.*>= 99"):
        ScanConfig.from_dict({"alpha": 0.01, "circuits": {"n_null": 50}, "families": {"n_null": 100}})
    with pytest.raises(ValueError, match=r"alpha \(the q-value threshold\) must be in \(0, 1\], got 0"):
        ScanConfig(alpha=0)
    with pytest.raises(ValueError, match="n_null must be an int ≥ 0, got -1"):
        ScanConfig(n_null=-1)


def test_the_validate_table():
    cfg = ScanConfig.from_dict({"validate": {"sources": ["patches", "feature_vis"], "top": 2, "fv_steps": 8}})
    assert cfg.validate_sources == ("feature_vis", "patches") and cfg.validate_top == 2 and cfg.validate_fv_steps == 8
    assert ScanConfig().validate_sources == () and ScanConfig().validate_top == 3
    assert load_config(CONFIGS / "googlenet_bvlc_early.toml").validate_sources == ()  # shipped off
    assert ScanConfig.from_dict(cfg.to_dict()) == cfg
    base = ScanConfig().fingerprint()
    for change in ({"validate_sources": ("patches",)}, {"validate_top": 1}, {"validate_fv_steps": 8},
                   {"validate_pool": 4}, {"validate_patches": 2}, {"validate_steps": 16}):  # fmt: skip
        assert ScanConfig(**change).fingerprint() != base


@pytest.mark.parametrize(
    "data, match",
    [({"validate": {"sources": ["fv"]}}, r"validate_sources \(\[validate\] sources\) must be distinct values of "
                                         r"\['feature_vis', 'patches'\].*got \['fv'\]"),
     ({"validate": {"sources": "patches"}}, r"must be a list of .*got 'patches'"),
     ({"validate": {"sources": ["patches", "patches"]}}, "distinct"),
     ({"validate": {"top": 0}}, r"validate_top \(\[validate\] top\) must be an int ≥ 1, got 0"),
     ({"validate": {"top": 1.5}}, "validate_top"), ({"validate": {"steps": 2}}, "validate_steps"),
     ({"validate": {"topp": 1}}, r"unknown key 'topp' in \[validate\]"),
     ({"validate": {"sources": ["patches"]}, "n_null": 0}, "n_null=0 cannot reach significance")],
)  # fmt: skip
def test_bad_validate_settings(data, match):
    with pytest.raises(ValueError, match=match):
        ScanConfig.from_dict(data)
