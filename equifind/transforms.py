"""Group actions on image batches: rotation, hue, flip, scale, hue x rotation.

Images are float ``Tensor[N, 3, H, W]``, RGB in [0, 1]. Every transform acts
on the whole batch at once, on the images' device, with one parameter per
image (a scalar broadcasts).

Conventions:
    * Pixel coordinates: row ``y`` downwards, column ``x`` rightwards; the
      centre ``(cy, cx)`` is in pixels (floats) and defaults to the image
      centre ``((H - 1) / 2, (W - 1) / 2)``; pixel ``(i, j)`` has its centre at
      ``y = i, x = j``.
    * Rotation: a positive angle (degrees) turns the content
      **counter-clockwise as displayed** (row 0 at the top): a dot right of
      the centre moves above it under +90. Same as ``torch.rot90(x, k=1,
      dims=(-2, -1))`` for +90 about the centre.
    * Hue: a rotation by ``theta`` degrees of the chroma plane (I, Q) of the
      NTSC YIQ colour space about the grey axis, ``M(theta) = YIQ_TO_RGB @
      R(theta) @ RGB_TO_YIQ``. A colour of hue ``h`` has chroma
      ``s * (cos h, sin h)`` in (I, Q); ``M(theta)`` maps hue ``h`` to
      ``h + theta``. At luma 0.5: 0 red-orange, 45 pink, 90 violet, 135 blue,
      180 cyan, 225 green, 270 yellow-green, 315 yellow. Luma Y and greys
      are unchanged; results outside [0, 1] are clipped.
    * Flip: horizontal mirror about the column ``cx``; parameter 0 or 1.
    * Scale: zoom about the centre by ``s > 0``; ``s > 1`` enlarges content.
    * Resampling is bilinear (``F.affine_grid`` / ``F.grid_sample`` with
      ``align_corners=True``); content from outside the image is mid-grey 0.5.
      Transforms that map pixel centres onto pixel centres (rotations by
      multiples of 90 about a pixel-symmetric centre, flips, identity) are
      sampled with nearest neighbour by ``apply``, so they are exact pixel
      permutations; ``apply_grid`` (every image under every parameter, the
      probe's batched path) samples bilinearly throughout.
"""

from __future__ import annotations

import abc
import difflib
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Transform",
    "Rotation",
    "Hue",
    "Flip",
    "Scale",
    "HueRotation",
    "TRANSFORMS",
    "get_transform",
    "soft_aperture",
    "RGB_TO_YIQ",
    "YIQ_TO_RGB",
]

Params = float | Tensor
Center = tuple[float, float] | None

#: NTSC RGB -> YIQ matrix (rows Y, I, Q), float64, Tensor[3, 3].
RGB_TO_YIQ: Tensor = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
#: Exact inverse of :data:`RGB_TO_YIQ`, float64, Tensor[3, 3].
YIQ_TO_RGB: Tensor = torch.linalg.inv(RGB_TO_YIQ)

_SNAP_TOL = 1e-9  # maps this close to integer ones count as pixel permutations


# --------------------------------------------------------------------------- checks


def _check_images(images: Tensor) -> None:
    """Raise ValueError unless ``images`` is a float Tensor[N, 3, H, W]."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor[N, 3, H, W], got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [N, 3, H, W], got {list(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a float tensor in [0, 1], got dtype {images.dtype}")


def _resolve_center(center: Center, height: int, width: int) -> tuple[float, float]:
    """The centre ``(cy, cx)`` in pixels; the image centre when ``center`` is None."""
    if center is None:
        return ((height - 1) / 2.0, (width - 1) / 2.0)
    try:
        cy, cx = (float(v) for v in center)
    except (TypeError, ValueError) as err:
        raise ValueError(f"center must be a pair (cy, cx) of floats in pixels, got {center!r}") from err
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise ValueError(f"center must be finite, got {center!r}")
    return cy, cx


def _params_1d(params: Params, n: int, images: Tensor, name: str) -> Tensor:
    """One parameter per image: Tensor[n] (float64) on the images' device."""
    p = _as_float64(params, images, name)
    if p.dim() == 0:
        p = p.expand(n)
    elif p.shape != (n,):
        raise ValueError(
            f"{name} params must be a float or a Tensor[N] with N={n} (one per image), "
            f"got shape {list(p.shape)}"
        )
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} params must be finite, got {_show(p)}")
    return p


