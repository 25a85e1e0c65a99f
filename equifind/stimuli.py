"""Parametric synthetic stimuli, rendered as batches on a device.

Every generator renders the cartesian product of its parameter tuples (first
parameter slowest) as anti-aliased float images ``Tensor[N, 3, H, W]`` in
[0, 1] on a mid-grey 0.5 background, centred on ``center = (cy, cx)`` pixels
(default the image centre ``((H - 1) / 2, (W - 1) / 2)``), optionally inside a
soft circular aperture of ``radius`` pixels (:func:`~equifind.transforms.soft_aperture`).
Coordinates: ``x`` rightwards, ``y`` downwards, ``dx, dy`` measured from the
centre. Frequencies are in cycles per pixel, angles and phases in degrees.

Orientation 0 of each stimulus (rotate with ``equifind.transforms.Rotation``,
positive = counter-clockwise as displayed):
    * grating / gabor: vertical stripes, luminance ``cos(2 pi f dx + phase)``
      varying along x; phase 0 puts a bright stripe on the centre.
    * edge: vertical boundary through the centre; contrast +1 is dark on the
      left (-x), bright on the right (+x); -1 the reverse.
    * line: a vertical line through the centre; polarity +1 bright, -1 dark.
    * curve: an arc of a circle of radius r whose centre is at
      ``(cy, cx - r)``: the arc passes through the image centre with a
      vertical tangent there, bulging towards +x (a ")" shape, open to the
      left), and spans ``extent`` degrees of arc symmetric about the centre.
      Small extents / large radii are gentle curves; extents >= 180 with a
      small radius are hairpins, angle-like.
    * high_low: vertical stripes, frequency ``hi`` on the left, ``lo`` on the
      right of a vertical boundary through the centre.
    * color_contrast: colour of hue ``h`` on the left, the opposite hue
      ``h + 180`` on the right, equal luma, vertical boundary; ``orientation``
      rotates the boundary counter-clockwise (the left side stays on the
      boundary's left as it turns).
    * color_bar: a vertical bar of hue ``h`` on a surround of the opposite hue
      ``h + 180`` (equal luma; opponent, not on grey, so that the bar and its
      surround drive a colour-opponent unit the same way and the stimulus is
      its own hue-shifted copy); ``orientation`` rotates the bar
      counter-clockwise. A bar rotated by 180 degrees is the same bar.
    * center_surround: a disk of hue ``h`` and radius r in a surround of hue
      ``h + 180`` (rotation invariant).
    * circle: a ring of radius r (rotation invariant).

Hue is the angle in the YIQ chroma plane, the same convention as
``equifind.transforms.Hue``: a colour of hue ``h``, saturation ``s`` and luma
``Y`` is ``YIQ_TO_RGB @ (Y, s cos h, s sin h)``; so hue-rotating a stimulus
by ``d`` gives the stimulus of hue ``h + d``. At Y = 0.5: 0 red-orange,
45 pink, 90 violet, 135 blue, 180 cyan, 225 green, 270 yellow-green,
315 yellow. The default saturation 0.2 is in gamut for every hue at Y = 0.5
(the limit is about 0.246).
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .transforms import YIQ_TO_RGB, soft_aperture

__all__ = [
    "StimulusSet",
    "grating",
    "gabor",
    "edge",
    "line",
    "curve",
    "high_low",
    "color_contrast",
    "color_bar",
    "center_surround",
    "circle",
    "STIMULI",
    "get_stimulus",
    "from_images",
    "achromatic_versions",
    "photo_patches",
    "PHOTOS",
]

Size = int | tuple[int, int]
Center = tuple[float, float] | None
Device = torch.device | str | None

#: scikit-image photographs that ship with the package (no download).
PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket")


# --------------------------------------------------------------------------- the set


@dataclass
class StimulusSet:
    """A batch of stimuli and the parameters that made each one.

    Attributes:
        images: Tensor[N, 3, H, W], float RGB in [0, 1].
        params: one dict per image, always with ``"kind"`` (the generator).
    """

    images: Tensor
    params: list[dict[str, float | str]]

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape [N, 3, H, W], got {list(self.images.shape)}")
        if len(self.params) != self.images.shape[0]:
            raise ValueError(
                f"need one params dict per image: {self.images.shape[0]} images, {len(self.params)} dicts"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> StimulusSet:
        """The same set with images on ``device``."""
        return StimulusSet(self.images.to(device), list(self.params))

    def concat(self, other: StimulusSet) -> StimulusSet:
        """This set followed by ``other`` (same image size; moved to this device)."""
        return StimulusSet.cat([self, other])

    @staticmethod
    def cat(sets: Sequence[StimulusSet]) -> StimulusSet:
        """Concatenate sets of equal image size, on the first set's device.

        Args:
            sets: one or more StimulusSets.

        Returns:
            A StimulusSet with all images and params in order.

        Raises:
            ValueError: for no sets or sets of different image sizes.
        """
        if not sets:
            raise ValueError("StimulusSet.cat needs at least one set, got none")
        sizes = {tuple(s.images.shape[-2:]) for s in sets}
        if len(sizes) > 1:
            raise ValueError(f"cannot concatenate stimuli of different sizes (H, W): {sorted(sizes)}")
        device = sets[0].images.device
        images = torch.cat([s.images.to(device) for s in sets])
        return StimulusSet(images, [p for s in sets for p in s.params])


# --------------------------------------------------------------------------- helpers


def _size(size: Size) -> tuple[int, int]:
    """``size`` as ``(H, W)`` of positive ints."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ValueError(f"size must be a positive int or a pair (H, W) of positive ints, got {size!r}")
    return hw  # type: ignore[return-value]


