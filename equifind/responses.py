"""``Responses``: the response matrices that the probe produces and family discovery reads.

``values[u, v, s]`` is the response of unit ``units[u]``'s centre to stimulus
variant ``v`` transformed by ``params[s]``. Build one with :func:`equifind.probe`
or directly from arrays measured elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .store import write_atomic
from .transforms import Transform, as_transform

__all__ = ["Responses"]

_MIN_LAYER_RESPONSE = 1e-2  # without a natural scale: "responds" is a peak >= 1% of the layer's largest


def _as_tensor(x: object, name: str) -> Tensor:
    try:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be array-like, got {type(x).__name__}") from err
    return t.detach().to("cpu", torch.float32)


class Responses:
    """Responses of a layer's units to stimulus variants over a transform grid.

    Attributes:
        values: ``Tensor[units, variants, steps]`` (float32, CPU).
        params: ``Tensor[steps]`` transform parameters (degrees for rotation/hue, 0/1 for
            flip, zoom factor for scale), or ``Tensor[steps, 2]`` (hue, angle) for hue_rotation.
        layer: layer name.
        transform: the :class:`~equifind.transforms.Transform` (it equals its name, so
            ``resp.transform == "rotation"`` reads as before; saved to disk by name).
        units: unit indices of the rows of ``values`` (default ``0 .. n-1``).
        variants: one dict of stimulus parameters per variant (default ``{"variant": i}``).
        meta: free-form JSON-serialisable metadata (model name, receptive field, seed, ...).
        stimuli: optional ``Tensor[variants, 3, H, W]`` in [0, 1]: the untransformed stimulus
            of each variant as the network saw it (for figures); saved as 8-bit.
        natural_scale: optional ``Tensor[units]`` (float32, CPU): each unit's natural response
            scale, the 99th percentile of its centre response to natural image patches at its
            receptive field (:func:`equifind.natural.natural_scale`; :func:`equifind.probe`
            fills it). None for responses measured elsewhere: "responding" and "selective" are
            then judged from the responses alone (see :meth:`responding`, :attr:`selectivity`).
        achromatic: optional ``Tensor[units, G]`` (float32, CPU): hue and hue_rotation probes
            only, each unit's responses to grey versions of the stimuli
            (:func:`equifind.stimuli.achromatic_versions`: the same RGB contrast along the grey
            axis, both polarities), run once, not over the hue grid; the last column is the
            blank (the grey canvas). ``meta["achromatic"]`` describes the columns. None for
            other probes and for responses measured elsewhere: then there is no
            :attr:`colour_index` and family discovery applies no colour gate.
    """

    def __init__(
        self,
        values: Tensor | np.ndarray,
        params: Tensor | np.ndarray | Sequence[float],
        *,
        layer: str,
        transform: str | Transform,
        units: Sequence[int] | None = None,
        variants: Sequence[dict[str, Any]] | None = None,
        meta: dict[str, Any] | None = None,
        stimuli: Tensor | None = None,
        natural_scale: Tensor | np.ndarray | Sequence[float] | None = None,
        achromatic: Tensor | np.ndarray | None = None,
    ) -> None:
        values_t = _as_tensor(values, "values")
        params_t = _as_tensor(params, "params")
        if values_t.dim() == 2:  # [units, steps]: a single variant
            values_t = values_t[:, None, :]
        if values_t.dim() != 3:
            raise ValueError(f"values must be [units, variants, steps], got shape {tuple(values_t.shape)}")
        tf = as_transform(transform)
        n_units, n_variants, n_steps = values_t.shape
        if params_t.shape[0] != n_steps:
            raise ValueError(f"params has {params_t.shape[0]} entries but values has {n_steps} steps")
        if not bool(torch.isfinite(values_t).all()):
            raise ValueError(f"values contains {int((~torch.isfinite(values_t)).sum())} NaN or infinite entries")
        self.values = values_t
        self.params = params_t
        self.layer = str(layer)
        self.transform: Transform = tf
        self.units = [int(u) for u in units] if units is not None else list(range(n_units))
        if len(self.units) != n_units:
            raise ValueError(f"{len(self.units)} unit indices for {n_units} rows of values")
        self.variants = [dict(v) for v in variants] if variants is not None else [{"variant": i} for i in range(n_variants)]
        if len(self.variants) != n_variants:
            raise ValueError(f"{len(self.variants)} variant descriptions for {n_variants} variants in values")
        self.meta = dict(meta or {})
        if stimuli is not None:
            stimuli = _as_tensor(stimuli, "stimuli")
            if stimuli.dim() != 4 or stimuli.shape[0] != n_variants or stimuli.shape[1] != 3:
                raise ValueError(f"stimuli must be [{n_variants} variants, 3, H, W], got {tuple(stimuli.shape)}")
        self.stimuli = stimuli
        if natural_scale is not None:
            natural_scale = _as_tensor(natural_scale, "natural_scale").flatten()
            if len(natural_scale) != n_units:
                raise ValueError(f"natural_scale has {len(natural_scale)} entries for {n_units} units")
            if not bool(torch.isfinite(natural_scale).all()) or bool((natural_scale < 0).any()):
                raise ValueError("natural_scale must be finite and >= 0 (a response percentile per unit)")
        self.natural_scale = natural_scale
        if achromatic is not None:
            achromatic = _as_tensor(achromatic, "achromatic")
            if achromatic.dim() != 2 or achromatic.shape[0] != n_units or achromatic.shape[1] < 2:
                raise ValueError(
                    f"achromatic must be [{n_units} units, G >= 2] (grey versions, then the blank), "
                    f"got shape {tuple(achromatic.shape)}"
                )
            if not bool(torch.isfinite(achromatic).all()):
                raise ValueError(f"achromatic contains {int((~torch.isfinite(achromatic)).sum())} NaN or infinite entries")
        self.achromatic = achromatic

    def __repr__(self) -> str:
        u, v, s = self.values.shape
        return f"Responses({self.layer!r}, {self.transform.name!r}, units={u}, variants={v}, steps={s})"

    @property
    def period(self) -> float | None:
        """The transform's period (360 for rotation and hue, 2 for flip, None for scale)."""
        return self.transform.period

    def row(self, unit: int) -> int:
        """Row of ``values`` that holds ``unit``."""
        try:
            return self.units.index(int(unit))
        except ValueError:
            raise IndexError(f"unit {unit} is not in these responses of {self.layer!r} ({len(self.units)} units)") from None

    # -- per-unit summaries (batched over all units) ------------------------------
    # Properties: no arguments, read from the stored arrays; methods: take arguments (docs/architecture.md).
    @property
    def best_variant_indices(self) -> Tensor:
        """``Tensor[units]`` (long): per unit, the variant with the largest response at any step."""
        return self.values.amax(dim=2).argmax(dim=1)

    def best_variants(self) -> Tensor:
        """Deprecated: :attr:`best_variant_indices` (a property: no arguments, read from the stored values)."""
        warnings.warn("Responses.best_variants() is deprecated; use the property Responses.best_variant_indices",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        return self.best_variant_indices

    def best_variant(self, unit: int) -> int:
        """The variant index with ``unit``'s largest response."""
        return int(self.best_variant_indices[self.row(unit)])

    @property
    def tuning_curves(self) -> Tensor:
        """``Tensor[units, steps]``: each unit's response to its best variant over the grid."""
        return self.values[torch.arange(len(self.units)), self.best_variant_indices]

    def tunings(self) -> Tensor:
        """Deprecated: :attr:`tuning_curves` (a property: no arguments, read from the stored values)."""
        warnings.warn("Responses.tunings() is deprecated; use the property Responses.tuning_curves",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        return self.tuning_curves

    def tuning(self, unit: int) -> Tensor:
        """``Tensor[steps]``: ``unit``'s response to its best variant over the transform grid."""
        return self.tuning_curves[self.row(unit)]

    @property
    def peak(self) -> Tensor:
        """``Tensor[units]``: each unit's largest |response| over every variant and step."""
        return self.values.abs().flatten(1).amax(dim=1)

    def responding(self, min_response: float = 0.1) -> Tensor:
        """``Tensor[units]`` (bool): which units the stimuli drive at all.

        With a :attr:`natural_scale`: the stimulus peak |response| is at least
        ``min_response`` × the unit's natural 99th percentile (and above 0). Without
        one: the peak is at least 1% of the layer's largest peak (and above 0), the
        only reference the responses themselves hold.

        Args:
            min_response: the fraction of the natural scale, in [0, 1].
        """
        if not 0.0 <= float(min_response) <= 1.0:
            raise ValueError(f"min_response must be in [0, 1], got {min_response!r}")
        peak = self.peak
        if self.natural_scale is not None:
            return (peak > 0) & (peak >= float(min_response) * self.natural_scale)
        return (peak > 0) & (peak >= _MIN_LAYER_RESPONSE * float(peak.max())) if len(peak) else peak > 0

    @property
    def selectivity(self) -> Tensor:
        """``Tensor[units]`` in [0, 1]: how much each unit's tuning changes with the transform.

        With a :attr:`natural_scale`: the modulation (max − min of the best-variant
        tuning curve) as a fraction of the unit's natural 99th percentile, clipped to
        [0, 1] — a unit whose tuning swings by a quarter of what natural patches drive
        it to scores 0.25, however low its minimum. Without one: (max − min) / (|max| +
        |min|) of the tuning curve, a shape-only measure that is 1 for every curve that
        touches 0; units whose peak |response| is below 1% of the layer's largest count as 0.
        """
        t = self.tuning_curves
        hi, lo = t.amax(dim=1), t.amin(dim=1)
        if self.natural_scale is not None:
            scale = self.natural_scale
            sel = ((hi - lo) / scale.clamp_min(1e-12)).clamp(0.0, 1.0)
            return torch.where(scale > 0, sel, torch.zeros_like(sel))
        scale = float(self.values.abs().max()) or 1.0
        sel = (hi - lo) / (hi.abs() + lo.abs()).clamp_min(_MIN_LAYER_RESPONSE * scale)
        weak = torch.maximum(hi.abs(), lo.abs()) < _MIN_LAYER_RESPONSE * scale
        return torch.where(weak, torch.zeros_like(sel), sel)

    @property
    def colour_index(self) -> Tensor | None:
        """``Tensor[units]`` in [0, 1]: how much more colour than grey drives each unit; None without :attr:`achromatic`.

        ``chromatic / (chromatic + achromatic)``, each a *drive*: the largest |response −
        blank response| over the colour stimuli (every variant and step of ``values``)
        resp. over their grey versions (the columns of :attr:`achromatic` but the last, the
        blank). 1: grey leaves the unit at its blank response (colour-opponent); 0.5: colour
        and grey drive it equally; about 0.37: a linear colour-blind unit (equal R, G, B
        weights, see :func:`equifind.stimuli.achromatic_versions`); 0: colour does not move
        it. NaN for a unit that neither moves. :func:`equifind.find_families` lets a unit
        into hue families only at ``>= min_colour_index``.
        """
        if self.achromatic is None:
            return None
        blank = self.achromatic[:, -1]
        chromatic = (self.values - blank[:, None, None]).abs().flatten(1).amax(dim=1)
        grey = (self.achromatic[:, :-1] - blank[:, None]).abs().amax(dim=1)
        total = chromatic + grey
        return torch.where(total > 0, chromatic / total.clamp_min(1e-30), torch.full_like(total, math.nan))

    @property
    def preferred(self) -> Tensor:
        """``Tensor[units]``: the parameter of each unit's peak, with sub-step precision.

        A parabola through the peak and its two circular neighbours gives the
        offset (for periodic transforms on an evenly spaced 1-D grid); otherwise
        the grid value at the peak.
        """
        t = self.tuning_curves
        peak = t.argmax(dim=1)
        grid = self.params
        if grid.dim() != 1 or self.period is None or len(grid) < 3:
            return grid[peak].clone()
        n = t.shape[1]
        idx = torch.arange(t.shape[0])
        y0, y1, y2 = t[idx, (peak - 1) % n], t[idx, peak], t[idx, (peak + 1) % n]
        denom = y0 - 2 * y1 + y2
        offset = torch.where(denom.abs() > 1e-12, 0.5 * (y0 - y2) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
        step = self.period / n
        pref = torch.remainder(grid[peak] + offset * step, self.period)
        return torch.where(pref >= self.period, pref - self.period, pref)  # float rounding of -tiny % period

    # -- subsets and persistence -------------------------------------------------
    def subset(self, units: Sequence[int]) -> Responses:
        """The responses of ``units`` only (in the given order)."""
        rows = [self.row(u) for u in units]
        return Responses(
            self.values[rows], self.params, layer=self.layer, transform=self.transform,
            units=list(units), variants=self.variants, meta=self.meta, stimuli=self.stimuli,
            natural_scale=None if self.natural_scale is None else self.natural_scale[rows],
            achromatic=None if self.achromatic is None else self.achromatic[rows],
        )  # fmt: skip

    def save(self, path: str | os.PathLike) -> Path:
        """Write to one ``.npz`` file (arrays + JSON metadata), atomically (:func:`equifind.store.write_atomic`).

        Returns:
            The path written (``.npz`` appended if missing).
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {
            "layer": self.layer, "transform": self.transform.name, "units": self.units,
            "variants": self.variants, "meta": self.meta, "format": "equifind.Responses/1",
        }  # fmt: skip
        arrays = {"values": self.values.numpy(), "params": self.params.numpy(), "meta": np.array(json.dumps(meta))}
        if self.natural_scale is not None:
            arrays["natural_scale"] = self.natural_scale.numpy()
        if self.achromatic is not None:
            arrays["achromatic"] = self.achromatic.numpy()
        if self.stimuli is not None:
            arrays["stimuli"] = (self.stimuli.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        write_atomic(path, lambda fh: np.savez_compressed(fh, **arrays))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Responses:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.exists() and path.with_name(path.name + ".npz").exists():
            path = path.with_name(path.name + ".npz")
        if not path.is_file():
            raise FileNotFoundError(f"no Responses file at {str(path)!r}")
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            stimuli = torch.from_numpy(data["stimuli"]).float() / 255 if "stimuli" in data else None
            natural = data["natural_scale"] if "natural_scale" in data else None
            achromatic = data["achromatic"] if "achromatic" in data else None
            return cls(
                data["values"], data["params"], layer=meta["layer"], transform=meta["transform"],
                units=meta["units"], variants=meta["variants"], meta=meta.get("meta"), stimuli=stimuli,
                natural_scale=natural, achromatic=achromatic,
            )  # fmt: skip