def _as_float64(params: object, images: Tensor, name: str) -> Tensor:
    """``params`` as a float64 tensor on the images' device."""
    try:
        return torch.as_tensor(params, dtype=torch.float64, device=images.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} params must be a float or a tensor of floats, got {params!r}") from err


def _show(values: Tensor, limit: int = 8) -> str:
    """A short text of a tensor's values for error messages."""
    flat = values.flatten().tolist()
    more = f", ... ({len(flat)} values)" if len(flat) > limit else ""
    return "[" + ", ".join(f"{v:g}" for v in flat[:limit]) + more + "]"


def _wrap(x: Params, period: float) -> Params:
    """``x`` modulo ``period`` in [0, period) for floats and tensors."""
    r = x % period
    if isinstance(r, Tensor):
        return torch.where(r >= period, r - period, r)
    return r - period if r >= period else r


# --------------------------------------------------------------------------- aperture


def _positive_float(value: object, what: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else ValueError."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a number of pixels, got {value!r}") from err
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be finite and {bound} pixels, got {value!r}")
    return v


def soft_aperture(
    images: Tensor,
    radius: float,
    center: Center = None,
    background: float = 0.5,
    falloff: float = 2.0,
) -> Tensor:
    """Blend images to a uniform background outside a soft circular disk.

    The weight is 1 up to ``radius - falloff`` pixels from the centre, falls
    to 0 along a half cosine, and is 0 from ``radius`` outwards, so pixels at
    distance >= ``radius`` are exactly ``background`` and pixels within
    ``radius - falloff`` are exactly unchanged.

    Args:
        images: Tensor[N, 3, H, W], float.
        radius: disk radius in pixels, > 0.
        center: ``(cy, cx)`` in pixels; default the image centre.
        background: value outside the disk (mid-grey 0.5).
        falloff: width in pixels of the cosine ramp, >= 0 (0: hard edge).

    Returns:
        Tensor[N, 3, H, W] on the images' device.

    Raises:
        ValueError: for images that are not float [N, 3, H, W], or a radius
            <= 0, or a negative falloff.
    """
    _check_images(images)
    weight = _aperture_weight(images, radius, center, falloff)
    return images * weight + background * (1.0 - weight)


def _aperture_weight(images: Tensor, radius: float, center: Center, falloff: float = 2.0) -> Tensor:
    """The soft disk of :func:`soft_aperture`, Tensor[H, W] in the images' dtype and device."""
    radius = _positive_float(radius, "aperture radius")
    falloff = _positive_float(falloff, "aperture falloff", allow_zero=True)
    h, w = images.shape[-2:]
    cy, cx = _resolve_center(center, h, w)
    ys = torch.arange(h, device=images.device, dtype=torch.float64) - cy
    xs = torch.arange(w, device=images.device, dtype=torch.float64) - cx
    dist = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    if falloff == 0:
        weight = (dist < radius).to(torch.float64)
    else:
        t = ((dist - (radius - falloff)) / falloff).clamp(0.0, 1.0)
        weight = 0.5 * (1.0 + torch.cos(math.pi * t))
    return weight.to(images.dtype)


# --------------------------------------------------------------------------- resampling


def _is_pixel_permutation(matrices: Tensor, cy: float, cx: float) -> Tensor:
    """Whether each map sends pixel centres exactly onto pixel centres, Tensor[N] bool.

    ``p -> c + A (p - c)`` does so iff ``A`` is an integer matrix and the
    offset ``c - A c`` is an integer vector.
    """
    centre = torch.tensor([cx, cy], dtype=torch.float64, device=matrices.device)
    offset = centre - matrices @ centre  # [N, 2]
    values = torch.cat([matrices.flatten(1), offset], dim=1)
    return ((values - values.round()).abs() < _SNAP_TOL).all(dim=1)


def _sampling_grids(images: Tensor, matrices: Tensor, center: Center) -> Tensor:
    """``F.grid_sample`` grids (align_corners=True) sampling at ``c + A (p - c)``.

    Args:
        images: Tensor[N, 3, H, W] (for the size, dtype and device).
        matrices: Tensor[M, 2, 2] float64, ``A`` acting on ``(x, y)`` pixel
            displacements (output -> input).
        center: ``(cy, cx)`` or None.

    Returns:
        Tensor[M, H, W, 2] in the images' dtype.
    """
    h, w = images.shape[-2:]
    cy, cx = _resolve_center(center, h, w)
    a = matrices.to(device=images.device, dtype=torch.float64)
    # Normalised coordinates (align_corners=True): p = D (q + 1), D = diag((W-1)/2, (H-1)/2).
    d = torch.tensor([max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0], dtype=torch.float64, device=images.device)
    c = torch.tensor([cx, cy], dtype=torch.float64, device=images.device)
    linear = a * d[None, None, :] / d[None, :, None]  # D^-1 A D
    shift = (c + (a @ (d - c)[:, None]).squeeze(-1)) / d - 1.0  # D^-1 (c + A (D 1 - c)) - 1
    theta = torch.cat([linear, shift[:, :, None]], dim=2)
    return F.affine_grid(theta, [a.shape[0], 3, h, w], align_corners=True).to(images.dtype)


