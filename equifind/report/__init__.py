"""The report page of scans, families, family scores and circuits, and their figures on request.

>>> import equifind as ef
>>> ef.report(result, "reports/run1")                                          # index.html only
>>> ef.report(result, "reports/run1", formats=("html", "png", "svg"), families=5)  # + the 5 best families' figures
>>> fig = tuning_heatmap(family, responses); save_figure(fig, "out/tuning", ("png",))
"""

from ._files import DEFAULT_FORMATS, IMAGE_FORMATS, REPORT_FORMATS, save_figure
from .build import report
from .figures import (
    equivariance_matrix, heldout_answers, heldout_pairs, hue_orientation_map, hue_rgb, polar_tuning, stimulus_strip,
    tuning_heatmap,
)  # fmt: skip
from .weights import weight_diagram, weight_mosaic

__all__ = [
    "report",
    "tuning_heatmap",
    "polar_tuning",
    "stimulus_strip",
    "equivariance_matrix",
    "hue_orientation_map",
    "heldout_answers",
    "heldout_pairs",
    "weight_diagram",
    "weight_mosaic",
    "hue_rgb",
    "save_figure",
    "IMAGE_FORMATS",
    "REPORT_FORMATS",
    "DEFAULT_FORMATS",
]
