"""The equifind command: success, bad usage (exit 2, one line), failures (exit 1, one line), Ctrl-C (130)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from equifind.cli import UsageError, main
from conftest import ROOT, weight_file


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # main returns its code; this would be a bug, and fails the checks below
        code = f"SystemExit({exit_.code})"
    out, err = capsys.readouterr()
    return code, out, err


def _env() -> dict[str, str]:
    """The environment of a subprocess that runs this checkout's equifind."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_layers_offline(capsys):
    code, out, _ = run(capsys, "layers", "efficientnet_lite0", "--device", "cpu")
    assert code == 0 and "_conv_stem" in out and "32 units" in out


# -- bad usage: exit 2 and one line that names the bad value -------------------------------------

#: A file in the way of a directory (os.access says root may write anywhere, so an unwritable
#: directory is made by putting a file where a parent folder should be).
A_FILE = "{tmp}/a-file"


def _config(tmp: Path, text: str) -> str:
    path = tmp / "cfg.toml"
    path.write_text(text)
    return str(path)


#: (argv with {tmp} for the test's folder, what the one line must say). Every scan writes to
#: {tmp}/out, which must not exist afterwards: bad usage is found before anything is written.
BAD_USAGE = [
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["layers"], "the following arguments are required: MODEL"),
    (["scan", "googlenet_bvlc"], "the following arguments are required: --out"),
    # unknown model, transform
    (["layers", "googlenet_bvcl"], "unknown model 'googlenet_bvcl'; did you mean 'googlenet_bvlc'?"),
    (["scan", "googlenet_bvcl", "--layers", "conv2d0", "--out", "{tmp}/out"], "unknown model 'googlenet_bvcl'"),
    (["score", "m", "l:1,2", "--transform", "twist"], "argument --transform: invalid choice: 'twist'"),
    (["score", "m", "l:1,2", "--transform", "hue_rotation"], "invalid choice: 'hue_rotation'"),
    (["scan", "m", "--out", "{tmp}/out", "--transforms", "twist"], "argument --transforms: invalid choice: 'twist'"),
    # units
    (["score", "m", "conv2d0:3,x"], "bad unit reference 'conv2d0:3,x': 'x' is not a unit number"),
    (["score", "m", "conv2d0", "3", "x"], "'x' is not a unit number (a whole number ≥ 0) after layer 'conv2d0'"),
    (["score", "m", "conv2d0"], "no units after layer 'conv2d0'"),
    (["score", "m", "conv2d0:3", "conv2d1:4"], "units of one layer are needed, got 2 layers ['conv2d0', 'conv2d1']"),
    # steps
    (["score", "googlenet_bvlc", "conv2d0:3,4", "--steps", "0"], "--steps: rotation needs an integer number of steps >= 4, got 0"),
    (["score", "googlenet_bvlc", "conv2d0:1,2,3,4,5", "--steps", "4"], "--steps 4 is fewer than the 5 units scored"),
    (["score", "googlenet_bvlc", "conv2d0:1", "--steps", "x"], "argument --steps: invalid int value: 'x'"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", "{tmp}/out", "--steps", "3"],
     "steps: rotation needs an integer number of steps >= 4, got 3"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--transforms", "scale", "--out", "{tmp}/out", "--steps", "0"],
     "steps: scale needs an integer number of steps >= 4, got 0"),
    # config
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--config", "{config:[families]\nmin_similarity = \"high\"\n}"],
     "min_similarity must be a number in (0, 1], got 'high' (str)"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--config", "{config:layers = [\"conv2d0\"]\nalpha = 2\n}"],
     "alpha (the q-value threshold) must be a number in (0, 1], got 2"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--config", "{config:layers = [\"conv2d0\"]\nstepz = 8\n}"],
     "unknown scan config key 'stepz'; did you mean 'steps'?"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--config", "{config:model = \"squeezenet1_0\"\nlayers = \"conv2d0\"\n}"],
     "is for model 'squeezenet1_0', but the command line names 'googlenet_bvlc'"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--config", "{tmp}/none.toml"], "no config file at"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out"], "no layers to scan: give --layers or a --config"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--layers", "conv2d0", "--validate", "feature_vis,bogus"],
     "got ['feature_vis', 'bogus']"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--layers", "conv2d0", "--validate-top", "0"],
     "validate_top ([validate] top) must be an int ≥ 1, got 0"),
    (["scan", "googlenet_bvlc", "--out", "{tmp}/out", "--layers", "conv2d0", "--seed", "-1"], "argument --seed: expected a whole number ≥ 0, got '-1'"),
    # device, top, paths
    (["layers", "googlenet_bvlc", "--device", "cuda:99"], "--device 'cuda:99'"),
    (["layers", "googlenet_bvlc", "--device", "gpu"], "--device 'gpu' is not a device; valid: cpu, cuda, cuda:N, mps"),
    (["record", "googlenet_bvlc", "conv2d0", "--top", "-3"], "argument --top: expected a whole number ≥ 1, got '-3'"),
    (["record", "googlenet_bvlc", "conv2d0", "--top", "0"], "argument --top: expected a whole number ≥ 1, got '0'"),
    (["record", "googlenet_bvlc", "conv2d0", "--image", "{tmp}/nope.png"], "--image '{tmp}/nope.png': no such file"),
    (["record", "googlenet_bvlc", "conv2d0", "--image", "{tmp}"], "--image '{tmp}': a directory, not a file"),
    (["layers", "googlenet_bvlc", "--weights", "{tmp}/nope.pth"], "--weights '{tmp}/nope.pth': no such file"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", A_FILE], "--out '{tmp}/a-file' is a file, not a directory"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", A_FILE + "/out"],
     "--out '{tmp}/a-file/out' cannot be created: '{tmp}/a-file' is a file, not a directory"),
    (["report", "{tmp}", "--out", A_FILE + "/report"], "--out '{tmp}/a-file/report' cannot be created"),
    (["report", "{tmp}/nothing-here"], "DIR '{tmp}/nothing-here': no such directory"),
    # report formats, selection, workers
    (["report", "{tmp}", "--formats", "png,jpeg"], "argument --formats: invalid choice: 'jpeg' (choose from png, svg, pdf, html)"),
    (["report", "{tmp}", "--formats", "png", "gif"], "argument --formats: invalid choice: 'gif'"),
    (["report", "{tmp}", "--formats", ","], "argument --formats: no format given"),
    (["report", "{tmp}", "--top", "-1"], "argument --top: expected a whole number ≥ 0, got '-1'"),
    (["report", "{tmp}", "--top", "3", "--all"], "argument --all: not allowed with argument --top"),
    (["report", "{tmp}", "--workers", "0"], "argument --workers: expected a whole number ≥ 1, got '0'"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", "{tmp}/out", "--formats", "svg,tiff"],
     "argument --formats: invalid choice: 'tiff'"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", "{tmp}/out", "--all", "--top", "2"],
     "argument --top: not allowed with argument --all"),
    (["scan", "googlenet_bvlc", "--layers", "conv2d0", "--out", "{tmp}/out", "--workers", "x"],
     "argument --workers: expected a whole number ≥ 1, got 'x'"),
]  # fmt: skip


