"""``Model``: a network in eval mode with its layer names, preprocessing and receptive fields."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from .._checks import check_images, check_units, unknown_name
from .._hooks import StopForward, forward_hooks

__all__ = ["Model", "ReceptiveField"]

Preprocess = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's centre unit looks in the input image.

    Attributes:
        layer: the layer name.
        input_size: (H, W) of the input it was measured at.
        map_size: (H, W) of the layer's activation map at that input size.
        unit: (y, x) of the centre unit in the activation map, ``((H-1)//2, (W-1)//2)``.
        box: (y0, y1, x0, x1), inclusive input-pixel bounds of the pixels that reach
            the centre unit (clipped to the image).
        center: (y, x) input position of the box's centre, in pixels (may be a half pixel).
        size: the side of the box, ``max(y1 - y0, x1 - x0) + 1``, in input pixels.
    """

    layer: str
    input_size: tuple[int, int]
    map_size: tuple[int, int]
    unit: tuple[int, int]
    box: tuple[int, int, int, int]
    center: tuple[float, float]
    size: int

    @property
    def clipped(self) -> bool:
        """True when the field reaches the image border (the true field may be larger)."""
        y0, y1, x0, x1 = self.box
        h, w = self.input_size
        return y0 == 0 or x0 == 0 or y1 == h - 1 or x1 == w - 1


