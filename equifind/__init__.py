"""equifind: find natural equivariant neuron families in trained CNNs.

>>> import equifind as ef
>>> m = ef.load_model("googlenet_bvlc", weights="bvlc_googlenet.pth")
>>> with ef.record(m, ["conv2d2"]) as rec:
...     m(images)
"""

from .models import MODELS, Model, ReceptiveField, WeightsNotFoundError, load_model
from .record import Recording, record, record_batched

__version__ = "0.1.0"

__all__ = [
    "load_model",
    "Model",
    "ReceptiveField",
    "WeightsNotFoundError",
    "MODELS",
    "record",
    "record_batched",
    "Recording",
]
