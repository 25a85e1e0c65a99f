"""Scan settings from TOML and dicts."""

from __future__ import annotations

import json
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
    [({"stepz": 3}, "unknown scan config key 'stepz'; did you mean 'steps'?"), ({"transforms": ["twist"]}, "unknown transforms"),
     ({"steps": 1}, "steps")],
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
    assert ScanConfig(transforms="rotation").transforms == ("rotation",)  # one name is a one-element list
    with pytest.raises(ValueError, match=r"transforms must be a list of names from \['rotation'.*got 3$"):
        ScanConfig(transforms=3)


def test_steps_are_checked_by_each_transform():
    with pytest.raises(ValueError, match="steps: rotation needs an integer number of steps >= 4, got 3"):
        ScanConfig(steps=3)
    with pytest.raises(ValueError, match="steps: scale needs an integer number of steps >= 4, got 2"):
        ScanConfig(transforms=("scale",), steps=2)
    with pytest.raises(ValueError, match=r"steps must be an int ≥ 4 \(for rotation, hue, flip\), got 8.0"):
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
    with pytest.raises(ValueError, match=r"alpha \(the q-value threshold\) must be a number in \(0, 1\], got 0"):
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
     ({"validate": {"sources": 1}}, r"must be a list of .*got 1"),
     ({"validate": {"sources": ["patches", "patches"]}}, "distinct"),
     ({"validate": {"top": 0}}, r"validate_top \(\[validate\] top\) must be an int ≥ 1, got 0"),
     ({"validate": {"top": 1.5}}, "validate_top"), ({"validate": {"steps": 2}}, "validate_steps"),
     ({"validate": {"topp": 1}}, r"unknown key 'topp' in \[validate\]"),
     ({"validate": {"sources": ["patches"]}, "n_null": 0}, "n_null=0 cannot reach significance")],
)  # fmt: skip
def test_bad_validate_settings(data, match):
    with pytest.raises(ValueError, match=match):
        ScanConfig.from_dict(data)


# -- every key's type and range, the same from TOML, a dict and ScanConfig(...) ------------------

#: (flat field, TOML key path, bad value, what the message says after the key). The TOML path is
#: how a config file writes the field; the message names the field as the config file does.
BAD_VALUES = [
    ("model", ("model",), 3, "model must be a model name (a non-empty string), got 3"),
    ("layers", ("layers",), 3, "layers must be a list of layer names, got 3"),
    ("layers", ("layers",), ["conv2d0", 3], "layers must be a list of layer names; 3 in ['conv2d0', 3] is not a name"),
    ("transforms", ("transforms",), ["rotation", "twist"], "unknown transforms ['twist'] in the scan config;"),
    ("transforms", ("transforms",), [], "transforms must name at least one"),
    ("transforms", ("transforms",), ["flip", "flip"], "transforms must not repeat a name, got ['flip', 'flip']"),
    ("steps", ("probe", "steps"), "many", "steps must be an int ≥ 4 (for rotation, hue, flip), got 'many' (str)"),
    ("steps", ("probe", "steps"), 3, "steps: rotation needs an integer number of steps >= 4, got 3"),
    ("stimuli", ("probe", "stimuli"), ["grating", "gratin"], "unknown stimulus 'gratin' in stimuli; did you mean 'grating'?"),
    ("stimuli", ("probe", "stimuli"), 5, "stimuli must be a list of stimulus names"),
    ("min_selectivity", ("families", "min_selectivity"), 1.5, "min_selectivity must be a number in [0, 1], got 1.5"),
    ("min_similarity", ("families", "min_similarity"), "high", "min_similarity must be a number in (0, 1], got 'high' (str)"),
    ("min_similarity", ("families", "min_similarity"), 0, "min_similarity must be a number in (0, 1], got 0"),
    ("min_size", ("families", "min_size"), 1, "min_size must be an int ≥ 2, got 1"),
    ("min_size", ("families", "min_size"), 2.5, "min_size must be an int ≥ 2, got 2.5"),
    ("min_colour_index", ("families", "min_colour_index"), True, "min_colour_index must be a number in [0, 1], got True (bool)"),
    ("n_null", ("families", "n_null"), -1, "n_null must be an int ≥ 0, got -1"),
    ("n_null", ("families", "n_null"), "200", "n_null must be an int ≥ 0, got '200' (str)"),
    ("circuits", ("circuits", "enabled"), "yes", "circuits ([circuits] enabled) must be true or false, got 'yes' (str)"),
    ("circuit_n_null", ("circuits", "n_null"), 1.5, "circuit_n_null ([circuits] n_null) must be an int ≥ 0, got 1.5"),
    ("alpha", ("alpha",), "0.05", "alpha (the q-value threshold) must be a number in (0, 1], got '0.05' (str)"),
    ("alpha", ("alpha",), float("nan"), "alpha (the q-value threshold) must be a number in (0, 1], got nan"),
    ("circuit_min_score", ("circuits", "min_score"), 2, "circuit_min_score ([circuits] min_score) must be a number in [-1, 1], got 2"),
    ("seed", ("seed",), -1, "seed must be an int ≥ 0, got -1"),
    ("validate_sources", ("validate", "sources"), ["fv"], "validate_sources ([validate] sources) must be distinct values"),
    ("validate_top", ("validate", "top"), "3", "validate_top ([validate] top) must be an int ≥ 1, got '3' (str)"),
    ("validate_steps", ("validate", "steps"), 2, "validate_steps ([validate] steps) must be an int ≥ 4, got 2"),
    ("validate_pool", ("validate", "pool"), 0, "validate_pool ([validate] pool) must be an int ≥ 1, got 0"),
    ("validate_patches", ("validate", "patches"), False, "validate_patches ([validate] patches) must be an int ≥ 1, got False (bool)"),
    ("validate_fv_steps", ("validate", "fv_steps"), 0, "validate_fv_steps ([validate] fv_steps) must be an int ≥ 1, got 0"),
]  # fmt: skip


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _nested(path: tuple[str, ...], value: object) -> dict:
    return {path[0]: value} if len(path) == 1 else {path[0]: {path[1]: value}}


