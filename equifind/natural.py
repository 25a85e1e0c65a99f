"""Natural-image response statistics: how strongly photographs drive each unit.

A unit's *natural scale* is a high percentile (99th by default) of its response
to natural image patches filling its receptive field. :func:`equifind.probe`
stores it in ``Responses.natural_scale``, against which "responds" and
"selective" are judged (:meth:`Responses.responding`, :attr:`Responses.selectivity`).

>>> scale = natural_scale(model, "mixed3a")   # Tensor[256]
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.base import Model, ReceptiveField
from .record import record

__all__ = ["PHOTOGRAPHS", "photographs", "natural_patches", "natural_scale", "top_patches", "clear_cache"]

#: The colour photographs of natural scenes bundled with scikit-image (no download):
#: an astronaut portrait, a cat, a coffee cup, a rocket launch, a motorcycle. The
#: other RGB images there are a telescope deep field, a retina fundus, a microscopy
#: slide and a logo, whose statistics are not those of natural scenes.
PHOTOGRAPHS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")

#: Crop scale factors: a patch of side ``size`` shows a square of ``size × f`` photo
#: pixels, ``f`` log-uniform in this range.
DEFAULT_SCALES: tuple[float, float] = (0.5, 2.0)

#: Crops per (model, layer) when measuring the natural scale.
DEFAULT_N_PATCHES = 64

#: Side of a crop, in probe canvases (see :func:`natural_scale`).
_CROP_CANVASES = 2


# --------------------------------------------------------------------------- photographs


def _load(name: str) -> Tensor:
    """``Tensor[3, H, W]`` uint8, channels-last in memory (as scikit-image returns it)."""
    import skimage.data  # lazy: only the photographs need scikit-image

    array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1)


@functools.lru_cache(maxsize=1)
def _photographs_u8() -> tuple[Tensor, ...]:
    """The cached photographs as uint8 (shared: never modify them in place)."""
    return tuple(_load(name) for name in PHOTOGRAPHS)


def photographs() -> list[Tensor]:
    """The colour photographs named in :data:`PHOTOGRAPHS`, loaded offline from scikit-image.

    Returns:
        One ``Tensor[3, H, W]`` per photograph (float32 RGB in [0, 1], CPU), converted
        from an in-memory cache of the 8-bit files (read from disk once per process).
    """
    return [p.float().div_(255.0).contiguous() for p in _photographs_u8()]


# --------------------------------------------------------------------------- patches


def _check_patch_args(size: object, n: object, scales: Sequence[float]) -> tuple[float, float]:
    for name, value in (("size", size), ("n", n)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    try:
        lo, hi = (float(s) for s in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a (min, max) pair of crop scale factors, got {scales!r}") from None
    if not (0.0 < lo <= hi < math.inf):
        raise ValueError(f"scales must satisfy 0 < min <= max < inf, got {scales!r}")
    return lo, hi


def natural_patches(size: int, n: int, *, seed: int = 0, scales: Sequence[float] = DEFAULT_SCALES) -> Tensor:
    """Random square crops of the bundled photographs, at many positions and scales.

    Each patch picks a photograph (with probability proportional to its area, so
    every photographed pixel is equally likely to be shown), a scale factor ``f``
    log-uniform in ``scales`` and a position, all from a ``torch.Generator`` seeded
    with ``seed``: it crops a square of side ``round(size × f)`` photo pixels (at
    most the photograph's short side) and resizes it to ``size`` (bilinear,
    antialiased, on the 8-bit photograph: within 1/255 of resizing in float, and
    many times faster). No flips or rotations: the patches keep the statistics of
    the photographs.

    Args:
        size: patch side in pixels, >= 1.
        n: number of patches, >= 1.
        seed: random seed; the same seed gives the same patches.
        scales: (min, max) crop scale factor; ``f < 1`` magnifies, ``f > 1`` shrinks.

    Returns:
        ``Tensor[n, 3, size, size]``, float32 RGB in [0, 1], CPU.

    Raises:
        ValueError: ``size`` or ``n`` not an int >= 1, or ``scales`` not ``0 < min <= max``.
    """
    lo, hi = _check_patch_args(size, n, scales)
    photos = _photographs_u8()
    gen = torch.Generator().manual_seed(int(seed))
    heights = torch.tensor([p.shape[1] for p in photos])
    widths = torch.tensor([p.shape[2] for p in photos])
    which = torch.multinomial((heights * widths).double(), n, replacement=True, generator=gen)
    factor = torch.exp(math.log(lo) + torch.rand(n, generator=gen, dtype=torch.float64) * math.log(hi / lo))
    side = torch.minimum((size * factor).round().long().clamp(min=1), torch.minimum(heights, widths)[which])
    y0 = (torch.rand(n, generator=gen, dtype=torch.float64) * (heights[which] - side + 1)).long()
    x0 = (torch.rand(n, generator=gen, dtype=torch.float64) * (widths[which] - side + 1)).long()
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i, (p, s, y, x) in enumerate(zip(which.tolist(), side.tolist(), y0.tolist(), x0.tolist())):
        # channels-last uint8: the fast antialiased resize path
        crop = photos[p][None, :, y : y + s, x : x + s].contiguous(memory_format=torch.channels_last)
        out[i] = crop[0] if s == size else F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)[0]
    return out.float().div_(255.0)


# --------------------------------------------------------------------------- sampling plan


@dataclass(frozen=True)
class _Plan:
    """Which crops and map positions sample a layer's units.

    Attributes:
        crop: side of the crops, in input pixels.
        rows, cols: the map positions read along each axis, ``range(first, last + 1)``
            (every position whose receptive field lies inside a ``crop``-sized image);
            None to read the map's centre only.
        crops_per_patch: crops per requested patch (more for centre-only reading, so
            that both plans cost about the same number of input pixels).
        stride: the unit lattice's (row, column) stride in input pixels.
        centre: the (row, column) map position of a canvas-sized image's centre unit: the
            canvas-sized window whose centre unit is map position (r, c) of a crop has its
            top-left corner at ``((r − centre[0])·stride[0], (c − centre[1])·stride[1])``.
    """

    crop: int
    rows: range | None = None
    cols: range | None = None
    crops_per_patch: int = 1
    stride: tuple[int, int] = (0, 0)
    centre: tuple[int, int] = (0, 0)

    def window(self, map_h: int, map_w: int) -> tuple[slice, slice]:
        """The (rows, cols) slices to read on a ``map_h × map_w`` activation map."""
        centre = (slice((map_h - 1) // 2, (map_h - 1) // 2 + 1), slice((map_w - 1) // 2, (map_w - 1) // 2 + 1))
        if self.rows is None or self.cols is None:
            return centre
        rows = slice(self.rows.start, min(self.rows.stop, map_h))
        cols = slice(self.cols.start, min(self.cols.stop, map_w))
        return (rows, cols) if rows.start < rows.stop and cols.start < cols.stop else centre


def _axis_lattice(a: ReceptiveField, b: ReceptiveField, axis: int) -> tuple[int, int, int] | None:
    """(stride, offset, extent) along one axis, from the centre units' fields at two input sizes.

    Unit ``i`` along the axis sees input pixels ``offset + i·stride`` to
    ``offset + i·stride + extent − 1``; None when the two fields do not fit one lattice.
    """
    du = b.unit[axis] - a.unit[axis]
    a0, a1 = a.box[2 * axis], a.box[2 * axis + 1]
    b0, b1 = b.box[2 * axis], b.box[2 * axis + 1]
    if du == 0 or (b0 - a0) % du or (b1 - a1) != (b0 - a0) or (b0 - a0) // du < 1:
        return None
    stride = (b0 - a0) // du
    return stride, a0 - a.unit[axis] * stride, a1 - a0 + 1


def _inside(lattice: tuple[int, int, int], crop: int) -> range:
    """Units along an axis whose receptive field lies inside ``[0, crop)``."""
    stride, offset, extent = lattice
    first = max(0, -(offset // stride))  # ceil(-offset / stride)
    last = (crop - extent - offset) // stride
    return range(first, last + 1)


def _plan(model: Model, layer: str, canvas: int) -> _Plan:
    """Crops of ``2 × canvas`` read at every interior position, or canvas crops read at the centre only.

    The stride and offset of the layer's unit lattice come from its centre unit's
    receptive field at two input sizes (the canvas and the model's input size, both
    measured for the probe already). Where they do not fit one lattice (a field
    clipped by the image border, a canvas equal to the input size), only the centre
    unit of canvas-sized crops is read, exactly what the probe records, from
    ``_CROP_CANVASES²`` times as many crops.
    """
    centre_only = _Plan(canvas, crops_per_patch=_CROP_CANVASES**2)
    a = model.receptive_field(layer, input_size=canvas)
    b = model.receptive_field(layer)
    if a.clipped or b.clipped:
        return centre_only
    lattices = [_axis_lattice(a, b, axis) for axis in (0, 1)]
    if lattices[0] is None or lattices[1] is None:
        return centre_only
    crop = _CROP_CANVASES * canvas
    rows, cols = _inside(lattices[0], crop), _inside(lattices[1], crop)
    if not rows or not cols:
        return centre_only
    return _Plan(crop, rows, cols, stride=(lattices[0][0], lattices[1][0]), centre=a.unit)


# --------------------------------------------------------------------------- cache

_CacheKey = tuple[str, int, int]  # layer, n_patches, seed
_Fingerprint = tuple[tuple[int, ...], tuple[float, ...]]


@dataclass(frozen=True)
class _Sampled:
    """A layer's responses to the natural crops: ``samples`` ``Tensor[C, crops × positions]``
    (signed, float32, CPU), sample ``i`` being crop ``i // P``, position ``i % P`` of the
    plan's window (``P`` positions, row-major)."""

    plan: _Plan
    samples: Tensor
    window: tuple[range, range]


