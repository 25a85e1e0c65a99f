"""report()'s figure export: the page only by default; which families and circuits get figure files
(families=, circuits=); worker processes (same files as in-process; a worker's failure surfaces and
leaves nothing); the links handed to the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import os

import pytest
import torch

from equifind.report import report
from equifind.report.build import MAX_DEFAULT_WORKERS, MIN_FIGURES_PER_WORKER, _worker_count
from equifind.report._files import slug
from equifind.report.browser import circuit_key, family_key
from test_figures import make_circuit, rotation_case
from test_html import AMP_LAYER, ODD_LAYER, files_under, stand_in_scan

ROT, HUE, FLIP = (family_key(ODD_LAYER, "rotation", 0), family_key(AMP_LAYER, "hue", 0),
                  family_key(AMP_LAYER, "flip", 0))  # fmt: skip


def ranked_scan() -> Any:
    """The stand-in scan with its rotation family (the largest, listed first) made insignificant, so that
    the scan's ranking is hue (6 units), flip (2), then rotation; and a second, better circuit."""
    res = stand_in_scan()
    rot = res.families[ODD_LAYER]["rotation"][0]
    rot.p_value = rot.q_value = 0.5
    res.circuits = [make_circuit(score=0.2), make_circuit(score=0.9)]
    return res


def stems(out: Path) -> list[str]:
    """The figures written (file names without extension), sorted."""
    return sorted({p.stem for p in (out / "figures").iterdir()})


def test_the_default_is_the_page_only(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    out = report(stand_in_scan(), tmp_path / "scan")
    assert files_under(out) == ["index.html"] and pages[-1]["exported"] == {}
    fam, resp = rotation_case()
    assert files_under(report(fam, tmp_path / "family", responses=resp)) == ["index.html"]


def test_families_n_takes_the_top_n_of_the_whole_scan_in_rank_order(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    out = report(ranked_scan(), tmp_path / "r", formats=("png", "html"), families=2, circuits=1, workers=1)
    assert list(pages[-1]["exported"]) == [HUE, FLIP, circuit_key(1)]
    amp = slug(AMP_LAYER)
    assert stems(out) == sorted([
        *(f"{amp}__hue__f00__{k}" for k in ("tuning", "polar", "stimuli", "equivariance")),
        *(f"{amp}__flip__f00__{k}" for k in ("tuning", "stimuli", "equivariance")),
        "circuit01__conv2d1__conv2d2__rotation__weights",
    ])  # fmt: skip
    report(ranked_scan(), tmp_path / "r0", formats=("png", "html"), families=0, circuits=0)
    assert pages[-1]["exported"] == {} and not (tmp_path / "r0" / "figures").exists()


def test_families_all_and_given_families_or_keys(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    res = ranked_scan()
    report(res, tmp_path / "all", formats=("png", "html"), families="all", circuits="all", workers=1)
    assert list(pages[-1]["exported"]) == [HUE, FLIP, ROT, circuit_key(1), circuit_key(0)]
    rot = res.families[ODD_LAYER]["rotation"][0]
    report(res, tmp_path / "given", formats=("png", "html"), families=[rot, FLIP, rot], circuits=[res.circuits[0]],
           workers=1)  # fmt: skip
    assert list(pages[-1]["exported"]) == [ROT, FLIP, circuit_key(0)]  # given order, repeats dropped


def test_a_lone_family_is_its_own_scan(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    fam, resp = rotation_case()
    key = family_key(fam.layer, "rotation", 0)
    for selection in (1, "all", [fam], [key]):
        out = report(fam, tmp_path / "f", formats=("png", "html"), responses=resp, families=selection, workers=1)
        assert list(pages[-1]["exported"]) == [key] and len(stems(out)) == 4
    report(fam, tmp_path / "none", formats=("png", "html"), responses=resp, families=0)
    assert files_under(tmp_path / "none") == ["index.html"]


def test_the_page_gets_each_figures_title_and_files(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    out = report(make_circuit(), tmp_path / "c", formats=("png", "pdf", "html"))
    name = "figures/circuit00__conv2d1__conv2d2__rotation__weights"
    assert pages[-1]["exported"] == {circuit_key(0): [
        ("expanded weights (red excitation, blue inhibition)", {"png": f"{name}.png", "pdf": f"{name}.pdf"})]}
    assert files_under(out) == ["figures", f"{name}.pdf", f"{name}.png", "index.html"]


@pytest.mark.parametrize("kwargs, error, says", [
    ({"families": -1}, ValueError, "families must be an int ≥ 0 (the top N), 'all', or a sequence"),
    ({"families": True}, TypeError, "families must be an int ≥ 0 (the top N), 'all', or a sequence of the scan's families or their keys; got True"),
    ({"families": "top"}, ValueError, "got 'top'"),
    ({"families": 2.5}, TypeError, "got float"),
    ({"families": [rotation_case(layer="elsewhere")[0]]}, ValueError, "families: Family Family(elsewhere"),
    ({"families": ["family:nope|rotation|0"]}, ValueError, "'family:nope|rotation|0' is not one of this report's families; valid keys: "),
    ({"circuits": -3}, ValueError, "circuits must be an int ≥ 0 (the top N), 'all', or a sequence of the scan's circuits or their keys; got -3"),
    ({"circuits": ["circuit:7"]}, ValueError, "'circuit:7' is not one of this report's circuits; valid keys: 'circuit:0'"),
    ({"workers": 0}, ValueError, "workers must be None or an int ≥ 1, got 0"),
    ({"workers": True}, TypeError, "workers must be None or an int ≥ 1, got True"),
])  # fmt: skip
def test_bad_selections_raise_naming_the_value_before_writing(tmp_path: Path, kwargs: dict[str, Any],
                                                              error: type[Exception], says: str) -> None:  # fmt: skip
    with pytest.raises(error) as caught:
        report(stand_in_scan(), tmp_path / "out", formats=("png", "html"), **kwargs)
    assert says in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_default_workers_draw_a_few_figures_in_process_and_many_on_every_core() -> None:
    assert _worker_count(None, 0) == _worker_count(None, MIN_FIGURES_PER_WORKER) == 1
    assert _worker_count(None, 10_000) == min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
    assert _worker_count(3, 1) == 3  # as given


def test_two_workers_write_the_same_files_as_one(tmp_path: Path) -> None:
    res = ranked_scan()
    one = report(res, tmp_path / "one", formats=("png", "svg", "html"), families=2, circuits=1, workers=1)
    two = report(res, tmp_path / "two", formats=("png", "svg", "html"), families=2, circuits=1, workers=2)
    assert files_under(one) == files_under(two) and len(files_under(one)) == 2 * (4 + 3 + 1) + 2
    for name in files_under(one):
        if (one / name).is_file():
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_a_failing_worker_surfaces_its_error_and_leaves_the_report_as_it_was(tmp_path: Path) -> None:
    res = ranked_scan()
    out = tmp_path / "run"
    report(res, out, formats=("png", "html"), families=0, workers=1)
    before = {name: (out / name).read_bytes() for name in files_under(out) if (out / name).is_file()}
    res.circuits[0].weights = torch.zeros(3)  # weight_diagram refuses it, in a worker process
    with pytest.raises(ValueError, match=r"figure circuit00__conv2d1__conv2d2__rotation__weights: circuit weights must "
                                         r"be a non-empty \[target, source, kh, kw\] array, got shape \(3,\)"):
        report(res, out, formats=("png", "html"), families=1, workers=2)
    assert {name: (out / name).read_bytes() for name in files_under(out) if (out / name).is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging directory left
