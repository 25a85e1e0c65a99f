"""The notebooks in notebooks/: committed without outputs, and each runs end to end.

The slow test executes a copy of every notebook with nbclient on googlenet_bvlc
(the model that ships with the shared weights; `inceptionv1` needs Lucid's
inception5h.pth) at small sizes, chosen through the notebooks' environment
variables, whose defaults are the full sizes.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, weight_file

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_quickstart.ipynb", "02_rotation_families.ipynb", "03_hue_and_flip.ipynb", "04_weight_circuits.ipynb"]

#: Small sizes for the test run; each variable's default in the notebooks is the full size.
SMALL = {
    "EQUIFIND_MODEL": "googlenet_bvlc",
    "EQUIFIND_STEPS": "16",  # default 64
    "EQUIFIND_N_NULL": "20",  # default 200
    "EQUIFIND_HUE_ROTATION_STEPS": "8",  # default 16 (per axis)
    "EQUIFIND_CIRCUIT_LAYERS": "conv2d1,conv2d2,mixed3a",  # default conv2d1,conv2d2,mixed3a,mixed3b
    "EQUIFIND_FV_STEPS": "4",  # default 64 (held-out feature visualizations)
    "EQUIFIND_POOL": "8",  # default 32 (random units in the held-out null pool)
}

_MODEL_LINE = re.compile(r"""^MODEL\s*=\s*os\.environ\.get\(\s*["']EQUIFIND_MODEL["']\s*,\s*["']inceptionv1["']\s*\)""", re.M)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_four_notebooks_exist() -> None:
    missing = [name for name in NOTEBOOKS if not (NOTEBOOK_DIR / name).is_file()]
    assert not missing, f"missing notebooks in {NOTEBOOK_DIR}: {missing}"


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them before committing"
    first = cells[0].source
    assert _MODEL_LINE.search(first), f"{path.name}: the first code cell must set MODEL = os.environ.get('EQUIFIND_MODEL', 'inceptionv1')"
    assert "ef.load_model(MODEL)" in first, f"{path.name}: the first code cell must load the model with ef.load_model(MODEL)"
    assert "os.environ.get(\"EQUIFIND_STEPS\", \"64\")" in first, f"{path.name}: the first code cell must read EQUIFIND_STEPS (default 64)"


def test_kernel_runs_this_python() -> None:
    """The "python3" kernel the notebooks name starts the interpreter running the tests (the venv's)."""
    from jupyter_client.manager import KernelManager

    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert cmd[0] == sys.executable, f"kernel 'python3' would start {cmd[0]}, not {sys.executable}"


@pytest.mark.slow
@pytest.mark.weights
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    weights = weight_file("bvlc_googlenet.pth")
    monkeypatch.setenv("EQUIFIND_WEIGHTS_DIR", str(weights.parent))  # the kernel inherits os.environ
    monkeypatch.setenv("EQUIFIND_OUT", str(tmp_path / "reports"))
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)

    source = NOTEBOOK_DIR / name
    before = source.read_bytes()
    copy = tmp_path / name
    shutil.copyfile(source, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    nbformat.write(nb, copy)

    outputs = [o for c in _code_cells(nb) for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    images = sum(1 for o in outputs if "image/png" in o.get("data", {}))
    assert images >= 4, f"{name}: only {images} figures rendered"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    text += "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "Traceback" not in text
    # On googlenet_bvlc the Circuits-thread unit numbers do not apply: each notebook says so and uses found families.
    assert "inceptionv1, not googlenet_bvlc" in text, f"{name}: no note that the labelled units are inceptionv1's"
    assert source.read_bytes() == before, f"running {name} changed the committed notebook"
