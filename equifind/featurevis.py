"""Feature visualisations of many units in one batched optimisation, through lucent.

Each image of the batch is optimised for its own unit (the centre unit of that
channel), with lucent's FFT-parameterised, colour-decorrelated images and its
robustness transforms scaled to the canvas. The images are canvas-sized
stimuli for :func:`equifind.probe` and :func:`equifind.score_family`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .models.base import Model
from .record import record
from .stimuli import StimulusSet

__all__ = ["feature_visualizations"]


class _RedirectedReLU(torch.autograd.Function):
    """ReLU whose gradient, for an image that no gradient reaches, is redirected (Lucid's
    ``redirected_relu_grad``): a unit driven below zero at initialisation would otherwise
    never move, since plain ReLU passes no gradient there. Per batch element: where the
    plain ReLU gradient is all zero, gradients that push the input up pass through
    (those that push it further down are dropped); elsewhere the gradient is ReLU's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp_min(0.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        relu_grad = torch.where(x < 0, torch.zeros_like(grad), grad)
        redirected = torch.where((x < 0) & (grad > 0), torch.zeros_like(grad), grad)  # grad > 0: pushes x down
        alive = relu_grad.flatten(1).norm(dim=1) > 0
        return torch.where(alive.view(-1, *[1] * (grad.dim() - 1)), relu_grad, redirected)


class _RedirectedReLUs(torch.overrides.TorchFunctionMode):
    """Inside this mode every ReLU call (``F.relu``, ``torch.relu``, ``nn.ReLU``, in place or not)
    is :class:`_RedirectedReLU`: the forward values are unchanged (in-place calls return a new
    tensor, which is what their callers use)."""

    _RELUS = frozenset({F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_})

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in self._RELUS:
            return _RedirectedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch and numpy (lucent draws from both global generators), restoring them after."""
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)


def _robustness_transforms(canvas: int) -> list:
    """lucent's standard transforms (pad, jitter, scale, small rotations), scaled to a canvas side."""
    from lucent.optvis import transform as T

    pad = max(2, canvas // 8)
    jitter = max(2, canvas // 16)
    return [
        T.pad(pad, mode="constant", constant_value=0.5),
        T.jitter(jitter),
        T.random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
        T.random_rotate(list(range(-10, 11)) + 5 * [0]),
        T.jitter(max(2, jitter // 2)),
    ]


def feature_visualizations(
    model: Model,
    layer: str,
    units: Sequence[int],
    *,
    size: int | None = None,
    steps: int = 256,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> StimulusSet:
    """Optimise one image per unit, all units in one batch.

    Args:
        model: the model.
        layer: layer name.
        units: unit indices (one image each).
        size: image side; default the layer's probe canvas (``probe_geometry(...).canvas``).
        steps: optimisation steps.
        lr: Adam learning rate.
        seed: seeds lucent's random initialisation and transforms.
        progress: show a progress bar.

    Returns:
        A :class:`StimulusSet` of ``Tensor[len(units), 3, size, size]`` in [0, 1], params
        ``{"kind": "feature_visualization", "layer", "unit", "activation"}``.

    Raises:
        KeyError, IndexError: unknown layer or units. ValueError: bad steps, lr or size.
    """
    from lucent.optvis import param
    from lucent.optvis import transform as T

    from ._progress import progress_bar

    unit_list = model.check_units(layer, units)
    if not unit_list:
        raise ValueError("feature_visualizations needs at least one unit")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if size is None:
        from .probe import probe_geometry

        size = probe_geometry(model, layer).canvas
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an int ≥ 4, got {size!r}")
    batch = len(unit_list)
    rows = torch.arange(batch, device=model.device)
    idx = torch.tensor(unit_list, device=model.device)
    was_training = model.module.training
    model.module.eval()
    try:
        with _seeded(seed), _RedirectedReLUs(), torch.enable_grad():
            params, image_f = param.image(size, batch=batch)
            optimizer = torch.optim.Adam(params, lr=lr)
            augment = T.compose(_robustness_transforms(size))
            for _ in progress_bar(range(steps), desc=f"feature vis {layer}", enabled=progress, leave=False):
                optimizer.zero_grad()
                x = augment(image_f()).to(model.device).clamp(0.0, 1.0)
                with record(model, [layer], at="center", detach=False) as rec:
                    model.forward_preprocessed(model.preprocess(x))
                loss = -rec[layer][rows, idx].sum()
                loss.backward()
                optimizer.step()
            images = image_f().detach().to(model.device).clamp(0.0, 1.0)
    finally:
        model.module.train(was_training)
    with torch.no_grad(), record(model, [layer], at="center") as rec:
        model(images)
    final = rec[layer][rows, idx].tolist()
    table = [
        {"kind": "feature_visualization", "layer": layer, "unit": u, "activation": a} for u, a in zip(unit_list, final)
    ]
    return StimulusSet(images, table)
