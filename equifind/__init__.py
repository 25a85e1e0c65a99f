"""equifind: find natural equivariant neuron families in trained CNNs.

>>> import equifind as ef
>>> m = ef.load_model("googlenet_bvlc", weights="bvlc_googlenet.pth")
>>> resp = ef.probe(m, "conv2d2", transform="rotation")
>>> fams = ef.find_families(resp)

Every public name is imported on first use (PEP 562), so ``import equifind`` (and the
``equifind`` command's ``--help``) does not import torch.
"""

# ruff: noqa: F401  (the TYPE_CHECKING imports re-export names that __all__ builds from _SOURCES)
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name -> the module (relative to this package) it comes from; a name that is
#: itself a submodule (``stimuli``) maps to ``""``.
_SOURCES: dict[str, str] = {
    # models
    "load_model": ".models", "Model": ".models", "ReceptiveField": ".models",
    "WeightsNotFoundError": ".models", "MODELS": ".models",
    # record
    "record": ".record", "record_batched": ".record", "Recording": ".record",
    # transforms
    "Transform": ".transforms", "Rotation": ".transforms", "Hue": ".transforms", "Flip": ".transforms",
    "Scale": ".transforms", "HueRotation": ".transforms", "get_transform": ".transforms",
    # negative controls
    "controls": "",
    # stimuli
    "stimuli": "", "StimulusSet": ".stimuli", "grating": ".stimuli", "gabor": ".stimuli", "edge": ".stimuli",
    "line": ".stimuli", "curve": ".stimuli", "high_low": ".stimuli", "color_contrast": ".stimuli",
    "center_surround": ".stimuli", "circle": ".stimuli",
    # probe
    "probe": ".probe", "probe_geometry": ".probe", "ProbeGeometry": ".probe", "Responses": ".responses",
    "natural_scale": ".natural", "top_patches": ".natural",
    # families
    "find_families": ".families", "Family": ".families", "FamilyList": ".families",
    "explain_flip_pairs": ".families", "DEFAULT_MIN_COLOUR_INDEX": ".families",
    # score
    "score_family": ".score", "score_responses": ".score", "FamilyScore": ".score",
    # held-out validation
    "heldout": "", "validate_families": ".heldout", "HeldoutSource": ".heldout",
    # circuits
    "expanded_weights": ".expanded", "circuit_symmetry": ".circuits", "find_circuits": ".circuits",
    "CircuitScore": ".circuits", "Units": ".circuits", "rotate_kernels": ".transforms.kernels",
    "rotation_ceiling": ".transforms.kernels",
    # scan and report
    "scan": ".scan", "ScanResult": ".scan", "ScanConfig": ".config", "load_labels": ".scan", "report": ".report",
}  # fmt: skip

__all__ = list(_SOURCES)

#: Public functions named like the submodule that holds them (``equifind.scan`` the function,
#: ``equifind.scan`` the module): importing the submodule must not replace the function.
_SHADOWED = tuple(name for name, source in _SOURCES.items() if source == f".{name}")


def _resolve(name: str) -> Any:
    """The public object ``name``, importing its module."""
    source = _SOURCES[name]
    if not source:
        return importlib.import_module(f".{name}", __name__)
    return getattr(importlib.import_module(source, __name__), name)


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and keep it."""
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _resolve(name)
    if name not in _SHADOWED:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """This package's module type: ``scan``, ``record``, ``probe`` and ``report`` stay the functions.

    Importing a submodule sets it as an attribute of its package, which would replace the
    function of the same name (``import equifind.scan`` made ``ef.scan`` the module). The
    properties ignore that assignment; any other value set (a test's monkeypatch) is kept.
    """


def _shadowed_property(name: str) -> property:
    def get(module: types.ModuleType) -> Any:
        override = module.__dict__.get("_overrides", {})
        return override[name] if name in override else _resolve(name)

    def set_(module: types.ModuleType, value: Any) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            return  # the import system recording the submodule: keep the function
        module.__dict__.setdefault("_overrides", {})[name] = value

    def delete(module: types.ModuleType) -> None:
        module.__dict__.setdefault("_overrides", {}).pop(name, None)

    return property(get, set_, delete, doc=f"equifind.{name}, the function (not the submodule)")


for _name in _SHADOWED:
    setattr(_Package, _name, _shadowed_property(_name))
sys.modules[__name__].__class__ = _Package
del _name

if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports (re-exported through __all__)
    from . import controls, heldout, stimuli
    from .circuits import CircuitScore, Units, circuit_symmetry, find_circuits
    from .config import ScanConfig
    from .expanded import expanded_weights
    from .families import DEFAULT_MIN_COLOUR_INDEX, Family, FamilyList, explain_flip_pairs, find_families
    from .heldout import HeldoutSource, validate_families
    from .models import MODELS, Model, ReceptiveField, WeightsNotFoundError, load_model
    from .natural import natural_scale, top_patches
    from .probe import ProbeGeometry, probe, probe_geometry
    from .record import Recording, record, record_batched
    from .report import report
    from .responses import Responses
    from .scan import ScanResult, load_labels, scan
    from .score import FamilyScore, score_family, score_responses
    from .stimuli import (
        StimulusSet, center_surround, circle, color_contrast, curve, edge, gabor, grating, high_low, line,
    )  # fmt: skip
    from .transforms import Flip, Hue, HueRotation, Rotation, Scale, Transform, get_transform
    from .transforms.kernels import rotate_kernels, rotation_ceiling
