"""Expanded weights: the linear map between two layers of a network, through a linear view of it.

"The equivariant behavior we observe in neurons is really a reflection of a
deeper symmetry that exists in the weights" (Olah et al., Distill 2020). The
weights between two layers that are not directly connected are those of the
network made linear:

>>> w = ef.expanded_weights(m, "conv2d1", "conv2d2")     # Tensor[192, 64, 3, 3]

Conventions:
    * Expanded weights are exact Jacobians of a *linear view* of the network:
      ReLU-like ops (relu, relu6, hardtanh, leaky_relu, ``clamp(min=0)``,
      lucent's ``RedirectedReluLayer``) and local response normalisation are
      the identity; a max pool is the average pool of the same window (with
      ``count_include_pad=False``: the padding of a max pool never wins, so
      the average is over real inputs only; ``-inf`` pads written with
      ``F.pad`` become 0). Other ops (batch norm in eval, sigmoid, ...) are
      linearised where the source activations are zero.
    * Entry ``[t, s, y, x]`` is the weight from source channel ``s`` at window
      position ``(y, x)`` to the centre of target channel ``t``; the window is
      the same for every unit of a layer pair (see :func:`expanded_weights`).

Their symmetry under a transform is :mod:`equifind.circuits`' subject.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ._hooks import forward_hooks
from .models.base import Model
from .record import record

__all__ = ["expanded_weights"]

BATCH = 64  #: target units per batched backward pass of :func:`expanded_weights`
_FUNCTION_RELUS = ("RedirectedReluLayer",)  # autograd.Function ReLUs, made identity by a hook
_CLAMPS = {torch.clamp, torch.Tensor.clamp, torch.clamp_min, torch.Tensor.clamp_min, torch.clamp_, torch.Tensor.clamp_}
_IDENTITY = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6, F.hardtanh,
             F.hardtanh_, F.leaky_relu, F.leaky_relu_, F.local_response_norm}  # in-place ones: left unchanged


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


class _LinearView(TorchFunctionMode):
    """ReLU → identity, max pool → average pool, LRN → identity; ``structural``: convs with positive
    weights; ``pointwise``: convolutions larger than 1×1 give zero (only 1×1 paths remain)."""

    def __init__(self, structural: bool = False, pointwise: bool = False) -> None:
        super().__init__()
        self.structural = structural
        self.pointwise = pointwise

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        x = _arg(args, kwargs, 0, "input")
        if func in _IDENTITY:
            return x
        if func in _CLAMPS and _arg(args, kwargs, 1, "min") == 0 and _arg(args, kwargs, 2, "max") is None:
            return x
        if func is F.max_pool2d:
            if _arg(args, kwargs, 4, "dilation", 1) not in (1, (1, 1)) or _arg(args, kwargs, 6, "return_indices"):
                raise ValueError("expanded_weights: a max pool with dilation or return_indices has no average-pool twin")
            size = _arg(args, kwargs, 1, "kernel_size")
            return F.avg_pool2d(x, size, _arg(args, kwargs, 2, "stride") or size, _arg(args, kwargs, 3, "padding", 0),
                                _arg(args, kwargs, 5, "ceil_mode", False), count_include_pad=False)
        if func is F.adaptive_max_pool2d:
            return F.adaptive_avg_pool2d(x, _arg(args, kwargs, 1, "output_size"))
        if func is F.pad and math.isinf(_arg(args, kwargs, 3, "value", 0.0) or 0.0):
            return F.pad(x, _arg(args, kwargs, 1, "pad"), _arg(args, kwargs, 2, "mode", "constant"), 0.0)
        if self.pointwise and func in (F.conv2d, F.conv_transpose2d):
            w = _arg(args, kwargs, 1, "weight")
            if w.shape[-2:].numel() > 1:
                args = list(args)
                if len(args) > 1:
                    args[1] = torch.zeros_like(w)
                else:
                    kwargs["weight"] = torch.zeros_like(w)
                return func(*args, **kwargs)
        if self.structural and func in (F.conv2d, F.conv_transpose2d):
            args, w = list(args), _arg(args, kwargs, 1, "weight")
            ones = torch.ones_like(w) / w[0].numel()  # positive and averaging: support, no cancellation
            if len(args) > 1:
                args[1] = ones
            else:
                kwargs["weight"] = ones
            if len(args) > 2:
                args[2] = None
            kwargs.pop("bias", None)
            return func(*args, **kwargs)
        if self.structural and func is F.batch_norm:
            return x
        return func(*args, **kwargs)


def _pass_input(_m: nn.Module, inputs: tuple, _out: object) -> Tensor:
    return inputs[0]


def _jacobian(
    model: Model, source: str, target: str, units: list[int], structural: bool = False,
    crop: tuple[int, int, int] | None = None, pointwise: bool = False,
) -> Tensor:
    """Rows ``d out[units[t], cy, cx] / d source`` of the linear view: ``Tensor[len(units), Cs, Hs, Ws]``.

    One forward at batch 1 whose source output is replaced by a zero leaf tensor
    (``crop=(top, left, side)``: a ``side × side`` leaf standing for that window
    of the map, so everything after the source runs on a small map), and one
    backward batched over the target units (``is_grads_batched``). ``structural``:
    one row, the union over ``units``, through positive convolutions. ``pointwise``: through
    1×1 paths only (see :class:`_LinearView`).
    """
    leaf: list[Tensor] = []

    def replace(_m: nn.Module, _inputs: tuple, out: object) -> Tensor:
        if not isinstance(out, Tensor) or out.dim() != 4:
            raise ValueError(f"source layer {source!r} does not output a 4-D tensor")
        torch.set_grad_enabled(True)  # the prefix ran without a graph
        shape = tuple(out.shape) if crop is None else (*out.shape[:2], crop[2], crop[2])
        leaf.append(out.new_zeros(shape, requires_grad=True))
        return leaf[0]

    side = model.input_size
    x = model.preprocess(torch.zeros(1, 3, side, side, device=model.device))
    identity = {m: _pass_input for m in model.module.modules() if type(m).__name__ in _FUNCTION_RELUS}
    grad_was = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        with forward_hooks(identity), forward_hooks({model.layer_module(source): replace}):
            with record(model, [target], at="map", detach=False) as rec, _LinearView(structural, pointwise):
                model.forward_preprocessed(x)
                out = rec[target]
    finally:
        torch.set_grad_enabled(grad_was)
    cy, cx = (out.shape[2] - 1) // 2, (out.shape[3] - 1) // 2
    rows = 1 if structural else len(units)
    seeds = out.new_zeros((rows, *out.shape))
    seeds[torch.arange(len(units)) if rows > 1 else 0, 0, torch.tensor(units), cy, cx] = 1.0
    grad = None
    if out.requires_grad:
        (grad,) = torch.autograd.grad(out, leaf[0], seeds, is_grads_batched=True, allow_unused=True)
    if grad is None:
        raise ValueError(f"target layer {target!r} does not depend on source layer {source!r}")
    return grad[:, 0]


def _window(model: Model, source: str, target: str) -> tuple[tuple[int, int, int], bool]:
    """``((top, left, side), croppable)``: the square of source positions reaching the target's centre.

    The window may stick out of the map (a clipped field). It is croppable when
    running on the window alone gives the same structural Jacobian (the same
    paths, padding and stride phase), so that the small run is exact.
    """
    every = list(range(model.num_units(target)))  # one window per layer pair, whatever the units
    full = _jacobian(model, source, target, every, structural=True)[0]
    support = full.sum(0) > 0
    ys, xs = torch.nonzero(support.any(1)).flatten(), torch.nonzero(support.any(0)).flatten()
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])
    side = max(y1 - y0, x1 - x0) + 1
    top, left = y0 - (side - (y1 - y0 + 1)) // 2, x0 - (side - (x1 - x0 + 1)) // 2
    h, w = support.shape
    if top < 0 or left < 0 or top + side > h or left + side > w:
        return (top, left, side), False
    try:
        small = _jacobian(model, source, target, every, structural=True, crop=(top, left, side))[0]
    except RuntimeError:  # e.g. a skip connection from before the source: sizes must match
        return (top, left, side), False
    same = small.shape == (full.shape[0], side, side) and torch.allclose(
        small, full[:, top : top + side, left : left + side], rtol=1e-4, atol=0.0
    )
    return (top, left, side), same


def check_model(model: object) -> Model:
    """``model`` if it is an :class:`equifind.Model`, else ValueError naming its type."""
    if not isinstance(model, Model):
        raise ValueError(f"expected an equifind.Model (see ef.load_model), got {type(model).__name__}")
    return model


def check_order(model: Model, source: str, target: str) -> None:
    """ValueError unless layer ``source`` comes before layer ``target`` in the model's forward order."""
    ds, dt = model.depth(source), model.depth(target)
    if ds >= dt:
        raise ValueError(
            f"source layer {source!r} (position {ds}) must come before target layer {target!r} "
            f"(position {dt}) in {model.name}'s forward order"
        )


