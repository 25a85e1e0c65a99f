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

from equifind.report import report
from test_html import stand_in_scan

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_S = 60
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
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
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (img) {
      return {src: img.getAttribute("src"), width: img.naturalWidth, height: img.naturalHeight, complete: img.complete};
    });
    var out = document.createElement("pre");
    out.id = "equifind-result";
    out.textContent = JSON.stringify({images: images, errors: errors});
    document.body.appendChild(out);
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


def load_in_browser(page: Path, tmp_path: Path) -> tuple[dict[str, Any], list[str]]:
    """Open a probed copy of ``page``; return the probe's JSON and Chromium's console-error log lines."""
    text = page.read_text(encoding="utf-8")
    assert "<head>" in text
    probed = page.with_name(f".{page.stem}.browsertest.html")
    probed.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    try:
        dom, log = run_chromium(["--dump-dom", probed.as_uri()], tmp_path / "profile-dom")
    finally:
        probed.unlink()
    found = RESULT.search(dom)
    assert found, f"the probe did not run; Chromium log:\n{log[-3000:]}"
    return json.loads(html.unescape(found.group(1))), [ln for ln in log.splitlines() if CONSOLE_ERROR.search(ln)]


def test_report_page_loads_with_every_image_and_no_errors(tmp_path: Path) -> None:
    chromium()
    out = report(stand_in_scan(), tmp_path / "rep", formats=("png", "svg", "html"))
    index = out / "index.html"
    result, console = load_in_browser(index, tmp_path)
    n_img = index.read_text(encoding="utf-8").count("<img ")
    assert n_img >= 10 and len(result["images"]) == n_img
    bad = [img for img in result["images"] if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]
    assert bad == [], f"images that did not decode: {bad}"
    assert result["errors"] == []
    assert console == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report_index.png"
    _, log = run_chromium(["--window-size=1280,2400", f"--screenshot={shot}", index.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file(), log[-3000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and float(np.std(pixels[..., :3])) > 0.01  # not a blank page


def test_probe_catches_broken_images_and_script_errors(tmp_path: Path) -> None:
    """The harness itself: a missing image and a script error must be reported."""
    chromium()
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<img src="missing.png"><script>undefinedFunction();</script></body></html>')  # fmt: skip
    result, console = load_in_browser(page, tmp_path)
    assert [img["width"] for img in result["images"]] == [0]
    assert any("missing.png" in e for e in result["errors"])
    assert any("undefinedFunction" in e for e in result["errors"])
    assert any("undefinedFunction" in line for line in console)
