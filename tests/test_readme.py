"""The README's "Use" block runs as written on googlenet_bvlc, with small settings swapped in.

The swaps are a short, explicit list of text substitutions; each must match the README, so an
edit of the block that one no longer fits fails here instead of silently running full-size.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT, weight_file

pytestmark = [pytest.mark.slow, pytest.mark.weights]


def use_block() -> str:
    """The first ```python block of README.md's "## Use" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Use\n", 1)
    if len(section) != 2:
        raise AssertionError('README.md has no "## Use" section')
    block = re.search(r"```python\n(.*?)```", section[1].split("\n## ", 1)[0], re.S)
    if block is None:
        raise AssertionError('README.md\'s "## Use" section has no ```python block')
    return block.group(1)


def small(code: str, weights: Path, out: Path) -> str:
    """``code`` with small settings: each (old, new) must occur at least once."""
    swaps = [
        ('weights="path/to/bvlc_googlenet.pth"', f"weights={str(weights)!r}"),
        ("steps=64", "steps=16"),
        ("n_null=200", "n_null=19"),  # the smallest null whose p floor (1/20) reaches q = 0.05
        # held-out validation probes a family and a 32-unit pool on 32-step grids of feature visualisations
        # and natural patches: minutes even for patches alone on 2 CPU cores, so it is left out here
        # (tests/test_heldout.py tests it); the line still runs, and fs.held_out() answers None
        ('validate=("feature_vis", "patches")', "validate=()"),
        ('layers=["conv2d2", "mixed3a", "mixed3b"]', 'layers=["mixed3a", "mixed3b"]'),
        (', out="reports/run1")',
         f', config={{"n_null": 19, "circuit_n_null": 19, "transforms": ["rotation"]}}, out={str(out)!r})'),
        ('ef.report(res, "reports/run1", formats=("png", "svg", "html")',
         f'ef.report(res, {str(out)!r}, formats=("png", "html")'),
    ]  # fmt: skip
    for old, new in swaps:
        assert old in code, f"README's Use block no longer contains {old!r}: update tests/test_readme.py"
        code = code.replace(old, new)
    assert "reports/" not in code, "the block would write into reports/"
    return code


def test_readme_use_block_runs_as_written(tmp_path, one_thread):
    code = small(use_block(), weight_file("bvlc_googlenet.pth"), tmp_path / "run1")
    env: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md: ## Use", "exec"), env)  # noqa: S102 - the README's own code
    import equifind as ef

    assert env["images"].shape == (1, 3, 300, 451)
    assert env["rec"]["mixed3a"].shape == (1, 256)
    assert isinstance(env["resp"], ef.Responses) and env["resp"].values.shape[0] == 480
    assert len(env["fams"]) >= 1 and isinstance(env["fams"][0], ef.Family)
    fs = env["fs"]
    assert isinstance(fs, ef.FamilyScore) and fs.n_null == 19 and fs.heldout == {} and fs.held_out() is None
    assert isinstance(env["cs"], ef.CircuitScore) and env["cs"].n_null == 19
    res = env["res"]
    assert isinstance(res, ef.ScanResult) and res.layers == ["mixed3a", "mixed3b"] and res.config["steps"] == 16
    assert (tmp_path / "run1" / "index.html").is_file()
