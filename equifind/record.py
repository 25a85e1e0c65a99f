"""Record layer activations with forward hooks, stopping after the deepest layer.

>>> with ef.record(model, ["conv2d2", "mixed3a"], at="center") as rec:
...     model(images)                 # returns None: the pass stopped after mixed3a
>>> rec["mixed3a"].shape              # Tensor[N, C]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Literal, Union

import torch
from torch import Tensor, nn

from ._checks import check_images
from ._hooks import StopForward, forward_hooks
from .models.base import Model

__all__ = ["record", "record_batched", "Recording", "At"]

#: Where to read each channel: its centre unit, its max or mean over space,
#: the whole map, or an explicit (y, x) position.
At = Union[Literal["center", "max", "mean", "map"], tuple[int, int]]
_AT_NAMES = ("center", "max", "mean", "map")


def _check_at(at: object) -> At:
    if isinstance(at, str):
        if at not in _AT_NAMES:
            raise ValueError(f"at={at!r} is not valid; use one of {_AT_NAMES} or a (y, x) position")
        return at  # type: ignore[return-value]
    if isinstance(at, (tuple, list)) and len(at) == 2 and all(isinstance(v, int) for v in at):
        return (int(at[0]), int(at[1]))
    raise ValueError(f"at={at!r} is not valid; use one of {_AT_NAMES} or a (y, x) tuple of two ints")


def _reduce(act: Tensor, at: At, layer: str) -> Tensor:
    """Reduce ``act`` (``Tensor[N, C, H, W]``) per ``at``: ``[N, C]``, or ``[N, C, H, W]`` for "map"."""
    if at == "map":
        return act
    if at == "mean":
        return act.mean(dim=(2, 3))
    if at == "max":
        return act.amax(dim=(2, 3))
    h, w = act.shape[-2:]
    if at == "center":
        y, x = (h - 1) // 2, (w - 1) // 2
    else:
        y, x = at  # type: ignore[misc]
        if not (0 <= y < h and 0 <= x < w):
            raise IndexError(f"position (y={y}, x={x}) is outside layer {layer!r}'s {h}×{w} activation map")
    return act[:, :, y, x]


class Recording(Mapping[str, Tensor]):
    """Activations recorded inside a :func:`record` block, keyed by layer name.

    ``rec[layer]`` is ``Tensor[N, C]`` (``Tensor[N, C, H, W]`` for ``at="map"``),
    batch first, detached unless ``detach=False``, from the latest forward pass.
    """

    def __init__(self, layers: Sequence[str], at: At, detach: bool) -> None:
        self.layers = list(layers)
        self.at = at
        self.detach = detach
        self._acts: dict[str, Tensor] = {}
        self._pending: set[str] = set(self.layers)

    def __getitem__(self, layer: str) -> Tensor:
        if layer not in self.layers:
            raise KeyError(f"layer {layer!r} was not recorded; recorded layers: {self.layers}")
        if layer not in self._acts:
            raise KeyError(f"layer {layer!r} has no activation yet: call the model inside the `with record(...)` block")
        return self._acts[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._acts)

    def __len__(self) -> int:
        return len(self._acts)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self._acts.items()}
        return f"Recording(at={self.at!r}, {shapes})"


# Active recordings per model, so nested blocks stop only when all are complete.
_ACTIVE: dict[int, list[Recording]] = {}


def recorded_layers(model: Model) -> list[str]:
    """The layers that the open :func:`record` blocks on ``model`` record (none outside a block)."""
    return list(dict.fromkeys(layer for rec in _ACTIVE.get(id(model), []) for layer in rec.layers))


@contextmanager
def record(
    model: Model,
    layers: str | Sequence[str],
    at: At = "center",
    *,
    stop_early: bool = True,
    detach: bool = True,
) -> Iterator[Recording]:
    """Record ``layers`` of ``model`` during every forward pass inside the block.

    Args:
        model: an :class:`equifind.Model`.
        layers: a layer name or names (see ``model.layers``).
        at: "center" (the centre unit, ``((H-1)//2, (W-1)//2)``), "max", "mean",
            "map" (whole maps) or a (y, x) position.
        stop_early: stop each forward pass right after the deepest recorded layer
            (the model call then returns ``None``). Results are identical to a full pass.
        detach: detach the recorded tensors (``False`` keeps the graph, e.g. for
            feature visualisation).

    Yields:
        A :class:`Recording`, filled by each ``model(images)`` call in the block.

    Raises:
        KeyError: an unknown layer (the message names the closest layers).
        ValueError: an invalid ``at``.
    """
    if not isinstance(model, Model):
        raise ValueError(f"record() needs an equifind.Model (see ef.load_model), got {type(model).__name__}")
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("record() needs at least one layer")
    for name in names:
        model.check_layer(name)
    rec = Recording(list(dict.fromkeys(names)), _check_at(at), detach)
    active = _ACTIVE.setdefault(id(model), [])

    def reset(_m: nn.Module, _inputs: tuple) -> None:
        rec._pending = set(rec.layers)

    def hook_for(layer: str) -> Callable:
        def hook(_m: nn.Module, _inputs: tuple, out: Tensor) -> None:
            if layer not in rec._pending:
                return
            act = _reduce(out, rec.at, layer)
            rec._acts[layer] = act.detach() if rec.detach else act
            rec._pending.discard(layer)
            if stop_early and all(not r._pending for r in active):
                raise StopForward

        return hook

    root = model.module
    hooks = {model.layer_module(name): hook_for(name) for name in rec.layers}
    active.append(rec)
    pre_handle = root.register_forward_pre_hook(reset)
    try:
        with forward_hooks(hooks):
            yield rec
    finally:
        pre_handle.remove()
        active[:] = [r for r in active if r is not rec]  # by identity: Mapping == compares tensors
        if not active:
            del _ACTIVE[id(model)]


def record_batched(
    model: Model,
    images: Tensor,
    layers: str | Sequence[str],
    at: At = "center",
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Record ``layers`` over a large image tensor in batches, with early stop.

    Memory stays bounded by one batch: each batch is moved to the model's device,
    recorded, and its activations moved back to the images' device.

    Args:
        model: an :class:`equifind.Model`.
        images: ``Tensor[N, 3, H, W]``, RGB in [0, 1], on any device.
        layers: layer name or names.
        at: as in :func:`record`.
        batch_size: images per forward pass.
        progress: show a progress bar (a tqdm bar on a terminal or in Jupyter; none in a log).

    Returns:
        layer -> ``Tensor[N, C]`` (``[N, C, H, W]`` for "map"), concatenated over batches.
    """
    from ._progress import progress_bar

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    check_images(images)
    names = [layers] if isinstance(layers, str) else list(layers)
    chunks: dict[str, list[Tensor]] = {name: [] for name in names}
    starts = range(0, images.shape[0], batch_size)
    with torch.no_grad(), record(model, names, at=at) as rec:
        for start in progress_bar(starts, desc=f"record {model.name}", enabled=progress, leave=False):
            model(images[start : start + batch_size])
            for name in names:
                chunks[name].append(rec[name].to(images.device))
    return {name: torch.cat(parts) for name, parts in chunks.items()}