_CACHE: weakref.WeakKeyDictionary[Model, dict[_CacheKey, tuple[_Fingerprint, _Sampled]]] = weakref.WeakKeyDictionary()


def _fingerprint(model: Model) -> _Fingerprint:
    """A cheap fingerprint of every floating-point parameter and buffer (about 1 ms for googlenet).

    Per tensor: its storage address and autograd version counter, which every in-place
    edit through the tensor bumps (``copy_``, optimiser steps, ``load_state_dict``, a
    shuffle of channels), and its sum, which catches value edits made around the
    counter (through ``.data`` or numpy); one device sync.
    """
    tensors = [t for t in (*model.module.parameters(), *model.module.buffers()) if t.is_floating_point()]
    with torch.no_grad():
        sums = torch.stack([t.sum(dtype=torch.float32) for t in tensors]).tolist() if tensors else []
    return tuple(v for t in tensors for v in (t.data_ptr(), t._version)), tuple(sums)


def clear_cache(model: Model | None = None) -> None:
    """Forget cached natural-image responses (scales and top patches): of ``model``, or of every model (default)."""
    if model is None:
        _CACHE.clear()
    else:
        _CACHE.pop(model, None)


# --------------------------------------------------------------------------- natural scale


def _check_scale_args(percentile: object, n_patches: object) -> float:
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")
    if not isinstance(n_patches, int) or isinstance(n_patches, bool) or n_patches < 1:
        raise ValueError(f"n_patches must be an int >= 1 (crops of natural images), got {n_patches!r}")
    return float(percentile)


