"""Group actions on image batches and kernels: rotation, hue, flip, scale, hue x rotation.

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
    * Kernels move by the same output -> input maps as images
      (:mod:`~equifind.transforms.resample`), read through a smooth model
      (:func:`~equifind.transforms.kernels.move_kernels`).

Modules: :mod:`.base` (the :class:`Transform` interface), one module per group
(:mod:`.rotation`, :mod:`.hue`, :mod:`.flip`, :mod:`.scale`, :mod:`.hue_rotation`),
:mod:`.resample` and :mod:`.kernels` (moving pixels), :mod:`.aperture`, and
:mod:`.registry` (names, :func:`as_transform`).
"""

from .aperture import soft_aperture
from .base import Discovery, PixelTransform, Transform
from .flip import Flip
from .hue import RGB_TO_YIQ, YIQ_TO_RGB, Hue
from .hue_rotation import HueRotation
from .kernels import move_kernels, rotate_kernels, rotation_ceiling
from .registry import TRANSFORMS, as_transform, get_transform, names, register
from .rotation import Rotation
from .scale import Scale

__all__ = [
    "Transform", "PixelTransform", "Discovery", "Rotation", "Hue", "Flip", "Scale", "HueRotation",
    "TRANSFORMS", "as_transform", "get_transform", "names", "register",
    "soft_aperture", "move_kernels", "rotate_kernels", "rotation_ceiling", "RGB_TO_YIQ", "YIQ_TO_RGB",
]  # fmt: skip
