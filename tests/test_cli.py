"""The equifind command: success, bad usage (exit 2), failures (exit 1, one line)."""

from __future__ import annotations

import json

import pytest

from equifind.cli import main
from conftest import weight_file


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's bad usage
        code = int(exit_.code)
    out, err = capsys.readouterr()
    return code, out, err


def test_layers_offline(capsys):
    code, out, _ = run(capsys, "layers", "efficientnet_lite0", "--device", "cpu")
    assert code == 0 and "_conv_stem" in out and "32 units" in out


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["layers"], ["score", "googlenet_bvlc", "conv2d0", "x"], ["scan", "googlenet_bvlc"], ["score", "m", "l", "1", "--transform", "twist"],
     ["score", "m", "conv2d0"], ["score", "m", "conv2d0:3,x"], ["score", "m", "conv2d0:3", "conv2d1:4"],
     ["score", "m", "l:1,2", "--transform", "hue_rotation"], ["scan", "m", "--out", "o", "--transforms", "twist"]],
)
def test_bad_usage_exits_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err


@pytest.mark.parametrize("refs, says", [
    (["conv2d0:3,x"], "bad unit reference 'conv2d0:3,x': 'x' is not a unit number"),
    (["conv2d0", "3", "x"], "'x' is not a unit number (a whole number ≥ 0) after layer 'conv2d0'"),
    (["conv2d0"], "no units after layer 'conv2d0'"),
    (["conv2d0:3", "conv2d1:4"], "units of one layer are needed, got 2 layers ['conv2d0', 'conv2d1']"),
])  # fmt: skip
def test_bad_score_units_say_what_is_wrong_and_the_form(capsys, refs, says):
    code, _, err = run(capsys, "score", "m", *refs)
    assert code == 2 and says in err and err.strip().endswith(("(e.g. mixed3b:12,34)", "or as LAYER UNIT...", "conv2d1:4"))


def test_score_takes_layer_colon_units_and_the_older_form():
    from equifind.cli import _parser

    def units(*argv: str) -> tuple[str, tuple[int, ...]]:
        args = _parser().parse_args(["score", "m", *argv])
        args.check(args)
        return args.layer, args.units

    assert units("mixed3b:12,34") == units("mixed3b:12", "mixed3b:34") == units("mixed3b", "12", "34") == ("mixed3b", (12, 34))


def test_transform_choices_come_from_the_registry():
    from equifind.cli import _parser
    from equifind.transforms import names

    args = _parser().parse_args(["scan", "m", "--out", "o", "--transforms", "scale", "hue_rotation"])
    assert args.transforms == ["scale", "hue_rotation"]
    for t in names(scores=True):
        assert _parser().parse_args(["score", "m", "l:1,2", "--transform", t]).transform == t


def test_unknown_model_is_one_line_exit_1(capsys):
    code, _, err = run(capsys, "layers", "googlenet_bvcl")
    assert code == 1
    assert err.strip().count("\n") == 0 and "did you mean 'googlenet_bvlc'" in err and "Traceback" not in err


