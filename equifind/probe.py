"""``probe``: stimuli × transform grid → response matrices, batched on the model's device.

Each stimulus variant is rendered once, in canonical orientation, on a canvas
just larger than the layer's receptive field and centred on the input position
of the layer's centre unit; the transform grid acts around that position (with
a soft circular aperture, so image corners cannot leak orientation); batches go
through the network with early stop after the layer, and the centre unit of
every channel is recorded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from . import stimuli as st
from ._checks import check_distinct, check_images
from .models.base import Model
from .natural import DEFAULT_N_PATCHES, natural_scale
from .record import record
from .responses import Responses
from .transforms import Transform, as_transform, soft_aperture

__all__ = ["probe", "probe_geometry", "ProbeGeometry", "auto_stimuli", "Responses", "StimuliSpec"]

StimuliSpec = Union[str, Sequence[Union[str, Callable[..., st.StimulusSet]]], st.StimulusSet, Tensor]


@dataclass(frozen=True)
class ProbeGeometry:
    """Where and how large a layer's probe images are.

    Attributes:
        layer: the layer.
        canvas: side of the square probe image, in input pixels.
        center: (y, x) input position of the centre unit's receptive field on that canvas.
        rf_size: side of the receptive field, in input pixels.
        radius: radius of the soft aperture (half the receptive field).
        supersample: stimuli are rendered and transformed at ``supersample`` times the
            canvas resolution, then area-averaged down, so that small fields are not
            biased towards the pixel axes by resampling.
    """

    layer: str
    canvas: int
    center: tuple[float, float]
    rf_size: int
    radius: float
    supersample: int = 1

    def scaled(self) -> ProbeGeometry:
        """The same geometry at the supersampled resolution (pixel centres map to pixel centres)."""
        k = self.supersample
        cy, cx = self.center
        return ProbeGeometry(
            self.layer, self.canvas * k, ((cy + 0.5) * k - 0.5, (cx + 0.5) * k - 0.5),
            self.rf_size * k, self.radius * k, 1,
        )  # fmt: skip


def probe_geometry(model: Model, layer: str, *, margin: float = 0.25, min_render: int = 48) -> ProbeGeometry:
    """The smallest canvas on which ``layer``'s centre unit sees its whole receptive field.

    Args:
        model: the model.
        layer: a layer name.
        margin: grey border on each side, as a fraction of the receptive field (≥ 4 px).
        min_render: supersample small canvases until they are rendered at ≥ this many pixels (≤ 8×).
    """
    full = model.receptive_field(layer)
    if full.clipped:  # the field fills the usual input: probe at that size
        canvas, center = full.input_size[0], full.center
    else:
        canvas = full.size + 2 * max(4, math.ceil(margin * full.size))
        while True:
            rf = model.receptive_field(layer, input_size=canvas)
            if not rf.clipped and rf.size >= full.size:
                center = rf.center
                break
            canvas += 8
    supersample = min(8, max(1, math.ceil(min_render / canvas)))
    return ProbeGeometry(layer, canvas, center, full.size, full.size / 2, supersample)


def auto_stimuli(transform: str | Transform, geometry: ProbeGeometry, *, device: torch.device | str | None = None,
                 seed: int = 0) -> st.StimulusSet:
    """The transform's "auto" stimulus set at a layer's receptive-field size
    (:meth:`Transform.default_stimuli <equifind.transforms.Transform.default_stimuli>`).

    Every variant sits at the transform's origin (orientation 0, hue 0, zoom 1), so that the
    transform parameter at a unit's peak is an absolute preference; variants that are the
    origin's transformed copies are left out (e.g. the edge of the opposite polarity is the
    180°-rotated edge, the grating of phase 270° the rotated 90° one).
    """
    return as_transform(transform).default_stimuli(geometry, device=device, seed=seed)


def _stimulus_set(spec: StimuliSpec, transform: Transform, geometry: ProbeGeometry, device: torch.device, seed: int) -> st.StimulusSet:
    """Stimuli at the geometry's resolution (call with ``geometry.scaled()`` to supersample)."""
    if isinstance(spec, str):
        if spec == "auto":
            return auto_stimuli(transform, geometry, device=device, seed=seed)
        spec = [spec]
    if isinstance(spec, Tensor):
        check_images(spec, name="stimuli")
        return st.from_images(spec.to(device), size=geometry.canvas)
    if isinstance(spec, st.StimulusSet):
        check_images(spec.images, name="stimuli")
        return spec.to(device)
    if not isinstance(spec, Sequence) or not spec:
        raise ValueError(f"stimuli must be 'auto', a generator name, a list of them, a StimulusSet or an image tensor; got {spec!r}")
    sets = []
    for item in spec:
        gen = st.get_stimulus(item) if isinstance(item, str) else item
        if not callable(gen):
            raise ValueError(f"stimulus {item!r} is neither a generator name nor a callable")
        sets.append(gen(geometry.canvas, center=geometry.center, radius=geometry.radius, device=device))
    return st.StimulusSet.cat(sets)