def _coords(size: Size, center: Center, device: Device) -> tuple[Tensor, Tensor]:
    """Displacements from the centre, ``dy`` Tensor[H, 1] and ``dx`` Tensor[1, W]."""
    h, w = _size(size)
    if center is None:
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    else:
        try:
            cy, cx = (float(v) for v in center)
        except (TypeError, ValueError) as err:
            raise ValueError(f"center must be a pair (cy, cx) of floats in pixels, got {center!r}") from err
    dev = torch.device(device) if device is not None else torch.device("cpu")
    dy = torch.arange(h, device=dev, dtype=torch.float32)[:, None] - cy
    dx = torch.arange(w, device=dev, dtype=torch.float32)[None, :] - cx
    return dy, dx


def _product(names: Sequence[str], values: Sequence[Sequence[float]], device: torch.device) -> list[Tensor]:
    """The cartesian product of parameter tuples as Tensor[N, 1, 1] columns, first slowest."""
    for name, vals in zip(names, values):
        if len(vals) == 0:
            raise ValueError(f"{name} must be a non-empty tuple of values, got {vals!r}")
    grids = torch.meshgrid(
        *[torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1) for v in values], indexing="ij"
    )
    return [g.reshape(-1, 1, 1) for g in grids]


def _table(kind: str, names: Sequence[str], values: Sequence[Sequence[float]], **fixed: float) -> list[dict]:
    """One params dict per cartesian-product element, in the order of :func:`_product`."""
    return [
        {"kind": kind, **{n: float(v) for n, v in zip(names, combo)}, **fixed}
        for combo in itertools.product(*values)
    ]


def _check_range(name: str, values: Sequence[float], low: float, high: float, open_low: bool = True) -> None:
    for v in values:
        if not (low < v <= high if open_low else low <= v <= high):
            bracket = "(" if open_low else "["
            raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {v!r} in {tuple(values)!r}")


def _step(d: Tensor) -> Tensor:
    """Fraction of a 1-px-wide pixel at signed distance ``d`` on the positive side."""
    return (d + 0.5).clamp(0.0, 1.0)


def _band(d: Tensor, width: Tensor) -> Tensor:
    """Coverage of a 1-px pixel at distance ``d`` by a band of ``width`` centred at 0."""
    a = d.abs()
    half = 0.5 * width
    return (torch.minimum(a + 0.5, half) - torch.maximum(a - 0.5, -half)).clamp(0.0, 1.0)