def _fill(arg: str, tmp: Path) -> str:
    """``{tmp}`` is the test's folder; ``{config:TEXT}`` a TOML file holding TEXT."""
    if arg.startswith("{config:"):
        return _config(tmp, arg[len("{config:") : -1])
    return arg.replace("{tmp}", str(tmp))


@pytest.mark.parametrize("argv, says", BAD_USAGE, ids=[" ".join(a)[:60] for a, _ in BAD_USAGE])
def test_bad_usage_exits_2_with_one_line_naming_the_value(capsys, tmp_path, argv, says):
    (tmp_path / "a-file").write_text("in the way")
    code, out, err = run(capsys, *(_fill(a, tmp_path) for a in argv))
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"  # one line, however long
    assert _fill(says, tmp_path) in err and err.startswith("equifind") and "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "out").exists(), "bad usage wrote the --out directory"


@pytest.mark.parametrize("argv, says", [
    (["record", "efficientnet_lite0", "_conv_stemm"], "unknown layer '_conv_stemm' of efficientnet_lite0; did you mean '_conv_stem'?"),
    (["score", "efficientnet_lite0", "_conv_stem:3,99"], "unit 99 is not in _conv_stem, which has 32 units (0 to 31)"),
    (["scan", "efficientnet_lite0", "--layers", "_conv_stem", "_blocks.0.bogus", "--out", "{tmp}/out"],
     "unknown layer '_blocks.0.bogus' of efficientnet_lite0"),
])  # fmt: skip
def test_unknown_layer_or_unit_exits_2_before_any_computation(capsys, tmp_path, argv, says):
    code, out, err = run(capsys, *(_fill(a, tmp_path) for a in argv), "--device", "cpu")
    assert code == 2 and err.count("\n") == 1 and says in err and out == "", err
    assert not (tmp_path / "out").exists()


