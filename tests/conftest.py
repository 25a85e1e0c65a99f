"""Shared fixtures: the hook-leak guard, real-model loading, seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from hookcheck import leaks, track_hooks

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Property tests draw the same examples on every run in CI (a red CI must be reproducible);
# locally they explore new ones (and keep failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None)
if IN_CI:
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def no_hook_leaks():
    """Fail any test (passing or raising) that leaves a forward/backward/pre-forward hook on a module."""
    with track_hooks() as touched:
        yield
    left = leaks(touched)
    if left:
        pytest.fail(f"hooks left on modules after the test: {left}", pytrace=False)


@pytest.fixture
def one_thread():
    """Small tensor ops on a shared CPU: one torch thread is faster and fair to other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def weights_dir() -> Path | None:
    env = os.environ.get("EQUIFIND_WEIGHTS_DIR")
    if env:
        return Path(env)
    default = ROOT.parent / "shared" / "weights"
    return default if default.is_dir() else None


def weight_file(filename: str) -> Path:
    """Path of a real weight file; skip the test without it, except under CI=true where it fails."""
    folder = weights_dir()
    path = folder / filename if folder else None
    if path is None or not path.is_file():
        reason = (
            f"needs {filename}: set EQUIFIND_WEIGHTS_DIR to the folder holding it "
            f"(looked in {str(folder) if folder else 'nothing: EQUIFIND_WEIGHTS_DIR unset and ../shared/weights absent'})"
        )
        if IN_CI:
            pytest.fail(f"CI=true and weight file missing: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def planted():
    """``(Planted, Model)``: the hand-planted layer of tests/planted.py (edges, bars, hues,
    invariant units), loaded as an equifind model."""
    import equifind as ef
    from planted import centred, planted_layer

    p = planted_layer()
    return p, ef.load_model(p.net, preprocess=centred, name="planted", device="cpu")


@pytest.fixture(scope="session")
def googlenet():
    import equifind as ef

    return ef.load_model("googlenet_bvlc", weights=weight_file("bvlc_googlenet.pth"), device="cpu")


@pytest.fixture(scope="session")
def squeezenet():
    import equifind as ef

    return ef.load_model("squeezenet1_0", weights=weight_file("squeezenet1_0.pth"), device="cpu")


@pytest.fixture(scope="session")
def efficientnet():
    import equifind as ef

    return ef.load_model("efficientnet_lite0", device="cpu")
pytest_plugins = ["pytester"]


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What ``equifind.report.report`` passes to ``write_page``: one ``{"obj", "responses", "exported"}`` per
    page written (the page itself is still written)."""
    from equifind.report import build

    seen: list[dict] = []
    real = build.write_page

    def spy(obj: object, path: Path, *, responses: object = None, exported: object = None) -> None:
        seen.append({"obj": obj, "responses": responses, "exported": exported})
        real(obj, path, responses=responses, exported=exported)

    monkeypatch.setattr(build, "write_page", spy)
    return seen
