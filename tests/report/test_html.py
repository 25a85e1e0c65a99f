"""report(): index.html and figure files for scans, families, scores and circuits; atomicity.

The page's content is :func:`equifind.report.browser.write_page`'s (tests/report/test_browser.py); here
the files report() writes and the figure links it hands the page (``exported``), captured by the
``pages`` fixture (tests/conftest.py). Selection and worker processes: test_export.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import equifind as ef  # noqa: E402
from equifind.families import FamilyList, best_weight_support  # noqa: E402
from equifind.report import build  # noqa: E402
from equifind.report import report  # noqa: E402
from equifind.report._files import slug  # noqa: E402
from equifind.report.browser import family_key  # noqa: E402
from test_figures import (  # noqa: E402
    as_score, flip_case, hue_case, hue_rotation_case, make_circuit, rotation_case, scale_case,
)  # fmt: skip

ODD_LAYER = "conv<1>"  # must be escaped in the page and made safe in file names
AMP_LAYER = "mixed&2"


def stand_in_scan(real: bool = False, linked: bool = False) -> Any:
    """A small scan: a rotation family in conv<1>, a hue and a flip family in mixed&2, one circuit; each family
    carries its FamilyScore (``Family.equivariance``), as a scan sets it.

    ``linked``: besides, a rotation family in mixed&2 (units 0-7, listed first) and a second circuit, from the
    conv<1> rotation family's units into exactly that family's (so it is confirmed by weights)."""
    rot, rot_resp = rotation_case(layer=ODD_LAYER)
    hue, hue_resp = hue_case(layer=AMP_LAYER)
    flip, flip_resp = flip_case(layer=AMP_LAYER)
    for fam, resp in ((rot, rot_resp), (hue, hue_resp), (flip, flip_resp)):
        fam.equivariance = as_score(fam, resp)
    families = {
        ODD_LAYER: {"rotation": FamilyList([rot], invariant=[9, 10], selective=list(range(9)))},
        AMP_LAYER: {"hue": FamilyList([hue], invariant=[], selective=list(range(6))),
                    "flip": FamilyList([flip], invariant=[0], selective=[3, 5])},
    }  # fmt: skip
    responses = {ODD_LAYER: {"rotation": rot_resp}, AMP_LAYER: {"hue": hue_resp, "flip": flip_resp}}
    fields = dict(
        model="toy<net>", layers=[ODD_LAYER, AMP_LAYER], transforms=["rotation", "hue", "flip"],
        config={"steps": 16, "note": "<script>alert(1)</script>"}, families=families,
        responses=responses, circuits=[make_circuit(source_layer=ODD_LAYER, target_layer=AMP_LAYER)],
        matches=[{"layer": ODD_LAYER, "transform": "rotation", "label": "curve <detectors>", "found_units": [0, 1, 2],
                  "label_units": [0, 1, 2, 3], "overlap": 0.75}],
    )  # fmt: skip
    if linked:
        _link(fields)
    if real:
        return ef.ScanResult(**fields)
    return SimpleNamespace(**fields, summary=lambda: "equifind scan of toy<net>\nlayer conv<1> ...")


def _link(fields: dict[str, Any]) -> None:
    """Add stand_in_scan's linked rotation family of mixed&2 and the circuit into it."""
    fam, resp = rotation_case(layer=AMP_LAYER)
    fam.equivariance = as_score(fam, resp)
    circuit = make_circuit(targets=8, sources=8, source_layer=ODD_LAYER, target_layer=AMP_LAYER, seed=1, score=0.8)
    circuit.source_units, circuit.target_units = list(range(8)), list(fam.units)
    fam.weight_checked = True
    fam.weight_support = best_weight_support(fam, [circuit])
    fields["families"][AMP_LAYER] = {"rotation": FamilyList([fam], invariant=[], selective=list(range(8))),
                                     **fields["families"][AMP_LAYER]}  # fmt: skip
    fields["responses"][AMP_LAYER]["rotation"] = resp
    fields["circuits"].append(circuit)
    fields["circuits_checked"] = ["rotation"]
    fields["config"] = {**fields["config"], "circuits": True}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def failing(message: str) -> Callable[..., None]:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError(message)

    return boom


