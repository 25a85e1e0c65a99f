"""Weight circuits: expanded weights between layers and their symmetry.

"The equivariant behavior we observe in neurons is really a reflection of a
deeper symmetry that exists in the weights" (Olah et al., Distill 2020). For a
family ``b`` in one layer and a family (or invariant units) ``a`` in an earlier
one, the weights should satisfy ``W[T(b), T(a)] = T·W[b, a]``: transforming both
units transforms the spatial kernel between them.

>>> w = ef.expanded_weights(m, "conv2d1", "conv2d2")     # Tensor[192, 64, 3, 3]
>>> cs = ef.circuit_symmetry(m, source=("conv2d1", [3, 7, 9, 12]), target=fam)
>>> cs.kind, cs.score, cs.p_value

Conventions:
    * A rotation by a positive angle turns a kernel counter-clockwise as
      displayed (row 0 at the top), about its centre ``((kh-1)/2, (kw-1)/2)``:
      +90 equals ``torch.rot90(k, 1, dims=(-2, -1))``, as in
      :mod:`equifind.transforms`. Flip mirrors the columns. Hue acts on units
      only: hue→hue weights depend on the hue difference alone (a circulant).
    * Expanded weights are exact Jacobians of a *linear view* of the network:
      ReLU-like ops (relu, relu6, hardtanh, leaky_relu, ``clamp(min=0)``,
      lucent's ``RedirectedReluLayer``) and local response normalisation are
      the identity; a max pool is the average pool of the same window (with
      ``count_include_pad=False``: the padding of a max pool never wins, so
      the average is over real inputs only; ``-inf`` pads written with
      ``F.pad`` become 0). Other ops (batch norm in eval, sigmoid, ...) are
      linearised where the source activations are zero.
    * Symmetry scores compare each kernel with its prediction from the moved
      kernels of its symmetry class (cosine per target unit, averaged), against
      a null of random member angles (or rearranged kernels, or relabelled
      families), beside the gain over leaving the kernels unmoved; see
      :func:`circuit_symmetry`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ._checks import closest
from ._hooks import forward_hooks
from ._stats import DEFAULT_Q, bh_q, check_null_size, floor_limits_q, permutation_p
from .models.base import Model
from .record import record

__all__ = ["expanded_weights", "circuit_symmetry", "find_circuits", "CircuitScore", "Units", "rotate_kernels",
           "rotation_ceiling"]

Kind = Literal["invariant→equivariant", "equivariant→invariant", "equivariant→equivariant"]
Reference = Literal["mean", "first"]
Null = Literal["angles", "kernels", "orders"]
ANGLE_GRID = 72  #: the "angles" null draws member angles on this many steps of the period (5° for rotation)
_BATCH = 64  # target units per batched backward pass of expanded_weights
GAIN_SPREAD = 2.0  #: a significant circuit's rotation gain exceeds this many standard deviations of the null gains
#: Transforms a circuit can be checked for, with the period of their parameter.
PERIODS: dict[str, float] = {"rotation": 360.0, "hue": 360.0, "flip": 2.0}
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


def _check_model(model: object) -> Model:
    if not isinstance(model, Model):
        raise ValueError(f"expected an equifind.Model (see ef.load_model), got {type(model).__name__}")
    return model


def _check_order(model: Model, source: str, target: str) -> None:
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
    batch_size: int = _BATCH,
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
    _check_model(model)
    _check_order(model, source_layer, target_layer)
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


# --------------------------------------------------------------------------- kernel rotation

#: Kernels whose longer side is at most this many pixels rotate with the smooth model of
#: :func:`rotate_kernels`; longer ones (where its dense operator costs side⁴ per kernel) bilinearly.
_SMOOTH_MAX_SIDE = 11
_RBF_SIGMA = 1.0  # px: width of the Gaussian basis function on each pixel centre
_ENVELOPE = 0.4  # std of the Gaussian envelope, as a fraction of the kernel's longer side
_CHUNK = 2**21  # operator entries built at once (float64)


def _check_moves(kernels: object, degrees: Tensor | float, flip: Tensor | None) -> tuple[Tensor, Tensor]:
    """Validated ``(degrees, mirror)``, float64 on the kernels' device: ``Tensor[1]`` or ``Tensor[N]`` each."""
    if not isinstance(kernels, Tensor) or kernels.dim() != 4:
        raise ValueError(f"kernels must be a Tensor[N, C, kh, kw], got {getattr(kernels, 'shape', type(kernels))}")
    if not kernels.is_floating_point():
        raise ValueError(f"kernels must have a floating dtype, got {kernels.dtype}")
    n = kernels.shape[0]
    deg = torch.as_tensor(degrees, dtype=torch.float64, device=kernels.device)
    mirror = torch.as_tensor(0.0 if flip is None else flip, dtype=torch.float64, device=kernels.device)
    for name, v in (("degrees", deg), ("flip", mirror)):
        if v.dim() > 1 or v.numel() not in (1, n):
            raise ValueError(f"{name} must be a float or a Tensor[{n}] (one per kernel), got shape {list(v.shape)}")
    return torch.remainder(deg.reshape(-1), 360.0), mirror.reshape(-1)


def _sample_points(deg: Tensor, mirror: Tensor, kh: int, kw: int) -> tuple[Tensor, Tensor]:
    """``(x, y)``, each ``Tensor[M, kh, kw]`` float64: the input point (px from the centre, y down) that each
    output pixel reads, for ``M`` angles ``deg`` (in [0, 360)) and mirrors ``mirror`` (0/1)."""
    deg, mirror = torch.broadcast_tensors(deg, mirror)
    rad, sign = torch.deg2rad(deg), 1.0 - 2.0 * mirror
    c, s = torch.cos(rad), torch.sin(rad)
    c, s = torch.where(c.abs() < 1e-12, 0.0, c), torch.where(s.abs() < 1e-12, 0.0, s)
    dy = torch.arange(kh, dtype=torch.float64, device=deg.device) - (kh - 1) / 2
    dx = torch.arange(kw, dtype=torch.float64, device=deg.device) - (kw - 1) / 2
    # Output displacement (x, y), y down; CCW on screen maps input (x, y) to
    # (x c + y s, -x s + y c), so the sample point is (x c - y s, x s + y c),
    # mirrored (x -> -x) afterwards.
    x_in = sign[:, None, None] * (c[:, None, None] * dx[None, None, :] - s[:, None, None] * dy[None, :, None])
    y_in = s[:, None, None] * dx[None, None, :] + c[:, None, None] * dy[None, :, None]
    return x_in, y_in