def test_unknown_model_with_debug_anywhere_raises(capsys):
    for argv in (["--debug", "layers", "googlenet_bvcl"], ["layers", "googlenet_bvcl", "--debug"],
                 ["layers", "--debug", "googlenet_bvcl"]):  # fmt: skip
        with pytest.raises(UsageError, match="unknown model 'googlenet_bvcl'"):
            main(argv)
    code, _, err = run(capsys, "report", "/nonexistent-dir-for-equifind")
    assert code == 2 and "Traceback" not in err  # without --debug: one line


def test_debug_is_accepted_after_the_subcommand():
    from equifind.cli import _parser

    for argv in (["--debug", "scan", "m", "--out", "o"], ["scan", "m", "--out", "o", "--debug"], ["report", "d", "--debug"]):
        assert _parser().parse_args(argv).debug is True
    assert _parser().parse_args(["scan", "m", "--out", "o"]).debug is False


def test_missing_weights_are_a_failure_exit_1(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIFIND_WEIGHTS_DIR", str(tmp_path))  # the default place holds no file
    code, _, err = run(capsys, "layers", "googlenet_bvlc", "--device", "cpu")
    assert code == 1 and "WeightsNotFoundError" in err and err.count("\n") == 1


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


# -- the parser: help everywhere, static choices that match the registries ------------------------


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)
        yield f"{parser.prog} {action.dest}", action


def test_every_argument_has_help():
    from equifind.cli import _parser

    missing = [where for where, action in _all_actions(_parser()) if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []
    assert len(list(_all_actions(_parser()))) > 40  # the walk reached every subcommand


def test_static_choices_match_the_registries():
    from equifind import cli
    from equifind.config import DEFAULT_TRANSFORMS
    from equifind.models import MODELS
    from equifind.report import REPORT_FORMATS
    from equifind.report._files import DEFAULT_FORMATS
    from equifind.report.build import DEFAULT_TOP
    from equifind.transforms import names

    assert cli.TRANSFORM_NAMES == names()
    assert cli.SCORE_TRANSFORMS == names(scores=True)
    assert cli.DEFAULT_TRANSFORMS == DEFAULT_TRANSFORMS
    assert cli.MODEL_NAMES == tuple(MODELS)
    assert cli.FORMATS == REPORT_FORMATS and cli.DEFAULT_FORMATS == DEFAULT_FORMATS and cli.DEFAULT_TOP == DEFAULT_TOP


def test_report_flags_take_comma_or_space_separated_formats_and_top_or_all():
    from equifind.cli import _parser

    for command in (["report", "d"], ["scan", "m", "--out", "o"]):
        args = _parser().parse_args(command)
        assert (args.formats, args.top, args.workers) == (["html"], 20, None)  # the page only, by default
        args = _parser().parse_args([*command, "--formats", "PNG,svg", "html", "png", "--all", "--workers", "2"])
        assert (args.formats, args.top, args.workers) == (["png", "svg", "html"], "all", 2)
        assert _parser().parse_args([*command, "--top", "0"]).top == 0


def test_transform_choices_come_from_the_registry():
    from equifind.cli import _parser
    from equifind.transforms import names

    args = _parser().parse_args(["scan", "m", "--out", "o", "--transforms", "scale", "hue_rotation"])
    assert args.transforms == ["scale", "hue_rotation"]
    for t in names(scores=True):
        assert _parser().parse_args(["score", "m", "l:1,2", "--transform", t]).transform == t


def test_help_runs_without_importing_torch():
    code = ("import sys, contextlib, io; from equifind.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out: rc = [main([a, '--help']) for a in ('layers', 'record', 'scan', 'score', 'report')]\n"
            "print(rc, 'torch' in sys.modules, 'usage: equifind scan' in out.getvalue())")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.stdout.strip() == "[0, 0, 0, 0, 0] False True", done.stderr
    for module in ("equifind.cli", "equifind"):  # python -m equifind works as the script does
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=_env(), timeout=120)
        assert done.returncode == 0 and done.stdout.startswith("usage: equifind") and "Exit codes" in done.stdout