def test_scan_report_links_every_figure_it_writes(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    out = report(stand_in_scan(), tmp_path / "rep", formats=("png", "svg", "html"), families="all", workers=1)
    assert out == tmp_path / "rep"
    [page] = pages
    linked = [path for figs in page["exported"].values() for _, paths in figs for path in paths.values()]
    assert sorted(linked) == [f for f in files_under(out) if f.startswith("figures/")]
    assert len(linked) == 2 * (4 + 4 + 3 + 1)  # png + svg: rotation and hue 4 figures, flip 3 (no polar), 1 circuit
    assert (out / "index.html").is_file() and page["responses"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no staging directory left
    assert plt.get_fignums() == []


def test_real_scan_result_and_reproducible_index(tmp_path: Path) -> None:
    res = stand_in_scan(real=True)
    a = report(res, tmp_path / "a", formats=("html", "png"), workers=1)
    b = report(res, tmp_path / "b", formats=("html", "png"), workers=1)
    assert (a / "index.html").read_bytes() == (b / "index.html").read_bytes()
    assert files_under(a) == files_under(b) and any(f.endswith(".png") for f in files_under(a))


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(build._DRAW, "polar", failing("figure failed"))
    with pytest.raises(RuntimeError, match=r"figure conv_1-\w+__rotation__f00__polar: figure failed"):
        report(stand_in_scan(), tmp_path / "rep", formats=("png", "html"), workers=1)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_report_and_other_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run1"
    out.mkdir()
    (out / "scan.json").write_text("{}")
    fam, resp = rotation_case()
    report(fam, out, formats=("png", "html"), responses=resp, workers=1)
    before = {name: (out / name).read_bytes() for name in files_under(out) if (out / name).is_file()}
    monkeypatch.setitem(build._DRAW, "equivariance", failing("figure failed"))
    with pytest.raises(RuntimeError):
        report(fam, out, formats=("png", "svg", "html"), responses=resp, workers=1)
    assert {name: (out / name).read_bytes() for name in files_under(out) if (out / name).is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1"]


def test_rereport_replaces_report_files_only(tmp_path: Path) -> None:
    out = tmp_path / "run1"
    fam, resp = rotation_case()
    report(fam, out, formats=("png", "svg", "html"), responses=resp, workers=1)
    (out / "scan.json").write_text("{}")
    assert any(p.suffix == ".svg" for p in (out / "figures").iterdir())
    report(make_circuit(), out, formats=("png", "html"))
    assert (out / "scan.json").read_text() == "{}"
    assert [p.name for p in (out / "figures").iterdir()] == [p.name for p in (out / "figures").glob("circuit*.png")]
    assert "circuit" in (out / "index.html").read_text()


def test_family_without_responses_gets_no_response_figures(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    fam, resp = rotation_case()
    out = report(fam, tmp_path / "f", formats=("png", "html"))
    assert not (out / "figures").exists() and pages[-1]["exported"] == {}
    out = report(as_score(fam, resp), tmp_path / "s", formats=("png", "pdf", "html"), responses=resp, workers=1)
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert any(n.endswith("__tuning.pdf") for n in names) and any(n.endswith("__equivariance.png") for n in names)
    assert pages[-1]["responses"] is resp


def test_hue_rotation_family_gets_the_hue_orientation_map(tmp_path: Path) -> None:
    fam, resp = hue_rotation_case()
    out = report(fam, tmp_path / "hr", formats=("png", "html"), responses=resp, workers=1)
    kinds = sorted(p.stem.rsplit("__", 1)[1] for p in (out / "figures").iterdir())
    assert kinds == ["equivariance", "hue_orientation", "polar", "stimuli", "tuning"]
    out = report(fam, tmp_path / "hr_alone", formats=("png", "html"))  # the family's own hues suffice
    assert [p.stem.rsplit("__", 1)[1] for p in (out / "figures").iterdir()] == ["hue_orientation"]


def test_formats_select_the_files(tmp_path: Path) -> None:
    c = make_circuit()
    out = report(c, tmp_path / "pdf_only", formats=("pdf",))
    assert files_under(out) == ["figures", "figures/circuit00__conv2d1__conv2d2__rotation__weights.pdf"]
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in out.rglob("*"))  # readable by others, not mkstemp's 0600
    out = report(c, tmp_path / "html_only", formats=["html"])
    assert files_under(out) == ["index.html"]


def test_bad_arguments_raise_before_writing(tmp_path: Path) -> None:
    fam, resp = rotation_case()
    with pytest.raises(TypeError, match="ScanResult, Family, FamilyScore or CircuitScore, got dict"):
        report({"layers": []}, tmp_path / "x")
    with pytest.raises(ValueError, match="unknown format 'jpeg'"):
        report(fam, tmp_path / "x", formats=("png", "jpeg"), responses=resp)
    with pytest.raises(ValueError, match="only for a Family or FamilyScore"):
        report(make_circuit(), tmp_path / "x", responses=resp)
    with pytest.raises(TypeError, match="responses must be"):
        report(fam, tmp_path / "x", responses=resp.values)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="responses are of layer 'conv2d1', the family of 'elsewhere'"):
        report(rotation_case(layer="elsewhere")[0], tmp_path / "x", responses=resp)
    with pytest.raises(ValueError, match=r"units \[0, 1\] of the 'conv2d1' family are not in the responses"):
        report(fam, tmp_path / "x", responses=resp.subset([2, 3, 4, 5, 6, 7]))
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        report(fam, tmp_path / "file", formats=("html",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_top_family_and_circuit_get_figures(tmp_path: Path) -> None:
    res = stand_in_scan()
    rot, rot_resp = rotation_case(layer=ODD_LAYER)
    weak = dataclasses.replace(rot, p_value=0.5, q_value=0.5)  # a larger but insignificant family
    extra = next(u for u in res.responses[ODD_LAYER]["rotation"].units if u not in rot.units)
    weak = dataclasses.replace(weak, units=[*weak.units, extra], preferred=[*weak.preferred, 359.0])
    res.families[ODD_LAYER]["rotation"] = FamilyList([weak, rot], invariant=[], selective=[])
    weak.equivariance = rot.equivariance = None  # neither scored
    res.circuits = [make_circuit(score=0.2), make_circuit(score=0.9)]
    out = report(res, tmp_path / "r", formats=("png", "html"), families=1, circuits=1, workers=1)
    figures = files_under(out / "figures")
    # the significant family (listed second) is drawn, the insignificant one is not; the best circuit (saved second)
    assert {f.split("__f")[0] + "__f" + f.split("__f")[1][:2] for f in figures if "__f" in f} == {
        f"{slug(ODD_LAYER)}__rotation__f01"}
    assert [f for f in figures if f.startswith("circuit")] == ["circuit01__conv2d1__conv2d2__rotation__weights.png"]


def test_families_confirmed_by_weights_come_first(tmp_path: Path, pages: list[dict[str, Any]]) -> None:
    res = stand_in_scan()
    rot = res.families[ODD_LAYER]["rotation"][0]  # significant, 8 units
    small = dataclasses.replace(rot, units=[0, 4], preferred=[0.0, 180.0], p_value=0.5, q_value=0.5)
    circuit = make_circuit(targets=2, source_layer="conv0", target_layer=ODD_LAYER)
    circuit.target_units = [4, 0]
    rot.weight_checked = small.weight_checked = True
    small.weight_support = best_weight_support(small, [circuit])
    res.families[ODD_LAYER]["rotation"] = FamilyList([rot, small], invariant=[], selective=[])
    rot.equivariance = small.equivariance = None  # neither scored
    report(res, tmp_path / "r", formats=("png", "html"), families=1, circuits=0, workers=1)
    # the family confirmed by weights (listed second, small and insignificant) is the scan's first
    assert list(pages[0]["exported"]) == [family_key(ODD_LAYER, "rotation", 1)]


def test_scale_family_figures(tmp_path: Path) -> None:
    fam, resp = scale_case()
    out = report(fam, tmp_path / "scale", formats=("png", "html"), responses=resp, workers=1)
    kinds = sorted(p.stem.rsplit("__", 1)[1] for p in (out / "figures").iterdir())
    assert kinds == ["equivariance", "stimuli", "tuning"]  # no polar plot: no circle


def test_scan_with_a_scale_layer(tmp_path: Path) -> None:
    res = stand_in_scan()
    fam, resp = scale_case(layer=ODD_LAYER)
    res.transforms = [*res.transforms, "scale"]
    res.families[ODD_LAYER]["scale"] = FamilyList([fam], invariant=[], selective=list(range(5)))
    res.responses[ODD_LAYER]["scale"] = resp
    out = report(res, tmp_path / "r", formats=("png", "html"), workers=1)
    figures = files_under(out / "figures")
    assert any(f.endswith("__scale__f00__tuning.png") for f in figures)
    assert not any("__scale__" in f and f.endswith("__polar.png") for f in figures)
