"""A scan killed anywhere (SIGKILL) or left with damaged files resumes to exactly the uninterrupted result.

The kills happen in children of tests/scan_faults_driver.py (its hooks SIGKILL the child on the
N-th file commit, or in the middle of a families, held-out or circuits stage, or of a report);
the resumes and comparisons run here. The scan is tests/planted_circuits.py's two-layer net with
rotation and flip, held-out validation on patches and circuits: every kind of stage, in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import scan_faults_driver as driver
import torch

import equifind as ef
from equifind.scan import ScanResult

DRIVER = Path(driver.__file__)

# (hook, n): the n-th call of the hook kills the scan. "replace" counts the files committed in the
# order of a full run: 1 scan.json, then per layer 2 and 3: rotation (responses.npz, families.json,
# scan.json), flip (same), held-out rotation (heldout.npz, heldout.json, scan.json), held-out flip
# (same); then circuits rotation (rotation.npz, rotation.json, scan.json), circuits flip (same).
KILLS = [
    ("replace", 1),  # before anything: not even scan.json
    ("replace", 2),  # mid-stage: the first responses.npz half-committed (its temporary file left)
    ("replace", 3),  # between a stage's two files
    ("replace", 4),  # a stage's files written, scan.json not yet updated
    ("replace", 5),  # just after the first stage was recorded
    ("replace", 9),  # inside the first held-out stage
    ("replace", 13),  # the last held-out stage of layer 2 written, not recorded
    ("replace", 20),  # layer 3's first held-out stage
    ("replace", 26),  # the first circuits stage
    ("replace", 31),  # everything written but the final scan.json
    ("find_families", 3),  # in the middle of layer 3's rotation stage (probe done)
    ("validate_families", 2),  # in the middle of layer 3's held-out validation
    ("find_circuits", 1),  # in the middle of the rotation circuits
    ("find_circuits", 2),  # in the middle of the flip circuits
]


def _run_driver(jobs: list[dict[str, Any]]) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DRIVER.parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(DRIVER), json.dumps(jobs)], capture_output=True, text=True, env=env, check=False,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _digest(result: ScanResult) -> str:
    """Families (with their scores, held-out tests and weight verdicts) and circuits, as comparable JSON."""
    return json.dumps({
        "families": {f"{layer}/{t}": fams.to_dict() for layer, by_t in result.families.items() for t, fams in by_t.items()},
        "heldout": {f"{layer}/{t}": [f.equivariance.heldout and {k: v.to_dict() for k, v in f.equivariance.heldout.items()}
                                     for f in fams if f.equivariance is not None]
                    for layer, by_t in result.families.items() for t, fams in by_t.items()},
        "support": {f"{layer}/{t}": [(f.weight_checked, f.weight_support) for f in fams]
                    for layer, by_t in result.families.items() for t, fams in by_t.items()},
        "circuits": [c.to_dict(max_weights=0) for c in result.circuits],
        "checked": result.circuits_checked,
    }, sort_keys=True, default=str)  # fmt: skip


def _same(result: ScanResult, reference: ScanResult) -> None:
    assert _digest(result) == _digest(reference)
    assert len(result.circuits) == len(reference.circuits) >= 1
    for a, b in zip(result.circuits, reference.circuits):
        assert torch.equal(a.weights, b.weights) and torch.equal(a.cosines, b.cosines)
    for layer in reference.layers:
        for t in reference.transforms:
            assert torch.equal(result.responses[layer][t].values, reference.responses[layer][t].values)
    assert result.complete and result.missing == []
    assert sorted(result.timings) == sorted(reference.timings)  # a time for every stage, kept over the resume


def _scan(out: Path, **kw: Any) -> ScanResult:
    return ef.scan(model_cache(), driver.LAYERS, driver.TRANSFORMS, config=driver.CONFIG, out=out, progress=False, **kw)


_MODEL: list[Any] = []


def model_cache() -> Any:
    if not _MODEL:
        _MODEL.append(driver.model())
    return _MODEL[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[ScanResult, Path]:
    """The uninterrupted scan and its directory."""
    out = tmp_path_factory.mktemp("reference") / "scan"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the driver's scans and the resumes (one_thread): the same sums, the same bits
    try:
        result = _scan(out)
    finally:
        torch.set_num_threads(threads)
    assert result.complete and len(result.expected_stages()) == 10  # 4 families, 4 held-out, 2 circuits
    return result, out


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> dict[tuple[str, int], tuple[str, Path]]:
    """Every kill of :data:`KILLS`, run by the driver: (hook, n) -> (what became of the child, its out)."""
    root = tmp_path_factory.mktemp("killed")
    outs = [root / f"{hook}-{n}" for hook, n in KILLS]
    statuses = _run_driver([{"mode": "scan", "out": str(out), "hook": hook, "n": n} for (hook, n), out in zip(KILLS, outs)])
    return {kill: (status, out) for kill, status, out in zip(KILLS, statuses, outs)}


@pytest.mark.parametrize("kill", KILLS, ids=[f"{hook}-{n}" for hook, n in KILLS])
def test_a_killed_scan_resumes_to_the_uninterrupted_result(kill, killed, reference, tmp_path, one_thread):
    status, original = killed[kill]
    assert status == "killed", f"the scan was not killed at {kill}: {status}"
    out = Path(shutil.copytree(original, tmp_path / "scan"))  # the other tests read the original
    if (out / "scan.json").is_file():  # what the scan has so far loads, and says what it lacks
        with pytest.warns(UserWarning, match="did not finish"):
            partial = ScanResult.load(out)
        assert partial.missing and not partial.complete
        assert partial.summary().startswith("INCOMPLETE SCAN: ")
    resumed = _scan(out)
    _same(resumed, reference[0])
    assert not list(out.rglob("*.tmp")), "temporary files of the killed scan were left"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finished scan loads without a word
        loaded = ScanResult.load(out)
    _same(loaded, reference[0])


def test_loading_a_scan_killed_before_its_circuits_says_so(killed, reference, tmp_path):
    _, out = killed[("find_circuits", 1)]
    with pytest.warns(UserWarning, match="missing: circuits of rotation; circuits of flip"):
        partial = ScanResult.load(out)
    assert partial.missing == ["circuits of rotation", "circuits of flip"] and not partial.complete
    assert _digest(partial).count('"weight_support"') == _digest(reference[0]).count('"weight_support"')
    text = partial.summary()
    assert text.startswith("INCOMPLETE SCAN: 2 of 10 stages did not finish: circuits of rotation; circuits of flip.")
    assert "circuits of rotation, flip: not run" in text
    page = (ef.report(partial, tmp_path / "report", formats=("html",)) / "index.html").read_text()
    banner = json.loads(re.search(r'<script type="application/json" id="equifind-data">(.*?)</script>', page, re.S)[1])["banner"]
    assert banner[0] == "Incomplete scan: 2 stages did not finish"  # the page shows it as its banner
    assert "Circuits of rotation, flip not run" in page and "No circuits" not in page


def test_the_report_of_a_scan_killed_mid_layer_shows_what_was_not_scanned(killed, tmp_path):
    _, out = killed[("find_families", 3)]
    with pytest.warns(UserWarning, match="did not finish"):
        partial = ScanResult.load(out)
    assert partial.missing == [
        "layer 3 · rotation: probe, families and scores", "layer 3 · flip: probe, families and scores",
        "layer 3 · rotation: held-out validation", "layer 3 · flip: held-out validation",
        "circuits of rotation", "circuits of flip",
    ]  # fmt: skip
    assert set(partial.families) == {"2"}
    page = (ef.report(partial, tmp_path / "report", formats=("html",)) / "index.html").read_text()
    assert "rotation: not scanned; the scan stopped before this stage." in page
    assert "layer 3 · rotation: probe, families and scores" in page


# (file, how it is named in the warning): each kind of stage file, truncated to half its size
TRUNCATED = [
    "stages/2/rotation/responses.npz", "stages/2/rotation/families.json", "stages/3/rotation/heldout.npz",
    "stages/3/rotation/heldout.json", "stages/circuits/rotation.npz", "stages/circuits/rotation.json",
]  # fmt: skip


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", TRUNCATED)
def test_a_truncated_stage_file_is_named_moved_aside_and_recomputed(name, reference, tmp_path, one_thread):
    out = Path(shutil.copytree(reference[1], tmp_path / "scan"))
    _truncate(out / name)
    damaged = (out / name).read_bytes()
    with pytest.warns(UserWarning, match=f"{Path(name).name}' cannot be read") as caught:
        partial = ScanResult.load(out)  # loading names it and leaves it alone
    assert any("left out" in str(w.message) for w in caught) and not partial.complete
    assert (out / name).is_file() and not (out / f"{name}.corrupt").exists()
    with pytest.warns(UserWarning, match=f"{Path(name).name}' cannot be read .*moved aside to '{Path(name).name}.corrupt'"):
        resumed = _scan(out)
    _same(resumed, reference[0])
    assert (out / f"{name}.corrupt").read_bytes() == damaged  # kept, not deleted
    assert ScanResult.load(out).complete


def test_a_truncated_scan_json_is_an_error_on_load_and_moved_aside_on_scan(reference, tmp_path, one_thread):
    out = Path(shutil.copytree(reference[1], tmp_path / "scan"))
    _truncate(out / "scan.json")
    with pytest.raises(ValueError, match=r"scan\.json' cannot be read .*cannot be loaded"):
        ScanResult.load(out)
    with pytest.warns(UserWarning, match=r"scan\.json' cannot be read .*moved aside \('scan\.json\.corrupt', 'stages\.corrupt'\)"):
        resumed = _scan(out)
    _same(resumed, reference[0])
    assert (out / "scan.json.corrupt").is_file() and (out / "stages.corrupt").is_dir()
    assert ScanResult.load(out).complete


def test_other_settings_name_the_difference_and_both_spellings_of_starting_again(reference, tmp_path):
    out = Path(shutil.copytree(reference[1], tmp_path / "scan"))
    before = (out / "scan.json").read_text()
    with pytest.raises(ValueError, match=r"other settings \(n_null: 20 → 30; steps: 12 → 16\).*"
                                         r"resume=False in Python, --no-resume on the command line"):
        ef.scan(model_cache(), driver.LAYERS, driver.TRANSFORMS, config={**driver.CONFIG, "steps": 16, "n_null": 30},
                out=out, progress=False)  # fmt: skip
    assert (out / "scan.json").read_text() == before  # nothing touched


def test_a_killed_report_leaves_nothing_behind_after_the_next_one(reference, tmp_path):
    scan_dir = str(reference[1])
    outs = [tmp_path / "by-figure" / "report", tmp_path / "by-file" / "report"]
    statuses = _run_driver([{"mode": "report", "scan": scan_dir, "out": str(outs[0]), "hook": "save_figure", "n": 3},
                            {"mode": "report", "scan": scan_dir, "out": str(outs[1]), "hook": "replace", "n": 2}])
    assert statuses == ["killed", "killed"]
    for out in outs:
        left = [p.name for p in out.parent.iterdir()]
        assert len(left) == 1 and left[0].startswith(".report.report-"), left  # the killed report's staging folder
        assert list(out.parent.rglob("*.png"))
        ef.report(reference[0], out, formats=("html",))
        assert sorted(p.name for p in out.parent.iterdir()) == ["report"]
        assert not list(out.parent.rglob("*.tmp")) and (out / "index.html").is_file()


def test_files_and_folders_of_a_scan_and_a_report_take_the_umask(reference, tmp_path):
    old = os.umask(0o027)
    try:
        result = ScanResult.load(reference[1])
        saved = result.save(tmp_path / "saved")
        report = ef.report(result, tmp_path / "new" / "report", formats=("png", "html"), families=0, circuits=1)
    finally:
        os.umask(old)
    assert list(report.glob("figures/*.png"))
    for root in (saved, report):
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o750 if path.is_dir() else 0o640), (path, oct(mode))


def test_report_checks_that_it_can_write_before_drawing_anything(reference, tmp_path, monkeypatch):
    import errno

    from equifind.report import _files, build

    drawn: list[str] = []
    monkeypatch.setattr(build, "save_figure", lambda *a, **kw: drawn.append("figure"))
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kw):  # as a read-only file system answers
        if os.path.basename(path).startswith(".equifind-write-check"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(_files.os, "open", read_only)
    with pytest.raises(PermissionError, match=re.escape(f"the folder '{tmp_path}' is not writable")):
        ef.report(reference[0], tmp_path / "report", formats=("png", "html"))
    assert drawn == [] and not (tmp_path / "report").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_report_into_a_read_only_folder_fails_at_once(reference, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=re.escape(f"the folder '{out}' is not writable")):
            ef.report(reference[0], out, formats=("png", "html"))
    finally:
        out.chmod(0o755)


def test_a_scan_saved_before_the_stage_record_still_loads_and_resumes(reference, tmp_path, monkeypatch, one_thread):
    import importlib

    out = Path(shutil.copytree(reference[1], tmp_path / "scan"))
    manifest = json.loads((out / "scan.json").read_text())
    del manifest["finished"], manifest["timings"]  # scan.json as scans wrote it before
    (out / "scan.json").write_text(json.dumps(manifest))
    for path in (out / "stages" / "circuits").glob("flip.*"):
        path.unlink()  # the old scan stopped before the flip circuits
    with pytest.warns(UserWarning, match="missing: circuits of flip"):
        old = ScanResult.load(out)  # every stage whose files are there is trusted
    assert old.missing == ["circuits of flip"] and old.timings == {}
    scan_module = importlib.import_module("equifind.scan")
    probed: list[str] = []
    real = scan_module.probe
    monkeypatch.setattr(scan_module, "probe", lambda *a, **kw: probed.append(a[1]) or real(*a, **kw))
    resumed = _scan(out)
    assert probed == [] and _digest(resumed) == _digest(reference[0]) and resumed.complete
    assert "circuits/flip" in resumed.timings
    recorded = json.loads((out / "scan.json").read_text())["finished"]
    assert len(recorded) == 10 and {"stage": "circuits", "transform": "flip"} in recorded
