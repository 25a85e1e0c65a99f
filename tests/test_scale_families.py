"""Scale-family discovery (equifind/scale_families.py): planted networks probed end to end,
synthetic responses with known positions, a structureless negative control, the p floor and errors.

Direction convention. ``Responses.params`` of a scale probe are zoom factors (> 1 enlarges
the stimulus); a family lists its units by ascending preferred zoom, so the unit with the
*smallest* preferred feature comes first: the planted sizes in ascending order.
"""

from __future__ import annotations

import math

import pytest
import torch

import equifind as ef
from equifind.scale_families import scale_grid, shift_similarity
from equifind.transforms import Scale
from planted import centred
from planted_scale import SURROUND, scale_layer

STEPS = 17  # 4 octaves in quarter-octave steps: planted members are 2 steps apart
STEP_OCTAVES = 4.0 / (STEPS - 1)
N_NULL = 100
LAYER = "1"

pytestmark = pytest.mark.usefixtures("one_thread")


def probe_planted(same_size: bool) -> tuple[object, ef.Responses]:
    """The planted scale layer probed with the auto scale stimuli (no natural scale: planted
    filters never saw natural images; see tests/test_discovery.py)."""
    p = scale_layer(same_size=same_size)
    model = ef.load_model(p.net, preprocess=centred, name="planted_scale", device="cpu")
    return p, ef.probe(model, LAYER, "scale", steps=STEPS, progress=False, natural=False)


@pytest.fixture(scope="module")
def planted_family() -> tuple[object, ef.Responses, ef.FamilyList]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the one_thread fixture, which a module fixture cannot use
    try:
        p, resp = probe_planted(same_size=False)
        return p, resp, ef.find_families(resp, n_null=N_NULL)
    finally:
        torch.set_num_threads(threads)


def optimal_disk_zoom(sigma: float, disk_radius: float) -> float:
    """The zoom at which a disk of ``disk_radius`` px drives a balanced DoG (centre σ ``sigma``,
    surround SURROUND·σ) most: radius ``σ·sqrt(2 ln s² / (1 − 1/s²))``, s = SURROUND."""
    s2 = SURROUND**2
    return sigma * math.sqrt(2 * math.log(s2) / (1 - 1 / s2)) / disk_radius


def family_with(fams: ef.FamilyList, unit: int) -> ef.Family | None:
    for f in fams:
        if unit in f.units or any(d == unit for d, _ in f.duplicates):
            return f
    return None


# -- planted networks ------------------------------------------------------------------------
def test_planted_scale_family_found_in_size_order(planted_family) -> None:
    """5 centre-surround units at sizes √2 apart: one family, exactly those units, smallest
    size first, q ≤ 0.01, neighbours half an octave apart, nothing else significant.

    Seen (n_null 100): score 0.99, p = q = 1/101; preferred zooms 0.289, 0.408, 0.573,
    0.802, 1.107, i.e. 1.76σ / (6.2 px), the rf/5 disk of the auto stimuli, within 2%.
    """
    p, resp, fams = planted_family
    fam = family_with(fams, p.family[0])
    assert fam is not None, [f.units for f in fams]
    assert fam.units == p.family, (fam.units, p.family)  # ascending size = ascending preferred zoom
    assert fam.transform == "scale" and fam.period is None and fam.duplicates == [] and fam.holes == []
    assert fam.q_value <= 0.01 and fam.p_value >= 1 / (N_NULL + 1)
    assert 0.95 <= fam.score <= 1.0
    assert fam.preferred == sorted(fam.preferred)
    octaves = torch.diff(torch.log2(torch.tensor(fam.preferred, dtype=torch.float64)))
    assert float((octaves - 0.5).abs().max()) <= STEP_OCTAVES / 2, octaves  # √2 apart, within half a step
    # Absolute: the preferred zooms are those of one disk of the auto stimuli (the reference stimulus).
    radii = [v["disk_radius"] / resp.meta["supersample"] for v in resp.variants if v.get("kind") == "disk"]
    errors = [max(abs(math.log2(z / optimal_disk_zoom(s, r))) for z, s in zip(fam.preferred, p.sigmas)) for r in radii]
    assert min(errors) <= STEP_OCTAVES / 2, (fam.preferred, errors)
    others = [f for f in fams if f is not fam and f.q_value <= 0.05]
    assert not others, [(f.units, f.q_value) for f in others]


