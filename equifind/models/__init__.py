"""The model zoo: ``load_model`` and the ``Model`` wrapper."""

from .base import Model, ReceptiveField
from .zoo import MODELS, WeightsNotFoundError, load_model

__all__ = ["load_model", "Model", "ReceptiveField", "WeightsNotFoundError", "MODELS"]