def _toml(path: tuple[str, ...], value: object) -> str:
    return f"{path[0]} = {_toml_value(value)}\n" if len(path) == 1 else f"[{path[0]}]\n{path[1]} = {_toml_value(value)}\n"


@pytest.mark.parametrize("field, path, value, says", BAD_VALUES, ids=[f"{f}={v!r}" for f, _, v, _ in BAD_VALUES])
def test_every_key_is_checked_the_same_from_toml_dict_and_scanconfig(tmp_path, field, path, value, says):
    file = tmp_path / "bad.toml"
    file.write_text(_toml(path, value))
    for make, where in ((lambda: load_config(file), f"{file}: "), (lambda: ScanConfig.from_dict(_nested(path, value)), ""),
                        (lambda: ScanConfig(**{field: value}), ""), (lambda: ScanConfig().replace(**{field: value}), "")):
        with pytest.raises(ValueError) as err:
            make()
        message = str(err.value)
        assert message.startswith(where) and says in message and "\n" not in message, message


def test_every_field_has_a_bad_value_in_the_table():
    from dataclasses import fields

    assert {f.name for f in fields(ScanConfig)} == {field for field, *_ in BAD_VALUES}


@pytest.mark.parametrize("data, says", [
    ({"families": {"min_similarty": 0.7}}, "unknown scan config key [families] min_similarty; did you mean 'min_similarity'?"),
    ({"probe": {"steps": 16}, "steps": 32}, "scan config key 'steps' repeats [probe] steps (both set steps); keep one"),
    ({"probe": 16}, "[probe] must be a table of settings, got 16"),
    ({"validate": {"topp": 1}}, "unknown key 'topp' in [validate]; did you mean 'top'?"),
    ({"layer": ["conv2d0"]}, "unknown scan config key 'layer'; did you mean 'layers'?"),
])  # fmt: skip
def test_unknown_repeated_and_misplaced_keys(data, says):
    with pytest.raises(ValueError) as err:
        ScanConfig.from_dict(data)
    assert says in str(err.value)
    with pytest.raises(ValueError, match="unknown scan config key 'stepz'; did you mean 'steps'"):
        ScanConfig().replace(stepz=3)


def test_a_string_is_a_one_element_list(tmp_path):
    file = tmp_path / "one.toml"
    file.write_text('layers = "conv2d0"\ntransforms = "flip"\n[probe]\nstimuli = "grating"\n[validate]\nsources = "patches"\n')
    cfg = load_config(file)
    assert cfg.layers == ("conv2d0",) and cfg.transforms == ("flip",) and cfg.validate_sources == ("patches",)
    assert cfg.stimuli == "grating"  # one generator name, as the probe takes it
    assert ScanConfig(layers="conv2d0") == ScanConfig(layers=["conv2d0"]) == ScanConfig.from_dict({"layers": "conv2d0"})
    assert ScanConfig(stimuli=["grating", "edge"]).stimuli == ("grating", "edge")
    assert ScanConfig.from_dict(cfg.to_dict()) == cfg
