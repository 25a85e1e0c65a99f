"""scan(): the whole pipeline on a planted network; save/load; resume after an interruption."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch

import equifind as ef
from equifind.families import Family, FamilyList
from equifind.scan import ScanResult, load_labels, scan

scan_module = importlib.import_module("equifind.scan")  # `equifind.scan` the attribute is the function

CONFIG = {"steps": 24, "n_null": 30, "circuits": False}


def test_scan_finds_the_planted_families(planted, tmp_path):
    p, model = planted
    result = scan(model, ["1"], config=CONFIG, out=tmp_path / "run", progress=False)
    rot = result.families["1"]["rotation"]
    found = [sorted(f.units) for f in rot]
    assert sorted(p.bars) in found
    assert set(p.invariant) <= set(rot.invariant) and result.invariant["1"]["rotation"] == rot.invariant
    flips = [sorted(f.units) for f in result.families["1"]["flip"]]
    assert sorted(p.flips) in flips
    assert all(f.equivariance is not None and sorted(f.equivariance.units) == sorted(f.units) for f in rot)
    text = result.summary()
    assert "rotation" in text and "hue" in text and "flip" in text


def test_save_load_roundtrip(planted, tmp_path):
    _, model = planted
    result = scan(model, ["1"], transforms=["rotation"], config=CONFIG, progress=False)
    result.save(tmp_path / "saved")
    back = ScanResult.load(tmp_path / "saved")
    assert back.summary() == result.summary()
    assert back.families["1"]["rotation"].to_dict() == result.families["1"]["rotation"].to_dict()
    assert [f.equivariance.to_dict() for f in back.families["1"]["rotation"]] == [
        f.equivariance.to_dict() for f in result.families["1"]["rotation"]]
    assert torch.equal(back.responses["1"]["rotation"].values, result.responses["1"]["rotation"].values)
    with pytest.raises(FileNotFoundError, match="scan.json"):
        ScanResult.load(tmp_path / "nothing")


def test_interrupted_scan_resumes_without_recomputing(planted, tmp_path, monkeypatch):
    _, model = planted
    out = tmp_path / "run"
    real_find = scan_module.find_families
    calls = {"probe": 0, "find": 0}

    def failing_find(resp, **kw):
        calls["find"] += 1
        if resp.transform == "flip":  # the third stage: die midway
            raise KeyboardInterrupt
        return real_find(resp, **kw)

    monkeypatch.setattr(scan_module, "find_families", failing_find)
    with pytest.raises(KeyboardInterrupt):
        scan(model, ["1"], config=CONFIG, out=out, progress=False)
    stages = out / "stages" / "1"
    assert (stages / "rotation" / "families.json").is_file() and (stages / "hue" / "families.json").is_file()
    assert not (stages / "flip").exists() or not (stages / "flip" / "families.json").exists()
    assert not list(out.rglob("scores.json"))  # the scores are inside families.json
    assert not list(out.rglob("*.tmp"))  # nothing half-written

    real_probe = scan_module.probe

    def counting_probe(*args, **kw):
        calls["probe"] += 1
        return real_probe(*args, **kw)

    monkeypatch.setattr(scan_module, "find_families", real_find)
    monkeypatch.setattr(scan_module, "probe", counting_probe)
    resumed = scan(model, ["1"], config=CONFIG, out=out, progress=False)
    assert calls["probe"] == 1  # only the flip stage ran again
    fresh = scan(model, ["1"], config=CONFIG, progress=False)
    assert resumed.summary() == fresh.summary()
    for t in ("rotation", "hue", "flip"):
        assert resumed.families["1"][t].to_dict() == fresh.families["1"][t].to_dict()


def test_resume_refuses_other_settings(planted, tmp_path):
    _, model = planted
    scan(model, ["1"], transforms=["flip"], config=CONFIG, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        scan(model, ["1"], transforms=["flip"], config={**CONFIG, "steps": 12}, out=tmp_path, progress=False)
    again = scan(model, ["1"], transforms=["flip"], config={**CONFIG, "steps": 12}, out=tmp_path, resume=False, progress=False)
    assert json.loads((tmp_path / "scan.json").read_text())["config"]["steps"] == 12
    assert again.config["steps"] == 12


def test_bad_layers(planted):
    _, model = planted
    with pytest.raises(KeyError, match="unknown layer"):
        scan(model, ["1", "nope"], config=CONFIG, progress=False)


def test_a_config_for_another_model_is_refused_before_anything_is_written(planted, tmp_path):
    _, model = planted
    with pytest.raises(ValueError, match=f"config is for model 'squeezenet1_0', but the model scanned is {model.name!r}"):
        scan(model, ["1"], config={**CONFIG, "model": "squeezenet1_0"}, out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_labels_and_compare(planted):
    labels = load_labels()
    curves = next(lab for lab in labels if lab["name"] == "curve detectors")
    assert curves["layer"] == "mixed3b" and curves["units"][:3] == [406, 385, 343]
    contrast = next(lab for lab in labels if lab["transform"] == "hue_rotation")
    assert 43 in contrast["units"] and None not in contrast["units"]
    p, model = planted
    result = scan(model, ["1"], transforms=["rotation"], config=CONFIG, progress=False)
    matches = result.compare([{"name": "bars", "layer": "1", "transform": "rotation", "units": p.bars}])
    assert matches[0]["overlap"] == 1.0 and sorted(matches[0]["found_units"]) == sorted(p.bars)
    with pytest.warns(UserWarning, match="labels number the units of 'inceptionv1', not of 'planted'"):
        assert result.compare() == [] and result.matches == []


def test_scores_carry_bh_q_values_and_the_summary_labels_every_test(planted, tmp_path):
    from scipy.stats import false_discovery_control

    _, model = planted
    result = scan(model, ["1"], config=CONFIG, out=tmp_path / "run", progress=False)
    for t in ("rotation", "hue", "flip"):
        scores = [f.equivariance for f in result.families["1"][t]]
        p = [s.p_value for s in scores]
        assert [s.q_value for s in scores] == pytest.approx(false_discovery_control(p).tolist(), abs=1e-12)
        assert all(s.n_null == CONFIG["n_null"] and s.q_value >= s.p_value for s in scores)
    text = result.summary()
    head, columns = text.splitlines()[:2]
    assert "significant: discovery q ≤ 0.05" in head and "q≤0.05" in columns and "fams" in columns
    rows = {line.split()[1]: line for line in text.splitlines()[3:] if line.startswith("1 ")}
    rotation = rows["rotation"]
    # the planted rotation family sits at the floor 1/31 of both tests
    assert "discovery q ≤ 0.032 (p ≤ 0.032), equivariance" in rotation and rotation.endswith("q ≤ 0.032 (p ≤ 0.032)")
    n_sig = sum(f.q_value <= 0.05 for f in result.families["1"]["hue"])
    assert rows["hue"].split()[5:7] == [str(len(result.families["1"]["hue"])), str(n_sig)]
    back = ScanResult.load(tmp_path / "run")
    assert [f.equivariance.q_value for f in back.families["1"]["rotation"]] == [
        f.equivariance.q_value for f in result.families["1"]["rotation"]]
    assert back.summary() == text


def _to_previous_layout(stage, keep=lambda score: score) -> None:
    """Rewrite a stage directory as the previous version wrote it: ``families.json`` without a format
    or scores, and the scores (each through ``keep``) in ``scores.json``, one per family in order."""
    data = json.loads((stage / "families.json").read_text())
    scores = [keep(s) for s in [f.pop("equivariance") for f in data["families"]] if s is not None]
    del data["format"]
    (stage / "families.json").write_text(json.dumps(data))
    (stage / "scores.json").write_text(json.dumps(scores))


def test_scores_written_before_q_values_still_load(planted, tmp_path):
    _, model = planted
    scan(model, ["1"], transforms=["rotation"], config=CONFIG, out=tmp_path, progress=False)
    _to_previous_layout(tmp_path / "stages" / "1" / "rotation",
                        lambda s: {k: v for k, v in s.items() if k not in ("q_value", "n_null")})
    back = ScanResult.load(tmp_path)
    assert all(math.isnan(f.equivariance.q_value) and f.equivariance.n_null == 0 for f in back.families["1"]["rotation"])
    assert "q = n/a (p ≤ 0.032)" in back.summary()  # the config's n_null still gives the p floor


def test_stages_of_the_previous_layout_resume_and_are_rewritten_by_save(planted, tmp_path, monkeypatch):
    """Stage directories with ``scores.json`` beside ``families.json`` (the previous layout) are finished
    stages: a resume reads them (scores attached by position) instead of probing again; a stage of that
    layout without ``scores.json`` was interrupted and runs again; ``save`` writes the new layout."""
    _, model = planted
    out = tmp_path / "run"
    fresh = scan(model, ["1"], config=CONFIG, out=out, progress=False)
    for t in ("rotation", "hue", "flip"):
        _to_previous_layout(out / "stages" / "1" / t)
    (out / "stages" / "1" / "flip" / "scores.json").unlink()  # the old scan stopped before flip's scores
    probed = []
    real_probe = scan_module.probe
    monkeypatch.setattr(scan_module, "probe", lambda *a, **kw: probed.append(a[2]) or real_probe(*a, **kw))
    resumed = scan(model, ["1"], config=CONFIG, out=out, progress=False)
    assert probed == ["flip"]
    assert resumed.summary() == fresh.summary()
    for t in ("rotation", "hue", "flip"):
        assert resumed.families["1"][t].to_dict() == fresh.families["1"][t].to_dict()
    assert not (out / "stages" / "1" / "flip" / "scores.json").exists()  # recomputed: the new layout
    assert (out / "stages" / "1" / "hue" / "scores.json").is_file()  # read back as it was
    ScanResult.load(out).save(out)
    assert not list(out.rglob("scores.json"))
    assert json.loads((out / "stages" / "1" / "hue" / "families.json").read_text())["format"] == "equifind.ScanStage/2"
    assert ScanResult.load(out).summary() == fresh.summary()


def test_previous_layout_scores_that_do_not_match_their_families_are_an_error(planted, tmp_path):
    _, model = planted
    scan(model, ["1"], transforms=["rotation"], config=CONFIG, out=tmp_path, progress=False)
    stage = tmp_path / "stages" / "1" / "rotation"
    _to_previous_layout(stage)
    scores = json.loads((stage / "scores.json").read_text())
    (stage / "scores.json").write_text(json.dumps(scores[::-1]))
    with pytest.raises(ValueError, match=r"scores\.json.*score 0 is of units"):
        ScanResult.load(tmp_path)
    (stage / "scores.json").write_text(json.dumps(scores[:1]))
    with pytest.raises(ValueError, match=f"holds 1 scores for {len(scores)} families"):
        ScanResult.load(tmp_path)
    data = json.loads((stage / "families.json").read_text())
    (stage / "families.json").write_text(json.dumps({**data, "format": "equifind.ScanStage/99"}))
    with pytest.raises(ValueError, match="stage format 'equifind.ScanStage/99'"):
        ScanResult.load(tmp_path)


def test_a_family_whose_scoring_is_not_supported_is_recorded_unscored(planted, tmp_path, monkeypatch):
    """Scoring that raises NotImplementedError leaves a NaN score saying why, with a warning;
    the scan, its summary, save and load go on."""
    _, model = planted

    def unsupported(resp, units, **kw):
        raise NotImplementedError(f"no score for {resp.transform} yet")

    monkeypatch.setattr(scan_module, "score_responses", unsupported)
    with pytest.warns(UserWarning, match=r"1 rotation: \d+ of \d+ families not scored \(not scored: no score for rotation yet\)"):
        result = scan(model, ["1"], transforms=["rotation"], config=CONFIG, out=tmp_path, progress=False)
    fams = result.families["1"]["rotation"]
    assert fams and all(math.isnan(f.equivariance.equivariance) for f in fams)
    assert all(f.equivariance.meta == {"unscored": "not scored: no score for rotation yet", "error": "NotImplementedError"}
               for f in fams)
    assert "equivariance nan q = n/a" in result.summary()
    assert ScanResult.load(tmp_path).summary() == result.summary()


def test_scale_is_a_scan_transform_with_no_period(planted, monkeypatch):
    """``transforms=["scale"]`` probes the zoom grid; a family without a period is described as such
    (discovery and scoring of scale are stubbed here: other modules' work)."""
    _, model = planted

    def one_family(resp, **kw):
        assert resp.transform == "scale" and resp.values.shape[2] == CONFIG["steps"]
        return FamilyList([Family("1", "scale", [0, 1], [0.5, 2.0], None, 0.9, 0.01, q_value=0.01)])

    def unsupported(resp, units, **kw):
        raise NotImplementedError("scale scores are not written yet")

    monkeypatch.setattr(scan_module, "find_families", one_family)
    monkeypatch.setattr(scan_module, "score_responses", unsupported)
    with pytest.warns(UserWarning, match="not scored"):
        result = scan(model, ["1"], transforms=["scale"], config=CONFIG, progress=False)
    (fam,) = result.families["1"]["scale"]
    assert fam.period is None and fam.equivariance.meta["error"] == "NotImplementedError"
    assert "2 units [0, 1] period none" in result.summary()
    assert result.circuits_checked == [] and not result.validated("scale")


def _circuit(q: float | None) -> ef.CircuitScore:
    return ef.CircuitScore(
        kind="equivariant→equivariant", transform="rotation", score=0.9, p_value=1 / 201, null_mean=0.1,
        weights=torch.ones(2, 2, 3, 3), cosines=torch.ones(2, 2), source_layer="a", target_layer="b",
        source_units=[0, 1], target_units=[2, 3], n_null=200, q_value=q,
    )  # fmt: skip


def test_circuits_keep_their_q_values_and_old_files_read_as_nan(tmp_path):
    scan_module._save_circuits(tmp_path, [_circuit(0.02)])
    (back,) = scan_module._load_circuits(tmp_path, "rotation")
    assert back.q_value == 0.02 and back.p_value == 1 / 201
    path = tmp_path / "stages" / "circuits" / "rotation.json"
    path.write_text(json.dumps([{k: v for k, v in c.items() if k != "q_value"} for c in json.loads(path.read_text())]))
    (old,) = scan_module._load_circuits(tmp_path, "rotation")
    assert math.isnan(old.q_value)
    result = ScanResult("m", ["a", "b"], ["rotation"], {"alpha": 0.05, "circuit_min_score": 0.5},
                        circuits=[_circuit(0.02), old])
    text = result.summary()
    assert ("circuits (2 with q ≤ 0.05, BH over the checks of each transform, and a rotation gain above "
            "2 null SDs, and score ≥ 0.5") in text
    assert "score 0.90, gain n/a, q = 0.02 (p ≤ 0.005)" in text and "score 0.90, gain n/a, q = n/a (p ≤ 0.005)" in text


def test_summary_flags_circuits_that_come_mostly_through_1x1_paths():
    flat, spatial = _circuit(0.01), _circuit(0.02)
    flat.pointwise_share, flat.rotation_gain, spatial.pointwise_share = 0.97, 0.3, 0.1
    text = ScanResult("m", ["a", "b"], ["rotation"], {"alpha": 0.05}, circuits=[flat, spatial]).summary()
    assert text.count("mostly 1×1 paths: 97% of the weights, which cannot show a rotation") == 1
    assert "gain +0.30 (mostly 1×1 paths" in text


# -- weight verdicts (issue 12) --------------------------------------------------------------
CIRCUIT_CONFIG = {"steps": 24, "n_null": 30, "circuit_n_null": 30}


@pytest.fixture(scope="module")
def two_layers():
    """``(Planted, Model)``: tests/planted_circuits.py's eq→eq net, a C4 rotation family in layer "2" whose
    weights into a C4 family of layer "3" are planted as exact rotated copies."""
    from planted import centred
    from planted_circuits import planted as planted_circuit

    p = planted_circuit("eq→eq", "rotation", n=4, exact=True, seed=0)
    return p, ef.load_model(p.net, preprocess=centred, name="planted-circuit", device="cpu")


def _rotation_family(result: ScanResult, layer: str) -> Family:
    (fam,) = result.families[layer]["rotation"]
    return fam


def _family_lines(text: str) -> list[str]:
    """The family lines of a summary (after its "families (" header, up to the next blank line), unindented."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("families (")) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return [line.strip() for line in lines[start:end]]


def test_a_planted_circuit_confirms_the_family_it_feeds_and_the_summary_lists_it_first(two_layers, tmp_path):
    p, model = two_layers
    result = scan(model, ["2", "3"], transforms=["rotation"], config=CIRCUIT_CONFIG, out=tmp_path, progress=False)
    source, target = _rotation_family(result, "2"), _rotation_family(result, "3")
    assert sorted(source.units) == sorted(p.source_units) and sorted(target.units) == sorted(p.target_units)
    support = target.weight_support
    assert target.weight_checked and target.weight_verdict == "confirmed by weights"
    assert support["kind"] == "equivariant→equivariant" and support["source_layer"] == "2"
    assert support["source_units"] == source.units and support["score"] > 0.99 and support["q_value"] <= 0.05
    assert set(support) >= {"kind", "source_layer", "source_units", "score", "q_value", "rotation_gain"}
    # layer "2" is the first scanned layer: nothing below it, its weights were not checked
    assert source.weight_support is None and not source.weight_checked
    text = result.summary()
    rows = {line.split()[0]: line for line in text.splitlines()[3:5]}
    assert rows["2"].split()[7] == "-" and rows["3"].split()[7] == "1"  # the "by wts" column
    # listed in layer order, "2" would come first (same size, significance and score)
    first, second = _family_lines(text)
    assert first.startswith("3 rotation: ") and second.startswith("2 rotation: ")
    assert first.endswith(f"; confirmed by weights (equivariant→equivariant, from 2{source.units}, score 1.00, "
                          "q ≤ 0.032 (p ≤ 0.032))")  # fmt: skip
    assert second.endswith("; weights not checked") and "not confirmed" not in text


def test_verdicts_come_from_the_circuits_after_a_resume_or_a_load(two_layers, tmp_path):
    _, model = two_layers
    fresh = scan(model, ["2", "3"], transforms=["rotation"], config=CIRCUIT_CONFIG, out=tmp_path, progress=False)
    stage = tmp_path / "stages" / "3" / "rotation" / "families.json"
    saved = json.loads(stage.read_text())["families"][0]  # written before the circuits were checked
    assert saved["weight_support"] is None and saved["weight_checked"] is False
    for again in (ScanResult.load(tmp_path), scan(model, ["2", "3"], transforms=["rotation"], config=CIRCUIT_CONFIG,
                                                   out=tmp_path, progress=False)):  # fmt: skip
        assert json.dumps(_rotation_family(again, "3").to_dict()) == json.dumps(_rotation_family(fresh, "3").to_dict())
        assert _rotation_family(again, "3").weight_verdict == "confirmed by weights"
        assert again.summary() == fresh.summary()
    # saved by save(): the verdicts are written, and read back the same
    fresh.save(tmp_path / "saved")
    back = ScanResult.load(tmp_path / "saved")
    for layer in ("2", "3"):
        assert json.dumps(back.families[layer]["rotation"].to_dict()) == json.dumps(fresh.families[layer]["rotation"].to_dict())
    # stale verdicts in a stage file are replaced by what the saved circuits say
    data = json.loads(stage.read_text())
    data["families"][0].update(weight_checked=True, weight_support={**_rotation_family(fresh, "3").weight_support,
                                                                    "source_layer": "stale"})  # fmt: skip
    stage.write_text(json.dumps(data))
    assert _rotation_family(ScanResult.load(tmp_path), "3").weight_support["source_layer"] == "2"


def test_resuming_with_another_layer_list_checks_the_circuits_again(two_layers, tmp_path):
    _, model = two_layers
    scan(model, ["1", "2"], transforms=["rotation"], config=CIRCUIT_CONFIG, out=tmp_path, progress=False)
    resumed = scan(model, ["1", "2", "3"], transforms=["rotation"], config=CIRCUIT_CONFIG, out=tmp_path, progress=False)
    fresh = scan(model, ["1", "2", "3"], transforms=["rotation"], config=CIRCUIT_CONFIG, progress=False)
    # the circuits of ["1", "2"] alone have no "2" → "3" check: read back, they made layer "3" "not confirmed"
    assert _rotation_family(resumed, "3").weight_verdict == "confirmed by weights"
    assert resumed.summary() == fresh.summary()


def test_not_confirmed_is_not_the_same_as_weights_not_checked(two_layers, tmp_path):
    _, model = two_layers
    # circuits checked, but none passes a symmetry-score floor of 1: the weights do not confirm the family
    strict = scan(model, ["2", "3"], transforms=["rotation"], config={**CIRCUIT_CONFIG, "circuit_min_score": 1.0},
                  progress=False)  # fmt: skip
    assert strict.circuits == [] and strict.circuits_checked == ["rotation"]
    target = _rotation_family(strict, "3")
    assert target.weight_support is None and target.weight_checked and target.weight_verdict == "not confirmed"
    text = strict.summary()
    assert sorted(_family_lines(text)) == sorted([
        f"2 rotation: {strict._describe(_rotation_family(strict, '2'))}; weights not checked",
        f"3 rotation: {strict._describe(target)}; not confirmed",
    ])  # fmt: skip
    assert [line.split()[7] for line in text.splitlines()[3:5]] == ["-", "0"]
    # a checked transform without circuits still reads back as checked
    strict.save(tmp_path / "strict")
    assert _rotation_family(ScanResult.load(tmp_path / "strict"), "3").weight_verdict == "not confirmed"
    # circuits off: nothing was checked, so nothing is "not confirmed"
    off = scan(model, ["2", "3"], transforms=["rotation"], config={**CIRCUIT_CONFIG, "circuits": False}, progress=False)
    assert off.circuits_checked == [] and all(
        not f.weight_checked and f.weight_support is None for layer in ("2", "3") for f in off.families[layer]["rotation"]
    )
    text = off.summary()
    assert "not confirmed" not in text and [line.split()[7] for line in text.splitlines()[3:5]] == ["-", "-"]
    assert all(line.endswith("; weights not checked") for line in _family_lines(text))


def test_the_summary_lists_families_confirmed_by_weights_first():
    def family(units: list[int], q: float) -> Family:
        return Family("b", "rotation", units, [360.0 * i / len(units) for i in range(len(units))], 360.0, 0.9, q, q_value=q)

    big, small = family([0, 1, 2, 3, 4, 5], 0.01), family([8, 9], 0.5)  # significant and large; neither
    into_small = ef.CircuitScore(
        kind="invariant→equivariant", transform="rotation", score=0.8, p_value=0.004, null_mean=0.1,
        weights=torch.ones(2, 3, 3, 3), cosines=torch.ones(2, 3), source_layer="a", target_layer="b",
        source_units=[4, 5, 6], target_units=[9, 8], n_null=249, q_value=0.02,
    )  # fmt: skip
    result = ScanResult("m", ["a", "b"], ["rotation"], {"alpha": 0.05}, circuits=[into_small], circuits_checked=["rotation"],
                        families={"a": {"rotation": FamilyList()}, "b": {"rotation": FamilyList([big, small])}})  # fmt: skip
    before = result.summary()
    assert _family_lines(before)[0].startswith("b rotation: 6 units")  # verdicts not set yet: the old ranking
    scan_module._set_weight_support(result)
    assert small.weight_support is not None and big.weight_checked and big.weight_support is None
    text = result.summary()
    first, second = _family_lines(text)
    assert first.startswith("b rotation: 2 units [8, 9]") and first.endswith(
        "; confirmed by weights (invariant→equivariant, from a[4, 5, 6], score 0.80, q = 0.02 (p ≤ 0.004))")
    assert second.startswith("b rotation: 6 units") and second.endswith("; not confirmed")
    row_b = next(line for line in text.splitlines() if line.startswith("b "))
    assert row_b.split()[7] == "1" and "2 units [8, 9]" in row_b  # the best family of the row: the confirmed one


def _summary_rows(text: str) -> dict[str, list[str]]:
    """transform -> the cells of its row in the summary table (one layer)."""
    return {line.split()[1]: line.split() for line in text.splitlines()[3:] if line.startswith("a ")}


def test_flip_pairs_explained_by_rotation_are_set_on_load_and_left_out_of_the_summary(tmp_path):
    """A flip pair of two mirrored members of a rotation family (30° and 150°) is explained after
    loading (families.json said nothing), not counted in the flip row ("by rot" 1) and not listed;
    a pair at unmirrored angles (30° and 60°) stays a finding."""
    rot = Family("a", "rotation", [1, 2, 3], [30.0, 60.0, 150.0], 360.0, 0.9, 0.005, q_value=0.005)
    mirrored = Family("a", "flip", [1, 3], [0.0, 1.0], 2.0, 0.99, 0.005, q_value=0.005)
    unmirrored = Family("a", "flip", [1, 2], [0.0, 1.0], 2.0, 0.8, 0.005, q_value=0.005)
    gen = torch.Generator().manual_seed(0)
    rot_resp = ef.Responses(torch.rand(4, 2, 8, generator=gen), torch.arange(8) * 45.0, layer="a", transform="rotation")
    flip_resp = ef.Responses(torch.rand(4, 2, 2, generator=gen), torch.tensor([0.0, 1.0]), layer="a", transform="flip")
    result = ScanResult("m", ["a"], ["rotation", "flip"], {"alpha": 0.05},
                        families={"a": {"rotation": FamilyList([rot]), "flip": FamilyList([mirrored, unmirrored])}},
                        responses={"a": {"rotation": rot_resp, "flip": flip_resp}})  # fmt: skip
    back = ScanResult.load(result.save(tmp_path))
    flips = back.families["a"]["flip"]
    assert flips[0].explained_by["units"] == [1, 2, 3] and flips[0].explained_by["angles"] == [30.0, 150.0]
    assert flips[1].explained_by is None
    text = back.summary()
    rows = _summary_rows(text)
    assert rows["flip"][5] == "1" and rows["flip"][6] == "1" and rows["flip"][9] == "1"  # fams, q≤0.05, by rot
    assert rows["rotation"][9] == "-"
    listed = _family_lines(text)
    assert any("a flip: 2 units [1, 2]" in line for line in listed)
    assert not any("[1, 3]" in line for line in listed)
    # without the rotation stage nothing explains the pair
    alone = ScanResult("m", ["a"], ["flip"], {"alpha": 0.05}, families={"a": {"flip": FamilyList([mirrored])}},
                       responses={"a": {"flip": flip_resp}})  # fmt: skip
    assert ScanResult.load(alone.save(tmp_path / "alone")).families["a"]["flip"][0].explained_by is None


# -- held-out validation ----------------------------------------------------------------------
VALIDATE_CONFIG = {**CONFIG, "validate_sources": ["feature_vis", "patches"], "validate_top": 1, "validate_fv_steps": 8,
                   "validate_steps": 8}  # fmt: skip


def _heldout_json(result: ScanResult) -> str:
    """Every family's held-out tests as JSON (NaN-safe to compare)."""
    return json.dumps({f"{layer}/{t}": [f.equivariance.heldout and {k: v.to_dict() for k, v in f.equivariance.heldout.items()}
                                        for f in fams] for layer, by_t in result.families.items() for t, fams in by_t.items()})


@pytest.fixture(scope="module")
def validated(planted, tmp_path_factory):
    """``(ScanResult, out)``: the planted layer scanned for rotation and hue, the best family of each validated."""
    _, model = planted
    out = tmp_path_factory.mktemp("validated")
    return scan(model, ["1"], transforms=["rotation", "hue"], config=VALIDATE_CONFIG, out=out, progress=False), out


def test_the_best_family_of_each_transform_is_validated_with_q_values(validated):
    from equifind._stats import bh_q

    result, out = validated
    tested = []
    for t in ("rotation", "hue"):
        done = [f.equivariance for f in result.families["1"][t] if f.equivariance.heldout]
        assert len(done) == 1 and set(done[0].heldout) == {"feature_vis", "patches", "combined"}
        fams = result.families["1"][t]
        assert set(done[0].units) == set(max(fams, key=len).units)  # all significant here: the largest first
        assert sorted(done[0].heldout["combined"].members) == sorted(done[0].units)
        assert done[0].held_out() is True and math.isfinite(done[0].heldout_q_value)
        assert (out / "stages" / "1" / t / "heldout.json").is_file() and (out / "stages" / "1" / t / "heldout.npz").is_file()
        assert set(result.heldout_images["1"][t]["feature_vis"]) == set(done[0].units)
        tested += done
    for key in ("feature_vis", "patches", "combined"):  # BH over every validated family of the scan
        assert [s.heldout[key].q_value for s in tested] == pytest.approx(bh_q([s.heldout[key].p_value for s in tested]))
    text = result.summary()
    assert "held out" in text.splitlines()[1] and "held-out equivariance" in text and ": held out" in text
    rows = [line.split() for line in text.splitlines()[3:5]]
    assert [row[10] for row in rows] == ["1/1", "1/1"]


def test_validation_survives_save_load_and_a_resume_does_not_recompute_it(validated, planted, tmp_path, monkeypatch):
    result, out = validated
    back = ScanResult.load(out)
    assert _heldout_json(back) == _heldout_json(result) and back.summary() == result.summary()
    result.save(tmp_path / "saved")
    assert _heldout_json(ScanResult.load(tmp_path / "saved")) == _heldout_json(result)
    _, model = planted
    calls = []
    real = scan_module.validate_families
    monkeypatch.setattr(scan_module, "validate_families", lambda *a, **kw: calls.append(a[1].transform) or real(*a, **kw))
    again = scan(model, ["1"], transforms=["rotation", "hue"], config=VALIDATE_CONFIG, out=out, progress=False)
    assert calls == [] and _heldout_json(again) == _heldout_json(result)
    (out / "stages" / "1" / "hue" / "heldout.json").unlink()  # interrupted before the hue stage finished
    resumed = scan(model, ["1"], transforms=["rotation", "hue"], config=VALIDATE_CONFIG, out=out, progress=False)
    assert calls == ["hue"] and _heldout_json(resumed) == _heldout_json(result)


def test_the_report_draws_the_heldout_figures_of_validated_families(validated, tmp_path):
    from equifind.report import report

    result, _ = validated
    out = report(result, tmp_path / "report", formats=("png", "html"))
    drawn = sorted(p.name for p in (out / "figures").glob("*heldout*"))
    assert len(drawn) == 4 and all(p.endswith(".png") for p in drawn)
    assert {name.split("__")[-1] for name in drawn} == {"heldout_pairs.png", "heldout_answers.png"}
    page = (out / "index.html").read_text()
    assert "held-out verdict" in page and "held out (q ≤ 0.05, statistic" in page


def test_the_browser_page_shows_the_heldout_verdict_and_images_of_validated_families(validated):
    from equifind.report._page_data import page_data

    result, _ = validated
    data = page_data(result)
    done = [f for f in data["families"] if f["heldout"] is not None]
    assert len(done) == 2 and all(f["heldout"] is True for f in done)
    for f in done:
        assert dict(f["fields"])["held-out verdict"].startswith("held out (q ≤ 0.05, statistic")
        shown = {(h["source"], h["unit"]) for h in f["heldoutImages"]}
        assert shown == {(s, u) for s in ("feature_vis", "patches") for u in f["units"]}
        assert all(h["src"].startswith("data:image/png;base64,") for h in f["heldoutImages"])


def test_unvalidated_scans_have_no_heldout_column(planted):
    _, model = planted
    result = scan(model, ["1"], transforms=["flip"], config=CONFIG, progress=False)
    assert "held out" not in result.summary() and not any(f.equivariance.heldout for f in result.families["1"]["flip"])
