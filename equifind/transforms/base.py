"""The base class of a transform: everything equifind knows about one group.

A :class:`Transform` is the one place that says what a transform is. The probe
moves pixels with it (:meth:`Transform.apply_grid`), discovery reads its period
and how its families are found (:attr:`Transform.discovery`), circuits move
kernels with it (:meth:`Transform.apply_kernels`), the report labels axes and
parameters with it (:attr:`Transform.axis_label`, :meth:`Transform.format_param`).
No code outside :mod:`equifind.transforms` branches on a transform's name; to add
a transform, subclass :class:`Transform` in a new module and register it (see
``docs/architecture.md``, "Adding a transform").

Instances carry no state: two instances of one class are equal, and a transform
equals its registry name (``Rotation() == "rotation"``), so a ``Responses``'
transform reads as the name it was saved under.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import Center, Params, as_float64, check_downsample, check_images, params_1d
from .aperture import aperture_weight, soft_aperture
from .resample import resample_images, sampling_grids

if TYPE_CHECKING:
    from ..stimuli import StimulusSet

__all__ = ["Transform", "PixelTransform", "Discovery"]

#: How :func:`~equifind.find_families` finds a transform's families: "circle" (tuning curves
#: compared under circular shifts, FFT), "pair" (mirror pairs of a two-element group),
#: "line" (shifts along a parameter axis without wrap-around: scale).
Discovery = Literal["circle", "pair", "line"]


class Transform(abc.ABC):
    """A group acting on image batches (and on convolution kernels), and what equifind needs to know of it.

    Class attributes:
        name: registry name, e.g. ``"rotation"``; saved to disk in its place.
        period: the parameter period (360 for angles, 2 for flip), None for a group
            without one (scale).
        identity: the identity parameter.
        param_shape: the shape of one parameter (``()``; HueRotation ``(2,)``).
        circular: parameters live on a circle of length ``period`` (positions wrap;
            figures are polar; gaps between members are "holes").
        discovery: how families are found, see :data:`Discovery`.
        min_steps: the fewest grid steps (per axis) this transform takes: the one bound that the probe,
            family discovery (:meth:`check_grid`), scoring, a scan config and the CLI all read,
            through :meth:`check_steps`.
        scan_max_steps: a scan probes with at most this many steps per axis (None: no cap);
            hue_rotation's grid has steps² parameters.
        colour: acts on colour: probes add grey versions of the stimuli, discovery gates
            selective units on their colour index.
        moves_kernels: acts on convolution kernels (hue does not: it relabels units).
        aperture_after: moves content across the aperture's edge (zoom), so the aperture
            goes on again after the transform.
        scores: :func:`~equifind.score_family` handles it.
        sub_periods: a feature may be its own transformed copy at ``period / k`` (k = 2, 4: a
            line looks the same turned by 180°), so a family's period defaults to what its
            tuning harmonics say (:func:`equifind._circle.harmonic_period`), not ``period``.
        circuits: :func:`~equifind.circuit_symmetry` handles it (the weights between layers).
        axis_label: the parameter axis of a tuning plot, e.g. "rotation of the stimulus (degrees)".
        log_axis: parameters multiply (a log-spaced grid of positive values): plots put them on a
            log axis (scale).
        pairs_explained_by: the registry name of the transform whose families may already
            explain this transform's families, or None (flip: "rotation": a mirror pair is
            often two members of a rotation family; :func:`~equifind.families.explain_flip_pairs`).
    """

    name: ClassVar[str]
    period: ClassVar[float | None]
    identity: ClassVar[Any]
    param_shape: ClassVar[tuple[int, ...]] = ()
    circular: ClassVar[bool] = False
    discovery: ClassVar[Discovery] = "circle"
    min_steps: ClassVar[int] = 1
    scan_max_steps: ClassVar[int | None] = None
    colour: ClassVar[bool] = False
    moves_kernels: ClassVar[bool] = True
    aperture_after: ClassVar[bool] = False
    scores: ClassVar[bool] = True
    sub_periods: ClassVar[bool] = False
    circuits: ClassVar[bool] = False
    axis_label: ClassVar[str] = "transform parameter"
    log_axis: ClassVar[bool] = False
    pairs_explained_by: ClassVar[str | None] = None

    # ------------------------------------------------------------------ images

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
        check_images(images)
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
        check_images(images)
        k = check_downsample(images, downsample)
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
        p = as_float64(params, images, self.name)
        if p.dim() != 1 + len(self.param_shape) or p.shape[0] < 1 or tuple(p.shape[1:]) != self.param_shape:
            want = ", ".join(["S", *map(str, self.param_shape)])
            raise ValueError(f"{self.name} grid params must be a Tensor[{want}] with S >= 1, got shape {list(p.shape)}")
        return self._params(p, p.shape[0], images)

    def _params(self, params: Params, n: int, like: Tensor) -> Tensor:
        """Validate ``params`` into Tensor[n] float64 on the device of ``like``."""
        return params_1d(params, n, like, self.name)

    @abc.abstractmethod
    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        """Transform validated images by validated params."""

    @abc.abstractmethod
    def grid(self, n: int) -> Tensor:
        """The probe's grid of ``n`` steps: one period, endpoint excluded (scale: a log-spaced range).

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

    # ------------------------------------------------------------------ kernels and units

    def apply_kernels(self, kernels: Tensor, params: Tensor) -> Tensor:
        """Move convolution kernels by this group (the weights' side of equivariance).

        Args:
            kernels: ``Tensor[N, C, kh, kw]``, floating.
            params: ``Tensor[N]`` (or ``Tensor[1]``, shared): one parameter per kernel.

        Returns:
            ``Tensor[N, C, kh, kw]``: each kernel as the transformed feature's kernel;
            unchanged for a transform that does not move kernels (:attr:`moves_kernels`).
        """
        return kernels.clone()

    def kernel_ceiling(self, size: int) -> float:
        """What exactly transformed smooth ``size × size`` kernels score in a circuit check (1: no loss)."""
        return 1.0

    # ------------------------------------------------------------------ probing and presenting

    def default_stimuli(self, geometry: Any, *, device: torch.device | str | None = None, seed: int = 0) -> StimulusSet:
        """The probe's "auto" stimulus set at a layer's receptive field.

        Args:
            geometry: a :class:`~equifind.ProbeGeometry` (canvas, centre, rf_size, radius),
                at the resolution the stimuli are rendered at.
            device: where to build them.
            seed: seed of any random part (photograph patches).

        Returns:
            A :class:`~equifind.StimulusSet`, each variant at the transform's origin.
        """
        raise NotImplementedError(f"{self.name} has no default stimuli; pass stimuli= to the probe")

    def achromatic_grid(self, params: Tensor) -> tuple[Transform | None, Tensor | None]:
        """The part of a grid that grey stimuli still see (colour transforms only).

        Args:
            params: the probe's grid, ``Tensor[S, *param_shape]``.

        Returns:
            ``(transform, params)`` to apply to the grey versions of the stimuli, or
            ``(None, None)`` when grey stimuli are shown once, untransformed.
        """
        return None, None

    def format_param(self, value: Any) -> str:
        """One parameter as text for tables and cards, e.g. ``"45.0°"``."""
        return f"{float(value):g}"

    def format_tick(self, value: Any) -> str:
        """One parameter as a short tick label, e.g. ``"45°"``."""
        return f"{float(value):g}"

    def format_period(self, period: float | None) -> str:
        """A family's period as text (``"none"`` without one)."""
        return "none" if period is None or period == float("inf") else f"{period:g}"

    def check_grid(self, params: Tensor) -> tuple[int, ...]:
        """Validate a probe's parameter grid for family discovery and scoring.

        Args:
            params: ``Responses.params``, ``Tensor[S, *param_shape]``.

        Returns:
            The grid's shape in steps per axis, e.g. ``(64,)``; hue_rotation ``(n, n)``.

        Raises:
            ValueError: a grid this transform's discovery cannot read (naming the bad entry).
        """
        raise NotImplementedError(f"{self.name} has no grid check")

    def check_steps(self, steps: object) -> int:
        """``steps`` as an int >= :attr:`min_steps`, else ValueError naming both."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < self.min_steps:
            raise ValueError(f"{self.name} needs an integer number of steps >= {self.min_steps}, got {steps!r}")
        return steps

    # ------------------------------------------------------------------ identity

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Transform) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), ())


def circle_grid(n: int, period: float) -> Tensor:
    """``n`` evenly spaced parameters over ``[0, period)``, Tensor[n] in the default dtype."""
    check_grid_size(n)
    return torch.arange(n, dtype=torch.float64).mul(period / n).to(torch.get_default_dtype())


def check_grid_size(n: int) -> None:
    """ValueError unless ``n`` is an int >= 1 (the size of a grid)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"grid needs an integer number of steps n >= 1, got {n!r}")


