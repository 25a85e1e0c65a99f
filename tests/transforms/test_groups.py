"""Group laws and conventions of equifind.transforms (exact cases first, then tolerances)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equifind.transforms import (
    RGB_TO_YIQ,
    TRANSFORMS,
    Flip,
    Hue,
    HueRotation,
    Rotation,
    Scale,
    Transform,
    get_transform,
    soft_aperture,
)

SIZE = 33
FAST = settings(max_examples=25, deadline=None, database=None)
angles = st.floats(min_value=-720.0, max_value=720.0, allow_nan=False, allow_infinity=False)
quarter_turns = st.integers(min_value=-8, max_value=8)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def rand_images(seed: int, n: int = 2, size: int | tuple[int, int] = SIZE, low: float = 0.0, high: float = 1.0):
    h, w = (size, size) if isinstance(size, int) else size
    gen = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, 3, h, w, generator=gen)


def smooth_images(seed: int, n: int = 2, size: int = SIZE) -> torch.Tensor:
    """Band-limited images (a few low-frequency cosines per channel) for resampling tests."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    freqs = 0.06 * torch.rand(n, 3, 4, 2, generator=gen, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(n, 3, 4, 1, 1, generator=gen, dtype=torch.float64)
    waves = torch.cos(2 * math.pi * (freqs[..., 0, None, None] * yy + freqs[..., 1, None, None] * xx) + phase)
    return (0.5 + 0.12 * waves.sum(dim=2)).float()


def central_disk(size: int = SIZE, radius: float = 10.0) -> torch.Tensor:
    c = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size) - c, torch.arange(size) - c, indexing="ij")
    return (yy**2 + xx**2) <= radius**2


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("name", ["rotation", "hue", "flip", "scale"])
def test_identity_param_is_identity(name):
    t = get_transform(name)
    x = rand_images(0)
    torch.testing.assert_close(t.apply(x, t.identity), x, atol=1e-6, rtol=0)