class Model:
    """A network prepared for probing: eval mode, named layers, preprocessing.

    Build one with :func:`equifind.load_model`. Calling it on RGB images in [0, 1]
    (``Tensor[N, 3, H, W]``) preprocesses them and runs the network; inside
    :func:`equifind.record` the forward pass stops after the deepest recorded layer
    and the call returns ``None``.

    Attributes:
        module: the ``nn.Module`` (eval mode).
        name: a short name, e.g. ``"googlenet_bvlc"``.
        input_size: the network's usual input side in pixels (224 for the zoo).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        preprocess: Preprocess | None = None,
        layer_names: dict[str, str] | None = None,
        input_size: int = 224,
    ) -> None:
        """
        Args:
            module: the network.
            name: a short name.
            preprocess: maps RGB in [0, 1] to the network's input space; identity if None.
            layer_names: public layer name -> ``named_modules()`` path, in forward order.
                If None, every module that runs exactly once per forward and outputs a
                4-D tensor is a layer, named by its path.
            input_size: the network's usual input side in pixels.
        """
        self.module = module.eval()
        self.name = name
        self._preprocess = preprocess
        self.input_size = int(input_size)
        self._given_layer_names = dict(layer_names) if layer_names is not None else None
        self._rf_cache: dict[tuple[str, tuple[int, int]], ReceptiveField] = {}

    def __repr__(self) -> str:
        return f"Model({self.name!r}, {len(self.layers)} layers, device={self.device})"

    # -- device -----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device of the network's first parameter (CPU for a parameter-free network)."""
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the network's first floating-point parameter (float32 for a parameter-free network):
        the dtype :meth:`preprocess` converts images to."""
        p = next((p for p in self.module.parameters() if p.is_floating_point()), None)
        return p.dtype if p is not None else torch.float32

    def to(self, device: torch.device | str) -> Model:
        """Move the network to ``device``; returns self."""
        self.module.to(device)
        return self

    # -- layers -----------------------------------------------------------------
    @cached_property
    def _layer_info(self) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
        """Public layer name -> (module, output shape at a 1×3×S×S input), in forward order."""
        modules = dict(self.module.named_modules())
        if self._given_layer_names is not None:
            candidates = {}
            for public, path in self._given_layer_names.items():
                if path not in modules:
                    raise KeyError(f"layer {public!r} maps to module {path!r}, which {self.name} does not have")
                candidates[public] = modules[path]
        else:
            candidates = {path: mod for path, mod in modules.items() if path}
        calls: dict[str, list[tuple[int, ...]]] = {}

        def hook_for(name: str) -> Callable:
            def hook(_m: nn.Module, _i: tuple, out: object) -> None:
                shape = tuple(out.shape) if isinstance(out, Tensor) else ()
                calls.setdefault(name, []).append(shape)

            return hook

        size = self.input_size
        x = torch.zeros(1, 3, size, size, device=self.device)
        with torch.no_grad(), forward_hooks({m: hook_for(n) for n, m in candidates.items()}):
            self.module(self._to_input(x))
        info = {}
        for name in calls:  # dict order = first-call order = forward order
            shapes = calls[name]
            if len(shapes) == 1 and len(shapes[0]) == 4:
                info[name] = (candidates[name], shapes[0])
        if self._given_layer_names is not None:
            missing = [n for n in self._given_layer_names if n not in info]
            if missing:
                raise RuntimeError(f"layers {missing} of {self.name} did not produce one 4-D output per forward")
            info = {n: info[n] for n in self._given_layer_names}
        return info

    @property
    def layers(self) -> list[str]:
        """Ordered (forward order) names of the layers that can be recorded and probed."""
        return list(self._layer_info)

    def check_layer(self, layer: str) -> str:
        """Return ``layer`` if it exists, else raise ``KeyError`` naming the closest layers."""
        if layer not in self._layer_info:
            raise unknown_name(
                "layer", layer, self.layers, hint=f"List them with `equifind layers {self.name}` or `model.layers`."
            )
        return layer

    def layer_module(self, layer: str) -> nn.Module:
        """The module whose output is ``layer``."""
        return self._layer_info[self.check_layer(layer)][0]

    def num_units(self, layer: str) -> int:
        """Number of channels of ``layer``."""
        return self._layer_info[self.check_layer(layer)][1][1]

    def check_units(self, layer: str, units: Iterable[int] | None = None) -> list[int]:
        """Validated unit indices of ``layer`` (all units if None).

        Raises:
            KeyError: unknown layer. IndexError: a unit outside the layer (the message gives its size).
        """
        n = self.num_units(layer)
        return list(range(n)) if units is None else check_units(units, n, layer)

    def depth(self, layer: str) -> int:
        """Position of ``layer`` in forward order (0 = first)."""
        return self.layers.index(self.check_layer(layer))

    # -- running ----------------------------------------------------------------
    def _to_input(self, images: Tensor) -> Tensor:
        return self._preprocess(images) if self._preprocess is not None else images

    def preprocess(self, images: Tensor) -> Tensor:
        """Map RGB images in [0, 1] to the network's input space.

        Args:
            images: ``Tensor[N, 3, H, W]``, float RGB in [0, 1].

        Returns:
            ``Tensor[N, 3, H, W]`` on the model's device and in its :attr:`dtype` (float64 or
            float16 images are converted), as the network expects it.

        Raises:
            ValueError: images not float NCHW RGB in [0, 1].
        """
        check_images(images)
        return self._to_input(images.to(device=self.device, dtype=self.dtype))

    def forward_preprocessed(self, inputs: Tensor) -> Tensor | None:
        """Run the network on already-preprocessed inputs; ``None`` if a recording stopped it early."""
        try:
            return self.module(inputs.to(self.device))
        except StopForward:
            return None

    def __call__(self, images: Tensor) -> Tensor | None:
        """Preprocess RGB images in [0, 1] and run the network.

        Args:
            images: ``Tensor[N, 3, H, W]``, float RGB in [0, 1].

        Returns:
            The network's output, or ``None`` when a :func:`record` block stopped the
            pass after its deepest layer.

        Warns:
            UserWarning: inside a :func:`record` block, when the images are smaller than the
                receptive field of a recorded layer's centre unit (it then sees the network's
                padding, not image, beyond their border). A layer's field is measured once per
                model (:meth:`receptive_field`, cached): the first such call in a block may run
                that measurement, a forward and backward pass at ``input_size``, before its own.
        """
        inputs = self.preprocess(images)
        self._warn_if_smaller_than_fields(tuple(images.shape[-2:]))
        return self.forward_preprocessed(inputs)

    def _warn_if_smaller_than_fields(self, hw: tuple[int, int]) -> None:
        """Warn when an ``hw`` image is smaller than the receptive field of a layer being recorded."""
        from ..record import recorded_layers  # record depends on Model; import late

        if min(hw) >= self.input_size:  # fields are measured at input_size, so none is larger
            return
        for layer in recorded_layers(self):
            rf = self.receptive_field(layer)
            if hw[0] < rf.size or hw[1] < rf.size:
                warnings.warn(
                    f"images are {hw[0]}×{hw[1]} px, smaller than the {rf.size} px receptive field of the "
                    f"centre unit of layer {layer!r} (measured at {self.input_size}×{self.input_size}): beyond "
                    f"the image it sees the network's padding; give images of at least {rf.size}×{rf.size} px",
                    UserWarning,
                    stacklevel=3,
                )

    # -- receptive fields -------------------------------------------------------
    def receptive_field(self, layer: str, input_size: int | tuple[int, int] | None = None) -> ReceptiveField:
        """The receptive field of ``layer``'s centre unit, measured from gradients (cached).

        The gradient of the centre unit (summed over channels) with respect to a
        batch of random images marks every input pixel that can reach it; the
        bounding box of those pixels is the field.

        Args:
            layer: a layer name.
            input_size: side (or (H, W)) of the input to measure at; default ``input_size``.
        """
        self.check_layer(layer)
        if input_size is None:
            input_size = self.input_size
        hw = (input_size, input_size) if isinstance(input_size, int) else (int(input_size[0]), int(input_size[1]))
        key = (layer, hw)
        if key not in self._rf_cache:
            self._rf_cache[key] = self._measure_receptive_field(layer, hw)
        return self._rf_cache[key]

    def _measure_receptive_field(self, layer: str, hw: tuple[int, int]) -> ReceptiveField:
        from ..record import record  # record depends on Model; import late

        gen = torch.Generator().manual_seed(0)
        x = torch.rand(8, 3, *hw, generator=gen).to(self.device).requires_grad_(True)
        was_training = self.module.training
        with torch.enable_grad(), record(self, [layer], at="map", detach=False) as rec:
            self.forward_preprocessed(self._to_input(x))
            act = rec[layer]
            hh, ww = act.shape[-2:]
            uy, ux = (hh - 1) // 2, (ww - 1) // 2
            (grad,) = torch.autograd.grad(act[:, :, uy, ux].sum(), x)
        self.module.train(was_training)
        mask = grad.abs().sum(dim=(0, 1)) > 0
        ys = torch.nonzero(mask.any(dim=1)).flatten()
        xs = torch.nonzero(mask.any(dim=0)).flatten()
        if len(ys) == 0:
            raise RuntimeError(f"no input pixel reaches the centre unit of {layer!r}; cannot measure its receptive field")
        y0, y1, x0, x1 = int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])
        return ReceptiveField(
            layer=layer,
            input_size=hw,
            map_size=(int(hh), int(ww)),
            unit=(int(uy), int(ux)),
            box=(y0, y1, x0, x1),
            center=((y0 + y1) / 2, (x0 + x1) / 2),
            size=max(y1 - y0, x1 - x0) + 1,
        )