def _rotate_bilinear(kernels: Tensor, x_in: Tensor, y_in: Tensor) -> Tensor:
    """``grid_sample`` of ``kernels [N, C, kh, kw]`` at the points ``[N or 1, kh, kw]``; zeros outside."""
    n, _, kh, kw = kernels.shape
    # align_corners=False: pixel i of a side of size k sits at (2i + 1) / k - 1.
    grid = torch.stack([(2 * (x_in + (kw - 1) / 2) + 1) / kw - 1, (2 * (y_in + (kh - 1) / 2) + 1) / kh - 1], -1)
    return F.grid_sample(kernels, grid.expand(n, kh, kw, 2).to(kernels.dtype), mode="bilinear",
                         padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=64)
def _pixel_weights(side: int, tau: float) -> Tensor:
    """``Tensor[side, side]`` float64 (CPU): ``Φ⁻¹ diag(1 / e)``, with Φ the 1-D Gaussian Gram matrix of the
    ``side`` pixel centres and ``e`` the envelope (std ``tau``) there."""
    d = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    gram = torch.exp(-((d[:, None] - d[None, :]) ** 2) / (2 * _RBF_SIGMA**2))
    return torch.linalg.inv(gram) * torch.exp(d**2 / (2 * tau**2))


def _cardinal(points: Tensor, side: int, tau: float) -> Tensor:
    """``Tensor[*points.shape, side]`` float64: weight of each pixel along one axis in the value at ``points``
    (px from the centre) of the enveloped 1-D interpolant ``e(t) Σ_j L_j(t) f_j / e(t_j)``, with ``L_j`` the
    Gaussian-RBF cardinal functions (``L_j(t_i) = δ_ij``) and ``e`` the Gaussian envelope of std ``tau``.

    Two exponentials per point instead of one per pixel: with ``t`` the distance from the first pixel,
    ``exp(−(t − k)²/2σ²) = exp(−t²/2σ²) · exp(t/σ²)^k · exp(−k²/2σ²)`` (no overflow for sides ≤ 11)."""
    k = torch.arange(side, dtype=torch.float64, device=points.device)
    t = points + (side - 1) / 2
    head = torch.exp(-(t**2) / (2 * _RBF_SIGMA**2) - points**2 / (2 * tau**2))[..., None]
    step = torch.exp(t / _RBF_SIGMA**2)[..., None].expand(*points.shape, side - 1)
    powers = torch.cat([torch.ones_like(head), torch.cumprod(step, -1)], -1)
    basis = head * powers * torch.exp(-(k**2) / (2 * _RBF_SIGMA**2))
    return basis @ _pixel_weights(side, tau).to(points.device)


def _smooth_operators(x_in: Tensor, y_in: Tensor, dtype: torch.dtype) -> Tensor:
    """``Tensor[M, kh*kw, kh*kw]`` of ``dtype``: the linear maps from a kernel to its moved copy, for the sample
    points ``[M, kh, kw]``. The model is separable (a product of Gaussians), so each entry is a product of
    two 1-D weights (computed in float64): ``op[(i, j), (a, b)] = wy[i, j, a] · wx[i, j, b]``."""
    m, kh, kw = x_in.shape
    tau = _ENVELOPE * max(kh, kw)
    wx, wy = _cardinal(x_in, kw, tau).to(dtype), _cardinal(y_in, kh, tau).to(dtype)  # [M, kh, kw, kw | kh]
    return (wy[..., :, None] * wx[..., None, :]).reshape(m, kh * kw, kh * kw)