def test_hue_rotation_identity():
    x = rand_images(1)
    torch.testing.assert_close(HueRotation().apply(x, HueRotation.identity), x, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- exact cases


@FAST
@given(k=quarter_turns, seed=seeds)
def test_rotation_multiples_of_90_are_rot90(k, seed):
    for size in (SIZE, 34, (33, 35)):
        if isinstance(size, tuple) and k % 2:
            continue  # a quarter turn of a non-square image does not fit its frame
        x = rand_images(seed, size=size)
        out = Rotation().apply(x, 90.0 * k)
        torch.testing.assert_close(out, torch.rot90(x, k, dims=(-2, -1)), atol=1e-6, rtol=0)


@FAST
@given(a=quarter_turns, b=quarter_turns, seed=seeds)
def test_rotation_composition_exact_for_quarter_turns(a, b, seed):
    r, x = Rotation(), rand_images(seed)
    both = r.apply(r.apply(x, 90.0 * b), 90.0 * a)
    torch.testing.assert_close(both, r.apply(x, r.compose(90.0 * a, 90.0 * b)), atol=1e-6, rtol=0)


@FAST
@given(seed=seeds)
def test_flip_is_exact_mirror_and_involution(seed):
    f = Flip()
    for size in (SIZE, 34, (33, 40)):
        x = rand_images(seed, size=size)
        torch.testing.assert_close(f.apply(x, 1.0), torch.flip(x, dims=[-1]), atol=1e-6, rtol=0)
        torch.testing.assert_close(f.apply(f.apply(x, 1.0), 1.0), x, atol=1e-6, rtol=0)


def test_flip_per_image_params():
    x = rand_images(3, n=3)
    out = Flip().apply(x, torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(out[0], x[0], atol=0, rtol=0)
    torch.testing.assert_close(out[1], x[1].flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[2], x[2], atol=0, rtol=0)


def test_flip_about_off_centre_column():
    x = rand_images(4, n=1)
    out = Flip().apply(x, 1.0, center=(16.0, 10.0))
    torch.testing.assert_close(out[..., 0:21], x[..., 0:21].flip(-1), atol=1e-6, rtol=0)
    assert (out[..., 21:] == 0.5).all()  # mirrored from outside the frame: grey


# --------------------------------------------------------------------------- conventions


def test_rotation_is_counter_clockwise_as_displayed():
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    x[..., 16, 22] = 1.0  # a dot 6 px right of the centre
    out = Rotation().apply(x, 90.0)
    assert out[0, 0].argmax().item() == 10 * SIZE + 16  # now 6 px above the centre
    out = Rotation().apply(x, -90.0)
    assert out[0, 0].argmax().item() == 22 * SIZE + 16  # clockwise: below


def test_horizontal_bar_becomes_vertical():
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    x[..., 15:18, 6:27] = 1.0
    out = Rotation().apply(x, 90.0)[0, 0]
    bright = out > 0.75
    rows, cols = bright.nonzero(as_tuple=True)
    assert cols.max() - cols.min() <= 2 and rows.max() - rows.min() >= 18


def test_rotation_45_moves_dot_up_right():
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    x[..., 16, 26] = 1.0
    out = Rotation().apply(x, 45.0)[0, 0] - 0.5
    yy, xx = torch.meshgrid(torch.arange(SIZE) - 16.0, torch.arange(SIZE) - 16.0, indexing="ij")
    w = out.clamp(min=0)
    cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
    assert abs(cx - 10 / math.sqrt(2)) < 0.3 and abs(cy + 10 / math.sqrt(2)) < 0.3


def test_scale_enlarges_content():
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    x[..., 16, 20] = 1.0  # 4 px right of the centre
    out = Scale().apply(x, 2.0)[0, 0]
    assert out[16, 24] == out.max()  # now 8 px right


def test_padding_is_mid_grey():
    x = torch.zeros(1, 3, SIZE, SIZE)
    out = Rotation().apply(x, 45.0)
    assert out[0, :, 0, 0].allclose(torch.full((3,), 0.5))
    out = Scale().apply(x, 0.5)
    assert out[0, :, 0, 0].allclose(torch.full((3,), 0.5))


# --------------------------------------------------------------------------- continuous group laws


@FAST
@given(a=angles, b=angles, seed=seeds)
def test_rotation_composition_on_central_disk(a, b, seed):
    """Two bilinear resamplings vs one agree to 0.025 inside radius 10 of 33 px.

    The smooth images swing 0.5 +- 0.48 with frequencies <= 0.085 cycles/px;
    the worst error seen over 200 random draws was 0.013.
    """
    r, x = Rotation(), smooth_images(seed)
    twice = r.apply(r.apply(x, b), a)
    once = r.apply(x, r.compose(a, b))
    disk = central_disk()
    assert (twice - once)[..., disk].abs().max() < 0.025


@FAST
@given(a=angles, seed=seeds)
def test_rotation_inverse_on_central_disk(a, seed):
    r, x = Rotation(), smooth_images(seed)
    back = r.apply(r.apply(x, a), r.inverse(a))
    assert (back - x)[..., central_disk()].abs().max() < 0.025  # worst seen over 200 draws: 0.016


@FAST
@given(a=st.floats(0.7, 1.4), b=st.floats(0.7, 1.4), seed=seeds)
def test_scale_composition_on_central_disk(a, b, seed):
    s, x = Scale(), smooth_images(seed)
    twice = s.apply(s.apply(x, b), a)
    once = s.apply(x, s.compose(a, b))
    assert (twice - once)[..., central_disk(radius=7)].abs().max() < 0.04  # worst seen over 200 draws: 0.020


@FAST
@given(a=angles, b=angles)
def test_compose_and_inverse_laws(a, b):
    def circ_dist(u: float, v: float) -> float:
        d = (u - v) % 360
        return min(d, 360 - d)

    for t in (Rotation(), Hue()):
        c, inv = t.compose(a, b), t.inverse(a)
        assert 0.0 <= c < 360.0 and 0.0 <= inv < 360.0
        assert circ_dist(c, a + b) < 1e-6
        assert circ_dist(t.compose(a, inv), t.identity) < 1e-6
        assert circ_dist(t.compose(inv, a), t.identity) < 1e-6
    f = Flip()
    for p in (0.0, 1.0):
        assert f.compose(p, f.inverse(p)) == 0.0
        for q in (0.0, 1.0):
            assert f.compose(p, q) == float(int(p) ^ int(q))
    s = Scale()
    sa = 2.0 ** (a / 720)
    assert math.isclose(s.compose(sa, s.inverse(sa)), 1.0, rel_tol=1e-12)


def test_compose_vectorised_over_tensors():
    a, b = torch.tensor([350.0, 10.0, -30.0]), torch.tensor([20.0, 0.0, -400.0])
    torch.testing.assert_close(Rotation().compose(a, b), torch.tensor([10.0, 10.0, 290.0]))
    torch.testing.assert_close(Rotation().inverse(torch.tensor([0.0, 90.0])), torch.tensor([0.0, 270.0]))
    torch.testing.assert_close(Flip().compose(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 0.0])), torch.tensor([1.0, 0.0, 1.0]))
    hr = HueRotation()
    got = hr.compose(torch.tensor([[350.0, 90.0]]), torch.tensor([[20.0, 300.0]]))
    torch.testing.assert_close(got, torch.tensor([[10.0, 30.0]], dtype=torch.float64))
    torch.testing.assert_close(hr.inverse(torch.tensor([90.0, 0.0])), torch.tensor([270.0, 0.0], dtype=torch.float64))


