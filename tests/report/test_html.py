"""report(): index.html and figure files for scans, families, scores and circuits; escaping; atomicity."""

from __future__ import annotations

import dataclasses
import html.parser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import equifind as ef  # noqa: E402
from equifind.report import figures as figures_module  # noqa: E402  (ef.report is the function)
from equifind.families import FamilyList, best_weight_support  # noqa: E402
from equifind.report import report  # noqa: E402
from equifind.report._files import slug  # noqa: E402
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


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"] or "")
        if tag == "a" and a.get("href") and not a["href"].startswith("#"):
            self.hrefs.append(a["href"])


def parse(index: Path) -> _Links:
    p = _Links()
    p.feed(index.read_text(encoding="utf-8"))
    return p


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_scan_report_writes_index_with_existing_images_and_escaped_text(tmp_path: Path) -> None:
    out = report(stand_in_scan(), tmp_path / "rep", formats=("png", "svg", "html"))
    assert out == tmp_path / "rep"
    index = out / "index.html"
    text = index.read_text(encoding="utf-8")
    links = parse(index)
    assert len(links.imgs) >= 10  # 4 + 3 + 3 family figures + 1 weight diagram
    from urllib.parse import unquote

    for ref in links.imgs + links.hrefs:
        assert (out / unquote(ref)).is_file(), ref
    assert all(ref.endswith(".png") for ref in links.imgs)  # PNG preferred
    assert "script" not in links.tags and "<script>" not in text and "&lt;script&gt;" in text
    assert "conv<1>" not in text and "&lt;1&gt;" in text and "mixed&2" not in text and "mixed&amp;2" in text
    assert "conv&lt;1&gt;:0, conv&lt;1&gt;:1" in text  # units written layer:unit
    assert "curve &lt;detectors&gt; (overlap 75%)" in text  # matched label on the card
    assert "equivariant→equivariant" in text and "Circuits" in text
    assert "http://" not in text and "https://" not in text  # self-contained
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no staging directory left
    assert plt.get_fignums() == []


def test_every_p_has_its_q_and_names_its_test(tmp_path: Path) -> None:
    res = stand_in_scan()
    res.config["circuit_min_score"] = 0.5
    text = (report(res, tmp_path / "rep", formats=("html",)) / "index.html").read_text(encoding="utf-8")
    # the rotation family: discovery p at its floor 1/(1 + 199); the circuit: q = 0.012, p at 1/(1 + 249)
    assert "<dt>discovery q / p</dt><dd>q ≤ 0.005 (p ≤ 0.005)</dd>" in text
    assert "<dt>discovery q / p</dt><dd>q = 0.03 (p = 0.02)</dd>" in text  # the flip pair
    assert text.count("<dt>equivariance q / p</dt>") == 3  # one per scored family
    assert "<dt>q / p</dt><dd>q = 0.012 (p ≤ 0.004); null: random member angles, mean 0.210</dd>" in text
    assert "<dt>rotation gain</dt><dd>0.300 (score minus the score with the transform left out; " in text
    assert "significant above 2 × 0.050, its null SD)</dd>" in text and "<dt>1×1-path share</dt><dd>0.100 " in text
    assert "p-value" not in text  # no bare p without its test and q
    assert "Significant means q ≤ 0.05." in text  # the legend, with the config's default alpha
    assert "<th>families at discovery q ≤ 0.05</th>" in text and "<th>its equivariance q (p)</th>" in text
    assert "1 circuit with q ≤ 0.05 (Benjamini–Hochberg over the checks of each transform) and symmetry score ≥ 0.5." in text
    res.config["alpha"] = 0.01  # a stricter scan: the hue family (q = 0.01) stays, the flip pair (q = 0.03) does not
    text = (report(res, tmp_path / "strict", formats=("html",)) / "index.html").read_text(encoding="utf-8")
    assert "Significant means q ≤ 0.01." in text and "1 family (1 with discovery q ≤ 0.01)" in text
    assert "1 family (0 with discovery q ≤ 0.01)" in text
    for obj in (res.families[ODD_LAYER]["rotation"][0], make_circuit()):  # single pages: the default rule
        page = (report(obj, tmp_path / type(obj).__name__, formats=("html",)) / "index.html").read_text(encoding="utf-8")
        assert "Significant means q ≤ 0.05." in page and "q / p</dt>" in page


