"""Shapes, ranges, conventions and errors of equifind.stimuli."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equifind.stimuli import (
    PHOTOS,
    STIMULI,
    StimulusSet,
    center_surround,
    circle,
    color_contrast,
    curve,
    edge,
    from_images,
    gabor,
    get_stimulus,
    grating,
    high_low,
    line,
    photo_patches,
)
from equifind.transforms import RGB_TO_YIQ, Hue, Rotation

SIZE = 33
C = (SIZE - 1) // 2
FAST = settings(max_examples=25, deadline=None, database=None)


def yiq(rgb: torch.Tensor) -> torch.Tensor:
    """Tensor[..., 3] RGB -> YIQ."""
    return rgb.double() @ RGB_TO_YIQ.T


def hue_of(yiq_colour: torch.Tensor) -> float:
    """Hue in degrees, [0, 360), of a YIQ colour."""
    return math.degrees(math.atan2(yiq_colour[2], yiq_colour[1])) % 360


def circ_dist(a: float, b: float) -> float:
    d = (a - b) % 360
    return min(d, 360 - d)


def outside(radius: float, size: int = SIZE) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size) - C, torch.arange(size) - C, indexing="ij")
    return yy**2 + xx**2 >= radius**2


# --------------------------------------------------------------------------- every generator


@pytest.mark.parametrize("name", sorted(STIMULI))
@pytest.mark.parametrize("size", [SIZE, (31, 36)])
def test_shape_range_params(name, size):
    s = STIMULI[name](size)
    h, w = (size, size) if isinstance(size, int) else size
    assert isinstance(s, StimulusSet)
    assert s.images.shape[1:] == (3, h, w) and s.images.dtype == torch.float32
    assert len(s) == s.images.shape[0] == len(s.params) > 0
    assert 0.0 <= s.images.min() and s.images.max() <= 1.0
    assert all(p["kind"] == name for p in s.params)
    assert len({tuple(sorted(p.items())) for p in s.params}) == len(s)  # one image per combination


@pytest.mark.parametrize("name", sorted(STIMULI))
def test_aperture_background_and_determinism(name):
    s = STIMULI[name](SIZE, radius=10.0, device="cpu")
    assert s.images.device.type == "cpu"
    assert (s.images[..., outside(10.0)] == 0.5).all()
    assert torch.equal(s.images, STIMULI[name](SIZE, radius=10.0).images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(STIMULI))
def test_renders_on_cuda(name):
    s = STIMULI[name](SIZE, radius=10.0, device="cuda")
    assert s.images.is_cuda
    torch.testing.assert_close(s.images.cpu(), STIMULI[name](SIZE, radius=10.0).images, atol=1e-5, rtol=0)


def test_cartesian_product_order():
    s = grating(SIZE, frequencies=(0.1, 0.2), phases=(0.0, 90.0, 180.0))
    assert len(s) == 6
    assert [(p["frequency"], p["phase"]) for p in s.params] == [
        (0.1, 0.0), (0.1, 90.0), (0.1, 180.0), (0.2, 0.0), (0.2, 90.0), (0.2, 180.0)
    ]
    expected = 0.5 + 0.5 * math.cos(2 * math.pi * 0.2 * 3 + math.pi / 2)
    assert s.images[4, 0, C, C + 3].item() == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------- orientation conventions


def test_edge_dark_left_bright_right():
    img = edge(SIZE).images
    assert img[0, :, :, :C].mean() < 0.01 and img[0, :, :, C + 1 :].mean() > 0.99
    assert img[1, :, :, :C].mean() > 0.99  # contrast -1: reversed
    torch.testing.assert_close(img[0, :, :, C], torch.full((3, SIZE), 0.5))  # anti-aliased boundary


def test_edge_follows_center():
    img = edge(SIZE, contrasts=(1.0,), center=(16.0, 10.0)).images[0, 0]
    assert img[:, :10].max() < 0.01 and img[:, 11:].min() > 0.99


def test_line_is_vertical_through_centre():
    img = line(SIZE, widths=(1.0, 3.0), polarities=(1.0, -1.0)).images[:, 0]
    torch.testing.assert_close(img[0, :, C], torch.ones(SIZE))
    assert (img[0, :, : C] == 0.5).all() and (img[0, :, C + 1 :] == 0.5).all()
    assert (img[1, :, C] == 0.0).all()  # dark line
    torch.testing.assert_close(img[2].sum(), torch.tensor(0.5 * SIZE * SIZE + 0.5 * 3 * SIZE))


def test_grating_rotation_matches_analytic_grating():
    """Vertical stripes rotated +45 (CCW) = a grating whose wave vector points up-right."""
    f = 1 / 16
    g = grating(SIZE, frequencies=(f,), phases=(0.0,)).images
    rotated = Rotation().apply(g, 45.0)[0, 0]
    yy, xx = torch.meshgrid(torch.arange(SIZE) - C, torch.arange(SIZE) - C, indexing="ij")
    theta = math.radians(45.0)
    analytic = 0.5 + 0.5 * torch.cos(2 * math.pi * f * (xx * math.cos(theta) - yy * math.sin(theta)))
    disk = ~outside(12.0)
    assert (rotated - analytic)[disk].abs().max() < 0.03
    wrong = 0.5 + 0.5 * torch.cos(2 * math.pi * f * (xx * math.cos(theta) + yy * math.sin(theta)))
    assert (rotated - wrong)[disk].abs().max() > 0.5


def test_grating_fft_peak_is_horizontal_frequency():
    img = grating(32, frequencies=(4 / 32,), phases=(0.0,)).images[0, 0] - 0.5
    spec = torch.fft.fft2(img).abs()
    ky, kx = divmod(int(spec.argmax()), 32)
    assert ky == 0 and kx in (4, 28)


def test_gabor_envelope_decays():
    img = gabor(SIZE, frequencies=(0.125,), phases=(0.0,), sigmas=(3.0,)).images[0, 0]
    assert img[C, C] == pytest.approx(1.0)
    assert (img[:, :3] - 0.5).abs().max() < 1e-3


def test_curve_bulges_right_and_is_symmetric():
    s = curve(SIZE, radii=(8.0,), widths=(2.0,), extents=(120.0,))
    img = s.images[0, 0] - 0.5
    assert img[C, C] > 0.4  # passes through the centre
    yy, xx = torch.meshgrid(torch.arange(SIZE) - C, torch.arange(SIZE) - C, indexing="ij")
    w = img.clamp(min=0)
    assert (w * xx).sum() / w.sum() < -0.5  # the arc curves back towards -x
    assert w[:, C + 2 :].sum() < 0.05 * w.sum()  # nothing right of the apex
    torch.testing.assert_close(img, img.flip(-2))  # mirror-symmetric about the horizontal axis


def test_curve_extent_controls_length():
    s = curve(SIZE, radii=(6.0,), widths=(1.0,), extents=(45.0, 90.0, 180.0, 360.0))
    ink = (s.images[:, 0] - 0.5).sum(dim=(-2, -1))
    assert (ink[1:] > ink[:-1]).all()
    arc_length = 2 * math.pi * 6.0 * torch.tensor([45.0, 90.0, 180.0, 360.0]) / 360
    torch.testing.assert_close(ink / 0.5, arc_length, rtol=0.1, atol=0.5)


def test_high_low_fine_left_coarse_right():
    img = high_low(SIZE, frequencies=((0.25, 1 / 32),), phases=(0.0,)).images[0, 0]
    grad = (img[:, 1:] - img[:, :-1]).abs()
    assert grad[:, : C - 1].mean() > 4 * grad[:, C + 1 :].mean()


def test_circle_is_rotation_invariant():
    s = circle(SIZE)
    torch.testing.assert_close(Rotation().apply(s.images, 90.0), s.images, atol=1e-6, rtol=0)
    torch.testing.assert_close(s.images, s.images.flip(-1), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- colour


@FAST
@given(h=st.sampled_from([0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]), d=st.floats(-360, 360))
def test_hue_shift_of_color_contrast_is_hue_parameter(h, d):
    shifted = Hue().apply(color_contrast(SIZE, hues=(h,)).images, d)
    torch.testing.assert_close(shifted, color_contrast(SIZE, hues=(h + d,)).images, atol=1e-5, rtol=0)


@FAST
@given(h=st.floats(0, 360), d=st.floats(-360, 360))
def test_hue_shift_of_center_surround_is_hue_parameter(h, d):
    shifted = Hue().apply(center_surround(SIZE, hues=(h,), radii=(5.0,)).images, d)
    torch.testing.assert_close(shifted, center_surround(SIZE, hues=(h + d,), radii=(5.0,)).images, atol=1e-5, rtol=0)


def test_color_contrast_sides_are_opposite_hues_of_equal_luma():
    s = color_contrast(SIZE, hues=(0.0, 90.0), saturation=0.2, luma=0.5)
    for img, h in zip(s.images, (0.0, 90.0)):
        left, right = yiq(img[:, C, 0]), yiq(img[:, C, -1])
        assert left[0] == pytest.approx(0.5, abs=1e-5) and right[0] == pytest.approx(0.5, abs=1e-5)
        torch.testing.assert_close(left[1:], -right[1:], atol=1e-5, rtol=0)
        assert circ_dist(hue_of(left), h) < 1e-3
        assert torch.hypot(left[1], left[2]).item() == pytest.approx(0.2, abs=1e-5)
    red_orange = s.images[0, :, C, 0]
    assert red_orange[0] > red_orange[1] > red_orange[2]  # hue 0 is red-orange


def test_center_surround_opposite_hues():
    s = center_surround(SIZE, hues=(135.0,), radii=(5.0,))
    img = s.images[0]
    centre, surround = yiq(img[:, C, C]), yiq(img[:, 0, 0])
    torch.testing.assert_close(centre[1:], -surround[1:], atol=1e-5, rtol=0)
    assert circ_dist(hue_of(centre), 135.0) < 1e-3
    assert s.params[0]["disk_radius"] == 5.0


def test_default_saturation_in_gamut_for_all_hues():
    s = color_contrast(SIZE, hues=tuple(range(0, 360, 5)))
    _, clipped = Hue().apply_with_gamut(s.images, 0.0)
    assert (clipped == 0).all()


# --------------------------------------------------------------------------- registry, sets, errors


def test_get_stimulus():
    assert get_stimulus("edge") is edge
    with pytest.raises(KeyError, match="did you mean 'grating'.*valid"):
        get_stimulus("gratin")
    with pytest.raises(KeyError, match="'center_surround'"):
        get_stimulus("nope")


def test_stimulus_set_concat_cat_to():
    a, b = edge(SIZE), line(SIZE)
    ab = a.concat(b)
    assert len(ab) == len(a) + len(b) and ab.params[-1]["kind"] == "line"
    assert torch.equal(StimulusSet.cat([a, b]).images, ab.images)
    assert ab.to("cpu").images.device.type == "cpu"
    with pytest.raises(ValueError, match="different sizes"):
        a.concat(edge(21))
    with pytest.raises(ValueError, match="at least one"):
        StimulusSet.cat([])
    with pytest.raises(ValueError, match="one params dict per image"):
        StimulusSet(torch.zeros(2, 3, 4, 4), [{"kind": "x"}])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: grating(SIZE, frequencies=(0.6,)), r"frequencies.*0\.6"),
        (lambda: grating(0), "size"),
        (lambda: edge(SIZE, contrasts=(2.0,)), "contrasts"),
        (lambda: line(SIZE, widths=()), "non-empty"),
        (lambda: curve(SIZE, extents=(400.0,)), "extents"),
        (lambda: high_low(SIZE, frequencies=((0.25,),)), r"\(hi, lo\)"),
        (lambda: color_contrast(SIZE, saturation=-0.1), "saturation"),
        (lambda: edge(SIZE, center=(1.0,)), "center"),
        (lambda: edge(SIZE, radius=0.0), "radius"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_from_images():
    x = torch.rand(4, 3, 20, 24)
    s = from_images(x)
    assert torch.equal(s.images, x) and s.params[2] == {"kind": "image", "index": 2}
    r = from_images(x, size=SIZE)
    assert r.images.shape == (4, 3, SIZE, SIZE) and 0 <= r.images.min() and r.images.max() <= 1


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8), "uint8"),
        (torch.rand(2, 1, 8, 8), r"\[2, 1, 8, 8\]"),
        (torch.rand(3, 8, 8), r"\[3, 8, 8\]"),
        (torch.rand(2, 3, 8, 8) * 2, r"\[0, 1\].*range"),
        (torch.full((1, 3, 4, 4), float("nan")), "NaN"),
        ([[0.5]], "list"),
    ],
)
def test_from_images_errors(images, match):
    with pytest.raises(ValueError, match=match):
        from_images(images)


def test_photo_patches_deterministic():
    a = photo_patches(SIZE, n=6, seed=3)
    b = photo_patches(SIZE, n=6, seed=3)
    c = photo_patches(SIZE, n=6, seed=4)
    assert a.images.shape == (6, 3, SIZE, SIZE)
    assert torch.equal(a.images, b.images) and a.params == b.params
    assert not torch.equal(a.images, c.images)
    assert 0 <= a.images.min() and a.images.max() <= 1 and a.images.std() > 0.01
    assert all(p["kind"] == "photo" and p["photo"] in PHOTOS for p in a.params)
    with pytest.raises(ValueError, match="n must be"):
        photo_patches(SIZE, n=0)


# --------------------------------------------------------------------------- oriented colour stimuli, grey versions
from equifind.stimuli import achromatic_versions, color_bar  # noqa: E402


@pytest.mark.parametrize("h, d", [(0.0, 90.0), (45.0, 200.0)])
def test_hue_shift_of_color_bar_is_hue_parameter(h, d):
    shifted = Hue().apply(color_bar(SIZE, hues=(h,), orientations=(30.0,)).images, d)
    torch.testing.assert_close(shifted, color_bar(SIZE, hues=(h + d,), orientations=(30.0,)).images, atol=1e-5, rtol=0)


def test_color_contrast_turned_by_180_is_the_opposite_hue():
    turned = color_contrast(SIZE + 1, hues=(20.0,), orientations=(180.0,)).images  # odd size: the centre is a pixel
    opposite = color_contrast(SIZE + 1, hues=(200.0,)).images
    torch.testing.assert_close(turned, opposite, atol=1e-4, rtol=0)


def test_color_bar_is_vertical_at_0_and_horizontal_at_90():
    s = color_bar(SIZE + 1, hues=(0.0,), widths=(3.0,), orientations=(0.0, 90.0))
    c = SIZE // 2
    v, h = s.images[0], s.images[1]
    assert torch.allclose(v[:, 0, c], v[:, -1, c]) and not torch.allclose(v[:, c, 0], v[:, c, c])
    assert torch.allclose(h[:, c, 0], h[:, c, -1]) and not torch.allclose(h[:, 0, c], h[:, c, c])
    assert s.params[1] == {"kind": "color_bar", "hue": 0.0, "width": 3.0, "orientation": 90.0, "saturation": 0.2, "luma": 0.5}


def test_achromatic_versions_are_grey_with_the_hue_averaged_contrast():
    colour = torch.cat([color_contrast(SIZE, hues=(0.0,)).images, center_surround(SIZE, hues=(90.0,), radii=(5.0,)).images])
    grey = achromatic_versions(colour, n_hues=8)
    assert grey.shape == (4, 3, SIZE, SIZE)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])  # R = G = B
    torch.testing.assert_close(grey[2:], 1.0 - grey[:2])  # the two polarities
    rms = torch.stack([(Hue().apply(colour, float(h)) - 0.5).pow(2).sum(1) for h in range(0, 360, 45)]).mean(0).sqrt()
    torch.testing.assert_close((grey[:2] - 0.5).pow(2).sum(1).sqrt(), rms, atol=1e-4, rtol=0)
    dev = grey[0, 0] - 0.5  # the colour edge's two sides become its bright and dark sides
    assert float(dev[:, 0].mean()) * float(dev[:, -1].mean()) < 0


def test_achromatic_versions_bad_input():
    with pytest.raises(ValueError, match="n_hues"):
        achromatic_versions(torch.full((1, 3, 8, 8), 0.5), n_hues=2)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        achromatic_versions(torch.full((3, 8, 8), 0.5))