class PixelTransform(Transform):
    """A group acting by moving pixels: ``out(p) = in(c + A (p - c))``, on images and on kernels."""

    @abc.abstractmethod
    def matrices(self, params: Tensor) -> Tensor:
        """The output -> input maps ``A`` of validated params, Tensor[N, 2, 2] float64."""

    def _apply(self, images: Tensor, params: Tensor, center: Center) -> Tensor:
        return resample_images(images, self.matrices(params), center)

    def apply_kernels(self, kernels: Tensor, params: Tensor) -> Tensor:
        from .kernels import move_kernels

        p = torch.as_tensor(params, dtype=torch.float64, device=kernels.device).reshape(-1)
        return move_kernels(kernels, self.kernel_matrices(p))

    def kernel_matrices(self, params: Tensor) -> Tensor:
        """The maps that move kernels (default: those that move images), Tensor[N, 2, 2] float64."""
        return self.matrices(params)

    def _apply_grid(self, images: Tensor, p: Tensor, center: Center, aperture: float | None, k: int) -> Tensor:
        """One ``grid_sample`` for all images and params.

        The S sampling grids are built once and stacked into one tall grid
        that every image shares, so no image is copied S times.
        """
        n, s, (h, w) = images.shape[0], p.shape[0], images.shape[-2:]
        grids = sampling_grids(images, self.matrices(p), center)  # [S, H, W, 2]
        tall = grids.reshape(1, s * h, w, 2).expand(n, -1, -1, -1)
        # Mid-grey is 0 after centring, so zero padding brings in grey.
        out = F.grid_sample(images - 0.5, tall, mode="bilinear", padding_mode="zeros", align_corners=True)
        out = out.view(n, 3, s, h, w)  # the channels of every image under every param
        if aperture is not None:
            out = out * aperture_weight(images, aperture, center)
        if k > 1:
            out = F.avg_pool2d(out.view(n, 3 * s, h, w), k).view(n, 3, s, h // k, w // k)
        result = images.new_empty(n, s, 3, h // k, w // k)
        return torch.add(out.transpose(1, 2), 0.5, out=result)

