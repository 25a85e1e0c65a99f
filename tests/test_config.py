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
