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


# -- temporaries of killed writers, unreadable files, the stage record ----------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_temporary_names_its_writer_and_only_those_of_dead_writers_are_cleaned(tmp_path):
    seen = []
    store.write_atomic(tmp_path / "sub" / "a.json", lambda fh: seen.extend(p.name for p in (tmp_path / "sub").iterdir()))
    assert len(seen) == 1 and seen[0].startswith(f".a.json.{os.getpid()}-") and seen[0].endswith(".tmp")
    dead, hexes = _dead_pid(), "0123456789ab"
    alive = tmp_path / f".x.json.{os.getpid()}-{hexes}.tmp"  # this process: still writing
    other = tmp_path / "sub" / f".y.npz.{dead}-{hexes}.tmp"  # killed: stale
    legacy_new = tmp_path / f".z.json.{hexes}.tmp"  # no pid, written a moment ago: may be in use
    legacy_old = tmp_path / f".w.json.{hexes}.tmp"  # no pid, two hours old: stale
    keep = [tmp_path / ".hidden.tmp", tmp_path / "scan.json.corrupt", tmp_path / "plain.tmp"]  # not temporaries
    for path in [alive, other, legacy_new, legacy_old, *keep]:
        path.write_text("half")
    os.utime(legacy_old, (os.path.getmtime(legacy_old) - 7200,) * 2)
    removed = store.clean_temporaries(tmp_path)
    assert sorted(removed) == sorted([other, legacy_old])
    assert all(p.exists() for p in [alive, legacy_new, *keep]) and not other.exists() and not legacy_old.exists()
    assert store.clean_temporaries(tmp_path / "nothing") == []


def test_temporary_dirs_take_the_umask_and_only_those_of_dead_writers_are_cleaned(tmp_path, umask):
    made = store.make_temporary_dir(tmp_path, ".out.report-")
    assert made.name.startswith(f".out.report-{os.getpid()}-") and _mode(made) == 0o777 & ~umask
    dead = tmp_path / f".out.report-{_dead_pid()}-0123456789ab"
    legacy = tmp_path / ".out.report-abcd_123"  # mkdtemp's name, from before the pid: stale when an hour old
    other = tmp_path / f".other.report-{_dead_pid()}-0123456789ab"  # another report's: not ours to clean
    for d in (dead, legacy, other):
        (d / "figures").mkdir(parents=True)
        (d / "figures" / "f.png").write_bytes(b"png")
    assert store.clean_temporary_dirs(tmp_path, ".out.report-") == [dead]
    for d in (legacy, legacy / "figures"):
        os.utime(d, (os.path.getmtime(d) - 7200,) * 2)
    assert store.clean_temporary_dirs(tmp_path, ".out.report-") == [legacy]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([made.name, other.name])


def test_unreadable_files_are_named_and_moved_aside_never_deleted(tmp_path):
    path = tmp_path / "stage.npz"
    store.write_atomic(path, lambda fh: np.savez_compressed(fh, a=np.arange(1000)))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(store.UnreadableFile, match=r"stage\.npz' cannot be read \(BadZipFile") as info:
        store.read_guarded(path, lambda p: np.load(p)["a"])
    assert info.value.path == path
    with pytest.raises(FileNotFoundError, match="no file at"):
        store.read_guarded(tmp_path / "none.json", store.read_json)
    (tmp_path / "bad.json").write_bytes(b'{"a": "\xc3')  # cut inside a UTF-8 character
    with pytest.raises(store.UnreadableFile, match=r"bad\.json' cannot be read"):
        store.read_guarded(tmp_path / "bad.json", store.read_json)
    first = store.move_aside(path)
    path.write_text("again")
    second = store.move_aside(path)
    assert (first.name, second.name) == ("stage.npz.corrupt", "stage.npz.corrupt-2") and not path.exists()
    assert first.read_bytes()[:2] == b"PK" and second.read_text() == "again"


def test_stage_records_round_trip_and_bad_entries_are_named(tmp_path):
    stages = [("families", "features/3", "rotation"), ("heldout", "a", "flip"), ("circuits", None, "hue")]
    for stage in stages:
        assert store.stage_from_json(store.stage_to_json(stage), tmp_path / "scan.json") == stage
    assert store.stage_to_json(stages[2]) == {"stage": "circuits", "transform": "hue"}
    assert store.describe_stage(stages[1]) == "layer a · flip: held-out validation"
    assert store.stage_files(tmp_path, stages[0]) == (tmp_path / "stages/features_3/rotation/responses.npz",
                                                      tmp_path / "stages/features_3/rotation/families.json")  # fmt: skip
    assert store.stage_files(tmp_path, stages[2])[1] == tmp_path / "stages/circuits/hue.json"
    for bad in ({"stage": "probe", "layer": "a", "transform": "hue"}, {"stage": "circuits", "layer": "a", "transform": "hue"},
                {"stage": "families", "transform": "hue"}, ["families", "a", "hue"]):
        with pytest.raises(ValueError, match=r"scan\.json': .* is not a finished stage"):
            store.stage_from_json(bad, tmp_path / "scan.json")
