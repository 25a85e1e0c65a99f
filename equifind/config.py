"""Scan settings: layer sets, transforms, steps and thresholds, read from TOML or a dict."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Iterable
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
        model: zoo name, optional (the command line's MODEL must agree with it).
        layers: layers to scan, in forward order (one string is a one-element list, as for
            ``transforms``, ``stimuli`` and ``validate_sources``).
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
        validate_steps: the held-out probe's transform grid (at least each transform's ``min_steps``).
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
        """Check every field's type and range, naming the key, the value and what is valid.

        Lists may be given as one string (``layers = "conv2d0"`` is ``("conv2d0",)``); they are
        kept as tuples. The same rules hold for TOML, dicts, :meth:`replace` and ``ScanConfig(...)``.

        Raises:
            ValueError: the first bad field (its key as a TOML config writes it, the value, what is valid).
        """
        self._check_types()
        self._check_transforms()
        self._check_null_sizes()
        self._check_validate()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _check_types(self) -> None:
        """Types and ranges of the fields that do not depend on each other."""
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ValueError(f"model must be a model name (a non-empty string), got {self.model!r}")
        self._set("layers", _names("layers", self.layers, "layer names", allow_empty=True))
        self._set("stimuli", _stimuli(self.stimuli))
        _number("min_selectivity", self.min_selectivity, 0.0, 1.0)
        _number("min_similarity", self.min_similarity, 0.0, 1.0, low_open=True)
        _integer("min_size", self.min_size, 2)
        _number("min_colour_index", self.min_colour_index, 0.0, 1.0)
        _boolean("circuits", self.circuits)
        _number("alpha", self.alpha, 0.0, 1.0, low_open=True, what=" (the q-value threshold)")
        _number("circuit_min_score", self.circuit_min_score, -1.0, 1.0)
        _integer("seed", self.seed, 0)

    def _check_transforms(self) -> None:
        """Registered transforms (kept as names), and ``steps`` each of them accepts (``Transform.check_steps``)."""
        given = self.transforms
        if isinstance(given, Transform):
            given = (given,)
        items = _names("transforms", given, f"names from {list(names())}", allow_objects=(Transform,))
        found: list[Transform] = []
        bad: list[Any] = []
        for t in items:
            try:
                found.append(as_transform(t))
            except KeyError:
                bad.append(t)
        if bad:
            near = _did_you_mean(str(bad[0]), names())
            raise ValueError(f"unknown transforms {bad} in the scan config;{near} valid: {list(names())}")
        kept = tuple(tf.name for tf in found)
        if len(set(kept)) != len(kept):
            raise ValueError(f"transforms must not repeat a name, got {list(kept)}")
        self._set("transforms", kept)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            least = max(tf.min_steps for tf in found)
            raise ValueError(f"steps must be an int ≥ {least} (for {', '.join(kept)}), got {_got(self.steps)}")
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
        label = _label("validate_sources")
        sources = _names("validate_sources", self.validate_sources, f"values of {list(SOURCES)} (empty: off)", allow_empty=True)
        bad = [s for s in sources if s not in SOURCES]
        if bad or len(set(sources)) != len(sources):
            raise ValueError(f"{label} must be distinct values of {list(SOURCES)} (empty: off), got {list(sources)!r}")
        self._set("validate_sources", tuple(s for s in SOURCES if s in sources))  # one canonical order
        if sources:  # the held-out tests draw n_null random unit sets per family
            check_null_size(self.n_null, self.alpha, "n_null")
        # the held-out grid probes the scan's transforms: their own minimum (Transform.min_steps)
        least_steps = max((as_transform(t).min_steps for t in self.transforms), default=1)
        for name, least in (("top", 1), ("steps", least_steps), ("pool", 1), ("patches", 1), ("fv_steps", 1)):
            _integer(f"validate_{name}", getattr(self, f"validate_{name}"), least)

    def _check_null_sizes(self) -> None:
        """``n_null`` 0 (no null) or enough to reach ``alpha``; ``circuit_n_null`` enough when circuits are on."""
        for name in ("n_null", "circuit_n_null"):
            _integer(name, getattr(self, name), 0)
        if self.n_null:
            check_null_size(self.n_null, self.alpha, "n_null")
        if self.circuits:
            check_null_size(self.circuit_n_null, self.alpha, "circuit_n_null")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanConfig:
        """Build from a flat dict or TOML tables ``[probe]``, ``[families]``, ``[circuits]``, ``[validate]``, ``[scan]``.

        ``[circuits]`` keys ``enabled``, ``n_null``, ``min_score`` are the fields ``circuits``,
        ``circuit_n_null``, ``circuit_min_score``; ``[validate]`` key ``k`` is ``validate_k``.

        Raises:
            ValueError: not a dict, an unknown key or table (named, with the closest valid one),
                a key given twice, or a bad value (see :class:`ScanConfig`).
        """
        if not isinstance(data, dict):
            raise ValueError(f"a scan config must be a dict (or TOML tables), got {type(data).__name__} {data!r}")
        valid = [f.name for f in fields(cls)]
        flat: dict[str, Any] = {}
        where: dict[str, str] = {}
        for key, value in data.items():
            if key in _TABLES and not isinstance(value, dict) and key not in valid:
                raise ValueError(f"[{key}] must be a table of settings, got {value!r}")
            if key in _TABLES and isinstance(value, dict):
                pairs = [(_flat_key(key, k), v, f"[{key}] {k}") for k, v in value.items()]
            else:
                pairs = [(key, value, repr(key))]
            for field, v, said in pairs:
                if field in flat:
                    raise ValueError(f"scan config key {said} repeats {where[field]} (both set {field}); keep one")
                flat[field], where[field] = v, said
        unknown = [k for k in flat if k not in valid]
        if unknown:
            near = _did_you_mean(unknown[0], valid)
            raise ValueError(f"unknown scan config key {where[unknown[0]]};{near} valid: {sorted(valid)}")
        return cls(**flat)

    def replace(self, **changes: Any) -> ScanConfig:
        """A copy with ``changes`` (None values are ignored), checked like a new config.

        Raises:
            ValueError: an unknown field (with the closest) or a bad value.
        """
        valid = [f.name for f in fields(self)]
        for key in changes:
            if key not in valid:
                raise ValueError(f"unknown scan config key {key!r};{_did_you_mean(key, valid)} valid: {sorted(valid)}")
        data = asdict(self)
        data.update({k: v for k, v in changes.items() if v is not None})
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


#: TOML tables a config may group its keys in.
_TABLES = ("probe", "families", "circuits", "scan", "validate")
#: ScanConfig fields whose TOML key differs, as a TOML config writes them (for messages).
_LABELS = {
    "circuits": "circuits ([circuits] enabled)", "circuit_n_null": "circuit_n_null ([circuits] n_null)",
    "circuit_min_score": "circuit_min_score ([circuits] min_score)",
    **{f: f"{f} ([validate] {k})" for k, f in _VALIDATE_KEYS.items()},
}  # fmt: skip


def _flat_key(table: str, key: str) -> str:
    """The ScanConfig field of ``key`` in TOML table ``table``.

    Raises:
        ValueError: a key ``[validate]`` does not have (with the closest).
    """
    if table == "circuits":
        return {"enabled": "circuits", "n_null": "circuit_n_null", "min_score": "circuit_min_score"}.get(key, key)
    if table == "validate":
        if key not in _VALIDATE_KEYS:
            raise ValueError(f"unknown key {key!r} in [validate];{_did_you_mean(key, _VALIDATE_KEYS)} valid: {sorted(_VALIDATE_KEYS)}")
        return _VALIDATE_KEYS[key]
    return key


def _label(field: str) -> str:
    """How messages name ``field``: with its TOML table key where that differs."""
    return _LABELS.get(field, field)


def _did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` did you mean 'x'?`` for the closest valid name, or ``""``."""
    near = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f" did you mean {near[0]!r}?" if near else ""