def test_real_scan_result_and_reproducible_index(tmp_path: Path) -> None:
    res = stand_in_scan(real=True)
    a = report(res, tmp_path / "a", formats=("html", "png"))
    b = report(res, tmp_path / "b", formats=("html", "png"))
    assert (a / "index.html").read_bytes() == (b / "index.html").read_bytes()
    assert "equifind scan of toy&lt;net&gt;" in (a / "index.html").read_text()  # ScanResult.summary() is shown


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("figure failed")

    monkeypatch.setattr(figures_module, "polar_tuning", boom)
    with pytest.raises(RuntimeError, match="figure failed"):
        report(stand_in_scan(), tmp_path / "rep", formats=("png", "html"))
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_report_and_other_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run1"
    out.mkdir()
    (out / "scan.json").write_text("{}")
    fam, resp = rotation_case()
    report(fam, out, formats=("png", "html"), responses=resp)
    before = {name: (out / name).read_bytes() for name in files_under(out) if (out / name).is_file()}

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("figure failed")

    monkeypatch.setattr(figures_module, "equivariance_matrix", boom)
    with pytest.raises(RuntimeError):
        report(fam, out, formats=("png", "svg", "html"), responses=resp)
    assert {name: (out / name).read_bytes() for name in files_under(out) if (out / name).is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1"]


def test_rereport_replaces_report_files_only(tmp_path: Path) -> None:
    out = tmp_path / "run1"
    fam, resp = rotation_case()
    report(fam, out, formats=("png", "svg", "html"), responses=resp)
    (out / "scan.json").write_text("{}")
    assert any(p.suffix == ".svg" for p in (out / "figures").iterdir())
    report(make_circuit(), out, formats=("png", "html"))
    assert (out / "scan.json").read_text() == "{}"
    assert [p.name for p in (out / "figures").iterdir()] == [p.name for p in (out / "figures").glob("circuit*.png")]
    assert "circuit" in (out / "index.html").read_text()


def test_family_without_responses_says_what_is_missing(tmp_path: Path) -> None:
    fam, resp = rotation_case()
    out = report(fam, tmp_path / "f", formats=("png", "html"))
    text = (out / "index.html").read_text()
    assert "they need the layer&#x27;s Responses" in text
    assert not (out / "figures").exists()
    out = report(as_score(fam, resp), tmp_path / "s", formats=("png", "pdf", "html"), responses=resp)
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert any(n.endswith("__tuning.pdf") for n in names) and any(n.endswith("__equivariance.png") for n in names)
    assert "equivariance score" in (out / "index.html").read_text()


def test_hue_rotation_family_gets_the_hue_orientation_map(tmp_path: Path) -> None:
    fam, resp = hue_rotation_case()
    out = report(fam, tmp_path / "hr", formats=("png", "html"), responses=resp)
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
    assert files_under(out) == ["index.html"] and "<img" not in (out / "index.html").read_text()


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
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        report(fam, tmp_path / "file", formats=("html",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_figure_budget_draws_the_significant_families_and_best_circuits_first(tmp_path: Path) -> None:
    res = stand_in_scan()
    rot, rot_resp = rotation_case(layer=ODD_LAYER)
    weak = dataclasses.replace(rot, p_value=0.5, q_value=0.5)  # a larger but insignificant family
    weak = dataclasses.replace(weak, units=[*weak.units, 20], preferred=[*weak.preferred, 359.0])
    res.families[ODD_LAYER]["rotation"] = FamilyList([weak, rot], invariant=[], selective=[])
    weak.equivariance = rot.equivariance = None  # neither scored
    res.circuits = [make_circuit(score=0.2), make_circuit(score=0.9)]
    out = report(res, tmp_path / "r", formats=("png", "html"), max_families=1, max_circuits=1)
    figures = files_under(out / "figures")
    # the significant family (listed second) is drawn, the insignificant one is not
    assert any(f.startswith(f"{slug(ODD_LAYER)}__rotation__f01__") for f in figures), figures
    assert not any(f.startswith(f"{slug(ODD_LAYER)}__rotation__f00__") for f in figures), figures
    page = (out / "index.html").read_text()
    assert "only the first 1 families" in page and "only the 1 highest-scoring circuits" in page
    circuit_figs = [f for f in figures if f.startswith("circuit")]
    assert circuit_figs == ["circuit00__conv2d1__conv2d2__rotation__weights.png"]
    assert page.index("0.900") < page.index("0.200")  # best circuit first
    with pytest.raises(ValueError, match="max_families must be None or an int >= 0, got -1"):
        report(res, tmp_path / "bad", max_families=-1)


def _summary_cells(page: str, layer: str, transform: str) -> list[str]:
    """The cells of one summary-table row of a report page."""
    import re

    row = re.search(rf"<tr><td>{re.escape(layer)}</td><td>{transform}</td>(.*?)</tr>", page)
    assert row is not None, (layer, transform)
    return [layer, transform, *re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]


def test_families_confirmed_by_weights_come_first_with_their_verdict(tmp_path: Path) -> None:
    res = stand_in_scan()
    rot = res.families[ODD_LAYER]["rotation"][0]  # significant, 8 units
    small = dataclasses.replace(rot, units=[0, 4], preferred=[0.0, 180.0], p_value=0.5, q_value=0.5)
    circuit = make_circuit(targets=2, source_layer="conv0", target_layer=ODD_LAYER)
    circuit.target_units = [4, 0]
    rot.weight_checked = small.weight_checked = True
    small.weight_support = best_weight_support(small, [circuit])
    res.families[ODD_LAYER]["rotation"] = FamilyList([rot, small], invariant=[], selective=[])
    rot.equivariance = small.equivariance = None  # neither scored
    out = report(res, tmp_path / "r", formats=("png", "html"), max_families=1)
    figures = files_under(out / "figures")
    # the family confirmed by weights (listed second, small and insignificant) is drawn, the other is not
    assert any(f.startswith(f"{slug(ODD_LAYER)}__rotation__f01__") for f in figures), figures
    assert not any(f.startswith(f"{slug(ODD_LAYER)}__rotation__f00__") for f in figures), figures
    page = (out / "index.html").read_text(encoding="utf-8")
    confirmed = ("<dt>weights</dt><dd>confirmed by weights (equivariant→equivariant, from conv0[10, 11, 12], "
                 "score 0.91, q = 0.012 (p ≤ 0.004))</dd>")  # fmt: skip
    assert page.count(confirmed) == 1 and page.count("<dt>weights</dt><dd>not confirmed</dd>") == 1
    assert page.index(confirmed) < page.index("<dt>weights</dt><dd>not confirmed</dd>")  # its card comes first
    assert page.count("<dt>weights</dt><dd>weights not checked</dd>") == 2  # the hue and flip families of mixed&2
    assert "confirmed by weights first, then discovery q ≤ 0.05" in page and "Families confirmed by weights are listed first." in page
    assert "<th>confirmed by weights</th>" in page
    assert _summary_cells(page, "conv&lt;1&gt;", "rotation")[7] == "1"
    assert _summary_cells(page, "mixed&amp;2", "hue")[7] == "not checked"


def test_scale_family_card_and_figures(tmp_path: Path) -> None:
    fam, resp = scale_case()
    out = report(fam, tmp_path / "scale", formats=("png", "html"), responses=resp)
    kinds = sorted(p.stem.rsplit("__", 1)[1] for p in (out / "figures").iterdir())
    assert kinds == ["equivariance", "stimuli", "tuning"]  # no polar plot: no circle
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "<dt>preferred</dt><dd>×0.5, ×0.707, ×1, ×1.41, ×2</dd>" in text
    assert "<dt>period</dt><dd>none</dd>" in text and "<dt>holes</dt><dd>n/a (no period)</dd>" in text
    assert "<dt>equivariance score</dt><dd>not scored</dd>" in text


def test_scan_with_a_scale_layer(tmp_path: Path) -> None:
    res = stand_in_scan()
    fam, resp = scale_case(layer=ODD_LAYER)
    res.transforms = [*res.transforms, "scale"]
    res.families[ODD_LAYER]["scale"] = FamilyList([fam], invariant=[], selective=list(range(5)))
    res.responses[ODD_LAYER]["scale"] = resp
    out = report(res, tmp_path / "r", formats=("png", "html"))
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "conv&lt;1&gt; · scale · family 1: 5 units, period none" in page
    cells = _summary_cells(page, "conv&lt;1&gt;", "scale")
    assert cells[2:6] == ["7", "5", "0", "1"] and cells[9:] == ["n/a", "n/a", "n/a"]  # unscored; not a mirror pair
    assert _summary_cells(page, "mixed&amp;2", "flip")[3:5] == ["2", "1"]  # selective and invariant of the FamilyList
    figures = files_under(out / "figures")
    assert any(f.endswith("__scale__f00__tuning.png") for f in figures)
    assert not any("__scale__" in f and f.endswith("__polar.png") for f in figures)