def test_missing_weights_exit_1(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIFIND_WEIGHTS_DIR", str(tmp_path))
    code, _, err = run(capsys, "layers", "googlenet_bvlc", "--weights", str(tmp_path / "nope.pth"))
    assert code == 1 and "WeightsNotFoundError" in err and err.strip().count("\n") == 0


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(KeyError):
        main(["--debug", "layers", "googlenet_bvcl"])


@pytest.mark.slow
def test_score_json(capsys):
    weights = str(weight_file("bvlc_googlenet.pth"))
    code, out, _ = run(capsys, "score", "googlenet_bvlc", "conv2d0", "3", "7", "11", "--weights", weights, "--device", "cpu", "--steps", "16", "--json")
    assert code == 0
    data = json.loads(out, parse_constant=lambda name: pytest.fail(f"--json printed {name}, not strict JSON"))
    assert sorted(data["order"]) == [3, 7, 11] and 0.0 <= data["equivariance"] <= 1.0
    assert data["q_value"] == data["p_value"] and data["n_null"] > 0  # one family scored: one test, q = p
    code, _, err = run(capsys, "score", "googlenet_bvlc", "conv2d0:3,99", "--weights", weights, "--device", "cpu")
    assert code == 1 and "64 units" in err


@pytest.mark.slow
def test_scan_and_report_commands(capsys, tmp_path):
    weights = str(weight_file("bvlc_googlenet.pth"))
    out = tmp_path / "run"
    code, text, err = run(
        capsys, "scan", "googlenet_bvlc", "--weights", weights, "--device", "cpu", "--layers", "conv2d0",
        "--transforms", "rotation", "flip", "--steps", "16", "--out", str(out), "--quiet", "--no-report",
    )
    assert code == 0, err
    assert "conv2d0" in text and (out / "scan.json").is_file()
    assert "significant: discovery q ≤ 0.05" in text and "discovery q" in text and "equivariance" in text
    assert (out / "stages" / "conv2d0" / "rotation" / "families.json").is_file()
    code, text, err = run(capsys, "report", str(out), "--formats", "png", "html")
    assert code == 0, err
    assert text.strip().endswith(f"report: {out / 'index.html'}") and (out / "index.html").is_file()
    assert any((out / "figures").glob("conv2d0__rotation__*.png"))
    code, _, err = run(capsys, "report", str(tmp_path / "nothing-here"))
    assert code == 1 and "nothing-here" in err and "Traceback" not in err


def test_scan_prints_the_families_confirmed_by_weights_first(capsys, tmp_path, monkeypatch):
    import equifind as ef
    import equifind.models
    from planted import centred
    from planted_circuits import planted

    p = planted("eq→eq", "rotation", n=4, exact=True, seed=0)  # layer "3" fed by a planted circuit from "2"
    model = ef.load_model(p.net, preprocess=centred, name="planted-circuit", device="cpu")
    monkeypatch.setattr(equifind.models, "load_model", lambda *args, **kwargs: model)
    config = tmp_path / "small.toml"
    config.write_text("[families]\nn_null = 30\n\n[circuits]\nn_null = 30\n")
    code, text, err = run(
        capsys, "scan", "planted-circuit", "--layers", "2", "3", "--transforms", "rotation", "--steps", "24",
        "--config", str(config), "--out", str(tmp_path / "run"), "--quiet", "--no-report",
    )  # fmt: skip
    assert code == 0, err
    families = text.split("\nfamilies (", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(families) == 2
    assert families[0].startswith("  3 rotation: 4 units") and "; confirmed by weights (equivariant→equivariant, from 2[" in families[0]
    assert families[1].startswith("  2 rotation: 4 units") and families[1].endswith("; weights not checked")


@pytest.mark.parametrize("flags, match", [(["--validate", "feature_vis,bogus"], "got ['feature_vis', 'bogus']"),
                                          (["--validate-top", "0"], "validate_top ([validate] top) must be an int ≥ 1")])
def test_bad_validate_flags_are_one_line(capsys, tmp_path, flags, match):
    code, _, err = run(capsys, "scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", str(tmp_path), *flags)
    assert code == 1 and match in err and err.strip().count("\n") == 0 and "Traceback" not in err


def test_validate_flags_override_the_config():
    from equifind.cli import _parser, _sources
    from equifind.config import ScanConfig

    args = _parser().parse_args(["scan", "m", "--out", "o", "--validate", "patches, feature_vis", "--validate-top", "2"])
    cfg = ScanConfig(validate_top=5).replace(validate_sources=_sources(args.validate), validate_top=args.validate_top)
    assert cfg.validate_sources == ("feature_vis", "patches") and cfg.validate_top == 2
    assert ScanConfig(validate_sources=("patches",)).replace(validate_sources=_sources("none")).validate_sources == ()
    assert _sources(None) is None
