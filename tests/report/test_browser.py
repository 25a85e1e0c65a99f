"""The report page in headless Chromium: it loads, every image decodes, no console error.

Chromium is driven from the command line, without Python dependencies: a test copy
of ``index.html`` (beside it, so relative image paths resolve) gets a small script
at the top of ``<head>`` that records ``error`` events (script errors and failed
resources, captured), ``console.error`` calls and, on ``load``, every image's
``naturalWidth``/``naturalHeight`` as JSON in ``<pre id="equifind-result">``;
``--dump-dom`` prints the DOM after the load event. Chromium's own log
(``--enable-logging=stderr``) is scanned for console errors as well. One screenshot
of the real page is kept in ``tests/artifacts/report_index.png``.

Without Chromium the tests skip, except under CI=true, where they fail.
Install it with ``apt-get install -y chromium`` (Debian), or point
``EQUIFIND_CHROMIUM`` at a Chrome/Chromium binary.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest

from urllib.parse import quote, unquote

import equifind as ef
from equifind.report import report
from equifind.report._page_data import page_data, unit_key
from equifind.report.browser import circuit_key, family_key, write_page
from test_figures import as_score, hue_rotation_case, make_circuit, rotation_case, scale_case
from test_html import AMP_LAYER, ODD_LAYER, stand_in_scan

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_S = 60
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",  # the network off: nothing may load
]  # fmt: skip

PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? "failed to load " + t.tagName + " " + (t.getAttribute("src") || t.getAttribute("href"))
                               : String(e.message));
  }, true);
  var original = console.error;
  console.error = function () { errors.push(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
  function finish(scenario) {
    var images = Array.prototype.map.call(document.images, function (img) {
      return {src: img.src.slice(0, 200), width: img.naturalWidth, height: img.naturalHeight,
              complete: img.complete};
    });
    var resources = performance.getEntriesByType("resource").map(function (r) { return r.name.slice(0, 200); });
    var out = document.createElement("pre");
    out.id = "equifind-result";
    out.textContent = JSON.stringify({images: images, errors: errors, resources: resources, scenario: scenario});
    document.body.appendChild(out);
  }
  window.addEventListener("load", function () {
    var scenario = null;
    try {
      scenario = SCENARIO;
    } catch (e) {
      errors.push("scenario failed: " + e + " " + (e.stack || ""));
    }
    if (scenario && typeof scenario.then === "function") {  // a promise: needs load_in_browser(..., wait=True)
      scenario.then(finish, function (e) { errors.push("scenario failed: " + e); finish(null); });
    } else {
      finish(scenario);
    }
  });
})();
</script>"""
RESULT = re.compile(r'<pre id="equifind-result">(.*?)</pre>', re.S)
CONSOLE_ERROR = re.compile(r"CONSOLE.*(Uncaught|Error|Failed|Refused|not allowed)|ERROR:CONSOLE", re.I)