def _resample(images: Tensor, matrices: Tensor, center: Center) -> Tensor:
    """Sample ``images`` at ``c + A (p - c)`` for each output pixel ``p``.

    Maps that permute pixel centres are sampled with nearest neighbour
    (exact); the others bilinearly.

    Args:
        images: Tensor[N, 3, H, W].
        matrices: Tensor[N, 2, 2] float64, ``A`` acting on ``(x, y)`` pixel
            displacements (output -> input).
        center: ``(cy, cx)`` or None.

    Returns:
        Tensor[N, 3, H, W]; content from outside the image is mid-grey 0.5.
    """
    cy, cx = _resolve_center(center, *images.shape[-2:])
    grid = _sampling_grids(images, matrices, center)
    centred = images - 0.5
    exact = _is_pixel_permutation(matrices.to(device=images.device, dtype=torch.float64), cy, cx)
    out = torch.empty_like(images)
    for mode, chosen in (("nearest", exact), ("bilinear", ~exact)):
        if bool(chosen.all()):
            out = F.grid_sample(centred, grid, mode=mode, padding_mode="zeros", align_corners=True)
        elif bool(chosen.any()):
            out[chosen] = F.grid_sample(
                centred[chosen], grid[chosen], mode=mode, padding_mode="zeros", align_corners=True
            )
    return out + 0.5


def _check_downsample(images: Tensor, factor: object) -> int:
    """``factor`` as an int >= 1 that divides the images' height and width, else ValueError."""
    h, w = images.shape[-2:]
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1 or h % factor or w % factor:
        raise ValueError(f"downsample must be a positive int dividing the image size {h}x{w}, got {factor!r}")
    return factor


def _rotation_matrices(degrees: Tensor) -> Tensor:
    """Output -> input maps, Tensor[N, 2, 2] float64, for CCW-as-displayed rotations."""
    rad = torch.deg2rad(degrees.to(torch.float64))
    c, s = torch.cos(rad), torch.sin(rad)
    # Make multiples of 90 degrees exact (cos 90 is 6e-17 in floating point).
    c = torch.where(c.abs() < 1e-12, torch.zeros_like(c), c)
    s = torch.where(s.abs() < 1e-12, torch.zeros_like(s), s)
    # With y downwards, CCW on screen sends displacement (x, y) to
    # (x c + y s, -x s + y c); the sampler needs the inverse.
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


# --------------------------------------------------------------------------- base class