def _percentile(samples: Tensor, percentile: float) -> Tensor:
    """``Tensor[C]``: the percentile of each row of ``samples`` (``Tensor[C, N]``).

    Linear interpolation between the two order statistics around ``(N − 1) × q``,
    exactly as ``torch.quantile``, but selected with one ``topk`` from the nearer end
    (the top 1% for the 99th percentile): several times faster than a sort, with no
    limit on ``C × N``, deterministic.
    """
    n = samples.shape[1]
    pos = (n - 1) * percentile / 100.0
    lo = min(int(math.floor(pos)), n - 1)
    hi = min(lo + 1, n - 1)
    if n - lo <= hi + 1:  # from the top: the n − lo largest, descending
        top = samples.topk(n - lo, dim=1).values
        below, above = top[:, -1], top[:, max(0, n - 1 - hi)]
    else:  # from the bottom: the hi + 1 smallest, ascending
        bottom = samples.topk(hi + 1, dim=1, largest=False).values
        below, above = bottom[:, lo], bottom[:, -1]
    return torch.lerp(below, above, pos - lo)


def _samples(model: Model, layer: str, plan: _Plan, n_patches: int, seed: int, progress: bool) -> _Sampled:
    """The layer's responses (signed) to the plan's crops at the plan's positions."""
    from ._progress import progress_bar

    dev = model.device
    n_crops = n_patches * plan.crops_per_patch
    patches = natural_patches(plan.crop, n_crops, seed=seed)
    batch = max(1, min(256, (64 << 20) // (3 * 4 * plan.crop**2)))
    chunks: list[Tensor] = []
    window = (range(0), range(0))
    with torch.no_grad(), record(model, [layer], at="map") as rec:
        bar = progress_bar(total=n_crops, desc=f"natural scale {layer}", unit="patch", enabled=progress, leave=False)
        for i in range(0, n_crops, batch):
            model.forward_preprocessed(model.preprocess(patches[i : i + batch].to(dev)))
            act = rec[layer]
            rows, cols = plan.window(*act.shape[-2:])
            window = (range(rows.start, rows.stop), range(cols.start, cols.stop))
            act = act[:, :, rows, cols]
            chunks.append(act.transpose(0, 1).reshape(act.shape[1], -1).float().cpu())
            bar.update(act.shape[0])
        bar.close()
    return _Sampled(plan, torch.cat(chunks, dim=1), window)


def _sampled(model: Model, layer: str, n_patches: int, seed: int, progress: bool) -> _Sampled:
    """The cached :class:`_Sampled` of (model, layer, n_patches, seed), measured when missing or stale."""
    from .probe import probe_geometry  # probe builds on this module: import late

    key = (layer, n_patches, int(seed))
    fingerprint = _fingerprint(model)
    cached = _CACHE.get(model, {}).get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    plan = _plan(model, layer, probe_geometry(model, layer).canvas)
    sampled = _samples(model, layer, plan, n_patches, int(seed), progress)
    _CACHE.setdefault(model, {})[key] = (fingerprint, sampled)
    return sampled


def natural_scale(
    model: Model,
    layer: str,
    *,
    percentile: float = 99.0,
    n_patches: int = DEFAULT_N_PATCHES,
    seed: int = 0,
    progress: bool = False,
) -> Tensor:
    """Each unit's response scale on natural images: a percentile of |centre response| to photo patches.

    The patches are :func:`natural_patches` crops (scale factors 0.5–2) at the
    resolution of the layer's probe canvas (``probe_geometry(model, layer).canvas``).
    Rather than reading one centre unit per canvas-sized crop, the crops are
    ``2 × canvas`` on a side and every unit position whose receptive field lies
    inside the crop is read (``record(..., at="map")``, early stop): by translation
    equivariance each is exactly the centre response to the canvas-sized patch
    around it (to float rounding), so one forward pass gives many samples, and the
    crops waste less border than canvas-sized ones. For googlenet, with the default
    64 crops: conv2d2 (canvas 29, crop 58) 10 × 10 positions per crop, 6,400 samples
    per unit; mixed3a (89, 178) 15 × 15, 14,400; mixed3b (137, 274) 23 × 23, 33,856
    — at the input-pixel cost of 256 canvas-sized images, 18% of a 64-step rotation
    probe's 1,408. Layers whose receptive field fills the input (googlenet from
    mixed4b on), or any network whose unit lattice cannot be read from its receptive
    fields, fall back to the centre unit of ``4 × n_patches`` canvas-sized crops
    (the same input pixels; 256 samples by default). Samples are |response|: for ReLU
    layers the response itself; a unit driven negative gets a scale from its
    magnitude, as :attr:`Responses.peak` does. The samples are kept in memory
    (``units × samples`` floats on the CPU, 65 MB for mixed3b), since
    :func:`top_patches` picks its crops from the same responses.

    Responses are cached per model (weakly: the cache does not keep a model alive) and
    per (layer, n_patches, seed), and re-measured when a cheap
    fingerprint of the model's parameters and buffers changes (weights edited in
    place); :func:`clear_cache` forgets them.

    Args:
        model: the model.
        layer: a layer name (``model.layers``).
        percentile: which percentile, in (0, 100].
        n_patches: number of ``2 × canvas`` crops (see above), >= 1.
        seed: seed of the crops.
        progress: show a progress bar.

    Returns:
        ``Tensor[units]`` (float32, CPU, >= 0): the percentile for every unit of the layer.

    Raises:
        KeyError: unknown layer.
        ValueError: ``percentile`` outside (0, 100], ``n_patches`` < 1, or ``model`` not a :class:`Model`.
    """
    if not isinstance(model, Model):
        raise ValueError(f"natural_scale() needs an equifind.Model (see ef.load_model), got {type(model).__name__}")
    percentile = _check_scale_args(percentile, n_patches)
    model.check_layer(layer)
    sampled = _sampled(model, layer, n_patches, seed, progress)
    return _percentile(sampled.samples.abs(), percentile)


# --------------------------------------------------------------------------- top patches


def _window_corners(sampled: _Sampled, canvas: int) -> tuple[Tensor, Tensor]:
    """``(top, left)`` ``Tensor[P]``: the corner, in crop pixels, of the canvas-sized window whose
    centre unit is each sampled map position; −1 where that window leaves the crop."""
    plan = sampled.plan
    rows, cols = sampled.window
    if plan.rows is None or plan.cols is None:  # centre-only: the crop is the canvas
        return torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)
    r = torch.tensor(list(rows)).repeat_interleave(len(cols))
    c = torch.tensor(list(cols)).repeat(len(rows))
    top, left = (r - plan.centre[0]) * plan.stride[0], (c - plan.centre[1]) * plan.stride[1]
    fits = (top >= 0) & (left >= 0) & (top <= plan.crop - canvas) & (left <= plan.crop - canvas)
    return torch.where(fits, top, -1), torch.where(fits, left, -1)


def top_patches(
    model: Model,
    layer: str,
    units: Sequence[int],
    k: int = 4,
    *,
    n_patches: int = DEFAULT_N_PATCHES,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Each unit's ``k`` top-activating natural patches, at the layer's probe canvas.

    The candidates are exactly the samples of :func:`natural_scale` (same crops, same
    cache): every map position of every crop, i.e. the canvas-sized window of the crop
    that has that position's unit at its centre. A unit's patches are its ``k`` largest
    responses with at most one window per crop (so that neighbouring positions of one
    crop do not fill the list) among the windows inside the crop. By translation
    equivariance the centre unit of a returned patch responds as the sample did (to
    float rounding).

    Args:
        model: the model.
        layer: a layer name.
        units: unit indices.
        k: patches per unit, >= 1.
        n_patches: crops, as in :func:`natural_scale` (the same value shares its cache).
        seed: seed of the crops.
        progress: show a progress bar while measuring.

    Returns:
        ``(images, responses)``: ``Tensor[len(units), k, 3, canvas, canvas]`` float32 RGB in
        [0, 1] (CPU), and ``Tensor[len(units), k]``, each patch's sampled response (descending).

    Raises:
        KeyError: unknown layer. IndexError: a unit outside the layer.
        ValueError: bad ``k`` or ``n_patches``, or fewer than ``k`` crops with a window inside.
    """
    from .probe import probe_geometry

    if not isinstance(model, Model):
        raise ValueError(f"top_patches() needs an equifind.Model (see ef.load_model), got {type(model).__name__}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an int >= 1 (patches per unit), got {k!r}")
    _check_scale_args(100.0, n_patches)
    unit_list = model.check_units(layer, units)
    canvas = probe_geometry(model, layer).canvas
    sampled = _sampled(model, layer, n_patches, seed, progress)
    plan, samples = sampled.plan, sampled.samples
    top, left = _window_corners(sampled, canvas)
    positions = len(top)
    n_crops = samples.shape[1] // positions
    if n_crops < k:
        raise ValueError(f"{n_crops} natural crops cannot give {k} patches per unit; raise n_patches")
    # best window of each crop, per unit: [units, crops]
    per_crop = samples[unit_list].view(len(unit_list), n_crops, positions)
    per_crop = per_crop.masked_fill((top < 0)[None, None, :], -math.inf)
    best, where = per_crop.max(dim=2)
    values, crops = best.topk(k, dim=1)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"fewer than {k} crops of {layer} hold a whole canvas-sized window; raise n_patches")
    images = natural_patches(plan.crop, n_crops, seed=seed)
    pos = where.gather(1, crops)
    out = torch.empty(len(unit_list), k, 3, canvas, canvas)
    for i in range(len(unit_list)):
        for j in range(k):
            y, x = int(top[pos[i, j]]), int(left[pos[i, j]])
            out[i, j] = images[crops[i, j], :, y : y + canvas, x : x + canvas]
    return out, values