def test_inverse_of_tiny_negative_wraps_into_range():
    assert Rotation().inverse(1e-300) < 360.0
    assert Rotation().inverse(torch.tensor([1e-30]))[0] < 360.0


# --------------------------------------------------------------------------- hue


@FAST
@given(a=angles, b=angles)
def test_hue_matrix_is_group_action(a, b):
    torch.testing.assert_close(Hue.matrix(a) @ Hue.matrix(b), Hue.matrix(a + b), atol=1e-9, rtol=0)
    torch.testing.assert_close(Hue.matrix(a) @ Hue.matrix(Hue().inverse(a)), torch.eye(3, dtype=torch.float64), atol=1e-9, rtol=0)
    grey = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    torch.testing.assert_close(Hue.matrix(a) @ grey, grey, atol=1e-9, rtol=0)
    luma = RGB_TO_YIQ[0]
    torch.testing.assert_close(luma @ Hue.matrix(a), luma, atol=1e-9, rtol=0)


def test_hue_matrix_identity_and_batched():
    torch.testing.assert_close(Hue.matrix(0.0), torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    mats = Hue.matrix(torch.tensor([0.0, 90.0]))
    assert mats.shape == (2, 3, 3)
    torch.testing.assert_close(mats[1], Hue.matrix(90.0))


@FAST
@given(a=angles, b=angles, seed=seeds)
def test_hue_composition_in_gamut(a, b, seed):
    """RGB in [0.4, 0.6] has chroma <= 0.13, in gamut at every hue: the group law holds to 1e-5."""
    h, x = Hue(), rand_images(seed, low=0.4, high=0.6)
    once, clipped = h.apply_with_gamut(h.apply(x, b), a)
    assert (clipped == 0).all()
    torch.testing.assert_close(once, h.apply(x, h.compose(a, b)), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.apply(h.apply(x, a), h.inverse(a)), x, atol=1e-5, rtol=0)


@FAST
@given(seed=seeds)
def test_hue_360_is_identity(seed):
    x = rand_images(seed)
    torch.testing.assert_close(Hue().apply(x, 360.0), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(Hue().apply(x, -720.0), x, atol=1e-5, rtol=0)


def test_hue_gamut_report():
    h = Hue()
    grey = torch.full((1, 3, 5, 5), 0.4)
    vivid = torch.zeros(1, 3, 5, 5)
    vivid[:, 0] = 1.0  # pure red goes out of gamut when hue-rotated
    out, clipped = h.apply_with_gamut(torch.cat([grey, vivid]), 90.0)
    assert clipped.shape == (2,)
    assert clipped[0] == 0 and 0 < clipped[1] <= 1
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[0], grey[0], atol=1e-6, rtol=0)


def test_hue_rotation_is_hue_then_rotation():
    x = rand_images(5, low=0.4, high=0.6)
    hr = HueRotation().apply(x, torch.tensor([[30.0, 90.0], [0.0, 180.0]]))
    expected = Rotation().apply(Hue().apply(x, torch.tensor([30.0, 0.0])), torch.tensor([90.0, 180.0]))
    torch.testing.assert_close(hr, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(HueRotation().apply(x, (0.0, 0.0)), x, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- grids


def test_grids():
    torch.testing.assert_close(Rotation().grid(4), torch.tensor([0.0, 90.0, 180.0, 270.0]))
    torch.testing.assert_close(Hue().grid(3), torch.tensor([0.0, 120.0, 240.0]))
    for n in (1, 2, 7):
        torch.testing.assert_close(Flip().grid(n), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(Scale().grid(3), torch.tensor([0.25, 1.0, 4.0]))  # 2 octaves each way
    g = HueRotation().grid(3)
    assert g.shape == (9, 2)
    torch.testing.assert_close(g[:4], torch.tensor([[0.0, 0.0], [0.0, 120.0], [0.0, 240.0], [120.0, 0.0]]))
    for t in TRANSFORMS.values():
        with pytest.raises(ValueError, match="n >= 1"):
            t().grid(0)


# --------------------------------------------------------------------------- aperture


def test_aperture_centre_untouched_corners_grey():
    x = rand_images(6)
    out = soft_aperture(x, 10.0)
    disk = central_disk(radius=8.0)  # radius - falloff
    assert torch.equal(out[..., disk], x[..., disk])
    assert (out[..., 0, 0] == 0.5).all() and (out[..., -1, -1] == 0.5).all()
    assert (out[..., ~central_disk(radius=10.0)] == 0.5).all()
    ring = central_disk(radius=9.6) & ~central_disk(radius=8.4)
    assert ((out - 0.5).abs() <= (x - 0.5).abs() + 1e-6)[..., ring].all()


def test_apply_with_aperture():
    x = rand_images(7)
    out = Rotation().apply(x, 90.0, aperture=12.0)
    rot = torch.rot90(x, 1, dims=(-2, -1))
    disk = central_disk(radius=10.0)
    torch.testing.assert_close(out[..., disk], rot[..., disk], atol=1e-6, rtol=0)
    assert (out[..., 0, 0] == 0.5).all()
    assert (soft_aperture(x, 12.0, center=(4.0, 4.0))[..., -1, -1] == 0.5).all()


# --------------------------------------------------------------------------- apply_grid


@pytest.mark.parametrize(
    "name, params",
    [
        ("rotation", torch.tensor([0.0, 17.0, 90.0, 225.0, -33.5])),
        ("flip", torch.tensor([0.0, 1.0])),
        ("scale", torch.tensor([0.5, 1.0, 1.7])),
        ("hue", torch.tensor([0.0, 45.0, 200.0])),
        ("hue_rotation", torch.tensor([[0.0, 0.0], [90.0, 30.0], [200.0, 270.0]])),
    ],
)
@pytest.mark.parametrize("aperture, downsample, center", [(None, 1, None), (12.0, 2, (15.5, 16.5)), (14.0, 4, None)])
def test_apply_grid_is_apply_for_every_pair(name, params, aperture, downsample, center):
    """out[i, j] = apply(image i, param j), then area-averaged: the batched path equals the per-image one."""
    tf = get_transform(name)
    x = rand_images(21, n=3, size=32)
    got = tf.apply_grid(x, params, center=center, aperture=aperture, downsample=downsample)
    s = params.shape[0]
    assert got.shape == (3, s, 3, 32 // downsample, 32 // downsample)
    for i in range(3):
        for j in range(s):
            want = tf.apply(x[i : i + 1], params[j], center=center, aperture=aperture)
            want = torch.nn.functional.avg_pool2d(want, downsample)[0]
            torch.testing.assert_close(got[i, j], want, atol=2e-5, rtol=0, msg=f"{name} image {i} param {j}")


def test_apply_grid_bad_input():
    x = rand_images(22, n=2, size=32)
    with pytest.raises(ValueError, match=r"Tensor\[S\].*\[\]"):
        Rotation().apply_grid(x, torch.tensor(10.0))
    with pytest.raises(ValueError, match=r"Tensor\[S, 2\].*\[3\]"):
        HueRotation().apply_grid(x, torch.zeros(3))
    with pytest.raises(ValueError, match="0 or 1"):
        Flip().apply_grid(x, torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"downsample.*32x32.*3"):
        Rotation().apply_grid(x, torch.zeros(2), downsample=3)
    with pytest.raises(ValueError, match=r"\[3, 32, 32\]"):
        Rotation().apply_grid(x[0], torch.zeros(2))


# --------------------------------------------------------------------------- errors


def test_get_transform():
    for name, cls in TRANSFORMS.items():
        t = get_transform(name)
        assert isinstance(t, cls) and isinstance(t, Transform) and t.name == name
    r = Rotation()
    assert get_transform(r) is r
    with pytest.raises(KeyError, match="did you mean 'rotation'.*valid"):
        get_transform("rotaton")
    with pytest.raises(KeyError, match="'hue_rotation'"):
        get_transform("zzz")


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(3, 33, 33), r"\[3, 33, 33\]"),
        (torch.rand(2, 1, 33, 33), r"\[2, 1, 33, 33\]"),
        (torch.randint(0, 255, (2, 3, 9, 9), dtype=torch.uint8), "uint8"),
        ("not a tensor", "str"),
    ],
)
def test_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        Rotation().apply(images, 10.0)


def test_bad_params():
    x = rand_images(8, n=3)
    with pytest.raises(ValueError, match=r"N=3.*\[2\]"):
        Rotation().apply(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[3, 2\]"):
        Hue().apply(x, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="0 or 1"):
        Flip().apply(x, 0.5)
    with pytest.raises(ValueError, match="> 0"):
        Scale().apply(x, torch.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match=r"Tensor\[N, 2\].*\[3\]"):
        HueRotation().apply(x, torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        Rotation().apply(x, float("nan"))
    with pytest.raises(ValueError, match="center"):
        Rotation().apply(x, 10.0, center=(1.0,))
    with pytest.raises(ValueError, match="radius"):
        Rotation().apply(x, 10.0, aperture=-1.0)
