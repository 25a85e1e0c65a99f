"""Held-out validation (``ef.validate_families``): families found on the synthetic stimuli,
tested on each member's feature visualization and top natural patches.

Known answers: the regular fields of an e2cnn C8 network (equivariant on any image), and a
planted decoy (``planted.decoy_layer``) whose family is rotated copies on grey images only,
with its colour-free control. Under the null (random unit sets) the p-values are uniform.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

import equifind as ef
from equifind._stats import bh_q
from equifind.heldout import HeldoutSource, HeldoutStimuli
from planted import centred, decoy_layer, e2cnn_layer
from test_discovery import field_ari, is_cyclic_rotation

SOURCES = ("feature_vis", "patches", "combined")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread (module scope fixtures below run before the suite's function fixture)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _json(x: object) -> str:
    """A comparable text of results that hold NaN (NaN != NaN, but "NaN" == "NaN")."""
    return json.dumps(x, sort_keys=True)


# -- e2cnn C8: every regular field holds out -----------------------------------------
@pytest.fixture(scope="module")
def e2c8():
    """The C8 depth-1 layer of ``test_e2cnn_every_regular_field_is_one_whole_family`` (six regular
    fields, eight trivial, seed 3), its 32-step rotation probe and families."""
    torch.set_num_threads(1)
    e2 = e2cnn_layer(n=8, regular=6, trivial=8, depth=1, seed=3)
    model = ef.load_model(e2.net, preprocess=centred, name="e2cnn_c8", device="cpu")
    resp = ef.probe(model, model.layers[-1], "rotation", steps=32, progress=False, natural=False)
    return e2, model, resp, ef.find_families(resp)


def test_e2cnn_c8_regular_fields_hold_out_on_both_sources(e2c8) -> None:
    """The six families are the six regular fields (ARI 1, cyclic field order), and each holds
    out on feature visualizations, on top natural patches and combined: held-out equivariance
    ≥ 0.9 and BH q ≤ 0.01 over the six families.

    Seen: equivariance 0.9995–1.0000 on every source (random sets: 0.05–0.10), p = 1/201 for
    all six on every source, so q = 1/201 ≈ 0.005; about 16 s for the validation.
    """
    e2, model, resp, fams = e2c8
    truth = {u: i for i, f in enumerate(e2.fields) for u in f}
    assert field_ari(e2, fams) == 1.0
    assert sorted(sorted(f.units) for f in fams) == sorted(sorted(f) for f in e2.fields)
    assert all(is_cyclic_rotation(f.units, e2.fields[truth[f.units[0]]]) for f in fams)
    out = ef.validate_families(model, resp, [f.units for f in fams], periods=[f.period for f in fams])
    assert len(out) == 6
    for source in SOURCES:
        q = bh_q([o[source].p_value for o in out])
        eq = [o[source].equivariance for o in out]
        assert min(eq) >= 0.9 and max(q) <= 0.01, (source, eq, q)
        assert all(o[source].null_mean < 0.5 for o in out), [o[source].null_mean for o in out]


# -- the null: random unit sets give uniform p-values -------------------------------
N_DRAWS = 50


@pytest.mark.slow
def test_random_unit_sets_give_uniform_heldout_p_values(e2c8) -> None:
    """Random sets of 8 responding units of the C8 layer (the fields' size), 50 draws, each with
    its own random set and its own validate seed (so its own pool and null sets), patches only:
    the p-values pass a Kolmogorov–Smirnov test of uniformity at 0.01.

    n_null = 200: p takes the values k/201, so the discrete p's distribution function is
    within 1/201 ≈ 0.005 of the uniform's; the KS statistic's 1% critical value for 50 draws
    is ≈ 0.23, so the discreteness cannot decide the test (and ties, counted as ≥, only make
    p conservative). The images (each unit's top patches) are made once and shared, as a scan
    shares them: they are the units' own, independent of the draw. Under the null a random
    set is a uniformly random subset of its pool, so the test is exact.

    Seen: KS p = 0.925 (statistic 0.074), fraction of p ≤ 0.05: 0.02 (1 of 50); 126 s alone
    on a shared 2-core machine (259 s under load), hence ``slow``.
    """
    _, model, resp, _ = e2c8
    responding = [resp.units[r] for r in torch.nonzero(resp.responding()).flatten().tolist()]
    assert len(responding) >= 40
    shared = HeldoutStimuli(model, resp.layer, seed=0)
    pvals = []
    for draw in range(N_DRAWS):
        gen = torch.Generator().manual_seed(1000 + draw)
        units = [responding[i] for i in torch.randperm(len(responding), generator=gen)[:8].tolist()]
        (result,) = ef.validate_families(model, resp, [units], sources="patches", n_null=200, seed=draw, stimuli=shared)
        pvals.append(result["patches"].p_value)
    ks = stats.kstest(pvals, "uniform")
    frac = sum(p <= 0.05 for p in pvals) / len(pvals)
    print(f"KS p {ks.pvalue:.3f}, statistic {ks.statistic:.3f}, fraction p <= 0.05: {frac:.2f}")
    assert ks.pvalue > 0.01, (ks, sorted(pvals))
    assert frac <= 0.2, sorted(pvals)


# -- a planted decoy: shifted copies on the discovery stimuli only ---------------------
@pytest.fixture(scope="module")
def decoys():
    """``{colour: (Decoy, Model, Responses, FamilyList)}`` for the decoy (colour 8) and its control (colour 0)."""
    torch.set_num_threads(1)
    out = {}
    for colour in (8.0, 0.0):
        d = decoy_layer(colour=colour)
        model = ef.load_model(d.net, preprocess=centred, name=f"decoy_{colour:g}", device="cpu")
        resp = ef.probe(model, "1", "rotation", steps=32, progress=False, natural=False)
        out[colour] = (d, model, resp, ef.find_families(resp))
    return out


def test_decoy_layer_is_grey_blind_colour_part():
    """The decoy's colour parts sum to zero over R, G, B at every pixel: on grey images the
    decoy and its control respond identically."""
    decoy, control = decoy_layer(colour=8.0), decoy_layer(colour=0.0)
    grey = torch.rand(5, 1, 40, 40).expand(5, 3, 40, 40)
    colour = torch.rand(5, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(decoy.net(grey - 0.5), control.net(grey - 0.5), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(decoy.net(colour - 0.5), control.net(colour - 0.5), atol=1e-2)


def test_decoy_family_is_found_but_does_not_hold_out(decoys) -> None:
    """Discovery on grey rotation stimuli (the auto set: gratings, edges, lines, curves) finds the
    decoy family exactly (q ≤ 0.05) — its units are exact rotated copies there — but on the
    coloured held-out images its random colour parts answer and it does not hold out on either
    source; the control (same layer without the colour part) holds out on both.

    Seen: both found with q = 0.005; decoy held-out equivariance feature_vis 0.008 (p 0.53),
    patches 0.000 (p 0.31), combined 0.001 (p 0.42); control 1.000 on every source, p = 1/201
    (random sets 0.19–0.26).
    """
    for colour, holds in ((8.0, False), (0.0, True)):
        d, model, resp, fams = decoys[colour]
        assert [sorted(f.units) for f in fams] == [sorted(d.family)], ([f.units for f in fams], d.family)
        fam = fams[0]
        assert is_cyclic_rotation(fam.units, d.family) and fam.q_value <= 0.05
        (out,) = ef.validate_families(model, resp, [fam.units], periods=[fam.period])
        for source in SOURCES:
            r = out[source]
            q = bh_q([r.p_value])[0]
            if holds:
                assert r.equivariance >= 0.9 and q <= 0.01, (colour, source, r)
            else:
                assert r.equivariance < 0.5 and q > 0.05, (colour, source, r)


# -- arguments, determinism, FamilyScore ----------------------------------------------
@pytest.fixture(scope="module")
def control(decoys):
    _, model, resp, fams = decoys[0.0]
    return model, resp, fams[0].units


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sources=("patches", "photos")), "photos"),
        (dict(sources=()), r"\[\]"),
        (dict(steps=3), r"steps \(the held-out grid\): rotation needs an integer number of steps >= 4, got 3"),
        (dict(pool=0), "pool.*0"),
        (dict(n_null=5), "n_null=5"),
        (dict(n_null=0), "n_null.*0"),
        (dict(families=[[3]]), r"\[3\]"),
        (dict(families=[[3, 12, 3]]), r"\[3, 12, 3\]"),
        (dict(periods=[360.0, 180.0]), "2 periods"),
    ],
)
def test_validate_families_bad_arguments_name_the_value(control, kwargs, match) -> None:
    model, resp, units = control
    args = {"families": [units], **kwargs}
    with pytest.raises(ValueError, match=match):
        ef.validate_families(model, resp, args.pop("families"), **args)


def test_validate_families_rejects_hue_rotation(decoys) -> None:
    _, model, _, _ = decoys[0.0]
    resp = ef.probe(model, "1", "hue_rotation", steps=4, progress=False, natural=False)
    with pytest.raises(ValueError, match="hue_rotation"):
        ef.validate_families(model, resp, [[0, 1]])


def test_validate_families_same_seed_same_results(control) -> None:
    """Two runs with the same seed (images made afresh each time) give identical results, NaN
    diagonals included; another seed does not. Patches only (feature visualizations are seeded
    and tested in test_featurevis; with them this test takes 45 s instead of about 8)."""
    model, resp, units = control

    def run(seed: int) -> str:
        out = ef.validate_families(model, resp, [units, units[:4]], sources="patches", n_null=50, seed=seed)
        return _json([{k: v.to_dict() for k, v in o.items()} for o in out])

    first = run(0)
    assert first == run(0)
    assert first != run(1)


def test_score_family_validate_fills_heldout_and_round_trips(control) -> None:
    """``score_family(validate="patches")`` fills the held-out figures, ``summary()`` reports them,
    and ``to_dict`` → ``FamilyScore(**d)`` keeps them (the pairs' NaN diagonal too, also when a
    strict JSON writer turned it into null)."""
    model, _, units = control
    score = ef.score_family(model, "1", units, "rotation", steps=32, validate="patches")
    assert set(score.heldout) == {"patches"}
    assert score.heldout_equivariance >= 0.9 and score.heldout_p_value <= 0.01
    assert score.heldout_q_value == score.heldout_p_value and score.held_out() is True
    assert "held-out" in score.summary() and "held out" in score.summary()
    d = score.to_dict()
    back = ef.FamilyScore(**d)
    assert isinstance(back.heldout["patches"], HeldoutSource)
    assert _json(back.to_dict()) == _json(d)
    pairs = back.heldout["patches"].pairs
    assert all(math.isnan(pairs[i][i]) for i in range(len(units)))
    assert not any(math.isnan(pairs[i][j]) for i in range(len(units)) for j in range(len(units)) if i != j)
    strict = json.loads(json.dumps(d).replace("NaN", "null"))
    again = ef.FamilyScore(**strict)
    assert _json(again.heldout["patches"].to_dict()) == _json(d["heldout"]["patches"])
    plain = ef.score_family(model, "1", units, "rotation", steps=32)
    assert plain.heldout == {} and plain.heldout_test is None and math.isnan(plain.heldout_equivariance) and plain.held_out() is None


def test_verdict_needs_a_positive_statistic_not_only_a_small_q(control) -> None:
    """A family that beats random sets which anti-correlate, while its own members do not answer each
    other (statistic ≤ 0, equivariance 0), did not hold out however small its q (googlenet mixed3b
    hue had two such families at p 0.015 and 0.03); the same q with a positive statistic held out."""
    model, _, units = control
    score = ef.score_family(model, "1", units, "rotation", steps=32, validate="patches")
    test = score.heldout["patches"]
    assert score.heldout_test is test and score.held_out() is True and test.verdict().startswith("held out (q ≤ 0.05, statistic")
    test.statistic, test.equivariance = -0.004, 0.0
    assert test.q_value <= 0.05 and test.held_out() is False and score.held_out() is False
    assert "statistic -0.004 ≤ 0" in test.verdict() and "did not hold out" in score.summary()
    test.statistic, test.q_value = 0.3, 0.2
    assert score.held_out() is False and test.verdict() == "did not hold out (q > 0.05)"
    test.q_value = math.nan  # a result saved without its q: no verdict, not "q > alpha"
    assert score.held_out() is None and test.verdict() == "n/a (no q-value)"