def _got(value: object) -> str:
    """A bad value for a message: its repr, and its type unless it is an int or a float."""
    if type(value) in (int, float):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


def _integer(field: str, value: object, least: int) -> None:
    """ValueError unless ``value`` is an int (not a bool) ≥ ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{_label(field)} must be an int ≥ {least}, got {_got(value)}")


def _number(
    field: str, value: object, low: float, high: float, *, low_open: bool = False, what: str = ""
) -> None:
    """ValueError unless ``value`` is a finite int or float in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value if low_open else low <= value) or not value <= high:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{_label(field)}{what} must be a number in {span}, got {_got(value)}")


def _boolean(field: str, value: object) -> None:
    """ValueError unless ``value`` is true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{_label(field)} must be true or false, got {_got(value)}")


def _names(
    field: str, value: object, valid: str, *, allow_empty: bool = False, allow_objects: tuple[type, ...] = ()
) -> tuple[Any, ...]:
    """A list of names as a tuple: one string is a one-element list.

    Raises:
        ValueError: not a string or a list/tuple of non-empty strings (or ``allow_objects``), or empty
            unless ``allow_empty``; the message names the field, the value and ``valid``.
    """
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{_label(field)} must be a list of {valid}, got {_got(value)}")
    for item in items:
        if not (isinstance(item, allow_objects) or (isinstance(item, str) and item)):
            raise ValueError(f"{_label(field)} must be a list of {valid}; {item!r} in {list(items)!r} is not a name")
    if not items and not allow_empty:
        raise ValueError(f"{_label(field)} must name at least one: a list of {valid}, got {list(items)!r}")
    return tuple(items)


def _stimuli(value: object) -> str | tuple[str, ...]:
    """``"auto"``, one generator name, or a tuple of them (registered in :data:`equifind.stimuli.STIMULI`).

    Raises:
        ValueError: anything else, naming the bad entry and the valid names (with the closest).
    """
    from .stimuli import STIMULI

    valid = ["auto", *STIMULI]
    if value == "auto":
        return "auto"
    items = _names("stimuli", value, f"stimulus names ({', '.join(STIMULI)}) or 'auto'")
    for item in items:
        if item not in STIMULI:
            raise ValueError(
                f"unknown stimulus {item!r} in stimuli;{_did_you_mean(item, valid)} valid: 'auto' or a list of {list(STIMULI)}"
            )
    return value if isinstance(value, str) else items


def load_config(source: str | os.PathLike | dict[str, Any] | ScanConfig | None) -> ScanConfig:
    """A :class:`ScanConfig` from a TOML path, a dict, a ScanConfig or None (defaults).

    Raises:
        FileNotFoundError: no such TOML file. ValueError: invalid TOML, keys or values (from a
            file, the message starts with its path).
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
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from err
    try:
        return ScanConfig.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
