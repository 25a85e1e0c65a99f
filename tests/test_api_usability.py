"""The public API's manners (issue 16): short reprs, refused bad n_null and repeated units, warnings
for images smaller than a receptive field, float64 images, progress bars only when asked, the
property/method rule, and ``scan(steps=...)``."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

import equifind as ef
from equifind.circuits import circuit_symmetry, find_circuits
from equifind.families import Family, FamilyList
from equifind.heldout import validate_families
from equifind.scan import scan
from equifind.score import score_family, score_responses
from equifind.transforms import Rotation
from planted_circuits import planted as planted_circuit

STEPS = 24


@pytest.fixture(scope="module")
def resp(planted):
    p, model = planted
    return ef.probe(model, "1", "rotation", steps=STEPS, natural=False)


@pytest.fixture(scope="module")
def two_convs():
    """Two 9×9 convolutions: the second layer's centre unit sees 17 × 17 input pixels."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 9, padding=4), nn.ReLU(), nn.Conv2d(4, 5, 9, padding=4))
    return ef.load_model(net, name="two_convs", device="cpu")


# --------------------------------------------------------------------------- reprs
def test_reprs_are_short_and_equality_is_kept(planted, resp, tmp_path):
    p, model = planted
    result = scan(model, ["1"], ["rotation"], config={"steps": STEPS, "n_null": 30, "circuits": False},
                  out=tmp_path / "run", progress=False)  # fmt: skip
    fams = result.families["1"]["rotation"]
    fs = score_responses(resp, p.edges, n_null=30)
    circuit = planted_circuit("eq→eq", seed=4)
    cs = circuit_symmetry(ef.load_model(circuit.net, name="c", device="cpu"),
                          ("2", circuit.source_units), ("3", circuit.target_units), n_null=20)  # fmt: skip
    big = Family("1", "rotation", list(range(60)), [6.0 * i for i in range(60)], 360.0, 0.9, 0.01, n_null=200)
    shown = {
        "ScanResult": (result, 300), "Responses": (resp, 200), "FamilyList": (FamilyList([big] * 50), 300),
        "Family": (big, 300), "FamilyScore": (fs, 300), "CircuitScore": (cs, 300),
    }  # fmt: skip
    for name, (obj, bound) in shown.items():
        text = repr(obj)
        assert text.startswith(name + "(") and len(text) <= bound, text
        assert "tensor(" not in text, text
    assert "1:0,1,2,3,4,5,6,7,8,9,10,11,…" in repr(big) and "60 units" in repr(big)
    assert "families" in repr(result) and "'1'" in repr(result)
    assert f"weights {list(cs.weights.shape)}" in repr(cs)
    assert len(fams) >= 1 and repr(fams).startswith(f"FamilyList({len(fams)} families of '1' rotation")
    for obj in (big, fs):  # dataclass equality still compares the fields (CircuitScore's holds tensors: never had ==)
        twin = copy.deepcopy(obj)
        assert twin == obj
        twin.p_value = 0.5
        assert twin != obj


# --------------------------------------------------------------------------- n_null
@pytest.mark.parametrize("bad", [-1, 2.5, True, "200"])
def test_bad_n_null_is_refused_by_every_public_function(planted, resp, bad):
    p, model = planted
    circuit = planted_circuit("eq→eq", seed=4)
    cm = ef.load_model(circuit.net, name="c", device="cpu")
    s, t = ("2", circuit.source_units), ("3", circuit.target_units)
    calls = {
        "score_responses": lambda: score_responses(resp, p.edges, n_null=bad),
        "score_family": lambda: score_family(model, "1", p.edges, steps=8, n_null=bad),
        "find_families": lambda: ef.find_families(resp, n_null=bad),
        "circuit_symmetry": lambda: circuit_symmetry(cm, s, t, n_null=bad),
        "find_circuits": lambda: find_circuits(cm, {"2": [s], "3": [t]}, n_null=bad),
        "validate_families": lambda: validate_families(model, resp, [p.edges], n_null=bad),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"n_null must be an int >= 1.*got {bad!r}|n_null must be .*got {bad}"):
            call()


def test_zero_n_null_means_no_test_where_allowed_and_is_refused_where_a_p_value_is_needed(planted, resp):
    p, _ = planted
    fs = score_responses(resp, p.edges, n_null=0)
    assert math.isnan(fs.p_value) and math.isnan(fs.q_value) and fs.n_null == 0 and fs.equivariance > 0.9
    with pytest.raises(ValueError, match=r"n_null must be an int >= 1, got 0 \(a p-value needs null draws\)"):
        validate_families(planted[1], resp, [p.edges], n_null=0)