def _rotate_smooth(kernels: Tensor, deg: Tensor, mirror: Tensor) -> Tensor:
    """Apply the smooth model's operators; one shared operator when every kernel makes the same move."""
    n, c, kh, kw = kernels.shape
    work = torch.promote_types(kernels.dtype, torch.float32)
    flat = kernels.reshape(n, c, kh * kw).to(work)
    if deg.numel() == 1 and mirror.numel() == 1:
        op = _smooth_operators(*_sample_points(deg, mirror, kh, kw), work)[0]
        return (flat @ op.T).reshape(n, c, kh, kw).to(kernels.dtype)
    deg, mirror = deg.expand(n), mirror.expand(n)
    step = max(1, _CHUNK // (kh * kw) ** 2)  # chunks of kernels bound the memory of their [K, K] operators
    out = []
    for i in range(0, n, step):
        op = _smooth_operators(*_sample_points(deg[i : i + step], mirror[i : i + step], kh, kw), work)
        out.append(torch.bmm(flat[i : i + step], op.transpose(1, 2)))
    return torch.cat(out).reshape(n, c, kh, kw).to(kernels.dtype)


def rotate_kernels(kernels: Tensor, degrees: Tensor | float, *, flip: Tensor | None = None) -> Tensor:
    """Rotate (and optionally mirror) a batch of kernels, each by its own angle, without a loop over kernels.

    Positive angles turn counter-clockwise as displayed (row 0 at the top), about the
    kernel centre ``((kh-1)/2, (kw-1)/2)``. A mirror (``flip=1``) reverses the
    columns and is applied before the rotation. Multiples of 90° of a square kernel
    (and 180° of any) are exact pixel permutations, to float rounding (~1e-7):
    +90 equals ``torch.rot90(k, 1, dims=(-2, -1))``. 0° and 1×1 kernels are unchanged.

    Model, for kernels up to 11 px a side. Each kernel is a continuous function
    ``f(x) = e(x) Σ_n c_n φ(x − x_n)``: isotropic Gaussian basis functions ``φ``
    (std σ = 1 px) on the pixel centres ``x_n``, under an isotropic Gaussian
    envelope ``e`` (std τ = 0.4 × the longer side), with ``c = Φ⁻¹ (K / e)`` so
    that ``f`` interpolates the pixels exactly (Φ the Gram matrix ``φ(x_n − x_n')``,
    no ridge: λ = 0). The moved kernel is ``f`` read at the moved pixel centres:
    one linear operator ``Tensor[kh·kw, kh·kw]`` per angle (and mirror), built for
    all angles at once in float64 and applied in the kernels' precision (at least
    float32). Both Gaussians factor over x and y, so the operator is a product of
    1-D weights and costs ``O((kh·kw)²)`` per angle. ``f`` is the posterior mean of
    a Gaussian process with the rotation-invariant covariance ``e(x) e(x') φ(x − x')``:
    hence the identity at 0° and the permutations at quarter turns.

    Why (measured on smooth oriented templates: a first plus a second Gaussian
    derivative, σ = side/4, plus an off-centre blob, sampled exactly at 96 angles
    and mirrors; mean / worst cosine to ``rotate_kernels`` of the 0° sample):
    bilinear resampling gave 0.969 / 0.910 at 3×3, 0.992 / 0.971 at 5×5 and
    0.993 / 0.976 at 7×7; this model gives 0.995 / 0.983, 0.9997 / 0.9986 and
    0.9991 / 0.9963. Without the envelope (a prior that kernels fade towards their
    border) 3×3 drops to 0.959 (5×5 and 7×7 hardly change). σ and τ: over σ in
    0.8–1.1 px and τ in 0.3–0.6 × side, the templates and a prior-free check on
    real kernels (two rotations of GoogLeNet's 3×3, 5×5 and 7×7 kernels composed
    into an exact quarter turn: 0.94–0.97 here, 0.88–0.91 bilinear) agree on a flat
    optimum around σ = 0.9–1.0 px, τ = 0.4–0.5 × side; σ = 1 px keeps the 1-D Gram
    matrices well conditioned (cond ≤ 50 up to 11 px). λ > 0 would blur every kernel
    even at 0° (λ = 1e-3: 0.9 %, 0.01: 8 % of the kernel changed) and break the exact
    quarter turns, for no gain (0.1 lowers the accuracy). Longer kernels, where the
    dense operator would cost side⁴ per kernel, are resampled bilinearly, zeros
    outside, as :class:`equifind.transforms.Rotation` resamples images.

    Outside the square: at angles other than quarter turns, the output's corners
    read points beyond the outermost pixel centres (the rotated-in corners), where
    the kernel holds no information. The model continues ``f`` there smoothly,
    fading with the basis functions' tails and the envelope (bilinear: linearly to
    zero over the half pixel past the border, zero beyond). Either is a guess, not
    data; :func:`rotation_ceiling` measures what such losses cost a circuit score.

    Args:
        kernels: ``Tensor[N, C, kh, kw]`` (any number of channels; floating dtype).
        degrees: a float, or ``Tensor[N]`` (one angle per kernel).
        flip: optional ``Tensor[N]`` (or a number) of 0/1.

    Returns:
        ``Tensor[N, C, kh, kw]``, same device and dtype.

    Raises:
        ValueError: kernels not 4-D or not floating point, or angles/flips of the wrong length.
    """
    deg, mirror = _check_moves(kernels, degrees, flip)
    _, _, kh, kw = kernels.shape
    if kernels.numel() == 0:
        return kernels.clone()
    if max(kh, kw) > _SMOOTH_MAX_SIDE:
        return _rotate_bilinear(kernels, *_sample_points(deg, mirror, kh, kw))
    return _rotate_smooth(kernels, deg, mirror)


# The smooth oriented templates of rotation_ceiling, as (φ1°, φ2°, a, b, x0, y0): directions of u and v, weights
# of the second derivative and of the blob, blob offset (x right, y down) in units of the side.
_TEMPLATES = ((0.0, 30.0, 1.5, 1.0, 0.2, -0.1), (70.0, 145.0, -1.2, 0.7, -0.15, 0.2),
              (200.0, 10.0, 1.0, -1.0, 0.1, 0.25), (300.0, 250.0, -2.0, 0.5, -0.25, -0.15))


def _template(size: int, degrees: Tensor, params: tuple[float, ...]) -> Tensor:
    """``Tensor[A, size, size]`` float64: one template of :data:`_TEMPLATES` turned by each of ``degrees``
    (``Tensor[A]``, CCW as displayed), sampled exactly at the pixel centres."""
    phi1, phi2, a, b, x0, y0 = params
    x, y = _sample_points(torch.remainder(degrees, 360.0), torch.zeros_like(degrees), size, size)
    s = size / 4
    u = x * math.cos(math.radians(phi1)) + y * math.sin(math.radians(phi1))
    v = x * math.cos(math.radians(phi2)) + y * math.sin(math.radians(phi2))
    g = torch.exp(-(x**2 + y**2) / (2 * s**2))
    blob = torch.exp(-((x - x0 * size) ** 2 + (y - y0 * size) ** 2) / (2 * (0.8 * s) ** 2))
    return -u / s * g + a * (v**2 / s**2 - 1) * g + b * blob


@functools.lru_cache(maxsize=None)
def _ceiling(size: int) -> float:
    """:func:`rotation_ceiling` of a valid size."""
    if size == 1:
        return 1.0
    angles = torch.arange(8, dtype=torch.float64) * 45.0
    kernels = torch.stack([_template(size, angles, p) for p in _TEMPLATES], 1)  # [8, T, size, size]
    j, k = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    j, k = j[j != k], k[j != k]  # 7 references per kernel, grouped by the kernel predicted
    moved = rotate_kernels(kernels[k], angles[j] - angles[k])  # [56, T, size, size]: templates as channels
    pred = moved.reshape(8, 7, len(_TEMPLATES), size * size).mean(1)
    return float(F.cosine_similarity(pred, kernels.flatten(2), dim=-1).mean())


def rotation_ceiling(size: int) -> float:
    """The self-consistency ceiling of rotation circuit scores for ``size × size`` kernels.

    What an ideal rotation circuit of smooth kernels scores here: the circuit
    score that :func:`rotate_kernels` can reach at this size, so that scores of
    different kernel sizes can be compared (divide by it, or read them against it).
    Four fixed smooth oriented templates, none with a symmetry, each
    ``t(x) = −(u/σ) G + a (v²/σ² − 1) G + b exp(−|x − x₀|² / (2 (0.8σ)²))``:
    a first Gaussian derivative along ``u``, a second along ``v`` (two directions),
    and an off-centre blob at ``x₀``, with ``G = exp(−|x|²/(2σ²))`` and σ = size/4 px
    (coordinates in px from the centre, y down; the parameters are in ``_TEMPLATES``).
    Each is sampled exactly at 8 angles (45° steps) on the pixel grid; each of
    the 8 kernels is predicted as the mean of the other 7 rotated onto it (the
    circuit score's "mean" reference, leave one out), and the ceiling is the
    mean cosine between kernels and predictions, over kernels and templates.
    Three of the 7 references are quarter turns (exact), four are odd multiples
    of 45°. 1×1 kernels: 1.0 by definition. Deterministic; cached per size.

    Args:
        size: the kernel side in pixels, ``>= 1``.

    Returns:
        The ceiling in [-1, 1] (≥ 0.99 at 3, 5 and 7 px).

    Raises:
        ValueError: size not an int ``>= 1``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (a kernel side in pixels), got {size!r}")
    return _ceiling(size)


# --------------------------------------------------------------------------- symmetry


@dataclass(frozen=True)
class Units:
    """Units of one layer given by hand, for :func:`circuit_symmetry`.

    Attributes:
        layer: the layer name.
        units: unit indices; for a family, in family order.
        invariant: True (default): units invariant to the transform, each its own
            feature. False: a family spread evenly over the period, unit ``i`` at
            ``i * period / n`` (the same as passing the tuple ``(layer, units)``).
    """

    layer: str
    units: Sequence[int]
    invariant: bool = True


@dataclass(frozen=True)
class _Side:
    layer: str
    units: list[int]
    angles: Tensor | None  # float64 parameter per unit, in order; None: invariant units
    period: float


@dataclass
class CircuitScore:
    """How well the weights between two unit sets carry the transform's symmetry.

    Attributes:
        kind: "invariant→equivariant", "equivariant→invariant" or "equivariant→equivariant".
        transform: "rotation", "hue" or "flip".
        score: mean over target units of the cosine similarity between the unit's
            kernels (``weights[t]``, its predicted pairs) and their prediction (1: exact).
        p_value: ``(1 + #null >= score) / (1 + n_null)``.
        q_value: the Benjamini–Hochberg q-value over the checks of one :func:`find_circuits`
            call (``q >= p``); for a single :func:`circuit_symmetry` call, ``q = p``.
        null_mean: mean null score (NaN when ``n_null == 0``).
        weights: expanded weights ``Tensor[target, source, kh, kw]``, units in the
            order of ``target_units`` and ``source_units``.
        cosines: ``Tensor[target, source]``, each 2-D kernel's cosine with its
            prediction (NaN for kernels that have no reference).
        source_layer, target_layer: layer names.
        source_units, target_units: unit indices, in family order.
        source_preferred, target_preferred: each unit's transform parameter
            (degrees; 0/1 for flip), or None for invariant units.
        reference: "mean" or "first"; null: "angles", "kernels" or "orders" (see :func:`circuit_symmetry`).
        n_null: number of null draws.
        rotation_gain: ``score`` minus the score with the transform left out (the same
            references with kernels unmoved; hue: each kernel predicted from the same
            source unit): what the family's transform adds to the prediction.
        gain_sd: the standard deviation of the rotation gain over the null draws (each draw's
            score minus its own baseline): the yardstick of ``rotation_gain``.
        pointwise_share: the share of the circuit's squared weights that comes through
            1×1 paths (only 1×1 convolutions, pools and pointwise ops between the layers);
            near 1, the kernels cannot show a rotation (NaN: not measured).
        ceiling: what a perfect circuit of smooth kernels of this size scores
            (:func:`rotation_ceiling`; 1.0 for flip and hue, whose moves are exact): compare
            scores of different kernel sizes as ``score / ceiling``.
    """

    kind: Kind
    transform: str
    score: float
    p_value: float
    null_mean: float
    weights: Tensor
    cosines: Tensor
    source_layer: str
    target_layer: str
    source_units: list[int]
    target_units: list[int]
    source_preferred: list[float] | None = None
    target_preferred: list[float] | None = None
    reference: str = "mean"
    null: str = "angles"
    n_null: int = 0
    q_value: float = math.nan
    rotation_gain: float = math.nan
    gain_sd: float = math.nan
    pointwise_share: float = math.nan
    ceiling: float = math.nan

    def __post_init__(self) -> None:  # None (how to_dict writes NaN) reads back as NaN
        for name in ("null_mean", "q_value", "rotation_gain", "gain_sd", "pointwise_share", "ceiling"):
            if getattr(self, name) is None:
                setattr(self, name, math.nan)

    def is_significant(self, alpha: float = DEFAULT_Q) -> bool:
        """The rule :func:`find_circuits` keeps circuits by: ``q_value <= alpha`` and a
        ``rotation_gain`` above 0 and above ``GAIN_SPREAD`` (2) standard deviations of the
        null draws' gains.

        The q-value says the transform's angles predict the weights better than random
        angles do; the gain, that moving the kernels at all adds to the prediction
        (isotropic or identical kernels are predicted as well unmoved, and gain nothing).
        """
        return bool(self.q_value <= alpha and self.rotation_gain > max(0.0, GAIN_SPREAD * self.gain_sd))

    def to_dict(self, max_weights: int = 4096) -> dict[str, Any]:
        """JSON-friendly dict; ``weights`` as nested lists when it has at most ``max_weights`` entries."""
        keys = ("kind", "transform", "score", "p_value", "source_layer", "target_layer", "source_units",
                "target_units", "source_preferred", "target_preferred", "reference", "null", "n_null")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        for name in ("null_mean", "q_value", "rotation_gain", "gain_sd", "pointwise_share", "ceiling"):
            value = getattr(self, name)
            out[name] = None if math.isnan(value) else value
        out["cosines"] = [[None if math.isnan(v) else v for v in row] for row in self.cosines.tolist()]
        out["weights_shape"] = list(self.weights.shape)
        if self.weights.numel() <= max_weights:
            out["weights"] = self.weights.tolist()
        return out


def _parse(obj: object, role: str) -> tuple[str, list[Any], list[float] | None, float | None, str | None, bool]:
    """(layer, units, preferred, period, transform, invariant) of a family, ``Units`` or ``(layer, units)``."""
    if isinstance(obj, Units):
        return obj.layer, list(obj.units), None, None, None, obj.invariant
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str):
        return obj[0], list(obj[1]), None, None, None, False
    if all(hasattr(obj, a) for a in ("layer", "units", "preferred", "period", "transform")):
        fam: Any = obj
        if isinstance(fam.preferred, Mapping):  # a FamilyScore: its cyclic order and unit -> parameter
            order = list(getattr(fam, "order", fam.units))
            return fam.layer, order, [float(fam.preferred[u]) for u in order], float(fam.period), fam.transform, False
        return fam.layer, list(fam.units), [float(v) for v in fam.preferred], float(fam.period), fam.transform, False
    raise ValueError(
        f"{role} must be a Family or FamilyScore (.layer, .units, .preferred, .period, .transform), "
        f"circuits.Units(layer, units, invariant=True) or a (layer, units) tuple; got {type(obj).__name__}"
    )


def _sides(model: Model, source: object, target: object, transform: str | None) -> tuple[_Side, _Side, str]:
    """Validated source and target sides and the transform (see :func:`circuit_symmetry`)."""
    parsed = {"source": _parse(source, "source"), "target": _parse(target, "target")}
    given = {p[4] for p in parsed.values()} - {None}
    if transform is None:
        if len(given) > 1:
            raise ValueError(f"source and target families have different transforms {sorted(given)}")
        transform = given.pop() if given else "rotation"
    if transform not in PERIODS:
        near = closest(str(transform), PERIODS)
        raise ValueError(f"transform {transform!r} is not supported by circuits; valid: {list(PERIODS)}"
                         + (f" (did you mean {near[0]!r}?)" if near else ""))
    sides = {}
    for role, (layer, units, preferred, period, fam_transform, invariant) in parsed.items():
        if fam_transform is not None and fam_transform != transform:
            raise ValueError(f"{role} family is a {fam_transform!r} family, but transform={transform!r}")
        model.check_layer(layer)
        if not units:
            raise ValueError(f"{role} has no units (layer {layer!r}); give at least one")
        units = model.check_units(layer, units)
        if len(set(units)) != len(units):
            raise ValueError(f"{role} units of layer {layer!r} repeat: {units}")
        if invariant:
            sides[role] = _Side(layer, units, None, PERIODS[transform])
            continue
        if len(units) < 2:
            raise ValueError(f"{role} family of layer {layer!r} has {len(units)} unit; a family needs at least 2")
        if preferred is None:
            if transform == "flip" and len(units) != 2:
                raise ValueError(f"a flip family has 2 units, {role} of layer {layer!r} has {len(units)}")
            period = PERIODS[transform]
            preferred = [i * period / len(units) for i in range(len(units))]
        if len(preferred) != len(units) or not period or period <= 0:
            raise ValueError(f"{role} family of layer {layer!r}: {len(units)} units but preferred={preferred}, "
                             f"period={period}")
        sides[role] = _Side(layer, units, torch.tensor(preferred, dtype=torch.float64), float(period))
    src, tgt = sides["source"], sides["target"]
    if src.angles is None and tgt.angles is None:
        raise ValueError("source and target are both invariant units: there is no symmetry to check")
    _check_order(model, src.layer, tgt.layer)
    return src, tgt, transform


def _wrap(x: Tensor, period: float) -> Tensor:
    """``x`` modulo ``period`` in (-period/2, period/2]."""
    return x - period * torch.ceil(x / period - 0.5)


def _references(src: _Side, tgt: _Side, reference: Reference, relabel: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs predicting each kernel: ``(p, q, delta)``, kernel p ≈ delta · kernel q, as LongTensor[R] ×2, Tensor[R].

    Kernels are indexed ``p = j * S + i`` (target position j, source position i).
    inv→eq and eq→eq take q from every other target member k (only k = 0 for
    "first"), eq→inv from every other source member; for eq→eq the reference's
    source member is the one at ``θ_i - delta`` (the nearest, for uneven families),
    or member i itself with ``relabel=False`` (no transform of the source side).
    """
    t, s = len(tgt.units), len(src.units)
    if tgt.angles is not None:
        j, k = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
        keep = (k != j) & ((k == 0) if reference == "first" else True)
        j, k = j[keep], k[keep]
        delta = _wrap(tgt.angles[j] - tgt.angles[k], tgt.period)
        i = torch.arange(s).expand(len(j), s)
        l_ = i
        if src.angles is not None and relabel:  # the source member that delta moves onto member i
            l_ = _wrap((src.angles[i] - delta[:, None])[..., None] - src.angles, src.period).abs().argmin(-1)
        return (j[:, None] * s + i).flatten(), (k[:, None] * s + l_).flatten(), delta.repeat_interleave(s)
    i, l_ = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    keep = (l_ != i) & ((l_ == 0) if reference == "first" else True)
    i, l_ = i[keep], l_[keep]
    delta = _wrap(src.angles[i] - src.angles[l_], src.period)
    j = torch.arange(t)[:, None]
    return (j * s + i).flatten(), (j * s + l_).flatten(), delta.repeat(t)


def _null_perms(src: _Side, tgt: _Side, null: Null, n_null: int, gen: torch.Generator) -> Tensor:
    """``LongTensor[1 + n_null, T*S]``: row 0 the identity, then one kernel arrangement per null draw.

    "kernels": a uniformly random arrangement of all the circuit's kernels.
    "orders": a random member order for each equivariant side (the angles stay
    with the positions) and, for an invariant side, a random order of its units
    for each member of the other side.
    """
    t, s = len(tgt.units), len(src.units)
    ident = torch.arange(t * s)[None]
    if null == "kernels":
        return torch.cat([ident, torch.argsort(torch.rand(n_null, t * s, generator=gen), -1)])
    st = torch.argsort(torch.rand(n_null, t, generator=gen), -1)[:, :, None]
    ss = torch.argsort(torch.rand(n_null, s, generator=gen), -1)[:, None, :]
    if tgt.angles is None:  # eq→inv: per source member, an order of the target units
        st = torch.argsort(torch.rand(n_null, s, t, generator=gen), -1).transpose(1, 2)
    elif src.angles is None:  # inv→eq: per target member, an order of the source units
        ss = torch.argsort(torch.rand(n_null, t, s, generator=gen), -1)
    return torch.cat([ident, (st * s + ss).flatten(1)])


def _kernel_table(kernels: Tensor, deltas: Tensor, transform: str) -> Tensor:
    """``Tensor[A, P, kh*kw]``: every kernel ``[P, kh, kw]`` moved by every distinct delta, in one
    :func:`rotate_kernels` call."""
    stack = kernels[None].expand(len(deltas), *kernels.shape)
    if transform == "hue":  # hue relabels units; kernels do not move
        return stack.flatten(2)
    d = deltas.to(kernels.device)
    if transform == "flip":
        return rotate_kernels(stack, torch.zeros_like(d), flip=torch.remainder(torch.round(d), 2)).flatten(2)
    return rotate_kernels(stack, d).flatten(2)


def _check_n_null(n_null: object) -> None:
    if isinstance(n_null, bool) or not isinstance(n_null, int) or n_null < 0:
        raise ValueError(f"n_null must be an int >= 0, got {n_null!r}")


def _angle_draws(src: _Side, tgt: _Side, transform: str, reference: Reference, n_null: int,
                 gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The "angles" null: ``(q [n_null, R], delta [n_null, R])``, the references of each draw.

    Rotation and hue: every member of each equivariant side gets an independent angle,
    uniform on a grid of ``ANGLE_GRID`` steps over the period (the kernels cannot tell
    finer angles apart, and a grid keeps the moved-kernel table small); the references
    are those of :func:`_references` for these angles. Flip: a pair has only two
    assignments, so each reference is mirrored or not at random instead.
    """
    ref_p, ref_q, delta = _references(src, tgt, reference)
    if transform == "flip":
        return ref_q.expand(n_null, -1), torch.randint(0, 2, (n_null, len(ref_q)), generator=gen).double()

    def draw(side: _Side) -> _Side:
        if side.angles is None:
            return side
        steps = torch.randint(0, ANGLE_GRID, (len(side.units),), generator=gen).double()
        return _Side(side.layer, side.units, steps * side.period / ANGLE_GRID, side.period)

    qs, deltas = [], []
    for _ in range(n_null):
        p, q, d = _references(draw(src), draw(tgt), reference)
        if not torch.equal(p, ref_p):  # the predicted kernels do not depend on the angles
            raise RuntimeError("internal: the references' kernels changed with the angles")
        qs.append(q)
        deltas.append(d)
    if not qs:
        return ref_q[None][:0], delta[None][:0]
    return torch.stack(qs), torch.stack(deltas)


def _score(weights: Tensor, src: _Side, tgt: _Side, transform: str, n_null: int, seed: int,
           reference: Reference, null: Null, pointwise: Tensor | None = None) -> CircuitScore:
    """Score precomputed expanded weights ``Tensor[T, S, kh, kw]`` (units in side order).

    Four blocks of rows are scored together: the circuit; its baseline; the ``n_null``
    null draws; their baselines. A baseline predicts from the same references with the
    transform left out: kernels unmoved (rotation, flip), or for hue, whose only action
    is the relabelling, each kernel from the same source unit. ``rotation_gain`` is the
    circuit's score minus its baseline's, ``gain_sd`` the spread of the draws' gains.
    ``pointwise``: the same weights through 1×1 paths only (see :func:`expanded_weights`).
    """
    if reference not in ("mean", "first") or null not in ("angles", "kernels", "orders"):
        raise ValueError(f"reference must be 'mean' or 'first' and null 'angles', 'kernels' or 'orders', "
                         f"got reference={reference!r}, null={null!r}")
    _check_n_null(n_null)
    t, s = weights.shape[:2]
    dev = weights.device
    kernels = weights.reshape(t * s, *weights.shape[2:])
    flat = kernels.flatten(1)  # [P, K]
    ref_p, ref_q, delta = _references(src, tgt, reference)
    base_q = _references(src, tgt, reference, relabel=False)[1] if transform == "hue" else ref_q
    gen = torch.Generator().manual_seed(seed)
    ident = torch.arange(t * s)
    if null == "angles":
        q_null, d_null = _angle_draws(src, tgt, transform, reference, n_null, gen)
        perms = ident.expand(n_null + 1, -1)
        sources = torch.cat([ref_q[None], q_null])  # [1 + n, R]: the kernel each reference moves
        base_sources = base_q.expand(n_null + 1, -1) if transform == "hue" else sources
    else:
        perms = torch.cat([ident[None], _null_perms(src, tgt, null, n_null, gen)[1:]])
        sources, base_sources = perms[:, ref_q], perms[:, base_q]
        d_null = delta.expand(n_null, -1)
    moves = torch.cat([delta[None], d_null])
    perms = torch.cat([perms, perms])
    sources = torch.cat([sources, base_sources])
    deltas = torch.cat([moves, torch.zeros_like(moves)])  # [B, R], B = 2 (1 + n_null)
    uniq, aidx = torch.unique(torch.round(deltas * 1e6) / 1e6, return_inverse=True)
    table = _kernel_table(kernels, uniq, transform)  # [A, P, K]: every move of every row, one call
    perms, sources, aidx, ref_p = perms.to(dev), sources.to(dev), aidx.to(dev), ref_p.to(dev)
    has_ref = torch.zeros(t * s, dtype=torch.bool, device=dev)
    has_ref[ref_p] = True
    rows = has_ref.view(t, s).any(1)
    mask = has_ref.view(1, t, s, 1).to(flat.dtype)
    chunk = max(1, 2**24 // max(1, len(ref_p) * flat.shape[1]))
    scores, cosines = [], torch.empty(0)
    for start in range(0, len(perms), chunk):
        sl = slice(start, start + chunk)
        pred = torch.zeros(len(perms[sl]), t * s, flat.shape[1], dtype=flat.dtype, device=dev)
        pred.index_add_(1, ref_p, table[aidx[sl], sources[sl]])  # sum of the moved references
        actual = flat[perms[sl]]
        if start == 0:
            cosines = F.cosine_similarity(pred[0], actual[0], dim=-1, eps=1e-12)
        per_unit = F.cosine_similarity((pred.view(len(pred), t, s, -1) * mask).flatten(2),
                                       (actual.view(len(pred), t, s, -1) * mask).flatten(2), dim=-1, eps=1e-12)
        scores.append(per_unit[:, rows].mean(1))
    moved, base = torch.cat(scores).double().cpu().view(2, n_null + 1)
    observed, null_scores = float(moved[0]), moved[1:]
    gains = moved - base
    kind: Kind = ("invariant→equivariant" if src.angles is None else
                  "equivariant→invariant" if tgt.angles is None else "equivariant→equivariant")
    p_value = permutation_p(int((null_scores >= observed - 1e-6).sum()), n_null)
    share = math.nan
    if pointwise is not None:
        share = float(pointwise.square().sum() / weights.square().sum().clamp_min(1e-30))
    return CircuitScore(
        kind=kind, transform=transform, score=observed, p_value=p_value, q_value=p_value,
        null_mean=float(null_scores.mean()) if n_null else math.nan,
        weights=weights, cosines=torch.where(has_ref, cosines, math.nan).view(t, s).cpu(),
        source_layer=src.layer, target_layer=tgt.layer, source_units=src.units, target_units=tgt.units,
        source_preferred=None if src.angles is None else src.angles.tolist(),
        target_preferred=None if tgt.angles is None else tgt.angles.tolist(),
        reference=reference, null=null, n_null=n_null, rotation_gain=float(gains[0]),
        gain_sd=float(gains[1:].std()) if n_null > 1 else math.nan, pointwise_share=share,
        ceiling=rotation_ceiling(max(weights.shape[-2:])) if transform == "rotation" else 1.0,
    )  # fmt: skip


def circuit_symmetry(
    model: Model,
    source: object,
    target: object,
    transform: str | None = None,
    n_null: int = 200,
    seed: int = 0,
    *,
    reference: Reference = "mean",
    null: Null = "angles",
) -> CircuitScore:
    """Check that the expanded weights between two unit sets carry the transform's symmetry.

    Each side is a Family (``.layer``, ``.units`` in order, ``.preferred``,
    ``.period``, ``.transform``), a FamilyScore (its ``.order`` and
    ``.preferred``), ``Units(layer, units, invariant=True)``, or a
    ``(layer, units)`` tuple (a family spread evenly: ``preferred = i*period/n``).
    With ``g`` the transform taking member k to member j (angle ``θ_j - θ_k``):

    * invariant→equivariant: ``W[b_j, a] ≈ g·W[b_k, a]`` for every source unit a;
    * equivariant→invariant: ``W[b, a_i] ≈ g·W[b, a_l]``, g taking a_l to a_i;
    * equivariant→equivariant: ``W[b_j, a_i] ≈ g·W[b_k, a_l]`` with ``a_l`` the
      source member at ``θ_i - (θ_j - θ_k)``: the weights depend only on the
      relative transform.

    ``g·K`` rotates the 2-D kernel (rotation; angles that are not multiples of
    90° lose the corners), mirrors it (flip), or leaves it (hue: a relabelling,
    so hue→hue weights form a circulant). With ``reference="mean"`` (default)
    each kernel is predicted by the average of every other member's kernel of
    its class moved onto it (leave-one-out: no kernel predicts itself, and one
    noisy member cannot spoil every prediction; it also covers uneven
    families); ``"first"`` predicts from the first member's kernels only (for
    eq→eq, the first row's pair of the same relative angle) and leaves the
    first member's own kernels out of the score.

    Score: the mean over target units of the cosine between the unit's kernels
    ``[source, kh, kw]`` (the predicted ones) and their prediction. A cosine
    per target unit rather than per 2-D kernel keeps magnitudes: kernels that
    reach the target through a 1×1 path are single numbers, whose cosine is
    only their sign. ``cosines`` keeps the per-kernel values.

    Null (seeded, ``n_null`` draws; ``p = (1 + #null >= score) / (1 + n_null)``;
    one check is one test, so ``q_value = p_value``):

    * ``"angles"`` (default): the kernels and unit labels stay; each member of each
      equivariant side gets a random angle (uniform on ``ANGLE_GRID`` = 72 steps of the
      period), and the same references are moved by the angles that implies. p answers
      "does moving by the family's angles predict the weights better than moving by
      random angles?". A flip pair has only two assignments, so for flip each
      reference is mirrored or not at random. Invariant→hue circuits move no kernel
      whatever the angles: their p is 1 (the weights cannot show hue).
    * ``"kernels"``: the circuit's kernels rearranged at random. It destroys each source
      unit's sign and magnitude pattern, which exists with or without a symmetry, so
      isotropic or identical kernels pass it: use it only beside the rotation gain.
    * ``"orders"``: each family's order permuted (the angles stay with the positions)
      and, for an invariant side, the order of its units for each member of the other
      side. A cyclic shift of a family is itself a symmetry, so two 4-unit families
      have only 576/16 = 36 distinct relabellings and p can never fall below 1/36.

    ``rotation_gain`` is the score minus the score with the transform left out (same
    references, kernels unmoved; for hue, each kernel predicted from the same source
    unit), ``gain_sd`` the spread of that gain over the null draws;
    :meth:`CircuitScore.is_significant` asks for both q ≤ alpha and a gain above 0 and
    above 2 of those standard deviations.
    ``pointwise_share`` is the share of the weights' energy through 1×1 paths (see
    :func:`expanded_weights`). All kernel moves of the circuit, its baseline and every
    draw are one :func:`rotate_kernels` call on the model's device.

    Args:
        model: an :class:`equifind.Model`.
        source: the earlier unit set.
        target: the later unit set.
        transform: "rotation", "hue" or "flip"; default the families' own
            transform ("rotation" when neither side is a Family).
        n_null: number of null draws (0: ``p_value`` 1).
        seed: seeds the null draws.
        reference: "mean" or "first" (see above).
        null: "angles", "kernels" or "orders" (see above).

    Returns:
        A :class:`CircuitScore`.

    Raises:
        KeyError: a layer not in the model. IndexError: a unit out of range.
        ValueError: layers out of order, empty or one-unit families, two
            invariant sides, or an unsupported or mismatched transform.
    """
    _check_model(model)
    src, tgt, transform = _sides(model, source, target, transform)
    weights, pointwise = _circuit_weights(model, src.layer, tgt.layer, tgt.units, src.units)
    return _score(weights, src, tgt, transform, n_null, seed, reference, null, pointwise)


def _circuit_weights(model: Model, source: str, target: str, t_units: list[int], s_units: list[int]
                     ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The expanded weights and their 1×1-path part (checked units), on one window."""
    window = _window(model, source, target)
    return tuple(_expanded(model, source, target, t_units, s_units, _BATCH, pointwise, window)  # type: ignore[return-value]
                 for pointwise in (False, True))


def find_circuits(
    model: Model,
    families_by_layer: Mapping[str, Sequence[object]],
    invariant_by_layer: Mapping[str, Sequence[int]] | None = None,
    transform: str | None = None,
    alpha: float = DEFAULT_Q,
    n_null: int = 200,
    seed: int = 0,
    *,
    min_score: float = -1.0,
    reference: Reference = "mean",
    null: Null = "angles",
    all_checks: bool = False,
) -> list[CircuitScore]:
    """Check every family pair in consecutive layers; return the significant circuits.

    Layers are taken in the dict's order; for each consecutive pair (a, b) every
    source (families of a, plus a's invariant units as one set) is checked
    against every target (families of b, plus b's invariant units), skipping
    invariant→invariant and families of another transform than ``transform``
    (of different transforms, when it is None). Expanded weights are computed
    once per layer pair; each check is exactly ``circuit_symmetry(model, source,
    target, ..., seed=seed)``. The checks of the call are one list of tests: each
    gets the Benjamini–Hochberg q-value over all of them (``q_value``, computed
    before any filtering), and a circuit is significant by
    :meth:`CircuitScore.is_significant`: ``q_value <= alpha`` under the null (default
    "angles") *and* a rotation gain above 2 standard deviations of the null scores.

    Args:
        model: an :class:`equifind.Model`.
        families_by_layer: layer -> families of that layer (Family objects or
            ``(layer, units)`` tuples), layers in forward order; a layer with only
            invariant units is listed with ``[]``.
        invariant_by_layer: layer -> invariant unit indices (optional; its layers
            must be keys of ``families_by_layer``).
        transform, seed, reference, null: as in :func:`circuit_symmetry`.
        alpha: the q-value (BH) threshold: keep circuits with ``q_value <= alpha``
            (default 0.05).
        n_null: null draws per check; the smallest p they give, ``1/(1 + n_null)``,
            must be at most ``alpha``.
        min_score: and with ``score >= min_score`` (default: any score); a floor such
            as 0.5 keeps the circuits whose kernels are mostly predicted by the symmetry.
        all_checks: return every check (q-values set), significant or not.

    Returns:
        The significant :class:`CircuitScore` s (q-values set; every check with
        ``all_checks``), highest score first.

    Raises:
        KeyError: a layer not in the model. ValueError: layers out of forward
            order, a family listed under another layer than its own, alpha
            outside (0, 1], or ``n_null`` too small to reach ``alpha`` (the
            message names the smallest that works).
    """
    _check_model(model)
    _check_n_null(n_null)
    check_null_size(n_null, alpha)
    if not -1.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [-1, 1] (a mean cosine), got {min_score!r}")
    layers = list(families_by_layer)
    invariant = dict(invariant_by_layer or {})
    for layer in [*layers, *invariant]:
        model.check_layer(layer)
        if layer not in families_by_layer:
            raise ValueError(f"invariant_by_layer names layer {layer!r}, which families_by_layer lacks "
                             f"(list it there with [] to fix the layer order); layers: {layers}")
    for name, fams in families_by_layer.items():
        for fam in fams:
            if (own := _parse(fam, "family")[0]) != name:
                raise ValueError(f"a family of layer {own!r} is listed under layer {name!r}")
    found: list[CircuitScore] = []
    for la, lb in zip(layers, layers[1:]):
        _check_order(model, la, lb)
        sources = [*families_by_layer[la], *([Units(la, invariant[la])] if invariant.get(la) else [])]
        targets = [*families_by_layer[lb], *([Units(lb, invariant[lb])] if invariant.get(lb) else [])]
        pairs = []
        for a in sources:
            for b in targets:
                given = {_parse(a, "source")[4], _parse(b, "target")[4]} - {None}
                both_invariant = isinstance(a, Units) and isinstance(b, Units)
                if not both_invariant and len(given) < 2 and not (transform is not None and given - {transform}):
                    pairs.append(_sides(model, a, b, transform))
        if not pairs:
            continue
        t_all = sorted({u for _, tgt, _ in pairs for u in tgt.units})
        s_all = sorted({u for src, _, _ in pairs for u in src.units})
        weights, pointwise = _circuit_weights(model, la, lb, t_all, s_all)
        t_pos, s_pos = {u: i for i, u in enumerate(t_all)}, {u: i for i, u in enumerate(s_all)}
        for src, tgt, tr in pairs:
            rows, cols = [t_pos[u] for u in tgt.units], [s_pos[u] for u in src.units]
            found.append(_score(weights[rows][:, cols], src, tgt, tr, n_null, seed, reference, null,
                                pointwise[rows][:, cols]))
    for check, q in zip(found, bh_q([c.p_value for c in found])):
        check.q_value = q
    if message := floor_limits_q([c.p_value for c in found], n_null, "circuit checks", alpha):
        warnings.warn(f"find_circuits: {message}", stacklevel=2)
    kept = found if all_checks else [c for c in found if c.is_significant(alpha) and c.score >= min_score]
    return sorted(kept, key=lambda c: -c.score)
