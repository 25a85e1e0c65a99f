"""Progress (equifind._progress): tqdm bars on a terminal or in Jupyter, one line per finished stage in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from equifind._progress import interactive, progress_bar
from conftest import ROOT


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _stages(file: io.StringIO, enabled: bool = True) -> list[int]:
    """Three top-level stages, each with a nested bar by update() and one by iteration; what they looped over."""
    seen = []
    outer = progress_bar(range(3), desc="outer", unit="stages", enabled=enabled, file=file)
    for i in outer:
        with progress_bar(total=4, desc=f"inner {i}", unit="img", enabled=enabled, leave=False, file=file) as bar:
            for _ in range(4):
                bar.update()
        seen += list(progress_bar(range(2), desc="nested", enabled=enabled, leave=False, file=file))
        outer.line(f"stage {i} done")
    return seen


def test_a_log_gets_one_line_per_stage_and_nothing_from_nested_bars():
    log = io.StringIO()
    assert _stages(log) == [0, 1] * 3
    lines = log.getvalue().splitlines()
    assert lines[:3] == ["outer: stage 0 done", "outer: stage 1 done", "outer: stage 2 done"]
    assert len(lines) == 4 and lines[3].startswith("outer: 3 stages in ") and lines[3].endswith(" s")
    assert "\r" not in log.getvalue()


def test_a_top_level_stage_by_update_prints_its_line_on_close():
    log = io.StringIO()
    with progress_bar(total=10, desc="figures", unit="fig", enabled=True, file=log) as bar:
        bar.update(7)
        bar.set_postfix_str("ignored in a log")
    assert log.getvalue().startswith("figures: 7 fig in ") and log.getvalue().count("\n") == 1


def test_a_stage_that_raises_prints_no_closing_line():
    log = io.StringIO()
    with pytest.raises(RuntimeError), progress_bar(total=3, desc="stage", enabled=True, file=log) as bar:
        bar.update()
        raise RuntimeError("stop")
    assert log.getvalue() == ""


def test_a_terminal_gets_tqdm_bars():
    tty = FakeTTY()
    assert interactive(tty) and not interactive(io.StringIO())
    _stages(tty)
    out = tty.getvalue()
    assert "\r" in out and "outer: 100%" in out and "3/3" in out and "inner 2:" in out
    assert "stage 0 done" not in out  # the stage lines are for logs; the bar shows where it is


def test_jupyter_gets_bars_though_its_stream_is_no_terminal(monkeypatch):
    from tqdm import auto

    class NotebookBar(auto.std_tqdm):  # what tqdm.auto picks in a kernel
        pass

    monkeypatch.setattr(auto, "notebook_tqdm", NotebookBar)
    assert interactive(io.StringIO())


@pytest.mark.parametrize("stream", [io.StringIO, FakeTTY])
def test_disabled_prints_nothing(stream):
    out = stream()
    assert _stages(out, enabled=False) == [0, 1] * 3
    assert out.getvalue() == ""


def test_update_on_an_iterated_bar_needs_no_iterable():
    with pytest.raises(TypeError, match="without an iterable"):
        list(progress_bar(total=3, desc="x", enabled=True, file=io.StringIO()))


# -- the command, piped -------------------------------------------------------------------------------

SCAN = """
import sys
import equifind as ef, equifind.models
from equifind.cli import main
from planted import centred
from planted_circuits import planted

p = planted("eq→eq", "rotation", n=4, exact=True, seed=0)  # layer "3" fed by a planted circuit from "2"
model = ef.load_model(p.net, preprocess=centred, name="planted-circuit", device="cpu")
equifind.models.load_model = lambda *args, **kwargs: model
equifind.cli._check_model_name = lambda name: None
sys.exit(main(sys.argv[1:]))
"""


def test_a_piped_scan_prints_one_line_per_stage_then_the_summary(tmp_path):
    """2 layers × 2 transforms, the circuits of both and the report; stdout and stderr pipes: no bar, a bounded log."""
    config = tmp_path / "small.toml"
    config.write_text("[families]\nn_null = 30\n\n[circuits]\nn_null = 30\n")
    argv = ["scan", "planted-circuit", "--layers", "2", "3", "--transforms", "rotation", "flip", "--steps", "24",
            "--config", str(config), "--out", str(tmp_path / "run"), "--formats", "png"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", SCAN, *argv], capture_output=True, text=True, env=env, timeout=600,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr and "%|" not in done.stderr
    lines = done.stderr.splitlines()
    stages = lines[:4]
    assert [s.split(":")[1].strip() for s in stages] == ["2 rotation", "2 flip", "3 rotation", "3 flip"]
    assert all(" units, " in s and " families (" in s for s in stages)
    assert lines[4].startswith("scan: 4 stages in ")
    assert lines[5].startswith("circuits: rotation: ") and lines[6].startswith("circuits: flip: ")
    assert lines[7].startswith("circuits: 2 transforms in ")
    assert lines[8].startswith("report figures: ") and " fig in " in lines[8]
    assert len(lines) == 9, done.stderr  # no warnings, no bars
    summary = done.stdout.splitlines()
    assert summary[0].startswith("equifind scan of planted-circuit") and summary[-1].startswith("report: ")
    assert len(summary) < 40
    again = subprocess.run([sys.executable, "-c", SCAN, *argv, "--no-report"], capture_output=True, text=True, env=env,
                           timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()  # resumed: every stage read back
    assert lines[:4] == [stage.rsplit(" in ", 1)[0] + " (read back)" for stage in stages]
    assert lines[4].startswith("scan: 4 stages in ") and lines[5].startswith("circuits: rotation: ")
    assert lines[5].endswith(" significant circuits (read back)") and lines[6] == "circuits: flip: 0 significant circuits (read back)"
    assert len(lines) == 8, again.stderr