def test_the_package_imports_lazily():
    code = ("import sys, equifind as ef; before = 'torch' in sys.modules\n"
            "import equifind.scan, equifind.report, equifind.probe, equifind.record\n"
            "print(before, sorted(set(ef.__all__) - set(dir(ef))), [callable(ef.scan), callable(ef.report), callable(ef.probe), callable(ef.record)],\n"
            "      ef.stimuli.__name__, ef.Family.__module__, ef.rotation_ceiling.__module__)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.stdout.strip() == "False [] [True, True, True, True] equifind.stimuli equifind.families equifind.transforms.kernels", done.stderr


def test_the_lazy_package_keeps_every_public_name():
    import equifind as ef

    for name in ef.__all__:
        assert getattr(ef, name) is not None
    assert ef.scan.__module__ == "equifind.scan" and callable(ef.report)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        ef.nothing  # noqa: B018


# -- record on the user's images --------------------------------------------------------------------


def test_record_takes_image_files(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(90, 160, 3), (300, 200, 3)]):  # any size: centre-cropped and resized
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(paths[-1])
    code, out, err = run(capsys, "record", "efficientnet_lite0", "_conv_stem", "--device", "cpu", "--image", *paths, "--top", "2")
    assert code == 0, err
    assert out.count("strongest units at 'center' on ") == 2 and paths[0] in out and paths[1] in out
    assert len([line for line in out.splitlines() if line.startswith("  _conv_stem:")]) == 4
    code, out, _ = run(capsys, "record", "efficientnet_lite0", "_conv_stem", "--device", "cpu", "--top", "1")
    assert code == 0 and "on scikit-image's 'chelsea'" in out


# -- Ctrl-C ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "equifind.cli", "scan", "efficientnet_lite0", "--layers", "_conv_stem",
            "--device", "cpu", "--out", str(out), "--quiet", "--no-report"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "scan.json").is_file():  # the scan has started: settings written, probing
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err == f"equifind scan: interrupted; finished stages are kept in {out} — rerun to resume\n"