def _grey(lum: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Luminance Tensor[N, H or 1, W or 1] -> grey images Tensor[N, 3, H, W] in [0, 1]."""
    h, w = dy.shape[0], dx.shape[1]
    return lum.clamp(0.0, 1.0).unsqueeze(1).expand(-1, 3, h, w).contiguous()


def _yiq_colour(luma: float, saturation: Tensor, hue_deg: Tensor) -> Tensor:
    """RGB of hue/saturation/luma, Tensor[N, 3, 1, 1] from Tensor[N, 1, 1] params."""
    rad = torch.deg2rad(hue_deg)
    yiq = torch.stack(
        [torch.full_like(rad, luma), saturation * torch.cos(rad), saturation * torch.sin(rad)], dim=1
    )  # [N, 3, 1, 1]
    m = YIQ_TO_RGB.to(device=rad.device, dtype=rad.dtype)
    return torch.einsum("ij,njhw->nihw", m, yiq)


def _finish(images: Tensor, params: list[dict], center: Center, radius: float | None) -> StimulusSet:
    """Clip to [0, 1], apply the optional aperture, and wrap."""
    images = images.clamp(0.0, 1.0)
    if radius is not None:
        images = soft_aperture(images, radius, center)
    return StimulusSet(images, params)


# --------------------------------------------------------------------------- luminance stimuli


def grating(
    size: Size,
    *,
    frequencies: Sequence[float] = (1 / 32, 1 / 16, 1 / 8, 1 / 4),
    phases: Sequence[float] = (0.0, 90.0, 180.0, 270.0),
    contrast: float = 1.0,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Sinusoidal gratings: vertical stripes, ``0.5 + 0.5 c cos(2 pi f dx + phase)``.

    Args:
        size: image side, or ``(H, W)``.
        frequencies: cycles per pixel, each in (0, 0.5].
        phases: degrees; 0 is a bright stripe through the centre.
        contrast: Michelson contrast in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None for none.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(frequencies) * len(phases)`` images
        Tensor[N, 3, H, W]; params keys kind, frequency, phase, contrast.

    Raises:
        ValueError: for out-of-range parameters, size or centre.
    """
    _check_range("frequencies", frequencies, 0.0, 0.5)
    _check_range("contrast", [contrast], 0.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    names, values = ("frequency", "phase"), (frequencies, phases)
    f, ph = _product(names, values, dx.device)
    lum = 0.5 + 0.5 * contrast * torch.cos(2 * math.pi * f * dx + torch.deg2rad(ph))
    return _finish(_grey(lum, dy, dx), _table("grating", names, values, contrast=contrast), center, radius)


def gabor(
    size: Size,
    *,
    frequencies: Sequence[float] = (1 / 16, 1 / 8, 1 / 4),
    phases: Sequence[float] = (0.0, 90.0, 180.0, 270.0),
    sigmas: Sequence[float] = (2.0, 4.0, 8.0),
    contrast: float = 1.0,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Gabor patches: a vertical-stripe grating under a Gaussian envelope.

    Luminance ``0.5 + 0.5 c exp(-r^2 / (2 sigma^2)) cos(2 pi f dx + phase)``.

    Args:
        size: image side, or ``(H, W)``.
        frequencies: cycles per pixel, each in (0, 0.5].
        phases: degrees; 0 is a bright bar through the centre.
        sigmas: envelope standard deviations in pixels, > 0.
        contrast: peak contrast in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(frequencies) * len(phases) * len(sigmas)``
        images; params keys kind, frequency, phase, sigma, contrast.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_range("frequencies", frequencies, 0.0, 0.5)
    _check_range("sigmas", sigmas, 0.0, math.inf)
    _check_range("contrast", [contrast], 0.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    names, values = ("frequency", "phase", "sigma"), (frequencies, phases, sigmas)
    f, ph, sig = _product(names, values, dx.device)
    envelope = torch.exp(-(dx**2 + dy**2) / (2 * sig**2))
    lum = 0.5 + 0.5 * contrast * envelope * torch.cos(2 * math.pi * f * dx + torch.deg2rad(ph))
    return _finish(_grey(lum, dy, dx), _table("gabor", names, values, contrast=contrast), center, radius)


def edge(
    size: Size,
    *,
    contrasts: Sequence[float] = (1.0, -1.0),
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Luminance edges: a vertical boundary through the centre.

    Contrast ``c > 0`` is dark (``0.5 - c/2``) on the left and bright
    (``0.5 + c/2``) on the right; ``c < 0`` the reverse.

    Args:
        size: image side, or ``(H, W)``.
        contrasts: each in [-1, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(contrasts)`` images; params keys kind, contrast.

    Raises:
        ValueError: for contrasts outside [-1, 1].
    """
    _check_range("contrasts", contrasts, -1.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    (c,) = _product(("contrast",), (contrasts,), dx.device)
    lum = 0.5 + 0.5 * c * (2 * _step(dx) - 1)
    return _finish(_grey(lum, dy, dx), _table("edge", ("contrast",), (contrasts,)), center, radius)


def line(
    size: Size,
    *,
    widths: Sequence[float] = (1.0, 2.0, 4.0),
    polarities: Sequence[float] = (1.0, -1.0),
    contrast: float = 1.0,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Lines: a vertical line through the centre, bright (+1) or dark (-1).

    Args:
        size: image side, or ``(H, W)``.
        widths: line widths in pixels, > 0.
        polarities: +1 bright on grey, -1 dark.
        contrast: in [0, 1]; the line is ``0.5 +- contrast / 2``.
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(widths) * len(polarities)`` images; params keys
        kind, width, polarity, contrast.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_range("widths", widths, 0.0, math.inf)
    _check_range("polarities", polarities, -1.0, 1.0, open_low=False)
    _check_range("contrast", [contrast], 0.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    names, values = ("width", "polarity"), (widths, polarities)
    w, pol = _product(names, values, dx.device)
    lum = 0.5 + 0.5 * contrast * pol * _band(dx, w)
    return _finish(_grey(lum, dy, dx), _table("line", names, values, contrast=contrast), center, radius)


def curve(
    size: Size,
    *,
    radii: Sequence[float] = (4.0, 8.0, 16.0, 32.0),
    widths: Sequence[float] = (1.0, 2.0),
    extents: Sequence[float] = (60.0, 120.0, 180.0, 270.0),
    polarities: Sequence[float] = (1.0,),
    contrast: float = 1.0,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Curves: arcs through the centre, bulging right (a ")" shape).

    The arc lies on the circle of radius ``r`` centred at ``(cy, cx - r)``,
    spans ``extent`` degrees symmetric about the image centre (where its
    tangent is vertical), and has flat anti-aliased ends.

    Args:
        size: image side, or ``(H, W)``.
        radii: arc radii in pixels (curvature 1/r), > 0.
        widths: stroke widths in pixels, > 0.
        extents: degrees of arc in (0, 360]; small = gentle, >= 180 with a
            small radius = hairpin / angle-like.
        polarities: +1 bright on grey, -1 dark.
        contrast: in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(radii) * len(widths) * len(extents) *
        len(polarities)`` images; params keys kind, curve_radius, width,
        extent, polarity, contrast.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_range("radii", radii, 0.0, math.inf)
    _check_range("widths", widths, 0.0, math.inf)
    _check_range("extents", extents, 0.0, 360.0)
    _check_range("polarities", polarities, -1.0, 1.0, open_low=False)
    _check_range("contrast", [contrast], 0.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    names = ("curve_radius", "width", "extent", "polarity")
    values = (radii, widths, extents, polarities)
    r, w, ext, pol = _product(names, values, dx.device)
    u = dx + r  # displacement from the arc's circle centre
    rho = torch.sqrt(u**2 + dy**2)
    phi = torch.atan2(dy, u).abs()  # angle from the arc's apex direction (+x), in [0, pi]
    beyond = r * (phi - torch.deg2rad(ext) / 2)  # arc length past the arc's end
    cap = torch.where(ext >= 360.0, torch.ones_like(beyond), _step(-beyond))
    lum = 0.5 + 0.5 * contrast * pol * _band(rho - r, w) * cap
    return _finish(_grey(lum, dy, dx), _table("curve", names, values, contrast=contrast), center, radius)


def high_low(
    size: Size,
    *,
    frequencies: Sequence[tuple[float, float]] = ((1 / 4, 1 / 16), (1 / 4, 1 / 32), (1 / 8, 1 / 32)),
    phases: Sequence[float] = (0.0, 180.0),
    contrast: float = 1.0,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """High-low frequency boundaries: fine stripes left, coarse stripes right.

    Both halves are vertical-stripe gratings ``cos(2 pi f dx + phase)``; the
    vertical boundary through the centre is a 1-px blend.

    Args:
        size: image side, or ``(H, W)``.
        frequencies: pairs ``(hi, lo)`` in cycles per pixel, each in
            (0, 0.5]; ``hi`` is drawn on the left.
        phases: degrees, shared by both halves.
        contrast: in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(frequencies) * len(phases)`` images; params keys
        kind, high, low, phase, contrast.

    Raises:
        ValueError: for malformed pairs or out-of-range values.
    """
    pairs = [tuple(p) for p in frequencies]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"frequencies must be a non-empty sequence of (hi, lo) pairs, got {frequencies!r}")
    _check_range("frequencies", [f for p in pairs for f in p], 0.0, 0.5)
    _check_range("contrast", [contrast], 0.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    index, ph = _product(("pair", "phase"), (range(len(pairs)), phases), dx.device)
    table = torch.tensor(pairs, dtype=torch.float32, device=dx.device)
    hi = table[index.long(), 0]
    lo = table[index.long(), 1]
    rad = torch.deg2rad(ph)
    right = _step(dx)
    wave = (1 - right) * torch.cos(2 * math.pi * hi * dx + rad) + right * torch.cos(2 * math.pi * lo * dx + rad)
    lum = 0.5 + 0.5 * contrast * wave
    params = [
        {"kind": "high_low", "high": float(p[0]), "low": float(p[1]), "phase": float(q), "contrast": contrast}
        for p, q in itertools.product(pairs, phases)
    ]
    return _finish(_grey(lum, dy, dx), params, center, radius)


def circle(
    size: Size,
    *,
    radii: Sequence[float] = (3.0, 6.0, 12.0),
    widths: Sequence[float] = (1.0, 2.0),
    polarities: Sequence[float] = (1.0, -1.0),
    contrast: float = 1.0,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Rings centred on the centre (rotation-invariant controls).

    Args:
        size: image side, or ``(H, W)``.
        radii: ring radii in pixels, > 0.
        widths: stroke widths in pixels, > 0.
        polarities: +1 bright on grey, -1 dark.
        contrast: in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(radii) * len(widths) * len(polarities)`` images;
        params keys kind, circle_radius, width, polarity, contrast.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_range("radii", radii, 0.0, math.inf)
    _check_range("widths", widths, 0.0, math.inf)
    _check_range("polarities", polarities, -1.0, 1.0, open_low=False)
    _check_range("contrast", [contrast], 0.0, 1.0, open_low=False)
    dy, dx = _coords(size, center, device)
    names, values = ("circle_radius", "width", "polarity"), (radii, widths, polarities)
    r, w, pol = _product(names, values, dx.device)
    rho = torch.sqrt(dx**2 + dy**2)
    lum = 0.5 + 0.5 * contrast * pol * _band(rho - r, w)
    return _finish(_grey(lum, dy, dx), _table("circle", names, values, contrast=contrast), center, radius)


# --------------------------------------------------------------------------- colour stimuli

_HUES: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)


def _check_colour(saturation: float, luma: float) -> None:
    _check_range("saturation", [saturation], 0.0, 1.0, open_low=False)
    _check_range("luma", [luma], 0.0, 1.0, open_low=False)


def _opponent(luma: float, saturation: float, hue: Tensor, which: Tensor) -> Tensor:
    """Images ``Tensor[N, 3, H, W]`` of two opponent colours at equal luma: hue ``hue`` (degrees,
    ``Tensor[N]``) where ``which`` (``Tensor[N or 1, 1, H, W]``) is +1, the opposite hue where it
    is −1, and blends in between (the YIQ chroma ``which · saturation · (cos h, sin h)``)."""
    colour = _yiq_colour(luma, torch.full_like(hue, saturation), hue)  # [N, 3, 1, 1]
    grey = _yiq_colour(luma, torch.zeros_like(hue), hue)
    return grey + which * (colour - grey)


def _across(dy: Tensor, dx: Tensor, orientation: Tensor) -> Tensor:
    """Signed distance Tensor[N, H, W] across a boundary through the centre, vertical at orientation 0.

    Orientation (degrees, Tensor[N, 1, 1]) turns the boundary counter-clockwise as displayed
    (x right, y up = -row): the distance grows along ``(cos o, sin o)`` in display coordinates.
    """
    o = torch.deg2rad(orientation)
    return dx * torch.cos(o) - dy * torch.sin(o)


def color_contrast(
    size: Size,
    *,
    hues: Sequence[float] = _HUES,
    orientations: Sequence[float] = (0.0,),
    saturation: float = 0.2,
    luma: float = 0.5,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Colour contrast: hue ``h`` on the left, the opposite hue on the right.

    Both sides have luma ``luma`` and YIQ chroma ``+-saturation * (cos h,
    sin h)``; the boundary through the centre is a 1-px blend, vertical at
    orientation 0 and turned counter-clockwise by ``orientation`` degrees
    (orientation 180 is the hue-180 stimulus). Values outside the RGB gamut
    are clipped.

    Args:
        size: image side, or ``(H, W)``.
        hues: degrees in the YIQ chroma plane (see the module docstring).
        orientations: boundary orientations in degrees (default vertical only).
        saturation: chroma radius in [0, 1]; <= 0.246 is in gamut for every
            hue at luma 0.5.
        luma: YIQ Y of both sides, in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(hues) * len(orientations)`` images (hue slowest);
        params keys kind, hue, orientation, saturation, luma.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_colour(saturation, luma)
    dy, dx = _coords(size, center, device)
    names, values = ("hue", "orientation"), (hues, orientations)
    h, o = _product(names, values, dx.device)
    side = (2 * _step(_across(dy, dx, o)) - 1).unsqueeze(1)  # -1 left, +1 right: [N, 1, H, W]
    images = _opponent(luma, saturation, h, -side)  # hue h on the left
    params = _table("color_contrast", names, values, saturation=saturation, luma=luma)
    return _finish(images, params, center, radius)


def color_bar(
    size: Size,
    *,
    hues: Sequence[float] = _HUES,
    widths: Sequence[float] = (3.0,),
    orientations: Sequence[float] = (0.0, 45.0, 90.0, 135.0),
    saturation: float = 0.2,
    luma: float = 0.5,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Colour bar: a bar of hue ``h`` through the centre on a surround of the opposite hue.

    Bar and surround have luma ``luma`` and YIQ chroma ``+-saturation * (cos h, sin h)``
    (anti-aliased edges); the bar is vertical at orientation 0 and turned
    counter-clockwise by ``orientation`` degrees. Hue-shifting the stimulus by ``d``
    gives the bar of hue ``h + d``.

    Args:
        size: image side, or ``(H, W)``.
        hues: degrees in the YIQ chroma plane.
        widths: bar widths in pixels, > 0.
        orientations: degrees; a bar and its 180°-turned copy are the same.
        saturation: chroma radius in [0, 1].
        luma: YIQ Y of bar and surround, in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None.
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(hues) * len(widths) * len(orientations)`` images (hue
        slowest); params keys kind, hue, width, orientation, saturation, luma.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_colour(saturation, luma)
    _check_range("widths", widths, 0.0, math.inf)
    dy, dx = _coords(size, center, device)
    names, values = ("hue", "width", "orientation"), (hues, widths, orientations)
    h, w, o = _product(names, values, dx.device)
    inside = _band(_across(dy, dx, o), w).unsqueeze(1)  # [N, 1, H, W]
    images = _opponent(luma, saturation, h, 2 * inside - 1)
    params = _table("color_bar", names, values, saturation=saturation, luma=luma)
    return _finish(images, params, center, radius)


def center_surround(
    size: Size,
    *,
    hues: Sequence[float] = _HUES,
    radii: Sequence[float] = (2.0, 4.0, 8.0),
    saturation: float = 0.2,
    luma: float = 0.5,
    center: Center = None,
    radius: float | None = None,
    device: Device = None,
) -> StimulusSet:
    """Colour centre-surround: a disk of hue ``h`` in a surround of hue ``h + 180``.

    Args:
        size: image side, or ``(H, W)``.
        hues: degrees in the YIQ chroma plane.
        radii: disk radii in pixels, > 0.
        saturation: chroma radius in [0, 1].
        luma: YIQ Y of disk and surround, in [0, 1].
        center: ``(cy, cx)`` pixels; default the image centre.
        radius: soft aperture radius in pixels, or None (surround fills the
            image).
        device: where to render; default CPU.

    Returns:
        StimulusSet of ``len(hues) * len(radii)`` images; params keys kind,
        hue, disk_radius, saturation, luma.

    Raises:
        ValueError: for out-of-range parameters.
    """
    _check_colour(saturation, luma)
    _check_range("radii", radii, 0.0, math.inf)
    dy, dx = _coords(size, center, device)
    names, values = ("hue", "disk_radius"), (hues, radii)
    h, r = _product(names, values, dx.device)
    inside = _step(r - torch.sqrt(dx**2 + dy**2)).unsqueeze(1)  # [N, 1, H, W]
    images = _opponent(luma, saturation, h, 2 * inside - 1)
    params = _table("center_surround", names, values, saturation=saturation, luma=luma)
    return _finish(images, params, center, radius)


# --------------------------------------------------------------------------- achromatic versions


def achromatic_versions(images: Tensor, *, n_hues: int = 8) -> Tensor:
    """Grey versions of colour stimuli with the same RGB contrast, on the network's own terms.

    "Achromatic" here is the grey axis R = G = B, not constant NTSC luma: a unit whose
    weights are equal over R, G, B (colour-blind) sees exactly the grey axis. Per pixel,
    the stimulus' deviation from mid-grey is ``c(x) = image − 0.5`` (RGB); its grey
    version is ``0.5 + sign(x) · a(x) · (1, 1, 1) / √3`` where

    * ``a(x)`` is the RMS over ``n_hues`` evenly spaced hue rotations of ``|c_h(x)|``
      (RGB norm; a YIQ hue rotation changes the RGB norm of a chroma vector, so the
      grey version matches the colour stimulus' contrast averaged over the hue circle
      the probe sweeps), and
    * ``sign(x)`` is the sign of ``c(x)``'s projection on the image's main chroma
      direction (the first principal direction of ``c`` over pixels): the two hues of a
      colour edge, bar or centre-surround become its bright and dark parts.

    A linear colour-blind unit (equal RGB weights ``m``) then answers a saturation-0.2
    colour stimulus with amplitude at most ``0.2 · |(ΣI, ΣQ)| · m ≈ 0.35 m`` (the column
    sums of ``YIQ_TO_RGB``) and its grey version with about ``√3 · a ≈ 0.6 m``: its
    colour index (:attr:`equifind.Responses.colour_index`) is about 0.37; an opponent
    unit (weights summing to 0 over R, G, B) does not answer the grey version at all.

    Args:
        images: Tensor[N, 3, H, W] in [0, 1] (grey background 0.5).
        n_hues: hue rotations for the RMS, >= 3.

    Returns:
        Tensor[2N, 3, H, W] in [0, 1], on the images' device: the N "+" versions, then
        the N "−" versions (``1 − +``); which polarity is "+" is arbitrary.

    Raises:
        ValueError: for images not [N, 3, H, W] or n_hues < 3.
    """
    from .transforms import Hue

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [N, 3, H, W], got {list(images.shape)}")
    if not isinstance(n_hues, int) or isinstance(n_hues, bool) or n_hues < 3:
        raise ValueError(f"n_hues must be an int >= 3, got {n_hues!r}")
    c = images.double() - 0.5
    rot = Hue.matrix(torch.arange(n_hues, dtype=torch.float64) * (360.0 / n_hues)).to(c.device)  # [K, 3, 3]
    norms = torch.stack([torch.einsum("ij,njhw->nihw", m, c).pow(2).sum(1) for m in rot])  # [K, N, H, W]
    a = norms.mean(0).sqrt()
    flat = c.flatten(2)  # [N, 3, P]
    direction = torch.linalg.eigh(flat @ flat.transpose(1, 2))[1][..., -1]  # [N, 3]
    sign = torch.sign(torch.einsum("ni,nihw->nhw", direction, c))
    grey = (sign * a / math.sqrt(3.0)).unsqueeze(1).expand(-1, 3, -1, -1)
    return torch.cat([0.5 + grey, 0.5 - grey]).clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------- registry

STIMULI: dict[str, Callable[..., StimulusSet]] = {
    "grating": grating,
    "gabor": gabor,
    "edge": edge,
    "line": line,
    "curve": curve,
    "high_low": high_low,
    "color_contrast": color_contrast,
    "color_bar": color_bar,
    "center_surround": center_surround,
    "circle": circle,
}


def get_stimulus(name: str) -> Callable[..., StimulusSet]:
    """A stimulus generator by name.

    Args:
        name: a key of :data:`STIMULI` (``photo_patches`` and
            ``from_images`` are separate: they need more than a size).

    Returns:
        The generator; call it as ``gen(size, **params)``.

    Raises:
        KeyError: for an unknown name, listing the valid names and the
            closest match.
    """
    if name not in STIMULI:
        near = difflib.get_close_matches(str(name), list(STIMULI), n=1, cutoff=0.4)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise KeyError(f"unknown stimulus {name!r}; {hint}valid: {', '.join(map(repr, STIMULI))}")
    return STIMULI[name]


# --------------------------------------------------------------------------- images


def from_images(images: Tensor, size: Size | None = None) -> StimulusSet:
    """Wrap user images as a StimulusSet, optionally resized.

    Args:
        images: Tensor[N, 3, H, W], float RGB in [0, 1].
        size: resize to this side or ``(H, W)`` (bilinear, antialiased); None
            keeps the size.

    Returns:
        StimulusSet; params ``{"kind": "image", "index": i}``.

    Raises:
        ValueError: for a non-tensor, a non-float dtype (e.g. uint8: divide
            by 255 first), a shape other than [N, 3, H, W], NaNs, or values
            outside [0, 1].
    """
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor[N, 3, H, W], got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float RGB in [0, 1], got dtype {images.dtype} (uint8? divide by 255)")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [N, 3, H, W] with 3 RGB channels, got {list(images.shape)}")
    if images.numel() and (torch.isnan(images).any() or images.min() < 0 or images.max() > 1):
        lo, hi = float(images.nan_to_num(0.5).min()), float(images.nan_to_num(0.5).max())
        nans = int(torch.isnan(images).sum())
        raise ValueError(f"images must lie in [0, 1] without NaNs, got range [{lo:g}, {hi:g}] and {nans} NaNs")
    if size is not None:
        hw = _size(size)
        images = F.interpolate(images, size=hw, mode="bilinear", align_corners=False, antialias=True)
        images = images.clamp(0.0, 1.0)
    return StimulusSet(images, [{"kind": "image", "index": i} for i in range(images.shape[0])])


@functools.lru_cache(maxsize=len(PHOTOS))
def _load_photo(name: str) -> Tensor:
    """A bundled scikit-image photograph as Tensor[3, H, W] float in [0, 1] (CPU; cached, read-only)."""
    import skimage.data  # lazy: only this function needs scikit-image

    array = getattr(skimage.data, name)()
    return torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1).float() / 255.0


def photo_patches(
    size: Size,
    *,
    n: int,
    seed: int = 0,
    scales: Sequence[float] = (1.5, 3.0, 6.0),
    device: Device = None,
) -> StimulusSet:
    """Random square crops of scikit-image's bundled photographs.

    Each patch picks a photo from :data:`PHOTOS`, a scale ``m`` (the photo is
    resized, antialiased, so that its short side is ``m`` patches long,
    i.e. a patch covers ``1/m`` of it) and a position, with a seeded
    ``torch.Generator``; the same seed gives the same patches on any device.

    Args:
        size: patch side, or ``(H, W)``.
        n: number of patches, >= 1.
        seed: random seed.
        scales: photo short side in patch sides, each >= 1.
        device: where to return the images; default CPU.

    Returns:
        StimulusSet of ``n`` images; params keys kind, photo, scale, y, x
        (top-left corner in the resized photo).

    Raises:
        ValueError: for ``n < 1`` or scales < 1.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not scales or any(not (m >= 1) for m in scales):
        raise ValueError(f"scales must be a non-empty tuple of values >= 1, got {scales!r}")
    h, w = _size(size)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(int(seed))
    photo_idx = torch.randint(len(PHOTOS), (n,), generator=gen)
    scale_idx = torch.randint(len(scales), (n,), generator=gen)
    uy, ux = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    out = torch.empty(n, 3, h, w, device=dev)
    params: list[dict[str, float | str]] = [{} for _ in range(n)]
    for p, name in enumerate(PHOTOS):  # few photos x few scales: one vectorised crop per group
        chosen = photo_idx == p
        if not bool(chosen.any()):
            continue
        photo = _load_photo(name).to(dev)
        ph, pw = photo.shape[-2:]
        for s, m in enumerate(scales):
            members = (chosen & (scale_idx == s)).nonzero().flatten()
            if members.numel() == 0:
                continue
            factor = max(m * max(h, w) / min(ph, pw), max(h / ph, w / pw))
            rh, rw = max(h, round(ph * factor)), max(w, round(pw * factor))
            level = F.interpolate(photo[None], size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)[0]
            y0 = (uy[members] * (rh - h + 1)).long().clamp(max=rh - h)
            x0 = (ux[members] * (rw - w + 1)).long().clamp(max=rw - w)
            rows = (y0[:, None] + torch.arange(h)).to(dev)  # [k, h]
            cols = (x0[:, None] + torch.arange(w)).to(dev)  # [k, w]
            crops = level[:, rows[:, :, None], cols[:, None, :]]  # [3, k, h, w]
            out[members.to(dev)] = crops.permute(1, 0, 2, 3).clamp(0.0, 1.0)
            for i, yy, xx in zip(members.tolist(), y0.tolist(), x0.tolist()):
                params[i] = {"kind": "photo", "photo": name, "scale": float(m), "y": yy, "x": xx}
    return StimulusSet(out, params)