def expanded_weights(
    model: Model,
    source_layer: str,
    target_layer: str,
    target_units: Sequence[int] | None = None,
    source_units: Sequence[int] | None = None,
    *,
    batch_size: int = BATCH,
    pointwise: bool = False,
) -> Tensor:
    """The linear map from source activations to each target unit's centre pre-activation.

    The Circuits thread's "expanded weights": everything between the layers with
    ReLU as identity and max pool as average pool (see the module docstring).
    Directly connected convolutions give exactly the conv kernel. The window is
    the smallest square around the centre holding every source position that can
    reach the centre of any target channel (found structurally, so zero kernel
    entries still count): at least the kernel, and the same for every unit.
    When running the layers between on that window alone is verified to give the
    same (structural) Jacobian, they run on it instead of the whole map.

    Args:
        model: an :class:`equifind.Model`.
        source_layer: the earlier layer.
        target_layer: the later layer.
        target_units: target channels (default all), in the order of the result.
        source_units: source channels (default all), in the order of the result.
        batch_size: target units per batched backward pass.
        pointwise: only the part that comes through 1×1 paths: every convolution larger
            than 1×1 between the layers gives zero (pools and 1×1 convolutions stay). Its
            share of the full weights' energy says how much of a circuit can show a
            rotation at all (``CircuitScore.pointwise_share``).

    Returns:
        ``Tensor[target, source, kh, kw]`` on the model's device (kh == kw, odd
        when the path is symmetric); entry ``[t, s, y, x]`` is the weight from
        source channel ``s`` at window position ``(y, x)`` to target ``t``'s centre.

    Raises:
        KeyError: an unknown layer. IndexError: a unit out of range.
        ValueError: layers out of order, empty unit lists, or a target that does
            not depend on the source.
    """
    check_model(model)
    check_order(model, source_layer, target_layer)
    t_units = model.check_units(target_layer, target_units)
    s_units = model.check_units(source_layer, source_units)
    if not t_units or not s_units:
        raise ValueError(f"expanded_weights needs at least one unit, got target_units={target_units!r}, "
                         f"source_units={source_units!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return _expanded(model, source_layer, target_layer, t_units, s_units, batch_size, pointwise,
                     _window(model, source_layer, target_layer))