class Transform(abc.ABC):
    """A group acting on image batches.

    Attributes:
        name: registry name, e.g. ``"rotation"``.
        period: the parameter period (``math.inf`` for scale).
        identity: the identity parameter.
        param_shape: the shape of one parameter (``()``; HueRotation ``(2,)``).
    """

    name: ClassVar[str]
    period: ClassVar[float]
    identity: ClassVar[float]
    param_shape: ClassVar[tuple[int, ...]] = ()  # the shape of one parameter

    def apply(
        self,
        images: Tensor,
        params: Params,
        *,
        center: Center = None,
        aperture: float | None = None,
    ) -> Tensor:
        """Transform each image by its parameter.

        Args:
            images: Tensor[N, 3, H, W], float RGB in [0, 1].
            params: a float (broadcast) or Tensor[N], one per image
                (HueRotation: Tensor[N, 2] or a pair).
            center: ``(cy, cx)`` in pixels; default the image centre.
            aperture: None, or a radius in pixels: the result is blended to
                mid-grey outside a soft disk of that radius (see
                :func:`soft_aperture`).

        Returns:
            Tensor[N, 3, H, W] on the images' device and dtype.

        Raises:
            ValueError: for images that are not float [N, 3, H, W], params of
                the wrong shape or out of range, or a bad centre/aperture.
        """
        _check_images(images)
        out = self._apply(images, self._params(params, images.shape[0], images), center)
        if aperture is not None:
            out = soft_aperture(out, aperture, center)
        return out

    def apply_grid(
        self,
        images: Tensor,
        params: Tensor,
        *,
        center: Center = None,
        aperture: float | None = None,
        downsample: int = 1,
    ) -> Tensor:
        """Transform every image by every parameter (the probe's inner loop).

        ``out[i, j]`` is ``apply(images[i:i+1], params[j], ...)``, then
        area-averaged by ``downsample`` (for stimuli rendered at a multiple
        of the size they are shown at).

        Args:
            images: Tensor[N, 3, H, W], float RGB in [0, 1].
            params: Tensor[S] (HueRotation: Tensor[S, 2]), e.g. ``grid(S)``.
            center: ``(cy, cx)`` in pixels; default the image centre.
            aperture: None, or a soft-aperture radius in pixels applied after
                the transform (before downsampling).
            downsample: an int >= 1 dividing H and W.

        Returns:
            Tensor[N, S, 3, H // downsample, W // downsample].
            Transforms that move pixels sample bilinearly here, also where a
            map sends pixel centres onto pixel centres (90° rotations, flips),
            which :meth:`apply` samples exactly: the two agree up to float32
            rounding of the grid coordinates (about 1e-5).

        Raises:
            ValueError: for bad images, params, centre, aperture or downsample.
        """
        _check_images(images)
        k = _check_downsample(images, downsample)
        return self._apply_grid(images, self._grid_params(params, images), center, aperture, k)

    def _apply_grid(self, images: Tensor, p: Tensor, center: Center, aperture: float | None, k: int) -> Tensor:
        """:meth:`apply_grid` on validated input: here one :meth:`apply` on every (image, param) pair."""
        n, s = images.shape[0], p.shape[0]
        every = images.repeat_interleave(s, dim=0)  # [N * S, 3, H, W], image-major
        out = self.apply(every, p.repeat(n, *[1] * (p.dim() - 1)), center=center, aperture=aperture)
        if k > 1:
            out = F.avg_pool2d(out, k)
        return out.view(n, s, *out.shape[1:])

    def _grid_params(self, params: Tensor, images: Tensor) -> Tensor:
        """Validate a parameter grid into Tensor[S, *param_shape] float64 on the images' device."""
        p = _as_float64(params, images, self.name)
        if p.dim() != 1 + len(self.param_shape) or p.shape[0] < 1 or tuple(p.shape[1:]) != self.param_shape:
            want = ", ".join(["S", *map(str, self.param_shape)])
            raise ValueError(f"{self.name} grid params must be a Tensor[{want}] with S >= 1, got shape {list(p.shape)}")
        return self._params(p, p.shape[0], images)

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        """Validate ``params`` into Tensor[n] float64 on the device of ``like``."""
        return _params_1d(params, n, like, self.name)

    @abc.abstractmethod
    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        """Transform validated images by validated params."""

    @abc.abstractmethod
    def grid(self, n: int) -> Tensor:
        """``n`` parameters spanning one period, endpoint excluded.

        Args:
            n: number of steps, >= 1.

        Returns:
            Tensor[n] (HueRotation: Tensor[n * n, 2]).

        Raises:
            ValueError: if ``n < 1``.
        """

    @abc.abstractmethod
    def compose(self, a: Params, b: Params) -> Params:
        """The parameter of "apply ``b``, then ``a``" (vectorised over tensors)."""

    @abc.abstractmethod
    def inverse(self, a: Params) -> Params:
        """The parameter that undoes ``a`` (vectorised over tensors)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_steps(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"grid needs an integer number of steps n >= 1, got {n!r}")


def _circle_grid(n: int, period: float) -> Tensor:
    _check_steps(n)
    return torch.arange(n, dtype=torch.float64).mul(period / n).to(torch.get_default_dtype())


class _Resampling(Transform):
    """A group acting by moving pixels: ``out(p) = in(c + A (p - c))``."""

    @abc.abstractmethod
    def _matrices(self, params: Tensor) -> Tensor:
        """The output -> input maps ``A`` of validated params, Tensor[N, 2, 2] float64."""

    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        return _resample(images, self._matrices(params), center)

    def _apply_grid(self, images: Tensor, p: Tensor, center: Center, aperture: float | None, k: int) -> Tensor:
        """One ``grid_sample`` for all images and params.

        The S sampling grids are built once and stacked into one tall grid
        that every image shares, so no image is copied S times.
        """
        n, s, (h, w) = images.shape[0], p.shape[0], images.shape[-2:]
        grids = _sampling_grids(images, self._matrices(p), center)  # [S, H, W, 2]
        tall = grids.reshape(1, s * h, w, 2).expand(n, -1, -1, -1)
        # Mid-grey is 0 after centring, so zero padding brings in grey.
        out = F.grid_sample(images - 0.5, tall, mode="bilinear", padding_mode="zeros", align_corners=True)
        out = out.view(n, 3, s, h, w)  # the channels of every image under every param
        if aperture is not None:
            out = out * _aperture_weight(images, aperture, center)
        if k > 1:
            out = F.avg_pool2d(out.view(n, 3 * s, h, w), k).view(n, 3, s, h // k, w // k)
        result = images.new_empty(n, s, 3, h // k, w // k)
        return torch.add(out.transpose(1, 2), 0.5, out=result)


# --------------------------------------------------------------------------- concrete groups


class _Circular(Transform):
    """A group of angles in degrees, added modulo 360 (rotation, hue)."""

    period = 360.0
    identity = 0.0

    def grid(self, n: int) -> Tensor:
        return _circle_grid(n, 360.0)

    def compose(self, a: Params, b: Params) -> Params:
        return _wrap(a + b, 360.0)

    def inverse(self, a: Params) -> Params:
        return _wrap(-a, 360.0)


class Rotation(_Resampling, _Circular):
    """Rotation by an angle in degrees, counter-clockwise as displayed."""

    name = "rotation"

    def _matrices(self, params: Tensor) -> Tensor:
        return _rotation_matrices(params)


class Hue(_Circular):
    """Rotation of the YIQ chroma plane about the grey axis, in degrees."""

    name = "hue"

    @staticmethod
    def matrix(degrees: Params) -> Tensor:
        """The linear map on RGB for a hue rotation.

        Args:
            degrees: a float, or Tensor[N].

        Returns:
            Tensor[3, 3] (or Tensor[N, 3, 3]) float64, acting on column RGB
            vectors: ``rgb_out = M @ rgb``.
        """
        theta = torch.deg2rad(torch.as_tensor(degrees, dtype=torch.float64))
        c, s = torch.cos(theta), torch.sin(theta)
        one, zero = torch.ones_like(c), torch.zeros_like(c)
        rot = torch.stack(
            [
                torch.stack([one, zero, zero], -1),
                torch.stack([zero, c, -s], -1),
                torch.stack([zero, s, c], -1),
            ],
            -2,
        )
        return YIQ_TO_RGB.to(rot.device) @ rot @ RGB_TO_YIQ.to(rot.device)

    def _unclipped(self, images: Tensor, params: Tensor) -> Tensor:
        m = self.matrix(params).to(images.dtype)
        return torch.einsum("nij,njhw->nihw", m, images)

    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        return self._unclipped(images, params).clamp(0.0, 1.0)

    def apply_with_gamut(self, images: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        """Hue-rotate and report how much had to be clipped.

        Args:
            images: Tensor[N, 3, H, W], float RGB in [0, 1].
            params: a float or Tensor[N] of degrees.

        Returns:
            ``(out, clipped)``: out Tensor[N, 3, H, W] clipped to [0, 1];
            clipped Tensor[N], the fraction of values (over channels and
            pixels) that were outside [0, 1] by more than 1e-6 before clipping.

        Raises:
            ValueError: for bad images or params.
        """
        _check_images(images)
        raw = self._unclipped(images, self._params(params, images.shape[0], images))
        outside = (raw < -1e-6) | (raw > 1.0 + 1e-6)
        return raw.clamp(0.0, 1.0), outside.flatten(1).to(images.dtype).mean(dim=1)


class Flip(_Resampling):
    """Horizontal mirror about the column ``cx``; parameter 0 (keep) or 1 (flip)."""

    name = "flip"
    period = 2.0
    identity = 0.0

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        p = super()._params(params, n, like)
        if not ((p == 0) | (p == 1)).all():
            raise ValueError(f"flip params must be 0 or 1, got {_show(p)}")
        return p

    def _matrices(self, params: Tensor) -> Tensor:
        sign = 1.0 - 2.0 * params  # 1 keep, -1 mirror
        zero = torch.zeros_like(sign)
        return torch.stack([torch.stack([sign, zero], -1), torch.stack([zero, torch.ones_like(sign)], -1)], -2)

    def grid(self, n: int) -> Tensor:
        """Always ``tensor([0., 1.])`` (the group has two elements).

        Args:
            n: requested steps, >= 1 (ignored beyond validation).

        Returns:
            Tensor[2].

        Raises:
            ValueError: if ``n < 1``.
        """
        _check_steps(n)
        return torch.tensor([0.0, 1.0])

    def compose(self, a: Params, b: Params) -> Params:
        return (a + b) % 2

    def inverse(self, a: Params) -> Params:
        return a


class Scale(_Resampling):
    """Zoom about the centre by a factor ``s > 0``; ``s > 1`` enlarges content."""

    name = "scale"
    period = math.inf
    identity = 1.0

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        p = super()._params(params, n, like)
        if not (p > 0).all():
            raise ValueError(f"scale params must be factors > 0, got {_show(p)}")
        return p

    def _matrices(self, params: Tensor) -> Tensor:
        inv = 1.0 / params
        zero = torch.zeros_like(inv)
        return torch.stack([torch.stack([inv, zero], -1), torch.stack([zero, inv], -1)], -2)

    def grid(self, n: int) -> Tensor:
        """``n`` factors log-spaced from 0.5 to 2 inclusive (``[1.0]`` for n = 1).

        Args:
            n: number of steps, >= 1.

        Returns:
            Tensor[n].

        Raises:
            ValueError: if ``n < 1``.
        """
        _check_steps(n)
        if n == 1:
            return torch.tensor([1.0])
        return torch.logspace(-1.0, 1.0, n, base=2.0, dtype=torch.float64).to(torch.get_default_dtype())

    def compose(self, a: Params, b: Params) -> Params:
        return a * b

    def inverse(self, a: Params) -> Params:
        return 1.0 / a


class HueRotation(Transform):
    """Hue shift, then rotation; params ``(hue_deg, angle_deg)`` per image."""

    name = "hue_rotation"
    period = 360.0
    identity: ClassVar[tuple[float, float]] = (0.0, 0.0)  # type: ignore[assignment]
    param_shape = (2,)

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        p = _as_float64(params, like, self.name)
        if p.shape == (2,):
            p = p.expand(n, 2)
        elif p.shape != (n, 2):
            raise ValueError(
                f"hue_rotation params must be a pair (hue_deg, angle_deg) or a Tensor[N, 2] "
                f"with N={n}, got shape {list(p.shape)}"
            )
        if not torch.isfinite(p).all():
            raise ValueError(f"hue_rotation params must be finite, got {_show(p)}")
        return p

    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        hued = Hue()._apply(images, params[:, 0], center)
        return Rotation()._apply(hued, params[:, 1], center)

    def grid(self, n: int) -> Tensor:
        """The ``n x n`` grid of (hue, angle), hue-major.

        Args:
            n: steps per component, >= 1.

        Returns:
            Tensor[n * n, 2]: row ``i * n + j`` is ``(360 i / n, 360 j / n)``.

        Raises:
            ValueError: if ``n < 1``.
        """
        steps = _circle_grid(n, 360.0)
        hue, angle = torch.meshgrid(steps, steps, indexing="ij")
        return torch.stack([hue.reshape(-1), angle.reshape(-1)], dim=-1)

    def compose(self, a: Params, b: Params) -> Params:
        return _wrap(torch.as_tensor(a, dtype=torch.float64) + torch.as_tensor(b, dtype=torch.float64), 360.0)

    def inverse(self, a: Params) -> Params:
        return _wrap(-torch.as_tensor(a, dtype=torch.float64), 360.0)


# --------------------------------------------------------------------------- registry

TRANSFORMS: dict[str, type[Transform]] = {
    cls.name: cls for cls in (Rotation, Hue, Flip, Scale, HueRotation)
}


def get_transform(name: str | Transform) -> Transform:
    """A transform by name (an instance passes through).

    Args:
        name: one of ``"rotation"``, ``"hue"``, ``"flip"``, ``"scale"``,
            ``"hue_rotation"``, or a :class:`Transform` instance.

    Returns:
        A :class:`Transform` instance.

    Raises:
        KeyError: for an unknown name, listing the valid names and the
            closest match.
    """
    if isinstance(name, Transform):
        return name
    if name not in TRANSFORMS:
        near = difflib.get_close_matches(str(name), list(TRANSFORMS), n=1, cutoff=0.4)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise KeyError(f"unknown transform {name!r}; {hint}valid: {', '.join(map(repr, TRANSFORMS))}")
    return TRANSFORMS[name]()