def _warn_if_small(images: object, geometry: ProbeGeometry, *, resized: bool) -> None:
    """Warn when stimuli given by the user (``Tensor[N, 3, H, W]``) are smaller than the layer's receptive field.

    An image tensor is resized to the probe canvas (``resized``), so small images are magnified;
    a ``StimulusSet`` is used as given, so the centre unit's field reaches past its border.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        return  # malformed: check_images says why
    h, w = images.shape[-2:]
    if min(h, w) >= geometry.rf_size:
        return
    what = (
        f"they are upsampled to the {geometry.canvas} px probe canvas, so their detail is coarser than the layer's"
        if resized
        else "the unit's field reaches past their border"
    )
    warnings.warn(
        f"stimuli are {h}×{w} px, smaller than the {geometry.rf_size} px receptive field of the centre unit of "
        f"layer {geometry.layer!r}: {what}; give stimuli of at least {geometry.rf_size}×{geometry.rf_size} px "
        f"(probe_geometry(model, {geometry.layer!r}).canvas = {geometry.canvas})",
        UserWarning,
        stacklevel=3,
    )


def probe(
    model: Model,
    layer: str,
    transform: str | Transform = "rotation",
    stimuli: StimuliSpec = "auto",
    steps: int = 64,
    units: Sequence[int] | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
    natural: bool = True,
) -> Responses:
    """Responses of a layer's centre units to transformed stimuli.

    Args:
        model: the model.
        layer: a layer name (``model.layers``).
        transform: a registered name (``equifind.transforms.names()``: "rotation", "hue",
            "flip", "scale", "hue_rotation") or a :class:`~equifind.transforms.Transform`.
        stimuli: "auto" (a set chosen per transform, see :func:`auto_stimuli`), a
            generator name or list of names/callables from :mod:`equifind.stimuli`,
            a ``StimulusSet``, or an image tensor ``Tensor[N, 3, H, W]`` in [0, 1]. Images
            given at the render size ``probe_geometry(...).scaled().canvas`` (when the
            geometry supersamples) are transformed there and reduced to the canvas, as the
            auto stimuli are; others are used at the canvas size.
        steps: transform grid size, at least the transform's ``min_steps`` (for hue_rotation,
            per axis: steps² parameters; flip always has 2).
        units: unit indices to keep (default all).
        batch_size: images per forward pass (default: about 64 MB of input).
        device: where to run (default the model's device; the model is not moved).
        seed: seed for the random parts of the stimulus set (photo patches) and for the
            natural-image patches.
        progress: show progress bars (the probe, and the natural scale when measured; on a terminal or in Jupyter only).
        natural: also measure each unit's natural scale (:func:`equifind.natural_scale`,
            the 99th percentile of its centre response to photo patches; cached per model
            and layer) and store it in ``Responses.natural_scale``, against which
            "responding" and "selective" are judged; ``meta["natural_scale"]`` records
            how. False leaves it None.

    Returns:
        :class:`Responses` with ``values[unit, variant, step]``; for hue and hue_rotation also
        ``achromatic`` (each unit's responses to the grey versions of the stimuli and to a
        blank, 2V + 1 images more, or 2V·n + 1 for an n × n hue_rotation grid), from which
        ``Responses.colour_index`` comes.

    Raises:
        KeyError: unknown layer, transform or stimulus name.
        IndexError: a unit outside the layer.
        ValueError: malformed stimuli, steps or batch_size.
    """
    from ._progress import progress_bar

    model.check_layer(layer)
    unit_list = model.check_units(layer, units)
    check_distinct(unit_list, "units")
    tf = as_transform(transform)
    dev = torch.device(device) if device is not None else model.device
    if dev != model.device:
        raise ValueError(f"device={dev} differs from the model's device {model.device}; move the model with model.to()")
    geometry = probe_geometry(model, layer)
    given = None
    if isinstance(stimuli, (Tensor, st.StimulusSet)):
        given = stimuli.images if isinstance(stimuli, st.StimulusSet) else stimuli
        if not (geometry.supersample > 1 and given.dim() == 4 and given.shape[-1] == given.shape[-2] == geometry.scaled().canvas):
            # given at canvas size: no supersampling (at the render size canvas × supersample, they are supersampled)
            geometry = ProbeGeometry(geometry.layer, geometry.canvas, geometry.center, geometry.rf_size, geometry.radius, 1)
    render = geometry.scaled()
    k = geometry.supersample
    stim = _stimulus_set(stimuli, tf, render, dev, seed)
    if given is not None:  # the user's own images, checked by _stimulus_set
        _warn_if_small(given, geometry, resized=isinstance(stimuli, Tensor))
    # The aperture goes on once, before the transform: rotation, hue and flip about the
    # aperture's centre map the disk onto itself; a zoom moves content across its edge.
    base = soft_aperture(stim.images, render.radius, center=render.center)
    after = render.radius if tf.aperture_after else None
    params = tf.grid(tf.check_steps(steps)).to(dev)  # the transform's own minimum (Transform.min_steps)
    n_var, n_steps = len(stim), params.shape[0]
    total = n_var * n_steps
    if batch_size is None:
        batch_size = max(1, min(512, (64 << 20) // (3 * 4 * render.canvas**2)))
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    idx_units = torch.tensor(unit_list, device=dev)
    out = torch.empty(n_var, n_steps, len(unit_list), device=dev)
    # Each batch is a block of variants under a block of steps, transformed in one call.
    var_block = min(n_var, batch_size)
    step_block = max(1, batch_size // var_block)
    with torch.no_grad(), record(model, [layer], at="center") as rec:
        bar = progress_bar(total=total, desc=f"probe {layer} {tf}", unit="img", enabled=progress, leave=False)
        for v0 in range(0, n_var, var_block):
            variants = base[v0 : v0 + var_block]
            for s0 in range(0, n_steps, step_block):
                chunk = params[s0 : s0 + step_block]
                images = tf.apply_grid(variants, chunk, center=render.center, aperture=after, downsample=k)
                model.forward_preprocessed(model.preprocess(images.flatten(0, 1)))
                centre = rec[layer].index_select(1, idx_units)
                out[v0 : v0 + len(variants), s0 : s0 + len(chunk)] = centre.view(len(variants), len(chunk), -1)
                bar.update(len(variants) * len(chunk))
        bar.close()
        achromatic = None
        if tf.colour:
            achromatic, grey_meta = _achromatic(model, layer, rec, idx_units, base, params, render, k, batch_size, tf)
    values = out.permute(2, 0, 1).cpu()
    meta = {
        "model": model.name, "canvas": geometry.canvas, "center": list(geometry.center),
        "rf_size": geometry.rf_size, "supersample": k, "seed": seed, "steps": steps,
    }  # fmt: skip
    if achromatic is not None:
        meta["achromatic"] = grey_meta
    scale = None
    if natural:
        scale = natural_scale(model, layer, seed=seed, progress=progress)[unit_list]
        meta["natural_scale"] = {"percentile": 99.0, "n_patches": DEFAULT_N_PATCHES}
    shown = F.avg_pool2d(base, k) if k > 1 else base
    return Responses(
        values, params.cpu(), layer=layer, transform=tf, units=unit_list,
        variants=stim.params, meta=meta, stimuli=shown.cpu(), natural_scale=scale, achromatic=achromatic,
    )  # fmt: skip


def _achromatic(
    model: Model, layer: str, rec: object, idx_units: Tensor, base: Tensor, params: Tensor,
    render: ProbeGeometry, k: int, batch_size: int, tf: Transform,
) -> tuple[Tensor, dict]:  # fmt: skip
    """The centre responses to the grey versions of the stimuli and to a blank, ``Tensor[units, G]`` (CPU).

    ``base``: the stimuli with aperture, ``Tensor[V, 3, H, W]`` at the render resolution.
    Columns: polarity (+, −) × variant × angle, then the blank; for "hue" one angle (none
    applied), for hue_rotation every orientation of the grid (the grey versions are
    rotated, since the colour ones are: :meth:`Transform.achromatic_grid`). Runs inside
    the probe's ``record``.
    """
    grey = st.achromatic_versions(base)  # [2V, 3, H, W]
    spatial, angles = tf.achromatic_grid(params)
    if spatial is not None and angles is not None:
        images = spatial.apply_grid(grey, angles, center=render.center, downsample=k).flatten(0, 1)
    else:
        angles = None
        images = F.avg_pool2d(grey, k) if k > 1 else grey
    images = torch.cat([images, torch.full_like(images[:1], 0.5)])
    out = []
    for i in range(0, len(images), batch_size):
        model.forward_preprocessed(model.preprocess(images[i : i + batch_size]))
        out.append(rec[layer].index_select(1, idx_units))  # type: ignore[index]
    meta = {
        "columns": "polarity (+, -) x variant x angle, then the blank (grey canvas)",
        "variants": len(base), "angles": None if angles is None else angles.cpu().tolist(),
        "construction": "equifind.stimuli.achromatic_versions (RMS over 8 hues, grey axis)",
    }  # fmt: skip
    return torch.cat(out).T.contiguous().cpu(), meta
