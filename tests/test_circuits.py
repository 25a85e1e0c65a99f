"""Weight circuits: symmetry scores of expanded weights with known answers (planted circuits, nulls, errors).

Kernel moves are tested in tests/transforms/test_kernels.py, expanded weights in tests/test_expanded.py.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import equifind as ef
from equifind.circuits import CircuitScore, Units, circuit_symmetry, find_circuits
from equifind.transforms import Flip, Hue, Rotation, rotation_ceiling
from planted_circuits import planted


def side(p, role: str):
    """The circuit_symmetry argument for one side of a planted circuit."""
    if role == "source":
        return Units(p.source_layer, p.source_units) if p.source_invariant else (p.source_layer, p.source_units)
    return Units(p.target_layer, p.target_units) if p.target_invariant else (p.target_layer, p.target_units)


def load(net: nn.Module, name: str = "planted") -> ef.Model:
    return ef.load_model(net, name=name, device="cpu")


@dataclass
class Fam:
    """A duck-typed Family (the contract of ARCHITECTURE.md)."""

    layer: str
    units: list[int]
    preferred: list[float]
    period: float | None = 360.0
    transform: object = "rotation"


# --------------------------------------------------------------------------- planted circuits

CASES = [
    ("inv→eq", "rotation", True),
    ("eq→inv", "rotation", True),
    ("eq→eq", "rotation", True),
    ("inv→eq", "rotation", False),
    ("eq→inv", "rotation", False),
    ("eq→eq", "rotation", False),
    ("eq→eq", "hue", True),
    ("inv→eq", "flip", True),
    ("eq→inv", "flip", True),
]
KINDS = {"inv→eq": "invariant→equivariant", "eq→inv": "equivariant→invariant", "eq→eq": "equivariant→equivariant"}


@pytest.mark.parametrize("kind, transform, exact", CASES)
def test_planted_circuits_score_high_and_their_shuffles_do_not(kind, transform, exact):
    # exact: C4 by torch.rot90 (scores 1 up to float rounding); smooth: 8 angles of an analytic
    # template, the smooth kernel model of equifind.transforms.kernels (tolerance: score >= 0.95); hue: 6-unit families.
    n = 4 if exact else 8
    n = 6 if transform == "hue" else n
    p = planted(kind, transform, n=n, exact=exact, seed=1)
    cs = circuit_symmetry(load(p.net), side(p, "source"), side(p, "target"), transform=transform)
    assert cs.kind == KINDS[kind] and cs.transform == transform
    assert cs.score >= (0.999 if exact else 0.95)
    assert cs.p_value < 0.01 and cs.null == "angles"
    assert cs.is_significant() and cs.rotation_gain > 2 * cs.gain_sd > 0
    torch.testing.assert_close(cs.weights, p.weights)
    broken = planted(kind, transform, n=n, exact=exact, seed=1, shuffle=True)
    cb = circuit_symmetry(load(broken.net), side(broken, "source"), side(broken, "target"), transform=transform)
    assert cb.p_value >= 0.05 and not cb.is_significant()
    assert cb.score < 0.8


@pytest.mark.parametrize("seed", [0, 1])
def test_identical_isotropic_kernels_are_not_a_rotation_circuit(seed):
    """Every member gets the same isotropic blob from each invariant source: no orientation
    anywhere. The old "kernels" null called it significant (the control can fail); the
    angles null and the rotation gain do not."""
    p = planted("inv→eq", n=8, exact=False, template="isotropic", seed=seed)
    m = load(p.net)
    cs = circuit_symmetry(m, side(p, "source"), side(p, "target"))
    assert cs.score > 0.95 and cs.p_value >= 0.05 and not cs.is_significant()
    old = circuit_symmetry(m, side(p, "source"), side(p, "target"), null="kernels")
    assert old.p_value <= 0.01 and not old.is_significant()  # the gain rule alone rejects it too


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_unrotated_kernels_for_every_member_are_not_an_equivariant_circuit(seed):
    """eq→eq where every target member gets the same, unrotated oriented kernels from each source member."""
    p = planted("eq→eq", n=8, exact=False, template="oriented", moved=False, seed=seed)
    cs = circuit_symmetry(load(p.net), side(p, "source"), side(p, "target"))
    assert cs.p_value >= 0.05 and not cs.is_significant()


@pytest.mark.parametrize("size", [3, 5])
def test_one_smooth_oriented_kernel_at_45_degree_steps_with_noise_is_a_circuit(size):
    """One smooth oriented kernel sampled exactly at 45° steps for 8 target units, 20% noise."""
    p = planted("inv→eq", n=8, exact=False, template="oriented", size=size, noise=0.2, seed=0)
    cs = circuit_symmetry(load(p.net), side(p, "source"), side(p, "target"))
    assert cs.p_value <= 0.01 and cs.is_significant()
    assert cs.ceiling == rotation_ceiling(size) >= 0.98 and cs.score >= 0.8 * cs.ceiling
    assert cs.pointwise_share == 0.0  # two convs, no 1×1 path


@pytest.mark.slow
@pytest.mark.weights
def test_googlenet_invariant_to_pool_branch_is_not_a_circuit(googlenet):
    """conv2d2's invariant {17, 29, 100, 178} → a mixed3a pool-branch family: the targets get
    isotropic box kernels through a 3×3 pool and a 1×1 conv. The old kernels null gave
    p = 0.005 (score 0.86, the second-best circuit of the old RESULTS); the angles do not."""
    fam = SimpleNamespace(layer="mixed3a", units=[239, 255, 236, 238], preferred=[20.0, 43.0, 71.0, 89.0],
                          period=360.0, transform="rotation")  # fmt: skip
    source = Units("conv2d2", [17, 29, 100, 178])
    cs = circuit_symmetry(googlenet, source, fam)
    assert cs.pointwise_share > 0.99 and cs.rotation_gain <= 0
    assert cs.p_value >= 0.05 and not cs.is_significant()
    old = circuit_symmetry(googlenet, source, fam, null="kernels")
    assert old.score == pytest.approx(cs.score) and old.p_value <= 0.01  # the control can fail


def test_first_member_reference_and_duck_typed_families():
    p = planted("eq→eq", exact=True, seed=2)
    m = load(p.net)
    first = circuit_symmetry(m, side(p, "source"), side(p, "target"), reference="first", n_null=100)
    assert first.score == pytest.approx(1.0, abs=1e-5) and first.p_value < 0.02
    assert torch.isnan(first.cosines[0]).all() and not torch.isnan(first.cosines[1:]).any()
    # a Family listing the same units from another starting member, with its angles
    s, t = p.source_units, p.target_units
    fam_s = Fam("2", s[1:] + s[:1], [90.0, 180.0, 270.0, 0.0])
    fam_t = Fam("3", t[2:] + t[:2], [180.0, 270.0, 0.0, 90.0])
    cs = circuit_symmetry(m, fam_s, fam_t)
    assert cs.score == pytest.approx(1.0, abs=1e-5) and cs.p_value < 0.01
    assert cs.source_preferred == [90.0, 180.0, 270.0, 0.0] and cs.target_units == fam_t.units
    # a FamilyScore-like side: units in any order, its cyclic .order and unit -> angle .preferred
    scored = SimpleNamespace(layer="3", units=t[::-1], order=fam_t.units, period=360.0, transform="rotation",
                             preferred=dict(zip(fam_t.units, fam_t.preferred)))  # fmt: skip
    from_score = circuit_symmetry(m, fam_s, scored)
    assert from_score.target_units == fam_t.units and from_score.target_preferred == fam_t.preferred
    assert from_score.score == pytest.approx(cs.score)
    # the wrong direction of rotation is not a circuit
    wrong = circuit_symmetry(m, ("2", s[::-1]), side(p, "target"))
    assert wrong.score < 0.9
    d = cs.to_dict()
    json.dumps(d)
    assert d["kind"] == "equivariant→equivariant" and d["weights_shape"] == [4, 4, 5, 5] and "weights" in d
    assert d["q_value"] == d["p_value"] == cs.p_value
    assert "weights" not in cs.to_dict(max_weights=10)
    # to_dict's keys are the constructor's fields (how a saved scan is read back)
    kept = {k: v for k, v in d.items() if k not in ("weights", "weights_shape", "cosines")}
    again = CircuitScore(**kept, weights=cs.weights, cosines=cs.cosines)
    assert again.to_dict() == d


def test_a_circuit_carries_its_transform_and_saves_it_by_name():
    p = planted("inv→eq", "flip", seed=3)
    m = load(p.net)
    by_name = circuit_symmetry(m, side(p, "source"), side(p, "target"), transform="flip", n_null=20)
    by_object = circuit_symmetry(m, side(p, "source"), side(p, "target"), transform=Flip(), n_null=20)
    assert isinstance(by_name.transform, Flip) and by_name.transform == "flip"
    assert by_object.to_dict() == by_name.to_dict()
    d = by_name.to_dict()
    assert d["transform"] == "flip" and type(d["transform"]) is str
    json.dumps(d)
    back = CircuitScore.from_dict(d)  # the weights are in the dict
    assert isinstance(back.transform, Flip) and back.to_dict() == d
    assert torch.equal(back.weights, by_name.weights.float())
    light = by_name.to_dict(max_weights=0)
    with pytest.raises(ValueError, match="pass weights="):
        CircuitScore.from_dict(light)
    assert CircuitScore.from_dict(light, weights=by_name.weights).to_dict() == d
    # a family's Transform (as Family and FamilyScore carry it) sets the default transform
    fam = Fam("3", p.target_units, [0.0, 1.0], period=2.0, transform=Flip())
    assert circuit_symmetry(m, side(p, "source"), fam, n_null=20).transform == Flip()
    # the ceiling is the transform's: exact moves score 1 at most, rotation its own ceiling
    assert by_name.ceiling == 1.0 == Hue().kernel_ceiling(5)
    assert Rotation().kernel_ceiling(5) == rotation_ceiling(5)


def test_transforms_circuits_do_not_handle_are_refused_by_name():
    p = planted("eq→eq", seed=4)
    m = load(p.net)
    s, t = ("2", p.source_units), ("3", p.target_units)
    for bad in ("scale", "hue_rotation", ef.Scale()):
        with pytest.raises(ValueError, match=r"not supported by circuits; valid: \['rotation', 'hue', 'flip'\]"):
            circuit_symmetry(m, s, t, transform=bad)
    with pytest.raises(ValueError, match="did you mean 'rotation'"):
        circuit_symmetry(m, s, t, transform="rotaton")
    with pytest.raises(ValueError, match="not supported by circuits"):
        find_circuits(m, {"2": [s], "3": [t]}, transform="scale")
    # a scale family (no period) is refused for its transform, not for its period
    zoom = Fam("2", p.source_units, [0.5, 1.0, 2.0, 4.0], period=None, transform="scale")
    with pytest.raises(ValueError, match="'scale' is not supported by circuits"):
        circuit_symmetry(m, zoom, t)


def test_the_orders_null_is_honest_about_small_families():
    # Relabelling a C4 family pair has only 576 / 16 = 36 distinct outcomes (cyclic shifts are
    # symmetries), so p cannot fall below ~1/36; rearranging the 16 kernels has 16! outcomes.
    p = planted("eq→eq", exact=True, seed=5)
    m = load(p.net)
    orders = circuit_symmetry(m, side(p, "source"), side(p, "target"), null="orders")
    kernels = circuit_symmetry(m, side(p, "source"), side(p, "target"), null="kernels")
    assert orders.score == kernels.score == pytest.approx(1.0, abs=1e-5)
    assert 0.015 < orders.p_value < 0.1 and kernels.p_value < 0.01
    assert orders.null == "orders" and kernels.null == "kernels"
    # two flip pairs: every relabelling is a symmetry, so the orders null cannot reject at all
    f = planted("inv→eq", "flip", seed=5)
    pair = ("3", f.target_units)
    flip = circuit_symmetry(load(f.net), ("2", f.source_units[:2]), pair, transform="flip", null="orders")
    assert flip.kind == "equivariant→equivariant" and flip.p_value == 1.0


def test_find_circuits_returns_the_planted_circuits_first():
    p = planted("inv→eq", m=6, seed=3)
    m = load(p.net)
    distractors = [u for u in range(m.num_units("3")) if u not in p.target_units]
    fams = {"2": [], "3": [("3", p.target_units), ("3", p.target_units[:2] + distractors)]}
    found = find_circuits(m, fams, invariant_by_layer={"2": p.source_units})
    assert found and found[0].target_units == p.target_units and found[0].kind == "invariant→equivariant"
    assert all(isinstance(c, CircuitScore) and c.p_value <= c.q_value <= 0.05 for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    direct = circuit_symmetry(m, Units("2", p.source_units), ("3", p.target_units))
    assert found[0].score == pytest.approx(direct.score) and found[0].p_value == direct.p_value
    assert direct.q_value == direct.p_value  # one check, one test
    floor = (found[0].score + found[-1].score) / 2 if len(found) > 1 else found[0].score
    strong = find_circuits(m, fams, invariant_by_layer={"2": p.source_units}, min_score=floor)
    assert [(c.target_units, c.score) for c in strong] == [(c.target_units, c.score) for c in found if c.score >= floor]
    with pytest.raises(ValueError, match="min_score must be in"):
        find_circuits(m, fams, min_score=2.0)


def null_like_checks(seed: int = 3) -> tuple[ef.Model, dict[str, list[tuple[str, list[int]]]]]:
    """A shuffled (broken) planted net and six random 4-unit "families" in each layer: 36 null-like checks.

    With seed 3, three of the 36 checks reach p <= 0.05 uncorrected (as chance predicts).
    """
    p = planted("eq→eq", n=4, seed=seed, shuffle=True)
    m = load(p.net)
    gen = torch.Generator().manual_seed(seed)
    pick = {layer: [(layer, torch.randperm(m.num_units(layer), generator=gen)[:4].tolist()) for _ in range(6)]
            for layer in ("2", "3")}  # fmt: skip
    return m, pick


def test_find_circuits_q_values_are_bh_over_every_check_of_the_call():
    from scipy.stats import false_discovery_control

    m, fams = null_like_checks()
    every = find_circuits(m, fams, all_checks=True)
    assert len(every) == 36
    p = [c.p_value for c in every]
    q = [c.q_value for c in every]
    assert q == pytest.approx(false_discovery_control(p, method="bh").tolist(), abs=1e-12)
    assert all(qi >= pi for pi, qi in zip(p, q))
    # the q-values come before the score filter: a filtered call keeps the q of all 36 checks
    strong = find_circuits(m, fams, alpha=1.0)  # q <= 1: the gain rule alone filters
    assert 0 < len(strong) < len(every)
    q_of = {(tuple(c.source_units), tuple(c.target_units)): c.q_value for c in every}
    assert [c.q_value for c in strong] == [q_of[tuple(c.source_units), tuple(c.target_units)] for c in strong]
    assert [c.q_value for c in strong] != pytest.approx(false_discovery_control([c.p_value for c in strong]).tolist())


def test_find_circuits_finds_nothing_in_null_like_checks():
    # Negative control: some raw p-values pass 0.05 by chance; their BH q-values do not.
    m, fams = null_like_checks()
    every = find_circuits(m, fams, all_checks=True)
    assert sum(c.p_value <= 0.05 for c in every) >= 1
    assert find_circuits(m, fams) == []
    assert find_circuits(m, fams, alpha=0.05, min_score=-1.0) == []


def test_find_circuits_warns_when_the_p_floor_not_the_data_limits_q():
    """A planted circuit among 36 checks at n_null = 20: it sits at the floor 1/21, which BH
    cannot call significant alone among 36 (it needs 0.05/36); the warning names the n_null."""
    p = planted("eq→eq", seed=4)
    m = load(p.net)
    gen = torch.Generator().manual_seed(0)
    rand = {layer: [(layer, torch.randperm(m.num_units(layer), generator=gen)[:4].tolist()) for _ in range(5)]
            for layer in ("2", "3")}  # fmt: skip
    fams = {"2": [("2", p.source_units), *rand["2"]], "3": [("3", p.target_units), *rand["3"]]}
    with pytest.warns(UserWarning, match=r"of 36 circuit checks sit at the p floor .* n_null >= 719"):
        checks = find_circuits(m, fams, n_null=20, all_checks=True)
    planted_check = next(c for c in checks if c.source_units == p.source_units and c.target_units == p.target_units)
    assert planted_check.p_value == pytest.approx(1 / 21) and planted_check.q_value > 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_circuits(m, {"2": [("2", p.source_units)], "3": [("3", p.target_units)]})  # one check: no warning


def test_find_circuits_needs_enough_null_draws_for_alpha():
    p = planted("eq→eq", seed=4)
    m = load(p.net)
    fams = {"2": [("2", p.source_units)], "3": [("3", p.target_units)]}
    with pytest.raises(ValueError, match=r"n_null=10 cannot reach significance at 0\.05.*n_null >= 19"):
        find_circuits(m, fams, n_null=10)
    with pytest.raises(ValueError, match=r"n_null=0 .*n_null >= 99"):
        find_circuits(m, fams, n_null=0, alpha=0.01)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\], got 0"):
        find_circuits(m, fams, alpha=0)
    with pytest.raises(ValueError, match=r"n_null must be an int >= 1, or 0 \(no null: p_value is 1 and null_mean NaN\), got -3"):
        find_circuits(m, fams, n_null=-3)
    assert len(find_circuits(m, fams, n_null=19)) == 1  # the floor 1/20 reaches 0.05
    alone = circuit_symmetry(m, *fams["2"], *fams["3"], n_null=0)  # a single check may skip the null
    assert alone.p_value == alone.q_value == 1.0


# --------------------------------------------------------------------------- designed equivariance (e2cnn)


def e2cnn_net(seed: int = 0, n: int = 4) -> tuple[nn.Sequential, list[list[int]], list[list[int]]]:
    """AvgPool · exported C_n R2Conv(3 trivial → 3 regular) · ReLU · R2Conv(→ 2 regular), channels shuffled.

    Returns the net and the families of layers "2" and "3" in cyclic order.
    """
    from e2cnn import gspaces
    from e2cnn import nn as enn

    torch.manual_seed(seed)
    gs = gspaces.Rot2dOnR2(N=n)
    t_in = enn.FieldType(gs, 3 * [gs.trivial_repr])
    hid, out = enn.FieldType(gs, 3 * [gs.regular_repr]), enn.FieldType(gs, 2 * [gs.regular_repr])
    net = enn.SequentialModule(enn.R2Conv(t_in, hid, 5, padding=2), enn.ReLU(hid), enn.R2Conv(hid, out, 5, padding=2))
    plain = net.eval().export()
    gen = torch.Generator().manual_seed(seed)
    p1, p2 = torch.randperm(3 * n, generator=gen), torch.randperm(2 * n, generator=gen)
    with torch.no_grad():  # shuffle channels: new channel c is old channel p[c]
        c1, c2 = plain[0], plain[2]
        c1.weight.copy_(c1.weight[p1]), c1.bias.copy_(c1.bias[p1])
        c2.weight.copy_(c2.weight[p2][:, p1]), c2.bias.copy_(c2.bias[p2])
    where1, where2 = torch.argsort(p1).tolist(), torch.argsort(p2).tolist()
    fams1 = [[where1[n * f + i] for i in range(n)] for f in range(3)]
    fams2 = [[where2[n * f + i] for i in range(n)] for f in range(2)]
    return nn.Sequential(nn.AvgPool2d(4), *plain), fams1, fams2


@pytest.fixture(scope="module")
def e2cnn_model():
    pytest.importorskip("e2cnn")
    net, fams1, fams2 = e2cnn_net()
    return load(net, "e2cnn_c4"), fams1, fams2


def test_e2cnn_c8_fields_form_equivariant_circuits():
    """C8: 45° steps, where kernels rotate between pixels (the accurate small-kernel rotation)."""
    pytest.importorskip("e2cnn")
    net, fams1, fams2 = e2cnn_net(n=8)
    m = load(net, "e2cnn_c8")
    found = find_circuits(m, {"2": [("2", f) for f in fams1], "3": [("3", f) for f in fams2]})
    assert len(found) == 6 and all(c.kind == "equivariant→equivariant" for c in found)
    assert min(c.score / c.ceiling for c in found) >= 0.8 and all(c.is_significant() for c in found)
    real = {(tuple(a), tuple(b)) for a in fams1 for b in fams2}
    assert {(tuple(c.source_units), tuple(c.target_units)) for c in found} == real


def test_e2cnn_regular_fields_are_rotation_families_in_cyclic_order(e2cnn_model):
    # Empirical check of e2cnn's convention: rotating the input +90° (CCW as displayed) moves the
    # response of a regular field's channel i to channel i+1 (mod 4), so a field's channels in
    # their stored order are a rotation family at 0, 90, 180, 270 degrees.
    m, fams1, _ = e2cnn_model
    x = torch.rand(1, 3, 84, 84)  # 21x21 maps after the 4x pool: an odd side rotates about a pixel
    with torch.no_grad(), ef.record(m, ["2"], at="map") as rec:
        m(x)
        plain = rec["2"]
        m(torch.rot90(x, 1, dims=(-2, -1)))
        turned = rec["2"]
    for fam in fams1:
        for i in range(4):
            torch.testing.assert_close(turned[0, fam[(i + 1) % 4]], torch.rot90(plain[0, fam[i]], 1, dims=(-2, -1)),
                                       atol=1e-4, rtol=1e-4)


def test_e2cnn_fields_form_equivariant_circuits(e2cnn_model):
    m, fams1, fams2 = e2cnn_model
    cs = circuit_symmetry(m, ("2", fams1[0]), ("3", fams2[1]))
    assert cs.kind == "equivariant→equivariant" and cs.score >= 0.9 and cs.p_value < 0.01
    mixed = [fams1[0][0], fams1[1][1], fams1[2][2], fams1[0][3]]  # one channel from several fields
    fake = circuit_symmetry(m, ("2", mixed), ("3", fams2[1]))
    assert fake.score < cs.score - 0.1 and fake.p_value > 0.01
    found = find_circuits(m, {"2": [("2", f) for f in fams1], "3": [("3", f) for f in fams2]})
    assert len(found) == 6 and min(c.score for c in found) >= 0.9


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    p = planted("eq→eq", seed=4)
    m = load(p.net)
    s, t = ("2", p.source_units), ("3", p.target_units)
    with pytest.raises(ValueError, match=r"'3'.*before.*'2'"):
        circuit_symmetry(m, t, s)
    with pytest.raises(IndexError, match="99"):
        circuit_symmetry(m, ("2", [0, 1, 99]), t)
    with pytest.raises(KeyError, match="mixed4a"):
        circuit_symmetry(m, Fam("mixed4a", [0, 1, 2], [0.0, 120.0, 240.0]), t)
    with pytest.raises(ValueError, match="no units"):
        circuit_symmetry(m, ("2", []), t)
    with pytest.raises(ValueError, match="at least 2"):
        circuit_symmetry(m, s, ("3", [0]))
    with pytest.raises(ValueError, match="both invariant"):
        circuit_symmetry(m, Units("2", [0, 1]), Units("3", [0, 1]))
    with pytest.raises(ValueError, match="scale"):
        circuit_symmetry(m, s, t, transform="scale")
    with pytest.raises(ValueError, match="'hue' family"):
        circuit_symmetry(m, Fam("2", p.source_units, [0.0, 90.0, 180.0, 270.0], transform="hue"), t,
                         transform="rotation")
    with pytest.raises(ValueError, match="Family"):
        circuit_symmetry(m, [0, 1, 2], t)
    with pytest.raises(ValueError, match="'orderz'"):
        circuit_symmetry(m, s, t, null="orderz")
    with pytest.raises(ValueError, match="n_null"):
        circuit_symmetry(m, s, t, n_null=-1)
    with pytest.raises(ValueError, match=r"layer '3' is listed under layer '2'"):
        find_circuits(m, {"2": [t], "3": [t]})
    with pytest.raises(ValueError, match="lacks"):
        find_circuits(m, {"3": [t]}, invariant_by_layer={"2": [0, 1]})
    with pytest.raises(ValueError, match="equifind.Model"):
        circuit_symmetry(p.net, s, t)