def test_planted_controls(planted_family) -> None:
    """Constant units are invariant; random units join no family."""
    p, _, fams = planted_family
    assert sorted(fams.invariant) == sorted(p.invariant)
    members = {u for f in fams for u in f.units} | {d for f in fams for d, _ in f.duplicates}
    assert not members & set(p.random)


def test_one_size_copied_is_not_a_family() -> None:
    """The same template at one size in 5 units (different gains): duplicates, not a scale family."""
    p, resp = probe_planted(same_size=True)
    fams = ef.find_families(resp, n_null=N_NULL)
    fam = family_with(fams, p.family[0])
    assert fam is None or len(set(fam.units) & set(p.family)) <= 1, (fam.units, fam.duplicates)
    assert not [f for f in fams if f.q_value <= 0.05], [(f.units, f.q_value) for f in fams]
    assert set(p.family) <= set(fams.selective)  # they are selective, just not a family


# -- synthetic responses with known positions -------------------------------------------------
def bumps(positions: list[float], n_var: int = 4, steps: int = STEPS, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``[len(positions), n_var, steps]``: one feature at several sizes. Variant v is a
    Gaussian bump (width 1.5 steps, its own offset and height) in log-scale; the unit at
    ``position`` has every bump shifted by ``position`` steps (no wrap-around)."""
    gen = torch.Generator().manual_seed(seed)
    offset = torch.randn(n_var, generator=gen) * 1.5
    height = 0.5 + torch.rand(n_var, generator=gen)
    s = torch.arange(steps, dtype=torch.float64)
    pos = torch.tensor(positions, dtype=torch.float64)[:, None, None]
    x = height[None, :, None] * torch.exp(-0.5 * ((s - pos - offset[None, :, None]) / 1.5) ** 2)
    return x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)


def synthetic(values: torch.Tensor, steps: int = STEPS) -> ef.Responses:
    return ef.Responses(values.float(), Scale().grid(steps), layer="l", transform="scale")


def test_synthetic_positions_duplicates_and_holes() -> None:
    """Members at steps 3, 5, 7, 11 (step 9 missing) plus a copy of the one at 5: positions
    recovered, the copy is a duplicate, step 9 is a hole; random units join nothing."""
    fam_values = bumps([3.0, 5.0, 7.0, 11.0, 5.1], noise=0.01)
    gen = torch.Generator().manual_seed(5)
    rand = torch.rand(8, 4, STEPS, generator=gen, dtype=torch.float64)
    resp = synthetic(torch.cat([fam_values, rand]))
    fams = ef.find_families(resp, n_null=50)
    assert len([f for f in fams if f.q_value <= 0.05]) == 1
    fam = fams[0]
    assert fam.units in ([0, 1, 2, 3], [0, 4, 2, 3]), fam.units
    assert fam.duplicates in ([(4, 1)], [(1, 4)]), fam.duplicates
    log_pos = torch.log2(torch.tensor(fam.preferred, dtype=torch.float64))
    steps = (log_pos + 2.0) / STEP_OCTAVES
    # Relative positions exact; the common offset is each member's own best-variant peak.
    torch.testing.assert_close(steps - steps[0], torch.tensor([0.0, 2.0, 4.0, 8.0], dtype=torch.float64), atol=0.15, rtol=0)
    assert len(fam.holes) == 1
    hole_step = (math.log2(fam.holes[0]) + 2.0) / STEP_OCTAVES
    assert abs(hole_step - float(steps[2] + 2.0)) < 0.2, (hole_step, steps)


def test_ends_are_not_neighbours() -> None:
    """Units tuned to the two ends of the grid (steps 0.5 and 16) are neighbours on a circle
    (1.5 steps apart across the ends) but 15.5 steps apart on the log-scale axis: the
    circular comparison of rotation/hue links them (0.87), the scale comparison
    does not link them, and they form no family."""
    from equifind.families import _normalise, _shift_similarity

    s = torch.arange(STEPS, dtype=torch.float64)
    x = torch.exp(-0.5 * ((s - torch.tensor([[0.5], [16.0]], dtype=torch.float64)) / 1.5) ** 2)[:, None, :]  # [2, 1, steps]
    circular, _ = _shift_similarity(_normalise(x, 1))
    assert float(circular[0, 1]) > 0.7, float(circular[0, 1])  # would link at the default min_similarity
    sim, _ = shift_similarity(x, scale_grid(Scale(), Scale().grid(STEPS)).max_shift)
    assert float(sim[0, 1]) < 0.5, float(sim[0, 1])
    assert ef.find_families(synthetic(x), n_null=0) == []
    c = bumps([4.0, 7.0])  # a true shift by 3 steps
    sim, shift = shift_similarity(c, 8)
    assert float(sim[0, 1]) > 0.99 and abs(float(shift[0, 1]) - 3.0) < 0.05
    assert float(shift[1, 0]) == -float(shift[0, 1])


# -- negative control: structureless responses ----------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("compare", ["variants", "tuning"])
def test_structureless_responses_give_no_family(seed: int, compare: str) -> None:
    """Random smooth responses (no shared feature, each curve as smooth as a tuning curve):
    discovery may find chance groups, but none at q ≤ 0.05."""
    gen = torch.Generator().manual_seed(100 + seed)
    raw = torch.randn(40, 4, STEPS + 8, generator=gen, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (torch.arange(-4, 5, dtype=torch.float64) / 1.5) ** 2)
    smooth = torch.nn.functional.conv1d(raw.reshape(-1, 1, STEPS + 8), (kernel / kernel.sum())[None, None]).reshape(40, 4, STEPS)
    fams = ef.find_families(synthetic(smooth.clamp_min(0.0)), n_null=50, seed=seed, compare=compare)
    assert not [f for f in fams if f.q_value <= 0.05], [(f.units, f.score, f.p_value, f.q_value) for f in fams]


def test_p_value_floor_and_no_test() -> None:
    """p ≥ 1/(n_null + 1), reached by a clean family; n_null = 0 gives p = q = 1."""
    resp = synthetic(torch.cat([bumps([2.0, 4.0, 6.0, 8.0], noise=0.01), torch.rand(6, 4, STEPS, dtype=torch.float64)]))
    for n_null in (10, 30):
        fams = ef.find_families(resp, n_null=n_null)
        assert fams and all(f.p_value >= 1 / (n_null + 1) - 1e-12 and f.n_null == n_null for f in fams)
        assert fams[0].units == [0, 1, 2, 3] and fams[0].p_value == pytest.approx(1 / (n_null + 1))
    fams = ef.find_families(resp, n_null=0)
    assert fams and all(f.p_value == 1.0 and f.q_value == 1.0 for f in fams)


def test_same_seed_same_families() -> None:
    resp = synthetic(torch.cat([bumps([2.0, 4.0, 6.0], noise=0.05), torch.rand(10, 4, STEPS, dtype=torch.float64)]))
    a, b = ef.find_families(resp, n_null=20, seed=3), ef.find_families(resp, n_null=20, seed=3)
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], "evenly spaced in log-scale .*entry 1 is 2, expected 1.495"),
        ([0.5, 1.0, 2.0], ">= 4 zoom factors, got shape \\(3,\\)"),
        ([0.0, 1.0, 2.0, 4.0], "factors > 0; entry 0 is 0"),
        ([-1.0, 1.0, 2.0, 4.0], "factors > 0; entry 0 is -1"),
        ([4.0, 2.0, 1.0, 0.5], "must ascend log-evenly"),
    ],
)
def test_non_log_grid_is_rejected(params: list[float], message: str) -> None:
    resp = ef.Responses(torch.rand(3, 2, len(params)), torch.tensor(params), layer="l", transform="scale")
    with pytest.raises(ValueError, match=message):
        ef.find_families(resp)


def test_empty_and_flat_layers() -> None:
    grid = Scale().grid(8)
    assert ef.find_families(ef.Responses(torch.zeros(0, 2, 8), grid, layer="l", transform="scale")) == []
    flat = ef.find_families(ef.Responses(torch.ones(3, 2, 8), grid, layer="l", transform="scale"))
    assert flat == [] and flat.invariant == [0, 1, 2] and flat.selective == []
