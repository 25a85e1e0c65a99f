"""equifind: find natural equivariant neuron families in trained CNNs.

>>> import equifind as ef
>>> m = ef.load_model("googlenet_bvlc", weights="bvlc_googlenet.pth")
>>> resp = ef.probe(m, "conv2d2", transform="rotation")
>>> fams = ef.find_families(resp)
"""

from . import controls, heldout, stimuli
from .circuits import CircuitScore, Units, circuit_symmetry, find_circuits
from .expanded import expanded_weights
from .families import DEFAULT_MIN_COLOUR_INDEX, Family, FamilyList, explain_flip_pairs, find_families
from .models import MODELS, Model, ReceptiveField, WeightsNotFoundError, load_model
from .heldout import HeldoutSource, validate_families
from .natural import natural_scale, top_patches
from .probe import ProbeGeometry, probe, probe_geometry
from .record import Recording, record, record_batched
from .responses import Responses
from .score import FamilyScore, score_family, score_responses
from .scan import ScanResult, load_labels, scan
from .config import ScanConfig
from .stimuli import (
    StimulusSet,
    center_surround,
    circle,
    color_contrast,
    curve,
    edge,
    gabor,
    grating,
    high_low,
    line,
)
from .report import report
from .transforms import Flip, Hue, HueRotation, Rotation, Scale, Transform, get_transform
from .transforms.kernels import rotate_kernels, rotation_ceiling

__version__ = "0.1.0"

__all__ = [
    # models
    "load_model", "Model", "ReceptiveField", "WeightsNotFoundError", "MODELS",
    # record
    "record", "record_batched", "Recording",
    # transforms
    "Transform", "Rotation", "Hue", "Flip", "Scale", "HueRotation", "get_transform",
    # negative controls
    "controls",
    # stimuli
    "stimuli", "StimulusSet", "grating", "gabor", "edge", "line", "curve", "high_low",
    "color_contrast", "center_surround", "circle",
    # probe
    "probe", "probe_geometry", "ProbeGeometry", "Responses", "natural_scale", "top_patches",
    # families
    "find_families", "Family", "FamilyList", "explain_flip_pairs", "DEFAULT_MIN_COLOUR_INDEX",
    # score
    "score_family", "score_responses", "FamilyScore",
    # held-out validation
    "heldout", "validate_families", "HeldoutSource",
    # circuits
    "expanded_weights", "circuit_symmetry", "find_circuits", "CircuitScore", "Units", "rotate_kernels",
    "rotation_ceiling",
    # scan and report
    "scan", "ScanResult", "ScanConfig", "load_labels", "report",
]  # fmt: skip
