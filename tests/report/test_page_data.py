"""The family browser's data and page (equifind.report._page_data, browser.write_page) without a browser:
escaping, quantisation, lone families and circuits, wording, no external resources."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import equifind as ef
from equifind.families import FamilyList
from equifind.report._data import members_of, normalise_rows, preferred_stimuli
from equifind.report._page_data import THUMB, _shrunk, page_data, quantise_rows, unit_key
from equifind.report.browser import circuit_key, family_key, write_page
from test_figures import as_score, flip_case, make_circuit, rotation_case
from test_html import AMP_LAYER, ODD_LAYER, stand_in_scan

DATA_SCRIPT = re.compile(r'<script type="application/json" id="equifind-data">(.*?)</script>', re.S)


def page_json(page: Path) -> dict:
    """The data the page carries, read back as the browser reads it."""
    found = DATA_SCRIPT.search(page.read_text(encoding="utf-8"))
    assert found is not None
    return json.loads(found.group(1))


def test_names_cannot_end_the_data_script_and_round_trip(tmp_path: Path) -> None:
    evil = "a</script><script>alert(1)</script><!--"
    res = stand_in_scan()
    fam, resp = rotation_case(layer=evil)
    fam.equivariance = as_score(fam, resp)
    res.layers.append(evil)
    res.families[evil] = {"rotation": FamilyList([fam], invariant=[], selective=[])}
    res.responses[evil] = {"rotation": resp}
    res.model = "net</title><b>"
    page = tmp_path / "index.html"
    write_page(res, page)
    text = page.read_text(encoding="utf-8")
    assert text.count("</script>") == 2 and text.count("<script") == 2  # the data and the page's script only
    assert "<!--" not in text and "alert(1)" in text  # the name is there, escaped (\u003c)
    assert "<title>equifind: net&lt;/title&gt;&lt;b&gt;</title>" in text
    data = page_json(page)
    assert data["model"] == "net</title><b>" and evil in data["layers"]
    keys = {f["key"] for f in data["families"]}
    assert {family_key(evil, "rotation", 0), family_key(ODD_LAYER, "rotation", 0), family_key(AMP_LAYER, "hue", 0)} <= keys
    assert data["config"] == [["note", '"<script>alert(1)</script>"'], ["steps", "16"]]  # values as JSON text


def test_quantised_rows_decode_to_the_normalised_rows_within_half_a_step() -> None:
    x = np.random.default_rng(0).normal(size=(5, 17))
    x[3] = 2.0  # a flat row decodes to 0
    decoded = np.frombuffer(base64.b64decode(quantise_rows(x)), dtype=np.uint8).reshape(5, 17) / 255
    assert np.abs(decoded - normalise_rows(x)).max() <= 0.5 / 255 + 1e-12
    assert (decoded[3] == 0).all() and decoded.max() == 1.0


def test_circuit_weights_decode_within_half_a_step_with_their_sign() -> None:
    c = make_circuit()
    w = page_data(c)["circuits"][0]["weights"]
    assert w["shape"] == list(c.weights.shape) and w["vmax"] == 5.0
    q = np.frombuffer(base64.b64decode(w["data"]), dtype=np.uint8).astype(float).reshape(w["shape"]) - 128
    back = q / 127 * w["vmax"]
    assert np.abs(back - c.weights.double().numpy()).max() <= 0.5 * w["vmax"] / 127 + 1e-9
    assert q.min() == -127  # the largest |w| is negative (-5)


def test_family_without_responses_has_fields_but_no_plots(tmp_path: Path) -> None:
    fam, _ = rotation_case()
    data = page_data(fam)
    (entry,) = data["families"]
    assert data["kind"] == "family" and entry["key"] == family_key(fam.layer, "rotation", 0)
    assert entry["plots"] is None and data["units"] == {} and data["circuits"] == []
    fields = dict(entry["fields"])
    assert fields["discovery q / p"] == "q ≤ 0.005 (p ≤ 0.005)" and fields["equivariance score"] == "not scored"
    assert fields["weights"] == "weights not checked" and fields["holes"] == "none"


def test_lone_family_score_and_circuit(tmp_path: Path) -> None:
    fam, resp = rotation_case()
    score = as_score(fam, resp)
    data = page_data(score, resp)
    (entry,) = data["families"]
    assert entry["key"] == family_key(fam.layer, "rotation", 0) and entry["score"] is None and entry["eq"] is not None
    assert entry["plots"]["steps"] == resp.values.shape[2] and len(entry["plots"]["stimuli"]) == len(fam.units)
    assert set(data["units"]) == {unit_key(fam.layer, "rotation", u) for u in score.order}
    circuit = page_data(make_circuit())
    (c,) = circuit["circuits"]
    assert circuit["kind"] == "circuit" and c["key"] == circuit_key(0) and c["sourceFamily"] is None
    assert dict(c["fields"])["q / p"] == "q = 0.012 (p ≤ 0.004); null: random member angles, mean 0.210"


def test_bad_arguments_raise() -> None:
    fam, resp = rotation_case()
    with pytest.raises(TypeError, match="ScanResult, Family, FamilyScore or CircuitScore, got dict"):
        page_data({"layers": []})
    with pytest.raises(TypeError, match="responses must be"):
        page_data(fam, resp.values)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only for a Family or FamilyScore"):
        page_data(make_circuit(), resp)
    _, other = flip_case()
    with pytest.raises(ValueError, match="responses are for transform"):
        page_data(fam, other)


def test_thumbnails_are_small_pngs() -> None:
    data = page_data(stand_in_scan(linked=True))
    strips = [s for f in data["families"] if f["plots"] and f["plots"]["stimuli"] for s in f["plots"]["stimuli"]]
    assert len(strips) == sum(f["n"] for f in data["families"])
    for s in strips:
        assert s["src"].startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(s["src"].split(",", 1)[1])))
        assert max(img.size) <= THUMB


def test_page_loads_nothing_from_elsewhere_and_links_exported_figures(tmp_path: Path) -> None:
    res = stand_in_scan(linked=True)
    key = family_key(ODD_LAYER, "rotation", 0)
    exported = {key: [("tuning curves", {"png": "figures/a.png", "svg": "figures/a.svg"})]}
    page = tmp_path / "index.html"
    write_page(res, page, exported=exported)
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "url(" not in text and "@import" not in text and "fetch(" not in text and "XMLHttpRequest" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    data = page_json(page)
    fams = {f["key"]: f for f in data["families"]}
    assert fams[key]["exported"] == [{"title": "tuning curves", "files": {"png": "figures/a.png", "svg": "figures/a.svg"}}]
    assert fams[family_key(AMP_LAYER, "rotation", 0)]["circuits"] == [
        {"key": circuit_key(1), "role": "in", "title": "conv<1> → mixed&2 · rotation · equivariant→equivariant"}]
    bars = {(b["layer"], b["transform"]): b for b in data["bars"]}
    assert bars[(ODD_LAYER, "rotation")] == {"layer": ODD_LAYER, "transform": "rotation", "probed": 12, "families": 8,
                                             "selective": 1, "invariant": 2, "achromatic": 0, "silent": 1}  # fmt: skip


def test_stimuli_moved_at_thumbnail_size_match_the_moved_stimuli_shrunk() -> None:
    """A big stimulus is shrunk before it is moved to each member's preferred parameter (_shrunk): the result
    must look like the full stimulus moved, then shrunk, about the same (off-centre) point."""
    fam, resp = rotation_case()
    k = 8  # 21 px -> 168 px, the centre moved with the pixels
    big = torch.nn.functional.interpolate(resp.stimuli, scale_factor=k, mode="nearest")
    centre = [(c + 0.5) * k - 0.5 for c in resp.meta["center"]]
    full = ef.Responses(resp.values, resp.params, layer=resp.layer, transform="rotation", stimuli=big,
                        meta={"center": centre})  # fmt: skip
    m = members_of(fam)
    moved, _ = preferred_stimuli(m, full)
    expected = torch.nn.functional.interpolate(moved, size=(THUMB, THUMB), mode="bilinear", antialias=True)
    small = _shrunk(full)
    assert small.stimuli.shape[-2:] == (THUMB, THUMB)
    got, _ = preferred_stimuli(m, small)
    err = float((got - expected).abs().mean())
    off = ef.Responses(resp.values, resp.params, layer=resp.layer, transform="rotation", stimuli=small.stimuli,
                       meta={"center": [c + 3 for c in small.meta["center"]]})  # fmt: skip
    wrong, _ = preferred_stimuli(m, off)  # the control: a centre 3 px off
    assert err < 0.02 and err < float((wrong - expected).abs().mean()) / 3


def test_assets_are_package_data() -> None:
    """A plain ``pip install .`` ships the page's script and stylesheet (pyproject's package-data globs)."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["equifind"]
    assets = sorted((root / "equifind" / "report" / "assets").iterdir())
    assert [p.name for p in assets] == ["browser.css", "browser.js"]
    for p in assets:
        assert any(fnmatch.fnmatch(str(p.relative_to(root / "equifind")), g) for g in globs), p


