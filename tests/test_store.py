"""equifind.store: atomic writes (nothing half-written, the mode of a plain open()) and the scan's stage paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from equifind import store
from equifind.transforms import as_transform


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    """Run the test under each umask, restoring the old one after."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_the_file_mode_is_that_of_a_plainly_opened_file(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    for name, write in (("text.txt", lambda p: store.write_text(p, "x")), ("data.json", lambda p: store.write_json(p, [1])),
                        ("arrays.npz", lambda p: store.write_atomic(p, lambda fh: np.savez_compressed(fh, a=np.ones(3))))):
        path = write(tmp_path / name)
        assert _mode(path) == _mode(plain) == 0o666 & ~umask, name


def test_a_failure_mid_write_leaves_no_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "out.npz"

    def half(fh):
        fh.write(b"half a file")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        store.write_atomic(path, half)
    assert not path.exists() and list(path.parent.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):  # an interrupt too
        store.write_atomic(path, lambda fh: (_ for _ in ()).throw(KeyboardInterrupt))
    assert list(path.parent.iterdir()) == []


def test_a_failed_rewrite_keeps_the_old_content(tmp_path):
    path = store.write_text(tmp_path / "a.txt", "old")
    with pytest.raises(ValueError):
        store.write_atomic(path, lambda fh: (fh.write(b"new"), (_ for _ in ()).throw(ValueError("no")))[0])
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    store.write_text(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_keeps_nan_and_bad_json_names_the_file(tmp_path):
    path = store.write_json(tmp_path / "x.json", {"q": float("nan"), "n": [1, 2]})
    back = store.read_json(path)
    assert back["n"] == [1, 2] and back["q"] != back["q"]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json.*not valid JSON"):
        store.read_json(tmp_path / "bad.json")


def test_the_stage_layout(tmp_path):
    assert store.manifest_path(tmp_path) == tmp_path / "scan.json"
    assert store.stage_dir(tmp_path, "mixed3b", "rotation") == tmp_path / "stages" / "mixed3b" / "rotation"
    assert store.stage_dir(tmp_path, "features/3", as_transform("flip")) == tmp_path / "stages" / "features_3" / "flip"
    assert store.circuit_files(tmp_path, "hue") == (tmp_path / "stages" / "circuits" / "hue.json",
                                                   tmp_path / "stages" / "circuits" / "hue.npz")  # fmt: skip
    with pytest.raises(KeyError, match="unknown transform 'twist'"):
        store.stage_dir(tmp_path, "a", "twist")


def test_responses_and_report_files_are_written_the_same_way(tmp_path, umask):
    import torch

    from equifind import Responses
    from equifind.report._files import write_text

    resp = Responses(torch.rand(3, 2, 4), torch.arange(4) * 90.0, layer="a", transform="rotation")
    saved = resp.save(tmp_path / "r.npz")
    page = write_text(tmp_path / "index.html", "<p>")
    assert _mode(saved) == _mode(page) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "r.npz"]
    assert torch.equal(Responses.load(saved).values, resp.values)
