"""Scan settings: layer sets, transforms, steps and thresholds, read from TOML or a dict."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ._stats import DEFAULT_Q, check_null_size
from .families import DEFAULT_MIN_COLOUR_INDEX
from .heldout import DEFAULT_FV_STEPS, DEFAULT_PATCHES, DEFAULT_POOL, DEFAULT_STEPS, SOURCES
from .transforms import Transform, as_transform, names

__all__ = ["ScanConfig", "load_config", "DEFAULT_TRANSFORMS"]

#: The transforms a scan probes by default: those the whole pipeline handles (families,
#: scores and circuits), in the registry's order: rotation, hue, flip.
DEFAULT_TRANSFORMS: tuple[str, ...] = names(scores=True, circuits=True)
#: ``[validate]`` keys of a TOML config -> the flat ScanConfig field.
_VALIDATE_KEYS = {k: f"validate_{k}" for k in ("sources", "top", "steps", "pool", "patches", "fv_steps")}


@dataclass(frozen=True)
class ScanConfig:
    """Everything that decides a scan's numbers (so a resumed scan can check it matches).

    Attributes:
        model: zoo name, optional (the command line's MODEL wins).
        layers: layers to scan, in forward order.
        transforms: names of the transforms to probe per layer (any registered name,
            :func:`~equifind.transforms.names`; Transform objects are kept by name);
            default :data:`DEFAULT_TRANSFORMS`.
        steps: transform grid size, at least each transform's ``min_steps``; a transform
            with ``scan_max_steps`` (hue_rotation: per axis, 16) probes with at most that many.
        stimuli: "auto" or a list of generator names (see equifind.stimuli).
        min_selectivity, min_similarity, min_size: find_families thresholds.
        min_colour_index: find_families' colour gate for hue and hue_rotation (the least
            ``Responses.colour_index`` of a hue-family member; 0 turns it off).
        n_null: null draws for the families' discovery p-values and the scores'
            equivariance p-values (0: no null, p = 1; else its floor 1/(1 + n_null)
            must reach ``alpha``).
        circuits: check circuits between families of consecutive layers.
        circuit_n_null: null draws per circuit check (its floor must reach ``alpha``
            when circuits are on).
        alpha: the q-value (Benjamini–Hochberg) threshold for families and circuits:
            significant means q ≤ alpha (default 0.05).
        circuit_min_score: and with a symmetry score of at least this (the kernel
            null is weak: a faint but real bias passes it at scores near 0.1).
        seed: seed of every random choice.
        validate_sources: held-out sources (:data:`equifind.heldout.SOURCES`: "feature_vis",
            "patches") the best families of each layer and transform (rotation, hue, flip) are
            validated on (:mod:`equifind.heldout`); empty (the default): no validation.
        validate_top: families validated per layer and transform (≥ 1).
        validate_steps: the held-out probe's transform grid (≥ 4).
        validate_pool: random responding units in each validated family's null pool (≥ 1).
        validate_patches: top natural patches per unit (≥ 1).
        validate_fv_steps: feature-visualization steps (≥ 1).
    """

    model: str | None = None
    layers: tuple[str, ...] = ()
    transforms: tuple[str, ...] = DEFAULT_TRANSFORMS
    steps: int = 64
    stimuli: str | tuple[str, ...] = "auto"
    min_selectivity: float = 0.25
    min_similarity: float = 0.7
    min_size: int = 2
    min_colour_index: float = DEFAULT_MIN_COLOUR_INDEX
    n_null: int = 200
    circuits: bool = True
    circuit_n_null: int = 200
    alpha: float = DEFAULT_Q
    circuit_min_score: float = 0.5
    seed: int = 0
    validate_sources: tuple[str, ...] = ()
    validate_top: int = 3
    validate_steps: int = DEFAULT_STEPS
    validate_pool: int = DEFAULT_POOL
    validate_patches: int = DEFAULT_PATCHES
    validate_fv_steps: int = DEFAULT_FV_STEPS

    def __post_init__(self) -> None:
        self._check_transforms()
        self._check_null_sizes()
        mci = self.min_colour_index
        if isinstance(mci, bool) or not isinstance(mci, (int, float)) or not 0.0 <= mci <= 1.0:
            raise ValueError(f"min_colour_index must be a number in [0, 1], got {mci!r}")
        if not -1.0 <= self.circuit_min_score <= 1.0:
            raise ValueError(f"circuit_min_score must be in [-1, 1], got {self.circuit_min_score!r}")
        self._check_validate()

    def _check_transforms(self) -> None:
        """Registered transforms (kept as names), and ``steps`` each of them accepts (``Transform.check_steps``)."""
        given = self.transforms
        if isinstance(given, (str, Transform)) or not isinstance(given, (tuple, list)):
            raise ValueError(f"transforms must be a list of names from {list(names())}, got {given!r}")
        found: list[Transform] = []
        bad: list[Any] = []
        for t in given:
            try:
                found.append(as_transform(t))
            except KeyError:
                bad.append(t)
        if bad:
            raise ValueError(f"unknown transforms {bad} in the scan config; valid: {list(names())}")
        object.__setattr__(self, "transforms", tuple(tf.name for tf in found))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ValueError(f"steps must be an int, got {self.steps!r}")
        for tf in found:
            try:
                tf.check_steps(self.steps_for(tf))
            except ValueError as err:
                raise ValueError(f"steps: {err}") from None

    def steps_for(self, transform: str | Transform) -> int:
        """The grid a scan probes ``transform`` with: ``steps``, capped at the transform's ``scan_max_steps``.

        Raises:
            KeyError: an unknown transform.
        """
        tf = as_transform(transform)
        return self.steps if tf.scan_max_steps is None else min(self.steps, tf.scan_max_steps)

    def _check_validate(self) -> None:
        """The ``[validate]`` settings: known sources without repeats, and ints within their ranges."""
        sources = self.validate_sources
        if isinstance(sources, str) or not isinstance(sources, (tuple, list)):
            raise ValueError(
                f"validate_sources ([validate] sources) must be a list of {list(SOURCES)} (empty: off), got {sources!r}"
            )
        bad = [s for s in sources if s not in SOURCES]
        if bad or len(set(sources)) != len(sources):
            raise ValueError(
                f"validate_sources ([validate] sources) must be distinct values of {list(SOURCES)} (empty: off), "
                f"got {list(sources)!r}"
            )
        object.__setattr__(self, "validate_sources", tuple(s for s in SOURCES if s in sources))  # one canonical order
        if sources:  # the held-out tests draw n_null random unit sets per family
            check_null_size(self.n_null, self.alpha, "n_null")
        for name, least in (("top", 1), ("steps", 4), ("pool", 1), ("patches", 1), ("fv_steps", 1)):
            value = getattr(self, f"validate_{name}")
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"validate_{name} ([validate] {name}) must be an int ≥ {least}, got {value!r}")

    def _check_null_sizes(self) -> None:
        """``n_null`` 0 (no null) or enough to reach ``alpha``; ``circuit_n_null`` enough when circuits are on."""
        for name in ("n_null", "circuit_n_null"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int ≥ 0, got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha <= 1:
            raise ValueError(f"alpha (the q-value threshold) must be in (0, 1], got {self.alpha!r}")
        if self.n_null:
            check_null_size(self.n_null, self.alpha, "n_null")
        if self.circuits:
            check_null_size(self.circuit_n_null, self.alpha, "circuit_n_null")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanConfig:
        """Build from a flat dict or TOML tables ``[probe]``, ``[families]``, ``[circuits]``, ``[validate]``.

        ``[circuits]`` keys ``enabled``, ``n_null``, ``min_score`` are the fields ``circuits``,
        ``circuit_n_null``, ``circuit_min_score``; ``[validate]`` key ``k`` is ``validate_k``.

        Raises:
            ValueError: unknown keys (named, with the valid ones).
        """
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict) and key in ("probe", "families", "circuits", "scan", "validate"):
                for k, v in value.items():
                    flat[_flat_key(key, k)] = v
            else:
                flat[key] = value
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValueError(f"unknown scan config keys {unknown}; valid: {sorted(names)}")
        for key in ("layers", "transforms"):
            if key in flat:
                flat[key] = tuple(flat[key])
        if isinstance(flat.get("validate_sources"), list):
            flat["validate_sources"] = tuple(flat["validate_sources"])
        if isinstance(flat.get("stimuli"), list):
            flat["stimuli"] = tuple(flat["stimuli"])
        return cls(**flat)

    def replace(self, **changes: Any) -> ScanConfig:
        """A copy with ``changes`` (None values are ignored)."""
        data = asdict(self)
        data.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in changes.items() if v is not None})
        return ScanConfig(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        data = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}

    def fingerprint(self) -> str:
        """A short hash of the settings that decide the numbers (not the layer list)."""
        data = self.to_dict()
        for key in ("model", "layers", "transforms"):
            data.pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _flat_key(table: str, key: str) -> str:
    """The ScanConfig field of ``key`` in TOML table ``table``."""
    if table == "circuits":
        return {"enabled": "circuits", "n_null": "circuit_n_null", "min_score": "circuit_min_score"}.get(key, key)
    if table == "validate":
        if key not in _VALIDATE_KEYS:
            raise ValueError(f"unknown key {key!r} in [validate]; valid: {sorted(_VALIDATE_KEYS)}")
        return _VALIDATE_KEYS[key]
    return key


def load_config(source: str | os.PathLike | dict[str, Any] | ScanConfig | None) -> ScanConfig:
    """A :class:`ScanConfig` from a TOML path, a dict, a ScanConfig or None (defaults).

    Raises:
        FileNotFoundError: no such TOML file. ValueError: invalid TOML or keys.
    """
    if source is None:
        return ScanConfig()
    if isinstance(source, ScanConfig):
        return source
    if isinstance(source, dict):
        return ScanConfig.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {str(path)!r}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from err
    return ScanConfig.from_dict(data)