def _expanded(
    model: Model, source_layer: str, target_layer: str, t_units: list[int], s_units: list[int], batch_size: int,
    pointwise: bool, window: tuple[tuple[int, int, int], bool],
) -> Tensor:  # fmt: skip
    """:func:`expanded_weights` of checked units on a given :func:`_window`: the full and the
    1×1-path weights of a circuit share one window, which costs two structural passes."""
    (top, left, side), croppable = window
    chunks = []
    for start in range(0, len(t_units), batch_size):
        part = t_units[start : start + batch_size]
        if croppable:
            chunks.append(_jacobian(model, source_layer, target_layer, part, crop=(top, left, side),
                                    pointwise=pointwise)[:, s_units])
            continue
        grad = _jacobian(model, source_layer, target_layer, part, pointwise=pointwise)[:, s_units]
        h, w = grad.shape[-2:]  # pad so that the window never leaves the map
        pad = (max(0, -left), max(0, left + side - w), max(0, -top), max(0, top + side - h))
        grad = F.pad(grad, pad)
        chunks.append(grad[..., top + pad[2] : top + pad[2] + side, left + pad[0] : left + pad[0] + side])
    return torch.cat(chunks).detach()


def circuit_weights(model: Model, source: str, target: str, t_units: list[int], s_units: list[int]
                    ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The expanded weights of checked units and their 1×1-path part (``pointwise=True``), on one window.

    Both share the layer pair's :func:`_window`, which costs two structural passes.

    Returns:
        ``(weights, pointwise)``, each ``Tensor[len(t_units), len(s_units), kh, kw]``.
    """
    window = _window(model, source, target)
    return tuple(_expanded(model, source, target, t_units, s_units, BATCH, pointwise, window)  # type: ignore[return-value]
                 for pointwise in (False, True))
