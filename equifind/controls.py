"""Negative controls: data and networks in which the right answer is "nothing here".

Every method of equifind has a control it must survive (see the README):

* :func:`shuffle_variants`: each unit's responses to the stimulus variants permuted on
  their own. Every tuning curve stays as measured; what units share (their responses to
  the same stimulus) is destroyed, so no family should be significant.
* :func:`colour_blind`: a copy of a network whose first convolution sees R + G + B only,
  so no hue family should be found in it.

>>> blind = ef.controls.colour_blind(m)                 # a new Model; m is unchanged
>>> ef.find_families(ef.probe(blind, "conv2d0", "hue"))  # expect no family at q <= 0.05
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._checks import unknown_name
from .models.base import Model
from .responses import Responses

__all__ = ["shuffle_variants", "colour_blind"]


def shuffle_variants(responses: Responses, seed: int = 0) -> Responses:
    """``responses`` with each unit's stimulus variants permuted independently (seeded).

    ``values[u, :, s]`` is permuted by a permutation of its own per unit ``u`` (the same
    for every step ``s``, so each tuning curve survives whole). The natural scale and the
    grey responses (``achromatic``) are kept; the stimuli images, which no longer belong
    to one variant per row, are dropped.

    Args:
        responses: ``Responses`` with ``values: Tensor[units, variants, steps]``.
        seed: seeds the permutations.

    Raises:
        ValueError: fewer than 2 variants (nothing to permute).
    """
    if not isinstance(responses, Responses):
        raise ValueError(f"responses must be an equifind.Responses, got {type(responses).__name__}")
    n, v, _ = responses.values.shape
    if v < 2:
        raise ValueError(f"shuffling variants needs >= 2 variants, got {v} in {responses!r}")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.rand(n, v, generator=gen).argsort(dim=1)
    return Responses(
        responses.values[torch.arange(n)[:, None], perm], responses.params, layer=responses.layer,
        transform=responses.transform, units=responses.units, variants=responses.variants,
        meta=dict(responses.meta, control=f"variants shuffled per unit (seed {seed})"),
        natural_scale=responses.natural_scale, achromatic=responses.achromatic,
    )  # fmt: skip


def colour_blind(model: Model, conv: str | None = None) -> Model:
    """A copy of ``model`` whose input convolution sees R + G + B only.

    Each filter's weights over the three input channels are replaced by their mean, so the
    convolution, and everything after it, depends on the channels' sum alone. That is
    exactly colour-blind when the preprocessing treats the three channels alike up to an
    offset (BVLC GoogLeNet: BGR × 255 minus a per-channel mean); with per-channel scales
    (torchvision's ``std``), it is colour-blind in the scaled space, not in RGB.

    Args:
        model: the model (not changed).
        conv: the module name (``model.module.named_modules()``) of the convolution; default
            the first ``nn.Conv2d`` with 3 input channels.

    Raises:
        KeyError: ``conv`` is not a module of the model.
        ValueError: ``conv`` is not a convolution with 3 input channels, or none is found.
    """
    module = copy.deepcopy(model.module)
    named = dict(module.named_modules())
    if conv is None:
        conv = next((name for name, m in named.items() if isinstance(m, nn.Conv2d) and m.in_channels == 3), None)
        if conv is None:
            raise ValueError(f"{model.name} has no nn.Conv2d with 3 input channels; pass conv=")
    if conv not in named:
        raise unknown_name("module", conv, [name for name, m in named.items() if isinstance(m, nn.Conv2d)])
    layer = named[conv]
    if not isinstance(layer, nn.Conv2d) or layer.in_channels != 3 or layer.groups != 1:
        raise ValueError(f"{conv!r} must be an nn.Conv2d with 3 input channels and groups=1, got {layer!r}")
    with torch.no_grad():
        layer.weight.copy_(layer.weight.mean(dim=1, keepdim=True).expand_as(layer.weight))
    return Model(module, name=f"{model.name}_colourblind", preprocess=model._preprocess,
                 layer_names=model._given_layer_names, input_size=model.input_size)  # fmt: skip