# -- real models -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_score_json(capsys):
    weights = str(weight_file("bvlc_googlenet.pth"))
    code, out, _ = run(capsys, "score", "googlenet_bvlc", "conv2d0", "3", "7", "11", "--weights", weights, "--device", "cpu", "--steps", "16", "--json")
    assert code == 0
    data = json.loads(out, parse_constant=lambda name: pytest.fail(f"--json printed {name}, not strict JSON"))
    assert sorted(data["order"]) == [3, 7, 11] and 0.0 <= data["equivariance"] <= 1.0
    assert data["q_value"] == data["p_value"] and data["n_null"] > 0  # one family scored: one test, q = p
    code, _, err = run(capsys, "score", "googlenet_bvlc", "conv2d0:3,99", "--weights", weights, "--device", "cpu")
    assert code == 2 and "64 units" in err


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
    code, text, err = run(  # resuming with other settings: bad usage, found before any probing
        capsys, "scan", "googlenet_bvlc", "--weights", weights, "--device", "cpu", "--layers", "conv2d0",
        "--transforms", "rotation", "flip", "--steps", "20", "--out", str(out), "--quiet", "--no-report",
    )
    assert code == 2 and err.count("\n") == 1 and "steps: 16 → 20" in err and "--no-resume" in err, err
    code, text, err = run(capsys, "report", str(out))  # the page only
    assert code == 0, err
    assert text.strip().endswith(f"report: {out / 'index.html'}") and (out / "index.html").is_file()
    assert not (out / "figures").exists()
    code, text, err = run(capsys, "report", str(out), "--formats", "png", "--top", "1", "--workers", "1")  # + the page
    assert code == 0, err
    assert text.strip().endswith(f"report: {out / 'index.html'}") and (out / "index.html").is_file()
    assert {p.name.split("__")[0] for p in (out / "figures").iterdir()} <= {"conv2d0", "circuit00"}
    assert len({p.name.rsplit("__", 1)[0] for p in (out / "figures").glob("conv2d0__*.png")}) == 1  # one family
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "report", str(empty))  # a folder without a scan: a failure, not bad usage
    assert code == 1 and "empty" in err and "Traceback" not in err and err.count("\n") == 1


def test_scan_prints_the_families_confirmed_by_weights_first(capsys, tmp_path, monkeypatch):
    import equifind as ef
    import equifind.models
    from planted import centred
    from planted_circuits import planted

    p = planted("eq→eq", "rotation", n=4, exact=True, seed=0)  # layer "3" fed by a planted circuit from "2"
    model = ef.load_model(p.net, preprocess=centred, name="planted-circuit", device="cpu")
    monkeypatch.setattr(equifind.models, "load_model", lambda *args, **kwargs: model)
    monkeypatch.setattr("equifind.cli._check_model_name", lambda name: None)
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


def test_validate_flags_override_the_config():
    from equifind.cli import _parser, _scan_config, _sources
    from equifind.config import ScanConfig

    args = _parser().parse_args(["scan", "m", "--out", "o", "--validate", "patches, feature_vis", "--validate-top", "2"])
    cfg = ScanConfig(validate_top=5).replace(validate_sources=_sources(args.validate), validate_top=args.validate_top)
    assert cfg.validate_sources == ("feature_vis", "patches") and cfg.validate_top == 2
    assert ScanConfig(validate_sources=("patches",)).replace(validate_sources=_sources("none")).validate_sources == ()
    assert _sources(None) is None
    args = _parser().parse_args(["scan", "m", "--out", "o", "--layers", "a", "b", "--steps", "16", "--seed", "3", "--transforms", "flip"])
    cfg = _scan_config(args)
    assert (cfg.layers, cfg.steps, cfg.seed, cfg.transforms) == (("a", "b"), 16, 3, ("flip",))


def test_the_transform_alone_decides_the_fewest_steps(capsys, monkeypatch):
    """Raise Rotation.min_steps: the probe, discovery's grid check, a scan config and the CLI all follow."""
    import torch

    import equifind as ef
    from equifind.config import ScanConfig
    from equifind.transforms import Rotation

    monkeypatch.setattr(Rotation, "min_steps", 6)
    says = "rotation needs an integer number of steps >= 6, got 5"
    with pytest.raises(ValueError, match=f"steps: {says}"):
        ScanConfig(transforms=("rotation",), steps=5)
    code, _, err = run(capsys, "score", "googlenet_bvlc", "conv2d0:1,2", "--steps", "5")
    assert code == 2 and f"--steps: {says}" in err
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5), torch.nn.ReLU())
    model = ef.load_model(net, name="tiny", device="cpu", preprocess=lambda x: x)
    with pytest.raises(ValueError, match=says):
        ef.probe(model, model.layers[-1], "rotation", steps=5, progress=False, natural=False)
    with pytest.raises(ValueError, match=">= 6 steps over 360°"):
        Rotation().check_grid(Rotation().grid(5))
    assert Rotation().check_grid(Rotation().grid(6)) == (6,)