def chromium() -> str:
    """The Chromium binary; skip (fail under CI=true) when there is none."""
    for name in (os.environ.get("EQUIFIND_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    reason = "needs headless Chromium: apt-get install -y chromium (or set EQUIFIND_CHROMIUM to a Chrome binary)"
    if IN_CI:
        pytest.fail(f"CI=true and Chromium is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def run_chromium(args: list[str], profile: Path) -> tuple[str, str]:
    """Run Chromium with FLAGS + args; kill its whole process group if it hangs."""
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"Chromium did not finish within {TIMEOUT_S} s: {' '.join(cmd)}")
    assert proc.returncode == 0, f"Chromium exited with {proc.returncode}:\n{err[-3000:]}"
    return out, err


def load_in_browser(page: Path, tmp_path: Path, scenario: str = "null",
                    wait: bool = False) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Open a probed copy of ``page``; return the probe's JSON and Chromium's console-error log lines.

    ``scenario``: a JavaScript expression evaluated on ``load`` (after the page's own scripts ran); its
    JSON-able value is the result's ``"scenario"``, an exception it throws one of its ``"errors"``. A
    scenario that returns a promise (events, history) needs ``wait``: the DOM is dumped after 5 s of
    virtual time (fast-forwarded while the page is idle) instead of right after ``load``."""
    text = page.read_text(encoding="utf-8")
    assert "<head>" in text
    probed = page.with_name(f".{page.stem}.browsertest.html")
    probe = PROBE.replace("SCENARIO", scenario)
    # the probe runs first, in <head>; the page's scripts run later: the scenario waits for "load"
    probed.write_text(text.replace("<head>", "<head>\n" + probe, 1), encoding="utf-8")
    try:
        wait_flags = ["--virtual-time-budget=5000"] if wait else []
        dom, log = run_chromium([*wait_flags, "--dump-dom", probed.as_uri()], tmp_path / "profile-dom")
    finally:
        probed.unlink()
    found = RESULT.search(dom)
    assert found, f"the probe did not run; Chromium log:\n{log[-3000:]}"
    return json.loads(html.unescape(found.group(1))), [ln for ln in log.splitlines() if CONSOLE_ERROR.search(ln)]


EXPORTED = """
var E = window.equifind, found = {};
a.forEach(function (v) {
  E.render(v.view, v.key);
  found[v.key] = Array.prototype.map.call(document.querySelectorAll("#view ul.exported a"),
                                          function (x) { return x.getAttribute("href"); });
});
return found;
"""


def test_exported_figures_are_linked_from_their_views_and_exist(tmp_path: Path) -> None:
    """report() with image formats: each exported family's and circuit's view links every file written."""
    chromium()
    out = report(stand_in_scan(), tmp_path / "rep", formats=("png", "svg", "html"), families="all", circuits="all")
    index = out / "index.html"
    written = sorted(str(p.relative_to(out)) for p in (out / "figures").iterdir())
    assert len(written) >= 10
    views = [{"view": "family", "key": family_key(layer, t, 0)}
             for layer, t in ((ODD_LAYER, "rotation"), (AMP_LAYER, "hue"), (AMP_LAYER, "flip"))]
    views.append({"view": "circuit", "key": circuit_key(0)})
    result, console = load_in_browser(index, tmp_path, scenario(EXPORTED, views))
    assert result["errors"] == [] and console == [] and external_loads(result) == []
    linked = result["scenario"]
    assert all(linked[v["key"]] for v in views), linked  # every view links its figures
    hrefs = sorted(unquote(h) for hs in linked.values() for h in hs)
    assert hrefs == written  # each file linked once, and nothing linked that was not written
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report_index.png"
    _, log = run_chromium(["--window-size=1280,2400", f"--screenshot={shot}", index.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file(), log[-3000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and float(np.std(pixels[..., :3])) > 0.01  # not a blank page


def test_probe_catches_broken_images_and_script_errors(tmp_path: Path) -> None:
    """The harness itself: a missing image, a script error, a fetch from the network and a failing scenario
    must be reported."""
    chromium()
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<img src="missing.png"><img src="http://example.invalid/x.png">'
                    '<script>undefinedFunction();</script></body></html>')  # fmt: skip
    result, console = load_in_browser(page, tmp_path, scenario("return a.b.c;", {}))
    assert [img["width"] for img in result["images"]] == [0, 0]
    assert external_loads(result) == ["http://example.invalid/x.png"]
    assert any(e.startswith("scenario failed: TypeError") for e in result["errors"])
    assert any("missing.png" in e for e in result["errors"])
    assert any("undefinedFunction" in e for e in result["errors"])
    assert any("undefinedFunction" in line for line in console)


# --------------------------------------------------------------------------- the family browser (write_page)


def scenario(body: str, args: Any) -> str:
    """A probe scenario: ``body`` (the body of a JS function of ``a``, returning the result) called with ``args``
    as JSON (every ``<`` escaped, so layer names such as ``conv<1>`` cannot end the probe's script)."""
    arg = json.dumps(args).replace("<", "\\u003c")
    return f"(function (a) {{\n{body}\n}})({arg})"


def external_loads(result: dict[str, Any]) -> list[str]:
    """Resources the page fetched from anywhere but the page's own file or a data URI."""
    urls = result["resources"] + [img["src"] for img in result["images"]]
    return sorted({u for u in urls if not u.startswith(("file:", "data:"))})


def screenshot(page: Path, hash_: str, name: str, tmp_path: Path) -> None:
    """A 1280 × 1600 screenshot of one view (``page#hash_``) to tests/artifacts/<name>; not blank."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    url = page.as_uri() + "#" + hash_
    _, log = run_chromium(["--window-size=1280,1600", "--virtual-time-budget=2000", f"--screenshot={shot}", url],
                          tmp_path / f"profile-{name}")  # fmt: skip
    assert shot.is_file(), log[-3000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1600, 1280) and float(np.std(pixels[..., :3])) > 0.01  # not a blank page


FLOW = """
var E = window.equifind, main = document.getElementById("view"), out = {};
var all = function (sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); };
var view = function () { return {view: main.dataset.view, key: main.dataset.key,
                                 title: document.getElementById("view-title").textContent}; };
out.overview = {view: view(), bars: all("#unit-bars rect").length, banner: all("#incomplete-banner").length,
                circuits: all("#circuit-table tr[data-key]").length};
E.show("families");
out.rows = all("#family-table tbody tr[data-key]").length;
out.count = document.getElementById("family-count").textContent;
var layer = document.getElementById("filter-layer");
layer.value = a.layer;
layer.dispatchEvent(new Event("change"));
out.filtered = all("#family-table tbody tr[data-key]").map(function (r) { return r.dataset.key; });
out.filteredCount = document.getElementById("family-count").textContent;
layer.value = "";
layer.dispatchEvent(new Event("change"));
var size = document.querySelector('#family-table th[data-col="n"]');
size.click();
size.click();  // the second click sorts descending
out.sizes = all("#family-table tbody tr").map(function (r) { return Number(r.cells[3].textContent); });
document.querySelector('#family-table tr[data-key="' + CSS.escape(a.family) + '"] a').click();
E.route();  // the click set the hash; hashchange would route only after the load event
out.family = view();
out.family.tuning = all("#tuning-heatmap .cells rect").length;
out.family.polar = all("#polar-tuning path").length;
out.family.matrix = all("#equivariance-matrix .cells rect").length;
out.family.stimuli = all("#stimulus-strip img").length;
out.family.circuits = all("#family-circuits a").length;
E.show("circuit", a.circuit);
out.circuit = view();
out.circuit.cells = all("#weight-grid rect").length;
document.querySelector("#circuit-families a.target-family").click();
E.route();
out.target = view();
document.querySelector("#member-table a").click();
E.route();
out.unit = view();
out.unit.cells = all("#unit-heatmap .cells rect").length;
out.unit.lines = all("#unit-lines path").length;
E.show("overview");
out.summary = all("#summary-table tr[data-key]").map(function (r) { return r.dataset.key; });
out.summaryCells = {};
all("#summary-table tr[data-key]").forEach(function (r) {
  out.summaryCells[r.dataset.key] = Array.prototype.map.call(r.cells, function (c) { return c.textContent; });
});
document.querySelector('#summary-table tr[data-key="' + CSS.escape(a.layer + "|hue") + '"] a').click();
E.route();
out.summaryFilter = [document.getElementById("family-count").textContent, document.getElementById("filter-layer").value,
                     document.getElementById("filter-transform").value];
return out;
"""


def test_browser_filters_opens_families_and_follows_circuit_links_offline(tmp_path: Path) -> None:
    chromium()
    res = stand_in_scan(real=True, linked=True)  # a ScanResult: it knows the stages it lacks (the banner)
    page = tmp_path / "index.html"
    write_page(res, page)
    fams = {family_key(layer, t, i): f for layer, by_t in res.families.items() for t, fl in by_t.items()
            for i, f in enumerate(fl)}  # fmt: skip
    in_amp = [k for k, f in fams.items() if f.layer == AMP_LAYER]
    assert 0 < len(in_amp) < len(fams)  # the filter must change the count (a layer that is not all)
    rot = family_key(ODD_LAYER, "rotation", 0)
    target = family_key(AMP_LAYER, "rotation", 0)
    args = {"layer": AMP_LAYER, "family": rot, "circuit": circuit_key(1)}
    result, console = load_in_browser(page, tmp_path, scenario(FLOW, args))
    assert result["errors"] == [] and console == []
    assert external_loads(result) == []
    out = result["scenario"]
    assert out["overview"]["view"]["view"] == "overview" and out["overview"]["banner"] == 1
    assert out["overview"]["bars"] >= 4 and out["overview"]["circuits"] == 2
    assert out["rows"] == len(fams) and out["count"] == f"{len(fams)} of {len(fams)} families"
    assert sorted(out["filtered"]) == sorted(in_amp)
    assert out["filteredCount"] == f"{len(in_amp)} of {len(fams)} families"
    assert out["sizes"] == sorted((len(f.units) for f in fams.values()), reverse=True)
    fam, resp = fams[rot], res.responses[ODD_LAYER]["rotation"]
    n, steps = len(fam.units), resp.values.shape[2]
    assert out["family"]["key"] == rot and ODD_LAYER in out["family"]["title"]
    assert out["family"]["tuning"] == n * steps and out["family"]["matrix"] == n * steps
    assert out["family"]["polar"] == n and out["family"]["stimuli"] == n and out["family"]["circuits"] == 1
    assert out["circuit"]["key"] == circuit_key(1) and out["circuit"]["cells"] == res.circuits[1].weights.numel()
    assert out["target"]["view"] == "family" and out["target"]["key"] == target and AMP_LAYER in out["target"]["title"]
    variants = res.responses[AMP_LAYER]["rotation"].values.shape[1]
    assert out["unit"]["key"] == f"unit:{AMP_LAYER}|rotation|0" and out["unit"]["cells"] == variants * steps
    assert out["unit"]["lines"] == variants
    assert out["summary"] == [f"{layer}|{t}" for layer, by_t in res.families.items() for t in by_t]
    # confirmed by weights / held out: a count only where families were examined, never a misleading 0
    confirmed, held = 4, 5  # columns of the summary table
    cells = out["summaryCells"]
    assert cells[f"{AMP_LAYER}|rotation"][confirmed] == "1"  # the linked family: its circuit enters it
    assert cells[f"{ODD_LAYER}|rotation"][confirmed] == "not checked"  # the first layer: nothing below it
    assert {row[held] for row in cells.values()} == {"not validated"}  # no held-out validation in the stand-in
    n_hue = len(res.families[AMP_LAYER]["hue"])
    assert out["summaryFilter"] == [f"{n_hue} of {len(fams)} families", AMP_LAYER, "hue"]
    for hash_, name in (("overview", "browser_overview.png"), (f"family={quote(rot)}", "browser_family.png"),
                        (f"circuit={quote(circuit_key(1))}", "browser_circuit.png")):  # fmt: skip
        screenshot(page, hash_, name, tmp_path)


EVERY_VIEW = """
var E = window.equifind, main = document.getElementById("view"), bad = [], shown = 0;
a.forEach(function (v) {
  E.render(v.view, v.key);  // not show(): Chromium ignores navigations past ~200 in a few seconds
  var title = document.getElementById("view-title").textContent;
  var ok = main.dataset.view === v.view && main.dataset.key === v.key && title.indexOf(v.layer) >= 0;
  if (v.plot && !document.querySelector(v.plot)) ok = false;
  if (ok) shown++; else bad.push([v.view, v.key, title]);
});
return {bad: bad, shown: shown};
"""


def test_every_family_unit_and_circuit_of_a_saved_scan_has_a_view(tmp_path: Path) -> None:
    chromium()
    stand_in_scan(real=True, linked=True).save(tmp_path / "scan")
    with pytest.warns(UserWarning, match="did not finish"):  # the stand-in lacks conv<1>'s hue and flip
        res = ef.ScanResult.load(tmp_path / "scan")
    page = tmp_path / "index.html"
    write_page(res, page)
    data = page_data(res)
    views = [{"view": "family", "key": family_key(layer, t, i), "layer": layer, "plot": "#tuning-heatmap"}
             for layer, by_t in res.families.items() for t, fl in by_t.items() for i in range(len(fl))]
    views += [{"view": "circuit", "key": circuit_key(i), "layer": c.source_layer, "plot": "#weight-grid"}
              for i, c in enumerate(res.circuits)]
    views += [{"view": "unit", "key": unit_key(f.layer, t, u), "layer": f.layer, "plot": "#unit-heatmap"}
              for by_t in res.families.values() for t, fl in by_t.items() for f in fl for u in f.units]  # fmt: skip
    assert len(res.circuits) == 2 and len(views) > 10
    assert {f["key"] for f in data["families"]} == {v["key"] for v in views if v["view"] == "family"}
    assert {c["key"] for c in data["circuits"]} == {v["key"] for v in views if v["view"] == "circuit"}
    assert set(data["units"]) == {v["key"] for v in views if v["view"] == "unit"}
    result, console = load_in_browser(page, tmp_path, scenario(EVERY_VIEW, views))
    assert result["errors"] == [] and console == [] and external_loads(result) == []
    assert result["scenario"] == {"bad": [], "shown": len(views)}


LONE = """
var main = document.getElementById("view");
return {view: main.dataset.view, key: main.dataset.key, title: document.getElementById("view-title").textContent,
        svgs: document.querySelectorAll("#view svg").length, nav: document.querySelectorAll("#nav a").length};
"""


@pytest.mark.parametrize("what", ["family", "score", "bare-family", "circuit", "scale", "hue_rotation"])
def test_lone_family_score_and_circuit_pages_show_their_view(tmp_path: Path, what: str) -> None:
    chromium()
    fam, resp = {"scale": scale_case, "hue_rotation": hue_rotation_case}.get(what, rotation_case)()
    obj, responses, key = fam, resp, family_key(fam.layer, fam.transform.name, 0)
    if what == "score":
        obj = as_score(fam, resp)
    elif what == "bare-family":
        responses = None
    elif what == "circuit":
        obj, responses, key = make_circuit(), None, circuit_key(0)
    page = tmp_path / "index.html"
    write_page(obj, page, responses=responses)
    result, console = load_in_browser(page, tmp_path, scenario(LONE, None))
    assert result["errors"] == [] and console == [] and external_loads(result) == []
    out = result["scenario"]
    assert out["key"] == key and out["view"] == key.split(":")[0] and out["nav"] == 0
    # tuning heatmap, polar tuning (circular transforms), equivariance matrix; a circuit's weights
    assert out["svgs"] == {"family": 3, "score": 3, "bare-family": 0, "circuit": 1, "scale": 2, "hue_rotation": 3}[what]


BACK = """
var E = window.equifind, main = document.getElementById("view"), seen = [];
var settle = function () { return new Promise(function (done) { setTimeout(done, 50); }); };
var here = function () { seen.push([main.dataset.view, main.dataset.key, location.hash]); };
location.hash = "#families";
return settle().then(function () {
  here();
  document.querySelector('#family-table tr[data-key="' + CSS.escape(a) + '"] a').click();
  return settle();
}).then(function () {
  here();
  history.back();
  return settle();
}).then(function () {
  here();
  history.forward();
  return settle();
}).then(function () { here(); return seen; });
"""


def test_links_and_the_back_button_move_between_views(tmp_path: Path) -> None:
    """Real navigation, no direct route() calls: a link opens a view, back returns to the table, forward again."""
    chromium()
    page = tmp_path / "index.html"
    write_page(stand_in_scan(), page)
    key = family_key(AMP_LAYER, "hue", 0)
    result, console = load_in_browser(page, tmp_path, scenario(BACK, key), wait=True)
    assert result["errors"] == [] and console == []
    family_hash = "#family=" + quote(key, safe="")
    assert result["scenario"] == [["families", "", "#families"], ["family", key, family_hash],
                                  ["families", "", "#families"], ["family", key, family_hash]]  # fmt: skip