# --------------------------------------------------------------------------- repeated units
def test_repeated_units_are_an_error_naming_the_repeat(planted, resp):
    p, model = planted
    with pytest.raises(ValueError, match=r"units repeat unit 3 \(positions 0 and 1 of \[3, 3\]\)"):
        ef.probe(model, "1", "rotation", steps=8, units=[3, 3], natural=False)
    with pytest.raises(ValueError, match=r"units repeat unit 4 \(positions 1 and 2"):
        score_responses(resp, [2, 4, 4])
    circuit = planted_circuit("eq→eq", seed=4)
    cm = ef.load_model(circuit.net, name="c", device="cpu")
    u = list(circuit.source_units)
    with pytest.raises(ValueError, match=rf"source units of layer '2' repeat unit {u[0]}"):
        circuit_symmetry(cm, ("2", [*u, u[0]]), ("3", circuit.target_units))


# --------------------------------------------------------------------------- image size and dtype
def test_images_smaller_than_a_recorded_layers_field_warn(two_convs):
    m = two_convs
    assert m.receptive_field("2").size == 17
    small, big = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 20, 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ef.record(m, ["0", "2"]) as rec:
            m(small)
    said = [str(w.message) for w in caught if w.category is UserWarning]
    assert len(said) == 2, said
    assert said[0].startswith("images are 8×8 px, smaller than the 9 px receptive field of the centre unit of layer '0'")
    assert said[1].startswith("images are 8×8 px, smaller than the 17 px receptive field of the centre unit of layer '2'")
    assert "at least 17×17 px" in said[1] and rec["2"].shape == (2, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ef.record(m, ["2"]) as rec:
            m(big)
        with ef.record(m, ["0"]):  # layer 0 sees 9 px: 8 px images are too small for it, 20 px are not
            m(big)
    with pytest.warns(UserWarning, match=r"smaller than the 9 px receptive field of the centre unit of layer '0'"):
        with ef.record(m, "0"):
            m(small)


def test_stimuli_smaller_than_the_field_warn_in_probe(two_convs):
    with pytest.warns(UserWarning, match=r"stimuli are 8×8 px, smaller than the 17 px receptive field of the centre unit of layer '2'.*upsampled"):
        ef.probe(two_convs, "2", "rotation", stimuli=torch.rand(2, 3, 8, 8), steps=8, natural=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ef.probe(two_convs, "2", "rotation", stimuli=torch.rand(2, 3, 24, 24), steps=8, natural=False)


def test_float64_images_are_converted(two_convs):
    m = two_convs
    images = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    with ef.record(m, "2") as rec:
        m(images)
    got = rec["2"]
    with ef.record(m, "2") as rec:
        m(images.float())
    assert got.dtype == torch.float32 and torch.allclose(got, rec["2"])
    r64 = ef.probe(m, "2", "rotation", stimuli=images, steps=8, natural=False)
    r32 = ef.probe(m, "2", "rotation", stimuli=images.float(), steps=8, natural=False)
    assert torch.allclose(r64.values, r32.values, atol=1e-5)


# --------------------------------------------------------------------------- progress
def test_progress_bars_only_when_asked(planted, capsys, monkeypatch):
    p, model = planted
    score_family(model, "1", p.edges, steps=8, n_null=10, progress=True)  # a log (not a terminal): no bars
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("equifind._progress.interactive", lambda file: True)  # a terminal from here on
    score_family(model, "1", p.edges, steps=8, n_null=10, progress=False)
    assert capsys.readouterr().err == ""
    ef.probe(model, "1", "rotation", steps=8)  # the default is quiet too
    assert capsys.readouterr().err == ""
    score_family(model, "1", p.edges, steps=8, n_null=10, progress=True)
    err = capsys.readouterr().err
    assert "probe 1 rotation" in err and "%|" in err


# --------------------------------------------------------------------------- properties and methods
def test_cheap_argument_free_summaries_are_properties_and_old_methods_warn(resp):
    assert resp.tuning_curves.shape == (len(resp.units), STEPS)
    assert resp.best_variant_indices.shape == (len(resp.units),)
    with pytest.warns(DeprecationWarning, match="Responses.tuning_curves"):
        assert torch.equal(resp.tunings(), resp.tuning_curves)
    with pytest.warns(DeprecationWarning, match="Responses.best_variant_indices"):
        assert torch.equal(resp.best_variants(), resp.best_variant_indices)
    u = resp.units[3]
    assert torch.equal(resp.tuning(u), resp.tuning_curves[3]) and resp.best_variant(u) == int(resp.best_variant_indices[3])


# --------------------------------------------------------------------------- scan(steps=...)
def test_scan_takes_steps(planted):
    _, model = planted
    result = scan(model, ["1"], transforms=["rotation"], config={"steps": 32, "n_null": 20, "circuits": False},
                  steps=12, progress=False)  # fmt: skip
    assert result.config["steps"] == 12
    assert result.responses["1"]["rotation"].values.shape[-1] == 12
    assert torch.equal(result.responses["1"]["rotation"].params, Rotation().grid(12))