def test_the_page_is_reproducible(tmp_path: Path) -> None:
    res = stand_in_scan(real=True, linked=True)
    write_page(res, tmp_path / "a.html")
    write_page(res, tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_a_scan_that_stopped_early_says_what_was_not_run() -> None:
    res = stand_in_scan(real=True, linked=True)  # lacks conv<1>'s hue and flip, and the circuits of hue and flip
    res.config["circuit_min_score"] = 0.5
    data = page_data(res)
    assert data["banner"][0] == "Incomplete scan: 4 stages did not finish"
    assert data["notScanned"] == [f"{ODD_LAYER} · hue: not scanned; the scan stopped before this stage.",
                                  f"{ODD_LAYER} · flip: not scanned; the scan stopped before this stage."]  # fmt: skip
    assert data["circuitSummary"] == [
        "Circuits of hue, flip not run: the scan stopped before them (run it again with the same out directory to "
        "finish it).",
        "2 circuits with q ≤ 0.05 (Benjamini–Hochberg over the checks of each transform) and symmetry score ≥ 0.5.",
    ]
    finished = page_data(stand_in_scan())  # a stand-in without the stages a scan expects: nothing missing
    assert finished["notScanned"] == [] and finished["circuitSummary"] == [
        "1 circuit with q ≤ 0.05 (Benjamini–Hochberg over the checks of each transform)."]
